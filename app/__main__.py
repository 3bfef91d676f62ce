"""`python -m app`: validate settings, migrate, start the worker pool, serve the studio."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

from pydantic import ValidationError

log = logging.getLogger("app")


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

    import uvicorn

    from app.db import migrate
    from app.main import create_app

    started = time.monotonic()
    settings.workspace_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings.resolved_database_url)
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
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level="info",
            timeout_graceful_shutdown=5,
        )
    finally:
        if pool is not None:
            pool.stop(timeout=settings.cancel_grace_seconds + 10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
