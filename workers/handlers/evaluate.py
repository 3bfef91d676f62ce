"""The `evaluate` job: load a checkpoint, predict the chosen subsets, store metrics and rows.

Glue only (DESIGN rule 4): rows and files through app.services.evaluations, the model work
in workers.ml.evaluation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.errors import StudioError
from app.models import Evaluation, Experiment
from app.services import annotations as annotation_service
from app.services import decisions as decision_service
from app.services import evaluations as service
from app.services.evaluation_audit import leakage_audit
from app.storage import atomic_write_json
from app.tasks import get_task
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
        rows = annotation_service.subset_samples(
            session, ctx.storage, split_id=experiment.split_id, subsets=evaluation.subsets
        )
        project_id, split_id = experiment.project_id, experiment.split_id
        experiment_id = experiment.id
        assert experiment_id is not None
        decision = decision_service.decision_for_experiment(session, experiment_id)
    options = evaluation.options
    ctx.progress(0, len(rows), message="Loading the model", unit="images", force=True)

    from workers.hardware import record_hardware
    from workers.ml.checkpoints import load_for_inference
    from workers.ml.tasks import get_task_code
    from workers.ml.tasks.base import samples_from_rows

    record_hardware(ctx.storage)
    device = _device(str(options.get("device", "auto")))
    model = load_for_inference(ctx.storage.resolve(checkpoint.path), device=device)
    model.info.update(decision)  # a threshold changed since training, for instance
    code = get_task_code(model.task)
    extra: dict[str, Any] = {}
    wanted = list(code.reference_subsets(model))
    if wanted:
        with ctx.session() as session:
            reference = annotation_service.subset_samples(
                session, ctx.storage, split_id=split_id, subsets=wanted
            )
        extra["reference_samples"] = samples_from_rows(reference)
    folder = service.evaluation_dir(ctx.storage, project_id, experiment_id, evaluation_id)
    folder.mkdir(parents=True, exist_ok=True)

    def report(done: int, total: int) -> None:
        ctx.progress(done, total, message="Evaluating", unit="images")

    outcome = code.evaluate(
        model,
        samples_from_rows(rows),
        options={**options, "artefact_dir": str(folder), **extra},
        report=report,
    )
    ctx.check_cancelled()
    if not outcome.rows:
        raise StudioError(
            "None of the chosen images has annotations this model can be scored on; "
            "nothing to evaluate.",
        )
    aggregate = dict(outcome.aggregate)
    aggregate.update(
        {
            "task": aggregate.get("task", model.task),
            "classes": aggregate.get("classes", list(model.classes)),
            "checkpoint": evaluation.checkpoint,
            "checkpoint_epoch": checkpoint.epoch,
            "subsets": evaluation.subsets,
            "device": device,
            "skipped": outcome.skipped,
        }
    )
    if outcome.arrays:
        np.savez_compressed(folder / "scores.npz", **outcome.arrays)
    with ctx.session() as session:
        experiment = session.get(Experiment, experiment_id)
        assert experiment is not None
        audit = leakage_audit(
            session,
            experiment,
            subsets=list(evaluation.subsets),
            checkpoint_epoch=checkpoint.epoch,
            subset_metrics=aggregate.get("by_subset", {}),
        )
        atomic_write_json(folder / "aggregate.json", {"aggregate": aggregate, "audit": audit})
        service.save_results(
            session,
            ctx.storage,
            evaluation_id,
            rows=outcome.rows,
            matches=outcome.matches,
            aggregate=aggregate,
            audit=audit,
            options={"resolved_device": device, "images": len(outcome.rows)},
        )
    ctx.progress(len(outcome.rows), len(outcome.rows), message="Done", unit="images", force=True)
    summary = get_task(model.task).summary_metric
    return {
        "evaluation_id": evaluation_id,
        "images": len(outcome.rows),
        summary: aggregate.get(summary),
        "audit": audit["status"],
    }
