"""Round-trip latency of POST /api/projects/{pid}/predict through the real app and a real
worker pool, served by the resident predictor (cold: right after the pool starts, and the
first request for a model not yet cached; warm: a cached model), against the fallback that
spawns a worker per request (STUDIO_RESIDENT_PREDICTOR=false) and against the same Predictor
called in-process (the floor).

    .venv/bin/python benchmarks/predict_latency.py [--requests 8] [--poll 0.5]

Uses a temporary workspace and SQLite database.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402
from sqlmodel import Session  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db import engine_for, migrate  # noqa: E402
from app.main import create_app  # noqa: E402
from app.storage import Storage  # noqa: E402
from tests.factories import make_onnx_export, make_project  # noqa: E402
from workers.ml.export import formats  # noqa: E402
from workers.ml.export.spec import ExportSpec  # noqa: E402
from workers.ml.predict import Predictor  # noqa: E402


def png(seed: int) -> bytes:
    pixels = (np.random.default_rng(seed).random((32, 32, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def build(settings: Settings, storage: Storage) -> tuple[int, list[int], Path]:
    """A project with two identical tiny-CNN ONNX exports (two cache entries)."""
    engine = engine_for(settings.resolved_database_url)
    spec = ExportSpec(
        "classification", [str(i) for i in range(10)], 32, [0.5] * 3, [0.25] * 3, ["logits"]
    )
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 10),
    ).eval()
    export_ids = []
    with Session(engine, expire_on_commit=False) as session:
        project = make_project(session, name="Bench")
        assert project.id is not None
        for name in ("a", "b"):
            export = make_onnx_export(
                session,
                storage,
                project.id,
                name,
                lambda path: formats.export_onnx(
                    model, path, spec=spec, metadata=spec.metadata(fmt="onnx", opset=17), opset=17
                ),
            )
            assert export.id is not None and export.path is not None
            export_ids.append(export.id)
            path = storage.resolve(export.path)
        return project.id, export_ids, path


def start_pool(settings: Settings) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings.child_env(), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "workers.pool"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def timed(client: TestClient, project_id: int, export_id: int, batch: int) -> tuple[float, dict]:
    files = [("files", (f"{i}.png", png(i), "image/png")) for i in range(batch)]
    started = time.perf_counter()
    response = client.post(
        f"/api/projects/{project_id}/predict",
        files=files,
        data={"export_id": str(export_id)},
        params={"wait": 120},
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    return elapsed, response.json()["timing"]


def predictor_cpu_seconds(pool_pid: int) -> float | None:
    """utime + stime of the pool's predictor child, from /proc (Linux)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat[1]) == pool_pid and b"workers.predictor" in args:
            return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return None


def distinct(timings: list[dict], key: str) -> str:
    return ", ".join(sorted({str(t[key]).lower() for t in timings}))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=8, help="warm requests per batch size")
    parser.add_argument("--spawned", type=int, default=3, help="requests without the predictor")
    parser.add_argument(
        "--poll", type=float, default=0.5, help="pool poll interval (default 0.5 s)"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="predict-bench-"))
    settings = Settings(
        workspace=tmp / "ws", start_pool=False, poll_seconds=args.poll, workers=1, light_workers=1
    )
    settings.workspace_dir.mkdir(parents=True)
    migrate(settings.resolved_database_url)
    storage = Storage(settings.workspace_dir)
    storage.ensure()
    project_id, (first, second), path = build(settings, storage)
    client = TestClient(create_app(settings), base_url="http://127.0.0.1")
    rows: list[tuple[str, list[float], list[dict]]] = []

    def row(label: str, runs: list[tuple[float, dict]]) -> None:
        rows.append((label, [t for t, _ in runs], [timing for _, timing in runs]))

    # no fallback here, so the first row shows the predictor's own cold start
    pool = start_pool(settings.model_copy(update={"predict_fallback_seconds": 120.0}))
    try:
        row(
            "resident, sent right after the pool starts (predictor still booting)",
            [timed(client, project_id, first, 1)],
        )
        row("resident, first request for an uncached model", [timed(client, project_id, second, 1)])
        timed(client, project_id, first, 1)  # makes sure `first` is cached
        for batch in (1, 32):
            row(
                f"resident, warm (cached model), batch {batch}",
                [timed(client, project_id, first, batch) for _ in range(args.requests)],
            )
        before = predictor_cpu_seconds(pool.pid)
        time.sleep(10)
        after = predictor_cpu_seconds(pool.pid)
        idle = (after - before) / 10 if before is not None and after is not None else None
    finally:
        pool.terminate()
        pool.wait(timeout=60)

    fallback = settings.model_copy(update={"resident_predictor": False})
    pool = start_pool(fallback)
    try:
        row(
            "no predictor: a worker per request, batch 1",
            [timed(client, project_id, first, 1) for _ in range(args.spawned)],
        )
    finally:
        pool.terminate()
        pool.wait(timeout=60)

    predictor = Predictor(path, threads=1)
    inputs = tmp / "in"
    inputs.mkdir()
    for i in range(32):
        (inputs / f"{i}.png").write_bytes(png(i))
    floor: dict[int, float] = {}
    for batch in (1, 32):
        paths = sorted(inputs.iterdir())[:batch]
        times = []
        for _ in range(20):
            started = time.perf_counter()
            predictor.predict(paths)
            times.append(time.perf_counter() - started)
        floor[batch] = statistics.median(times)

    load = os.getloadavg()
    print(f"\npool poll {args.poll} s; load average {load[0]:.1f} on {os.cpu_count()} cores")
    print(
        "\n| request | n | round trip median s | min s | in the worker/predictor ms | "
        "model cached | served by |"
    )
    print("|---|---:|---:|---:|---:|---|---|")
    for label, trips, timings in rows:
        print(
            f"| {label} | {len(trips)} | {statistics.median(trips):.3f} | {min(trips):.3f} | "
            f"{statistics.median(t['worker_ms'] for t in timings):.1f} | "
            f"{distinct(timings, 'model_cached')} | "
            f"{distinct(timings, 'served_by')} |"
        )
    if idle is not None:
        print(f"\nidle predictor (wake pipe + 0.5 s poll): {idle * 100:.1f} % of one core")
    print(
        f"\nin-process Predictor floor: batch 1 {floor[1] * 1000:.1f} ms, "
        f"batch 32 {floor[32] * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
