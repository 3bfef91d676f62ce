"""The `evaluate` job: load a checkpoint, predict the chosen subsets, store metrics and rows.

Glue only (DESIGN rule 4): rows and files through app.services.evaluations, the model work
in workers.ml.evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from app.errors import StudioError
from app.models import Evaluation, Experiment
from app.services import evaluations as service
from app.services.evaluation_audit import leakage_audit
from app.storage import atomic_write_json
from workers.context import JobCancelled, JobContext
from workers.handlers import register_handler


def _device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise StudioError("device=cuda was requested but no CUDA device is available; use cpu.")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


@register_handler("evaluate")
def evaluate(ctx: JobContext) -> dict[str, Any]:
    evaluation_id = int(ctx.params["evaluation_id"])
    try:
        return _run(ctx, evaluation_id)
    except JobCancelled:
        with ctx.session() as session:
            service.mark_ended(
                session, evaluation_id, "cancelled" if ctx.user_cancelled() else "interrupted"
            )
        raise
    except Exception as exc:
        with ctx.session() as session:
            message = (
                exc.message if isinstance(exc, StudioError) else f"{type(exc).__name__}: {exc}"
            )
            service.mark_ended(session, evaluation_id, "failed", message)
        raise


def _run(ctx: JobContext, evaluation_id: int) -> dict[str, Any]:
    with ctx.session() as session:
        evaluation: Evaluation = service.mark_running(session, evaluation_id)
        experiment = session.get(Experiment, evaluation.experiment_id)
        if experiment is None or experiment.split_id is None:
            raise StudioError("The experiment or its split no longer exists.")
        checkpoints = {c.name: c for c in service.list_checkpoints(ctx.storage, experiment)}
        if evaluation.checkpoint not in checkpoints:
            raise StudioError(f"Checkpoint {evaluation.checkpoint!r} no longer exists.")
        checkpoint = checkpoints[evaluation.checkpoint]
        samples = service.evaluation_samples(
            session, ctx.storage, split_id=experiment.split_id, subsets=evaluation.subsets
        )
        project_id = experiment.project_id
        experiment_id = experiment.id
        assert experiment_id is not None
    options = evaluation.options
    ctx.progress(0, len(samples), message="Loading the model", unit="images", force=True)

    from workers.ml.checkpoints import load_for_inference
    from workers.ml.evaluation import EvalItem, aggregate_metrics, per_image, predict

    device = _device(str(options.get("device", "auto")))
    model = load_for_inference(ctx.storage.resolve(checkpoint.path), device=device)
    index = {name: i for i, name in enumerate(model.classes)}
    items: list[EvalItem] = []
    subsets: list[str] = []
    skipped = {"unlabeled": 0, "unknown_class": 0, "several_labels": 0}
    for sample in samples:
        labels = sample["labels"]
        if not labels:
            skipped["unlabeled"] += 1
            continue
        if any(name not in index for name in labels):
            skipped["unknown_class"] += 1
            continue
        if model.multi_label:
            target: int | list[int] = sorted({index[name] for name in labels})
        elif len(set(labels)) > 1:
            skipped["several_labels"] += 1
            continue
        else:
            target = index[labels[0]]
        items.append(
            EvalItem(image_id=sample["image_id"], path=Path(sample["path"]), target=target)
        )
        subsets.append(sample["subset"])
    if not items:
        raise StudioError(
            "None of the chosen images has a label the model knows; nothing to evaluate.",
        )

    def report(done: int, total: int) -> None:
        ctx.progress(done, total, message="Evaluating", unit="images")

    output = predict(
        model,
        items,
        batch_size=int(options.get("batch_size", 64)),
        tta=list(options.get("tta", [])),
        report=report,
    )
    ctx.check_cancelled()
    aggregate = aggregate_metrics(model, output)
    by_subset: dict[str, Any] = {}
    subset_array = np.array(subsets)
    for name in evaluation.subsets:
        mask = subset_array == name
        if not mask.any():
            continue
        rows = np.nonzero(mask)[0].tolist()
        part = type(output)(
            probs=output.probs[rows],
            losses=output.losses[rows],
            targets=output.targets[rows],
            tta=output.tta,
        )
        by_subset[name] = aggregate_metrics(model, part)
        by_subset[name]["loss"] = float(part.losses.mean())
    aggregate.update(
        {
            "loss": float(output.losses.mean()),
            "by_subset": by_subset,
            "checkpoint": evaluation.checkpoint,
            "checkpoint_epoch": checkpoint.epoch,
            "subsets": evaluation.subsets,
            "tta": output.tta,
            "device": device,
            "skipped": skipped,
        }
    )
    result_rows = []
    for i, item in enumerate(items):
        row = per_image(model, output, i)
        row.update(image_id=item.image_id, subset=subsets[i])
        result_rows.append(row)

    folder = service.evaluation_dir(ctx.storage, project_id, experiment_id)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        folder / "scores.npz",
        image_ids=np.array([item.image_id for item in items]),
        subsets=subset_array,
        probs=output.probs.numpy(),
        targets=output.targets.numpy(),
        losses=output.losses.numpy(),
    )
    with ctx.session() as session:
        experiment = session.get(Experiment, experiment_id)
        assert experiment is not None
        audit = leakage_audit(
            session,
            experiment,
            subsets=list(evaluation.subsets),
            checkpoint_epoch=checkpoint.epoch,
            subset_metrics=by_subset,
        )
        atomic_write_json(folder / "aggregate.json", {"aggregate": aggregate, "audit": audit})
        service.save_results(
            session,
            evaluation_id,
            rows=result_rows,
            aggregate=aggregate,
            audit=audit,
            options={"resolved_device": device, "images": len(items)},
        )
    ctx.progress(len(items), len(items), message="Done", unit="images", force=True)
    return {
        "evaluation_id": evaluation_id,
        "images": len(items),
        "accuracy": aggregate.get("accuracy"),
        "audit": audit["status"],
    }
