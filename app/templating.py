"""The Jinja2 environment: autoescaping on, static URLs with a content hash for caching."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from fastapi.templating import Jinja2Templates

from app import __version__, overlays
from app.tasks import get_task, list_tasks

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"


@lru_cache(maxsize=256)
def _static_hash(relative: str) -> str:
    path = STATIC_DIR / relative
    if not path.is_file():
        raise FileNotFoundError(f"static file {relative!r} does not exist")
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


def static_url(relative: str) -> str:
    return f"/static/{relative}?v={_static_hash(relative)}"


def _timeago(value: datetime | None) -> str:
    if value is None:
        return ""
    seconds = (datetime.now(UTC) - value).total_seconds()
    for limit, unit in ((60, "s"), (3600, "min"), (86400, "h")):
        if seconds < limit:
            divisor = {"s": 1, "min": 60, "h": 3600}[unit]
            return f"{int(seconds // divisor)} {unit} ago"
    return value.strftime("%Y-%m-%d")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {(seconds % 3600) // 60:02d} min"


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        static=static_url,
        version=__version__,
        tasks=list_tasks,
        task=get_task,
        obb_points=overlays.obb_points,
        ring_path=overlays.ring_path,
        box=overlays.box,
        label_anchor=overlays.label_anchor,
        prediction_shapes=overlays.prediction_shapes,
        object_shapes=overlays.object_shapes,
    )
    env.filters["timeago"] = _timeago
    env.filters["duration"] = _duration
    return Jinja2Templates(env=env)


templates = make_templates()


def render(request: Any, name: str, status_code: int = 200, **context: Any) -> Any:
    """Render a page or partial; `request` and the nav state are always in the context."""
    context.setdefault("project", None)
    context.setdefault("active", "")
    return templates.TemplateResponse(request, name, context, status_code=status_code)
