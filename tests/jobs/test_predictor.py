"""The resident predictor end to end: a real pool, the real `python -m workers.predictor`
process it supervises, real onnxruntime, requests through the real app."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session

from app.config import Settings
from app.models import Export, Job
from app.services.predictions import wake_predictor
from app.storage import Storage
from tests.factories import make_onnx_export, make_project
from tests.helpers import assert_api_error, wait_for
from tests.jobs.conftest import PoolRunner, worker_pid_alive
from workers.ml.export.formats import export_onnx
from workers.ml.export.spec import ExportSpec
from workers.predictor import ModelCache, open_wake_pipe, wait_for_wake

pytestmark = [pytest.mark.slow]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No fallback within these tests unless a test asks for it: a request the predictor does
    not answer would otherwise be answered by a worker and hide the failure."""
    return settings.model_copy(update={"predict_fallback_seconds": 120.0})


def png(seed: int) -> bytes:
    pixels = (np.random.default_rng(seed).random((32, 32, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_model(path: Path, seed: int = 0) -> None:
    torch.manual_seed(seed)
    spec = ExportSpec("classification", ["a", "b", "c"], 32, [0.5] * 3, [0.25] * 3, ["logits"])
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 3),
    ).eval()
    export_onnx(model, path, spec=spec, metadata=spec.metadata(fmt="onnx", opset=17), opset=17)


def make_export(session: Session, storage: Storage, project_id: int, name: str) -> Export:
    return make_onnx_export(session, storage, project_id, name, write_model)


@pytest.fixture
def model(session: Session, storage: Storage) -> Iterator[tuple[int, Export]]:
    project = make_project(session, name="Predict")
    assert project.id is not None
    yield project.id, make_export(session, storage, project.id, "tiny")


def predict(client: TestClient, project_id: int, **data: Any) -> Any:
    files = [("files", (f"{i}.png", png(i), "image/png")) for i in range(2)]
    return client.post(
        f"/api/projects/{project_id}/predict",
        files=files,
        data={k: str(v) for k, v in data.items()},
        params={"wait": 90},
    )


def job_of(session: Session, answer: dict[str, Any]) -> Job:
    session.expire_all()
    job = session.get(Job, answer["job_id"])
    assert job is not None
    return job


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def predictor_pids(pool: PoolRunner) -> list[int]:
    """Live `workers.predictor` children of this pool."""
    assert pool.process is not None
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        alive_child = int(fields[1]) == pool.process.pid and fields[0] != "Z"
        if alive_child and "workers.predictor" in cmdline(int(entry.name)):
            found.append(int(entry.name))
    return found


def test_requests_are_served_by_one_resident_predictor_with_a_model_cache(
    session: Session, storage: Storage, client: TestClient, pool: PoolRunner, model: Any
) -> None:
    project_id, export = model
    first = predict(client, project_id)
    assert first.status_code == 200, first.text
    job = job_of(session, first.json())
    assert job.queue == "predict" and job.status == "succeeded" and job.pid is not None
    assert "waiting on its wake pipe" in (storage.root / "predictor.log").read_text()
    assert "workers.predictor" in cmdline(job.pid)  # not a per-request `workers.run` process
    assert first.json()["timing"]["served_by"] == "predictor"
    assert first.json()["timing"]["model_cached"] is False
    assert first.json()["timing"]["model_load_ms"] > 0
    assert [r["ok"] for r in first.json()["results"]] == [True, True]
    assert [r["file"] for r in first.json()["results"]] == ["0.png", "1.png"]

    # a bad job (a file that is no ONNX model) fails that job only
    broken = make_export(session, storage, project_id, "broken")
    assert broken.path is not None
    storage.resolve(broken.path).write_bytes(b"not an onnx model")
    failed = predict(client, project_id, export_id=broken.id)
    error = assert_api_error(failed, 409, "prediction_failed")
    assert session.get(Job, error["details"]["job_id"]).pid == job.pid  # type: ignore[union-attr]

    second = predict(client, project_id, export_id=export.id)
    assert second.status_code == 200, second.text
    assert job_of(session, second.json()).pid == job.pid  # the same, still-living process
    assert second.json()["timing"]["model_cached"] is True
    assert second.json()["timing"]["model_load_ms"] == 0
    assert second.json()["results"] == first.json()["results"]
    assert job.id is not None and not list(storage.job_dir(job.id).glob("inputs/*"))

    pid = job.pid
    pool.stop()  # the pool stops its predictor too
    wait_for(lambda: not worker_pid_alive(pid), timeout=30, what="predictor to stop")


def test_a_crashed_predictor_is_restarted_and_the_next_request_answered(
    session: Session, client: TestClient, pool: PoolRunner, model: Any
) -> None:
    project_id, _export = model
    first = predict(client, project_id)
    assert first.status_code == 200, first.text
    old = job_of(session, first.json()).pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: not worker_pid_alive(old), what="predictor to die")
    new = wait_for(lambda: predictor_pids(pool), timeout=30, what="a restarted predictor")
    assert old not in new
    second = predict(client, project_id)
    assert second.status_code == 200, second.text
    assert job_of(session, second.json()).pid == new[0]
    assert second.json()["timing"]["served_by"] == "predictor"
    assert second.json()["timing"]["model_cached"] is False  # a new process loads it again
    assert "resident predictor" in pool.log.read_text() and "restart in" in pool.log.read_text()


