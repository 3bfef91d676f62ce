"""Job kinds that exist only for the tests (loaded through STUDIO_JOB_PLUGINS)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from workers.context import JobContext
from workers.handlers import register_handler


@register_handler("test.count")
def count(ctx: JobContext) -> dict[str, Any]:
    """Counts to params.steps, reporting progress; cooperative, so cancel stops it cleanly."""
    steps = int(ctx.params.get("steps", 10))
    delay = float(ctx.params.get("delay", 0.1))
    for i in range(1, steps + 1):
        time.sleep(delay)
        ctx.progress(i, steps, message=f"step {i}", unit="steps", force=True)
    ctx.log("counted")
    return {"counted": steps}


@register_handler("test.crash")
def crash(ctx: JobContext) -> dict[str, Any]:
    ctx.progress(1, 4, message="about to fail", force=True)
    raise RuntimeError("boom: the test handler crashed on purpose")


@register_handler("test.exit")
def hard_exit(ctx: JobContext) -> dict[str, Any]:
    """Dies without a word, as a segfault or an os._exit in a library would."""
    print("worker: exiting hard", flush=True)
    os._exit(int(ctx.params.get("code", 7)))


@register_handler("test.hang")
def hang(ctx: JobContext) -> dict[str, Any]:
    """Blocks and never reaches a safe point; only the SIGKILL after the grace period ends it."""
    ctx.progress(0, 1, message="hanging", force=True)
    while True:
        time.sleep(3600)


@register_handler("test.ignore_term")
def ignore_term(ctx: JobContext) -> dict[str, Any]:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ctx.progress(0, 1, message="ignoring SIGTERM", force=True)
    while True:
        time.sleep(0.05)


@register_handler("test.fault")
def fault(ctx: JobContext) -> dict[str, Any]:
    """Fails the way a bad day does, with real exceptions from real components."""
    import io
    import sqlite3

    from PIL import Image

    which = ctx.params.get("fault")
    if which == "disk_full":
        # SQLite's own "database or disk is full", through SQLAlchemy like the studio's writes.
        from sqlalchemy import create_engine, event, text

        engine = create_engine(f"sqlite:///{ctx.storage.job_dir(ctx.job_id) / 'full.db'}")

        def tiny(conn: sqlite3.Connection, _record: object) -> None:
            conn.execute("PRAGMA max_page_count=2")

        event.listen(engine, "connect", tiny)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x TEXT)"))
            for _ in range(100):
                conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": "x" * 4000})
    if which == "permission":
        target = ctx.storage.images_dir(1)
        raise PermissionError(13, "Permission denied", str(target))
    if which == "image":
        Image.open(io.BytesIO(b"not an image at all"))
    raise RuntimeError(f"unknown fault {which!r}")
