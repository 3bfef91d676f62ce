"""A real worker pool (`python -m workers.pool`) on the test's database and workspace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings

ROOT = Path(__file__).resolve().parents[2]


class PoolRunner:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None
        self.log = settings.workspace_dir / "pool.log"

    def start(self) -> None:
        env = {**os.environ, **self.settings.child_env(), "PYTHONPATH": str(ROOT)}
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "workers.pool"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=timeout)
        self.process = None


@pytest.fixture
def pool(settings: Settings) -> Iterator[PoolRunner]:
    runner = PoolRunner(settings)
    runner.start()
    yield runner
    runner.stop()


def worker_pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
