"""Code halves of the task types, matched by key with app.tasks (the data halves).

Each task is a subpackage here (`workers/ml/tasks/<task>/`) whose __init__ registers a
`TaskCode` with `register_task_code`; discovery imports every subpackage, so adding a task
touches no shared file. Package __init__s stay free of torch (the predictor imports them to
decode outputs); the heavy parts load when a method needs them.
"""

from __future__ import annotations

import importlib
import pkgutil

from workers.ml.tasks.base import TaskCode

_CODE: dict[str, TaskCode] = {}
_loaded = False


def register_task_code(code: TaskCode) -> TaskCode:
    """Add or replace a task's code half (built-ins use the door a plugin would)."""
    _CODE[code.key] = code
    return code


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg:
            importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True


def get_task_code(key: str) -> TaskCode:
    _load()
    try:
        return _CODE[key]
    except KeyError:
        raise KeyError(f"no code half for task {key!r}; have {sorted(_CODE)}") from None


def task_code_keys() -> list[str]:
    _load()
    return sorted(_CODE)
