"""Worker processes: the pool supervisor, the single-job runner, handlers and ML code."""
