"""`predict` jobs (light queue): a batch of uploaded images through an ONNX export.

No torch here: the process imports onnxruntime, numpy and PIL only, so it starts in about a
second (see benchmarks/README.md for the measured request latency)."""

from __future__ import annotations

import time
from typing import Any

from app.errors import Conflict, NotFound
from app.models import Export
from workers.context import JobContext
from workers.handlers import register_handler


@register_handler("predict")
def run_predict_job(ctx: JobContext) -> dict[str, Any]:
    from workers.ml.predict import Predictor

    started = time.perf_counter()
    export_id = int(ctx.params["export_id"])
    with ctx.session() as session:
        export = session.get(Export, export_id)
        if export is None:
            raise NotFound(f"Export {export_id} does not exist.", code="export_not_found")
        if export.status != "completed" or not export.path:
            raise Conflict(f"Export {export_id} is {export.status}.", code="export_not_ready")
        model_path = ctx.storage.resolve(export.path)
    folder = ctx.storage.job_dir(ctx.job_id)
    files = ctx.params.get("files", [])
    try:
        predictor = Predictor(model_path, threads=1)
        outcome = predictor.predict(
            [folder / item["stored"] for item in files], top_k=int(ctx.params.get("top_k", 5))
        )
    finally:
        ctx.storage.remove_tree(folder / "inputs")
    for item, result in zip(files, outcome["results"], strict=True):
        result["file"] = item["name"]
    meta = predictor.meta
    return {
        "model": {
            "export_id": export_id,
            "format": export.format,
            "experiment_id": export.experiment_id,
            "checkpoint": export.checkpoint,
            "task": meta.get("task"),
            "multi_label": bool(meta.get("multi_label")),
            "classes": meta.get("classes"),
        },
        "results": outcome["results"],
        "timing": {
            **outcome["timing"],
            "model_load_ms": round(predictor.load_seconds * 1000, 2),
            "worker_ms": round((time.perf_counter() - started) * 1000, 2),
        },
    }
