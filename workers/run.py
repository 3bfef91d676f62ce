"""`python -m workers.run <job_id>`: run one claimed job in this (its own) process.

Exit codes tell the pool what happened if the process could not write its own final status:
0 succeeded, 3 failed, 4 cancelled, 5 interrupted (asked to stop by a studio shutdown);
docs/architecture.md states the same (tests/jobs/test_exit_codes.py holds both to it).

What users read about a failure is plain: a StudioError's own sentence, a machine fault in
words (disk full, database busy, permission denied), else the exception's first line with
workspace paths made relative. Tracebacks and raw text go to the job log only.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
from typing import Any

from sqlmodel import Session

from app.config import get_settings
from app.db import engine_for
from app.errors import StudioError
from app.faults import scrub, user_message
from app.models import Job, JobStatus
from app.services import jobs as job_service
from workers.context import JobCancelled, JobContext
from workers.handlers import get_handler, handler_kinds, load_handlers

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED, EXIT_INTERRUPTED = 0, 3, 4, 5

log = logging.getLogger("workers.run")


def _heartbeat_loop(ctx: JobContext, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            with ctx.session() as session:
                still_running = job_service.heartbeat(session, job_id=ctx.job_id)
        except Exception:  # a busy database must not kill the job; the next beat retries
            log.warning("heartbeat for job %s failed", ctx.job_id, exc_info=True)
            continue
        if not still_running:
            # Someone else ended this job (the pool thought we were gone): stop at a safe point.
            ctx.stop_requested.set()


def _finish(ctx: JobContext, status: JobStatus, **kwargs: Any) -> None:
    with ctx.session() as session:
        job_service.finish_job(session, job_id=ctx.job_id, status=status, **kwargs)


def run(job_id: int) -> int:
    settings = get_settings()
    engine = engine_for(settings.resolved_database_url)
    load_handlers(settings.job_plugins)
    with Session(engine, expire_on_commit=False) as session:
        job = session.get(Job, job_id)
    if job is None or job.status != JobStatus.running.value:
        log.error("job %s is not a running job; nothing to do", job_id)
        return EXIT_FAILED
    ctx = JobContext(job, settings, engine)

    def on_term(_signum: int, _frame: Any) -> None:
        ctx.stop_requested.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    stop_beat = threading.Event()
    beat = threading.Thread(
        target=_heartbeat_loop, args=(ctx, settings.heartbeat_seconds, stop_beat), daemon=True
    )
    beat.start()
    try:
        handler = get_handler(job.kind)
        if handler is None:
            raise StudioError(
                f"No handler for job kind {job.kind!r}; known kinds: {', '.join(handler_kinds())}."
            )
        result = handler(ctx) or {}
        summary = str(result.get("summary") or "")  # a handler's one-line outcome, if it has one
        _finish(ctx, JobStatus.succeeded, result=result, message=summary, exit_code=EXIT_OK)
        return EXIT_OK
    except JobCancelled as stopped:
        if ctx.user_cancelled():
            message = str(stopped) or "Cancelled"
            _finish(ctx, JobStatus.cancelled, message=message, exit_code=EXIT_CANCELLED)
            return EXIT_CANCELLED
        _finish(
            ctx,
            JobStatus.interrupted,
            message="Stopped by a studio shutdown",
            exit_code=EXIT_INTERRUPTED,
        )
        return EXIT_INTERRUPTED
    except StudioError as exc:
        shown = scrub(exc.message, settings.workspace_dir)
        _finish(
            ctx,
            JobStatus.failed,
            message=shown[:500],
            error=shown,
            result={"error": {**exc.as_dict()["error"], "message": shown}},
            exit_code=EXIT_FAILED,
        )
        return EXIT_FAILED
    except Exception as exc:
        shown = user_message(exc, settings.workspace_dir)
        log.exception("job %s failed", job_id)
        root = str(settings.workspace_dir)
        try:
            ctx.event(
                "log",
                {
                    "level": "error",
                    "message": shown,
                    "detail": f"{type(exc).__name__}: {exc}".replace(root, "<workspace>")[-4000:],
                    "traceback": traceback.format_exc().replace(root, "<workspace>")[-8000:],
                },
            )
        finally:
            _finish(ctx, JobStatus.failed, message=shown[:500], error=shown, exit_code=EXIT_FAILED)
        return EXIT_FAILED
    finally:
        stop_beat.set()


def main(argv: list[str]) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s pid={os.getpid()} %(levelname)s %(name)s: %(message)s",
    )
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m workers.run <job_id>", file=sys.stderr)
        return 2
    return run(int(argv[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
