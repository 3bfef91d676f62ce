"""Job handlers by kind: `register_handler("import")` on a function taking a JobContext.

Built-in handler modules are listed in BUILTIN; STUDIO_JOB_PLUGINS names extra modules
(tests use this door to add job kinds of their own).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

Handler = Callable[[Any], dict[str, Any] | None]

BUILTIN: tuple[str, ...] = (
    "workers.handlers.imports",
    "workers.handlers.train",
    "workers.handlers.evaluate",
    "workers.handlers.export",
    "workers.handlers.predict",
    "workers.handlers.gate",
)

_HANDLERS: dict[str, Handler] = {}


def register_handler(kind: str) -> Callable[[Handler], Handler]:
    def decorate(func: Handler) -> Handler:
        _HANDLERS[kind] = func
        return func

    return decorate


def load_handlers(plugins: list[str]) -> None:
    for module in (*BUILTIN, *plugins):
        importlib.import_module(module)


def get_handler(kind: str) -> Handler | None:
    return _HANDLERS.get(kind)


def handler_kinds() -> list[str]:
    return sorted(_HANDLERS)
