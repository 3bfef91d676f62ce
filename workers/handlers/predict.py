"""`predict` jobs: a batch of uploaded images through an ONNX export.

Normally the resident predictor (workers/predictor.py) runs them with its model cache; a
`python -m workers.run` worker runs the same code, loading the model afresh, when the pool
falls back (predictor down or stuck). No torch here: onnxruntime, numpy and PIL only."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.errors import Conflict, Invalid, NotFound
from app.models import Export
from workers.context import JobContext
from workers.handlers import register_handler

if TYPE_CHECKING:
    from workers.ml.predict import Predictor

# (export row, its resolved file) -> (a loaded predictor, whether it came from a cache)
PredictorSource = Callable[[Export, Path], "tuple[Predictor, bool]"]


def fresh_predictor(export: Export, path: Path) -> tuple[Predictor, bool]:
    from workers.ml.predict import Predictor

    return Predictor(path, threads=1), False


def run_prediction(
    ctx: JobContext, source: PredictorSource, *, served_by: str = "worker"
) -> dict[str, Any]:
    """The job's answer; `source` decides whether the model is loaded or taken from a cache."""
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
        load_started = time.perf_counter()
        predictor, cached = source(export, model_path)
        load_ms = 0.0 if cached else (time.perf_counter() - load_started) * 1000
        options = dict(ctx.params.get("options") or {})
        if "top_k" in ctx.params:  # jobs queued before options existed
            options.setdefault("top_k", int(ctx.params["top_k"]))
        outcome = predictor.predict([folder / item["stored"] for item in files], options=options)
    finally:
        ctx.storage.remove_tree(folder / "inputs")
    for item, result in zip(files, outcome["results"], strict=True):
        result["file"] = item["name"]
    results = outcome["results"]
    readable = sum(1 for r in results if r.get("ok"))
    if results and not readable:
        # Nothing was predicted: the job failed (the jobs list must not say "succeeded").
        raise Invalid(
            f"None of the {len(results)} file(s) is a readable image; send PNG, JPEG, BMP, "
            "GIF, TIFF or WebP files.",
            code="no_valid_images",
            details={"results": results},
        )
    meta = predictor.meta
    return {
        "summary": f"{readable} of {len(results)} file(s) predicted"
        + (f"; {len(results) - readable} could not be read" if readable < len(results) else ""),
        "model": {
            "export_id": export_id,
            "format": export.format,
            "experiment_id": export.experiment_id,
            "checkpoint": export.checkpoint,
            "task": meta.get("task"),
            "classes": meta.get("classes"),
            **({"multi_label": bool(meta["multi_label"])} if "multi_label" in meta else {}),
        },
        "results": outcome["results"],
        "timing": {
            **outcome["timing"],
            "model_load_ms": round(load_ms, 2),
            "model_cached": cached,
            "served_by": served_by,
            "worker_ms": round((time.perf_counter() - started) * 1000, 2),
        },
    }


@register_handler("predict")
def run_predict_job(ctx: JobContext) -> dict[str, Any]:
    return run_prediction(ctx, fresh_predictor)
