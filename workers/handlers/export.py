"""`export` jobs: Export row → checkpoint → workers.ml.export → file, parity report, row.

torch and the ML core are imported inside the handler: every worker process imports all
handler modules, and a predict worker must not pay for torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from app import __version__
from app.db import utcnow
from app.errors import Conflict, NotFound
from app.models import Annotation, Experiment, Export, Image, LabelClass, SplitMember
from app.storage import Storage, atomic_write_json
from workers.context import JobCancelled, JobContext
from workers.handlers import register_handler

PARITY_LIMIT = 256
PARITY_SUBSETS = ("test", "val", "train")
SUFFIX = {"onnx": ".onnx", "onnx_int8": ".onnx", "torchscript": ".pt"}


def parity_samples(
    session: Session,
    storage: Storage,
    experiment: Experiment,
    classes: list[str],
    multi_label: bool,
) -> tuple[str, list[tuple[Path, Any]]]:
    """Real images from the experiment's split (test subset first) with their true labels as
    indices into the model's classes."""
    if experiment.split_id is None:
        return "none", []
    for subset in PARITY_SUBSETS:
        image_ids = list(
            session.exec(
                select(SplitMember.image_id)
                .where(SplitMember.split_id == experiment.split_id, SplitMember.subset == subset)
                .order_by(col(SplitMember.image_id))
                .limit(PARITY_LIMIT)
            )
        )
        if image_ids:
            break
    else:
        return "none", []
    index = {name: i for i, name in enumerate(classes)}
    labels: dict[int, list[int]] = {image_id: [] for image_id in image_ids}
    rows = session.exec(
        select(Annotation.image_id, LabelClass.name)
        .join(LabelClass, col(LabelClass.id) == col(Annotation.class_id))
        .where(col(Annotation.image_id).in_(image_ids), Annotation.kind == "label")
    )
    for image_id, name in rows:
        if name in index:
            labels[image_id].append(index[name])
    paths = {
        image_id: stored
        for image_id, stored in session.exec(
            select(Image.id, Image.stored_path).where(col(Image.id).in_(image_ids))
        )
    }
    samples: list[tuple[Path, Any]] = []
    for image_id in image_ids:
        found = sorted(set(labels[image_id]))
        if multi_label:
            target: Any = found
        else:
            target = found[0] if len(found) == 1 else None
        samples.append((storage.resolve(paths[image_id]), target))
    return subset, samples


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
        subset, samples = parity_samples(
            session, ctx.storage, experiment, model.classes, model.multi_label
        )
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
            "checkpoint": export.checkpoint,
            "checkpoint_epoch": entry.get("epoch"),
            "split_id": experiment.split_id,
            "split_fingerprint": (model.provenance or {}).get("split_fingerprint")
            or provenance.get("split_fingerprint"),
            "export_id": export_id,
            "exported_at": utcnow().isoformat(),
        }

    ctx.progress(1, 4, message=f"Preparing {len(samples)} {subset} images", force=True)
    tensors = []
    for path, _target in samples:
        with PILImage.open(path) as image:
            tensors.append(preprocess(image, model).numpy())
    channels = model.channels
    inputs = (
        np.stack(tensors).astype(np.float32)
        if tensors
        else np.zeros((0, channels, model.image_size, model.image_size), np.float32)
    )
    spec = ExportSpec(
        task=model.task,
        classes=list(model.classes),
        image_size=model.image_size,
        mean=list(model.mean),
        std=list(model.std),
        channels=channels,
        multi_label=model.multi_label,
        thresholds=list(model.thresholds) if model.thresholds else None,
    )
    folder = ctx.storage.export_dir(project_id, experiment_id)
    path = folder / f"{export_id}-{fmt}{SUFFIX[fmt]}"
    ctx.progress(2, 4, message=f"Exporting as {fmt}", force=True)
    outcome = run_export(
        model.model,
        spec=spec,
        fmt=fmt,
        path=path,
        inputs=inputs,
        targets=[t for _p, t in samples],
        opset=options.get("opset"),
        metadata_extra=extra,
        report=lambda message: ctx.log(message),
    )
    ctx.check_cancelled()
    validation = outcome["validation"]
    validation["subset"] = subset
    validation["reference"] = f"PyTorch eager, checkpoint {extra['checkpoint']!r}"
    if recorded and recorded.get("checkpoint", "best") == extra["checkpoint"]:
        validation["recorded_test_metric"] = recorded.get("accuracy")
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
