"""Round-trip latency of POST /api/projects/{pid}/predict: a `predict` job per request on the
light queue (a fresh worker process each time), against running the same Predictor in a
process that already has the model loaded (what a long-lived predictor would cost).

    .venv/bin/python benchmarks/predict_latency.py [--requests 8] [--poll 0.5]

Uses a temporary workspace and SQLite database, a real worker pool and the real app.
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
from app.db import engine_for, migrate, utcnow  # noqa: E402
from app.main import create_app  # noqa: E402
from app.models import Experiment, Export  # noqa: E402
from app.storage import Storage  # noqa: E402
from tests.factories import make_project  # noqa: E402
from workers.ml.export import formats  # noqa: E402
from workers.ml.export.spec import ExportSpec  # noqa: E402
from workers.ml.predict import Predictor  # noqa: E402


def png(seed: int) -> bytes:
    pixels = (np.random.default_rng(seed).random((32, 32, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=8)
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
    engine = engine_for(settings.resolved_database_url)
    with Session(engine, expire_on_commit=False) as session:
        project = make_project(session, name="Bench")
        experiment = Experiment(project_id=project.id, name="bench", checkpoints={"best": {}})
        session.add(experiment)
        session.commit()
        spec = ExportSpec("classification", [str(i) for i in range(10)], 32, [0.5] * 3, [0.25] * 3)
        model = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
            torch.nn.Linear(16, 10),
        ).eval()
        path = storage.export_dir(project.id, experiment.id) / "bench.onnx"
        formats.export_onnx(
            model, path, spec=spec, metadata=spec.metadata(fmt="onnx", opset=17), opset=17
        )
        export = Export(
            experiment_id=experiment.id,
            checkpoint="best",
            format="onnx",
            status="completed",
            path=storage.relative(path),
            valid=True,
            finished_at=utcnow(),
        )
        session.add(export)
        session.commit()
        project_id = project.id

    env = {**os.environ, **settings.child_env(), "PYTHONPATH": str(ROOT)}
    pool = subprocess.Popen(
        [sys.executable, "-m", "workers.pool"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = TestClient(create_app(settings), base_url="http://127.0.0.1")
        rows = []
        for batch in (1, 32):
            files = [("files", (f"{i}.png", png(i), "image/png")) for i in range(batch)]
            trips, workers = [], []
            for _ in range(args.requests):
                started = time.perf_counter()
                answer = client.post(f"/api/projects/{project_id}/predict", files=files).json()
                trips.append(time.perf_counter() - started)
                workers.append(answer["timing"]["worker_ms"] / 1000)
            rows.append((batch, trips, workers))
    finally:
        pool.terminate()
        pool.wait(timeout=30)

    predictor = Predictor(path, threads=1)
    inputs = tmp / "in"
    inputs.mkdir()
    for i in range(32):
        (inputs / f"{i}.png").write_bytes(png(i))
    warm = {}
    for batch in (1, 32):
        paths = sorted(inputs.iterdir())[:batch]
        times = []
        for _ in range(20):
            started = time.perf_counter()
            predictor.predict(paths)
            times.append(time.perf_counter() - started)
        warm[batch] = statistics.median(times)

    print(f"\npool poll {args.poll} s, {args.requests} requests per row")
    print("\n| batch | request round trip median s | min s | in the worker s | warm predictor s |")
    print("|---:|---:|---:|---:|---:|")
    for batch, trips, workers in rows:
        print(
            f"| {batch} | {statistics.median(trips):.2f} | {min(trips):.2f} | "
            f"{statistics.median(workers):.3f} | {warm[batch]:.4f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
