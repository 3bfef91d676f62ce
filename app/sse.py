"""Server-sent events: wire format and the polling loop behind every stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
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


async def poll_stream(
    fetch: Callable[[], Awaitable[tuple[list[str], bool]]],
    *,
    is_disconnected: Callable[[], Awaitable[bool]],
    interval: float,
    retry_ms: int = 2000,
) -> AsyncIterator[str]:
    """Yield what `fetch` returns each poll until it reports the stream is finished.

    `fetch` returns (messages, done). Keep-alive comments stop proxies from closing quiet
    streams; a disconnected client ends the loop at the next poll.
    """
    yield f"retry: {retry_ms}\n\n"
    last_sent = time.monotonic()
    while True:
        messages, done = await fetch()
        for message in messages:
            yield message
            last_sent = time.monotonic()
        if done:
            return
        if await is_disconnected():
            return
        if time.monotonic() - last_sent > KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(interval)