def test_without_a_predictor_a_worker_answers(
    session: Session, settings: Settings, client: TestClient, model: Any
) -> None:
    project_id, _export = model
    runner = PoolRunner(settings.model_copy(update={"resident_predictor": False}))
    runner.start()
    try:
        answer = predict(client, project_id)
        assert answer.status_code == 200, answer.text
        assert answer.json()["timing"]["served_by"] == "worker"
        assert answer.json()["timing"]["model_cached"] is False
        job = job_of(session, answer.json())
        assert job.queue == "predict" and job.exit_code == 0
        assert not predictor_pids(runner)
    finally:
        runner.stop()


def test_a_stuck_predictor_is_bypassed_after_the_fallback_delay(
    session: Session, settings: Settings, client: TestClient, model: Any
) -> None:
    project_id, _export = model
    runner = PoolRunner(settings.model_copy(update={"predict_fallback_seconds": 1.0}))
    runner.start()
    stopped: int | None = None
    try:
        pids = wait_for(lambda: predictor_pids(runner), timeout=30, what="the predictor")
        # let it come up fully (it serves one request), then freeze it
        first = predict(client, project_id)
        assert first.status_code == 200, first.text
        if first.json()["timing"]["served_by"] == "predictor":
            assert job_of(session, first.json()).pid == pids[0]
        stopped = pids[0]
        os.kill(stopped, signal.SIGSTOP)
        answer = predict(client, project_id)
        assert answer.status_code == 200, answer.text
        assert answer.json()["timing"]["served_by"] == "worker"
        assert job_of(session, answer.json()).pid != stopped
        assert "predict job" in runner.log.read_text()
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
        runner.stop()


def test_model_cache_reuses_reloads_changed_files_and_drops_deleted_exports(
    session: Session, storage: Storage, model: Any
) -> None:
    project_id, export = model
    path = storage.resolve(export.path)
    cache = ModelCache(size=1)
    loaded, cached = cache.get(export, path)
    assert cached is False
    again, cached = cache.get(export, path)
    assert cached is True and again is loaded
    write_model(path, seed=1)  # re-exported in place: a new file, so a new model
    reloaded, cached = cache.get(export, path)
    assert cached is False and reloaded is not loaded
    assert (cache.stats.hits, cache.stats.misses) == (1, 2)

    other = make_export(session, storage, project_id, "other")
    cache.get(other, storage.resolve(other.path))  # type: ignore[arg-type]
    assert list(cache.entries) == [other.id]  # size 1: the least recently used went

    cache.prune(session, storage.resolve)
    assert list(cache.entries) == [other.id]  # still there and unchanged
    session.delete(other)
    session.commit()
    cache.prune(session, storage.resolve)
    assert cache.entries == {}


def test_the_wake_pipe_wakes_a_waiting_predictor_and_never_blocks_the_web_process(
    storage: Storage,
) -> None:
    assert wake_predictor(storage) is False  # no pipe yet: nothing to do
    fd = open_wake_pipe(storage.predictor_wake_path)
    assert fd is not None
    try:
        assert wait_for_wake(fd, 0.01) is False
        assert all(wake_predictor(storage) for _ in range(3))
        assert wait_for_wake(fd, 5) is True
        assert wait_for_wake(fd, 0.01) is False  # drained: three wake-ups, one wake
        for _ in range(70_000):  # more than a pipe holds: a full pipe is no error
            wake_predictor(storage)
        assert wait_for_wake(fd, 5) is True and wait_for_wake(fd, 0.01) is False
    finally:
        os.close(fd)
    assert wake_predictor(storage) is False  # nobody listening: ENXIO, not an error
    storage.predictor_wake_path.unlink()
    storage.predictor_wake_path.write_text("not a pipe")
    assert wake_predictor(storage) is False
    fd = open_wake_pipe(storage.predictor_wake_path)  # the predictor replaces it
    assert fd is not None
    os.close(fd)


def test_a_predictor_whose_pool_died_during_its_start_up_exits(settings: Settings) -> None:
    """A pool killed (-9) right after spawning the predictor must not leave it running: the
    pool's pid comes in the environment, so the orphan notices even if it never saw the pool."""
    env = {
        **os.environ,
        **settings.child_env(),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "STUDIO_PREDICTOR_PARENT_PID": "999999999",  # not our parent: the pool is gone
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.predictor"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("the orphaned predictor kept running") from None
    assert process.returncode == 0
    assert b"the pool that started this predictor is gone" in err
