"""Server-sent events: the wire format (the streams themselves live in app/streams.py)."""

from __future__ import annotations

import json
from typing import Any

KEEPALIVE_SECONDS = 15.0
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def format_event(data: Any, *, event: str | None = None, id: int | None = None) -> str:
    """One SSE message; strings are sent as-is (multi-line safe), anything else as JSON."""
    text = data if isinstance(data, str) else json.dumps(data, default=str)
    lines = []
    if id is not None:
        lines.append(f"id: {id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in text.splitlines() or [""])
    return "\n".join(lines) + "\n\n"


def parse_last_event_id(header: str | None, query: int | None) -> int:
    """Resume point: the Last-Event-ID header a reconnecting EventSource sends, or ?after=."""
    if query is not None:
        return max(0, query)
    if header and header.strip().isdigit():
        return int(header.strip())
    return 0
