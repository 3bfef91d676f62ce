"""Code halves of the task types, matched by key with app.tasks (the data halves).

A new task (detection, segmentation...) adds a module here and lists it in MODULES; shared code
(train.py, handlers) looks the task up by key and never names one.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

MODULES = ("workers.ml.tasks.classification",)


@dataclass(frozen=True)
class TaskCode:
    key: str
    build_module: Any  # (config, classes, multi_label, provenance) -> LightningModule
    evaluate: Any  # (checkpoint path, samples, batch_size) -> metrics dict
    primary_metric: str
    metric_mode: str = "max"


_CODE: dict[str, TaskCode] = {}


def register_task_code(code: TaskCode) -> TaskCode:
    _CODE[code.key] = code
    return code


def _load() -> None:
    for module in MODULES:
        importlib.import_module(module)


def get_task_code(key: str) -> TaskCode:
    _load()
    try:
        return _CODE[key]
    except KeyError:
        raise KeyError(f"no training code for task {key!r}; have {sorted(_CODE)}") from None


def task_code_keys() -> list[str]:
    _load()
    return sorted(_CODE)
