"""Start-up and shutdown: one clear line and exit 2 on an unusable workspace; on SIGTERM the
studio stops accepting, stops its pool (workers record `interrupted`), then exits 0 — also as
PID 1, as in a container."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.hardening.conftest import StudioFactory
from tests.helpers import wait_for
from tests.support.studio import ROOT, LiveStudio

pytestmark = pytest.mark.slow

UNSHARE = shutil.which("unshare")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _stop_in_order(studio: LiveStudio, target_pid: int) -> None:
    job_id = studio.submit_job("test.count", steps=2000, delay=0.05)
    wait_for(lambda: (studio.job(job_id).progress or 0) > 0, what="the job to run")
    with (
        httpx.Client(base_url=studio.url, timeout=30) as client,
        client.stream("GET", f"/api/jobs/{job_id}/events") as stream,
    ):
        assert stream.status_code == 200
        started = time.monotonic()
        os.kill(target_pid, signal.SIGTERM)
        for _ in stream.iter_lines():  # the open stream ends with the shutdown
            pass
        assert time.monotonic() - started < 10
    code = studio.process.wait(timeout=60)
    log = studio.log.read_text()
    assert code == 0, log[-3000:]
    job = studio.job(job_id)
    assert job.status == "interrupted" and job.message == "Stopped by a studio shutdown", job
    assert "worker pool stopped" in log
    assert "is gone; stopping the pool" not in log  # stopped by the studio, not orphaned
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{studio.url}/api/health", timeout=2)


def test_sigterm_stops_accepting_then_the_pool_then_exits_0(start_studio: StudioFactory) -> None:
    studio = start_studio()
    _stop_in_order(studio, studio.process.pid)


@pytest.mark.skipif(UNSHARE is None, reason="needs unshare(1) to run the studio as PID 1")
def test_sigterm_as_pid_1_shuts_down_the_same_way(start_studio: StudioFactory) -> None:
    prefix = [str(UNSHARE), "--pid", "--fork", "--mount-proc", "--kill-child"]
    try:
        studio = start_studio(prefix=prefix)
    except RuntimeError as exc:
        if "Operation not permitted" in str(exc):
            pytest.skip("PID namespaces are not allowed here")
        raise
    children = _children(studio.process.pid)
    assert len(children) == 1
    pid1 = children[0]
    status = Path(f"/proc/{pid1}/status").read_text().splitlines()
    nspid = next(line for line in status if line.startswith("NSpid:")).split()
    assert nspid[-1] == "1", nspid  # the studio is PID 1 in its namespace
    _stop_in_order(studio, pid1)


def _start_expecting_failure(
    workspace: Path, prefix: list[str]
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STUDIO_WORKSPACE": str(workspace)}
    env.pop("STUDIO_DATABASE_URL", None)
    return subprocess.run(
        [*prefix, sys.executable, "-m", "app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unwritable_workspace_is_one_line_and_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the workspace should be")
    result = _start_expecting_failure(blocker / "workspace", [])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(blocker / "workspace") in lines[0] and "Not a directory" in lines[0]


@pytest.mark.skipif(UNSHARE is None, reason="needs unshare(1) for a read-only mount")
def test_read_only_workspace_is_one_line_and_exit_2(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    script = f'mount -t tmpfs -o ro,size=1m tmpfs "{workspace}" && exec "$@"'
    prefix = [str(UNSHARE), "--mount", "sh", "-c", script, "sh"]
    result = _start_expecting_failure(workspace, prefix)
    if "mount:" in result.stderr:
        pytest.skip(f"cannot mount here: {result.stderr.strip()}")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(workspace) in lines[0] and "Read-only file system" in lines[0]
