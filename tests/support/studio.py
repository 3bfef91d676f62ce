"""A live studio: `python -m app` (worker pool included) in a subprocess on a workspace."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.pg import free_port

ROOT = Path(__file__).resolve().parents[2]


class LiveStudio:
    def __init__(
        self,
        workspace: Path,
        extra_env: dict[str, str] | None = None,
        database_url: str | None = None,
        prefix: list[str] | None = None,
    ) -> None:
        """`prefix` runs the studio under another command (e.g. `unshare` to make it PID 1)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workspace = workspace
        self.log = workspace.parent / f"{workspace.name}.log"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "STUDIO_WORKSPACE": str(workspace),
            "STUDIO_PORT": str(self.port),
            "STUDIO_JOB_PLUGINS": "tests.jobs.kinds",
            "STUDIO_POLL_SECONDS": "0.2",
            "STUDIO_HEARTBEAT_SECONDS": "1",
            "STUDIO_CANCEL_GRACE_SECONDS": "3",
            "STUDIO_WORKERS": "1",
            "STUDIO_LIGHT_WORKERS": "1",
            **(extra_env or {}),
        }
        env.pop("STUDIO_DATABASE_URL", None)
        if database_url:
            env["STUDIO_DATABASE_URL"] = database_url
        self.database_url = database_url or f"sqlite:///{workspace / 'studio.db'}"
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [*(prefix or []), sys.executable, "-m", "app"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 120  # a loaded 2-core machine starts slowly
        while True:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self._end_process()  # never leave a studio (and its worker pool) behind
                raise RuntimeError(f"studio did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        self.api = httpx.Client(base_url=self.url, timeout=30)

    def submit_job(self, kind: str, **params: object) -> int:
        """Queue a job (test-only kinds included) straight into the studio's database."""
        from sqlmodel import Session

        from app.db import make_engine
        from app.services.jobs import submit_job

        engine = make_engine(self.database_url)
        try:
            with Session(engine) as session:
                job = submit_job(session, kind=kind, title=kind, params=dict(params))
        finally:
            engine.dispose()
        assert job.id is not None
        return job.id

    def job(self, job_id: int) -> Any:
        """The job's row, read straight from the studio's database."""
        from sqlmodel import Session

        from app.db import make_engine
        from app.models import Job

        engine = make_engine(self.database_url)
        try:
            with Session(engine) as session:
                job = session.get(Job, job_id)
                assert job is not None
                return job
        finally:
            engine.dispose()

    def stop(self) -> None:
        self.api.close()
        self._end_process()

    def _end_process(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
