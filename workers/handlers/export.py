"""`export` jobs: Export row → checkpoint → workers.ml.export → file, parity report, row.

torch and the ML core are imported inside the handler: every worker process imports all
handler modules, and a predict worker must not pay for torch."""

from __future__ import annotations

from typing import Any

from app import __version__
from app.db import utcnow
from app.errors import Conflict, NotFound
from app.models import Experiment, Export
from app.services import annotations as annotation_service
from app.services import decisions as decision_service
from app.storage import atomic_write_json
from app.tasks import get_task
from workers.context import JobCancelled, JobContext
from workers.handlers import register_handler

PARITY_LIMIT = 256  # images per parity check, from the first non-empty subset below
PARITY_SUBSETS = ("test", "val", "train")
SUFFIX = {"onnx": ".onnx", "onnx_int8": ".onnx", "torchscript": ".pt"}


def _set(ctx: JobContext, export_id: int, **values: Any) -> None:
    with ctx.session() as session:
        export = session.get(Export, export_id)
        if export is None:  # deleted meanwhile (with its experiment): nothing left to record
            return
        for key, value in values.items():
            setattr(export, key, value)
        session.add(export)
        session.commit()


@register_handler("export")
def run_export_job(ctx: JobContext) -> dict[str, Any]:
    export_id = int(ctx.params["export_id"])
    try:
        return _export(ctx, export_id)
    except JobCancelled:
        _set(ctx, export_id, status="cancelled", valid=False, finished_at=utcnow())
        raise
    except Exception as exc:
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        _set(
            ctx,
            export_id,
            status="failed",
            valid=False,
            validation={"error": message},
            finished_at=utcnow(),
        )
        raise


def _export(ctx: JobContext, export_id: int) -> dict[str, Any]:
    import numpy as np
    import torch
    from PIL import Image as PILImage

    from workers.ml.checkpoints import load_for_inference, preprocess
    from workers.ml.export.pipeline import run_export
    from workers.ml.export.runtime import worker_threads
    from workers.ml.export.spec import ExportSpec
    from workers.ml.tasks import get_task_code
    from workers.ml.tasks.base import samples_from_rows

    torch.set_num_threads(worker_threads())
    ctx.progress(0, 4, message="Loading checkpoint", force=True)
    with ctx.session() as session:
        export = session.get(Export, export_id)
        if export is None:
            raise NotFound(f"Export {export_id} does not exist.", code="export_not_found")
        experiment = session.get(Experiment, export.experiment_id)
        assert experiment is not None
        entry = (experiment.checkpoints or {}).get(export.checkpoint)
        if not entry:
            raise Conflict(
                f"Experiment {experiment.id} has no {export.checkpoint!r} checkpoint.",
                code="checkpoint_missing",
            )
        export.status, export.job_id = "running", ctx.job_id
        session.add(export)
        session.commit()
        checkpoint = ctx.storage.resolve(entry["path"])
        model = load_for_inference(checkpoint, device="cpu")
        code = get_task_code(model.task)
        limit = min(PARITY_LIMIT, code.parity_images(model))
        # Decision settings changed since training (a threshold) go into the metadata.
        model.info.update(decision_service.decision_for_experiment(session, experiment.id or 0))
        subset, rows = "none", []
        if experiment.split_id is not None:
            for subset in PARITY_SUBSETS:
                rows = annotation_service.subset_samples(
                    session,
                    ctx.storage,
                    split_id=experiment.split_id,
                    subsets=[subset],
                    limit=limit,
                )
                if rows:
                    break
            else:
                subset = "none"
        fmt, options = export.format, dict(export.options or {})
        project_id, experiment_id = experiment.project_id, int(experiment.id or 0)
        provenance = experiment.provenance or {}
        recorded = provenance.get("test_metrics") or {}
        extra = {
            "studio_version": __version__,
            "project_id": project_id,
            "experiment_id": experiment_id,
            "experiment": experiment.name,
            "model_id": experiment.model_id,
            # Which pretrained file (path, sha256) the network started from, or random init.
            "pretrained_weights": (model.provenance or {}).get("weights_used")
            or provenance.get("weights_used")
            or {"source": provenance.get("weights") or "unknown"},
            "checkpoint": export.checkpoint,
            "checkpoint_epoch": entry.get("epoch"),
            "split_id": experiment.split_id,
            "split_fingerprint": (model.provenance or {}).get("split_fingerprint")
            or provenance.get("split_fingerprint"),
            "export_id": export_id,
            "exported_at": utcnow().isoformat(),
        }

    samples = samples_from_rows(rows)
    ctx.progress(1, 4, message=f"Preparing {len(samples)} {subset} images", force=True)
    tensors = []
    for sample in samples:
        with PILImage.open(sample.path) as image:
            tensors.append(preprocess(image, model).numpy())
    inputs = (
        np.stack(tensors).astype(np.float32)
        if tensors
        else np.zeros((0, model.channels, model.image_size, model.image_size), np.float32)
    )
    wrapped = code.export_module(model)
    spec = ExportSpec(
        task=model.task,
        classes=list(model.classes),
        image_size=model.image_size,
        mean=list(model.mean),
        std=list(model.std),
        output_names=wrapped.output_names,
        channels=model.channels,
        batch=wrapped.batch,
        postprocess_spec=wrapped.postprocess,
        output_axes=wrapped.output_axes,
        script=wrapped.script,
        info=dict(model.info),
    )
    folder = ctx.storage.export_dir(project_id, experiment_id)
    path = folder / f"{export_id}-{fmt}{SUFFIX[fmt]}"
    ctx.progress(2, 4, message=f"Exporting as {fmt}", force=True)

    def compare(fmt: str, reference: Any, candidate: Any, meta: dict[str, Any]) -> dict[str, Any]:
        return code.parity(
            fmt=fmt, reference=reference, candidate=candidate, samples=samples, meta=meta
        )

    outcome = run_export(
        wrapped.module,
        spec=spec,
        fmt=fmt,
        path=path,
        inputs=inputs,
        compare=compare,
        opset=options.get("opset"),
        metadata_extra=extra,
        report=lambda message: ctx.log(message),
    )
    ctx.check_cancelled()
    validation = outcome["validation"]
    validation["subset"] = subset
    validation["reference"] = f"PyTorch eager, checkpoint {extra['checkpoint']!r}"
    summary = get_task(model.task).summary_metric
    if recorded and recorded.get("checkpoint", "best") == extra["checkpoint"]:
        validation["recorded_test_metric"] = recorded.get(summary)
        validation["recorded_test_metric_key"] = summary
    atomic_write_json(path.with_name(path.name + ".json"), outcome["metadata"])
    ctx.progress(3, 4, message="Recording the parity report", force=True)
    _set(
        ctx,
        export_id,
        status="completed",
        path=ctx.storage.relative(path),
        bytes=outcome["bytes"],
        valid=outcome["valid"],
        validation=validation,
        meta=outcome["metadata"],
        finished_at=utcnow(),
    )
    verdict = "valid" if outcome["valid"] else "NOT valid (outside tolerances)"
    ctx.log(
        f"Export {export_id} ({fmt}) is {verdict}", level="info" if outcome["valid"] else "warning"
    )
    ctx.progress(4, 4, message="Done", force=True)
    return {"export_id": export_id, "valid": outcome["valid"], "bytes": outcome["bytes"]}
