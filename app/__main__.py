"""`python -m app`: validate settings, migrate, start the worker pool, serve the studio."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import uvicorn
from pydantic import ValidationError

log = logging.getLogger("app")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class PoolProcess:
    """Runs `python -m workers.pool` beside the web server and restarts it if it dies.

    The pool is a separate process (not a thread) so the web process never imports worker
    code and a busy pool never competes with request handling for the GIL.
    """

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="pool-watch", daemon=True)

    def start(self) -> None:
        self._spawn()
        self.thread.start()

    def _spawn(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "workers.pool"], env=self.env)

    def _watch(self) -> None:
        delay = 1.0
        while not self.stopping.is_set():
            assert self.process is not None
            code = self.process.poll()
            if code is not None and not self.stopping.is_set():
                log.error("worker pool exited with %s; restarting in %.0f s", code, delay)
                if self.stopping.wait(delay):
                    return
                delay = min(delay * 2, 30.0)
                self._spawn()
            self.stopping.wait(1.0)

    def stop(self, timeout: float) -> None:
        self.stopping.set()
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()


class StudioServer:
    """Uvicorn's server with the studio's shutdown order.

    Uvicorn re-raises a caught SIGTERM once it has stopped, which killed the process (-15)
    before `main` could stop the pool, and is ignored outright when the studio runs as PID 1
    in a container. Here SIGTERM/SIGINT only start the shutdown: live streams end at once,
    uvicorn stops accepting and drains requests, then `main` stops the pool and returns 0.
    """

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        self.server = uvicorn.Server(config)
        self.on_exit = on_exit
        self.server.capture_signals = self._capture_signals  # type: ignore[method-assign]

    @contextmanager
    def _capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _handle(self, sig: int, _frame: FrameType | None) -> None:
        log.info("received %s: shutting down", signal.Signals(sig).name)
        if self.server.should_exit and sig == signal.SIGINT:
            self.server.force_exit = True
        self.server.should_exit = True
        with contextlib.suppress(RuntimeError):  # no running loop yet: nothing to close
            asyncio.get_running_loop().call_soon_threadsafe(self.on_exit)

    def run(self) -> None:
        self.server.run()


def check_workspace(path: Path) -> str | None:
    """One line naming the folder and the problem when the studio cannot write its workspace."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        problem = exc.strerror or type(exc).__name__
        return f"AI Studio cannot use its workspace {path}: {problem} (STUDIO_WORKSPACE)."
    return None


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from app.config import Settings, describe_error

    try:
        settings = Settings()
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        return 2
    problem = check_workspace(settings.workspace_dir)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2

    from app.db import migrate
    from app.main import create_app

    started = time.monotonic()
    try:
        migrate(settings.resolved_database_url)
    except Exception as exc:
        print(f"AI Studio cannot open its database: {database_problem(exc)}", file=sys.stderr)
        return 2
    app = create_app(settings)

    pool = None
    if settings.start_pool and (settings.workers or settings.light_workers):
        pool = PoolProcess(
            {**os.environ, **settings.child_env(), "STUDIO_POOL_PARENT_PID": str(os.getpid())}
        )
        pool.start()
    log.info(
        "AI Studio ready in %.2f s on http://%s:%d (workspace %s, %s)",
        time.monotonic() - started,
        settings.host,
        settings.port,
        settings.workspace_dir,
        settings.resolved_database_url.split(":", 1)[0],
    )
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="info", timeout_graceful_shutdown=5
    )
    try:
        StudioServer(config, on_exit=app.state.streams.close).run()
    finally:
        if pool is not None:
            pool.stop(timeout=settings.cancel_grace_seconds + 10)
            log.info("worker pool stopped; AI Studio exits")
    return 0


def database_problem(exc: Exception) -> str:
    """The database error in one line, without SQL or a password from the URL."""
    from app.faults import describe, scrub

    fault = describe(exc)
    text = fault.message if fault else scrub(str(getattr(exc, "orig", None) or exc))
    return text.splitlines()[0][:300] if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
