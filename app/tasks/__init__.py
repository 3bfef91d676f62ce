"""Task types as data. Importing this package registers the built-ins."""

from app.tasks import builtin  # noqa: F401  (registers the seven task types)
from app.tasks.registry import (
    FEATURES,
    TaskSpec,
    enable_features,
    get_task,
    list_tasks,
    register_task,
)

__all__ = ["FEATURES", "TaskSpec", "enable_features", "get_task", "list_tasks", "register_task"]
