"""Task types as data. Importing this package discovers every task module in it, and each
registers itself through `register_task` (the door a plugin uses too)."""

from app.tasks.registry import (
    FEATURES,
    MetricSpec,
    TaskSpec,
    discover,
    get_task,
    list_tasks,
    map_sample,
    register_task,
)

discover("app.tasks")

__all__ = [
    "FEATURES",
    "MetricSpec",
    "TaskSpec",
    "get_task",
    "list_tasks",
    "map_sample",
    "register_task",
]
