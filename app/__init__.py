"""AI Studio: the web process (FastAPI, templates, REST API, job queue). Never imports torch."""

__version__ = "0.1.0"
