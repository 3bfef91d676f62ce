"""The "train" job: experiment row -> workers.ml.train.fit -> metric points, checkpoints, status.

`run_experiment` is the one glue function; the job handler and tests/support/training.py (the
in-process tiny trainer) both call it, so tests exercise the same path the worker runs.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from sqlmodel import Session

import app
from app.errors import StudioError
from app.models import Experiment, Project, Split
from app.services import annotations as annotation_service
from app.services import experiments as experiment_service
from app.storage import Storage
from app.tasks import get_task
from workers.context import JobCancelled, JobContext
from workers.handlers import register_handler

SessionFactory = Callable[[], AbstractContextManager[Session]]
ROOT = Path(__file__).resolve().parents[2]


def git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class _Throttle:
    def __init__(self, check: Callable[[], bool], interval: float = 1.0) -> None:
        self.check = check
        self.interval = interval
        self.last = 0.0
        self.value = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self.value and now - self.last >= self.interval:
            self.last = now
            self.value = self.check()
        return self.value


def run_experiment(
    open_session: SessionFactory,
    storage: Storage,
    experiment_id: int,
    *,
    job_id: int | None = None,
    resume: bool = False,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    external_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Train (or resume) one experiment; returns a result summary. Stop requests (experiment
    status "stopping", or external_stop) end the run after the current step with a checkpoint."""

    from workers.hardware import record_hardware
    from workers.ml.checkpoints import load_checkpoint, load_for_inference
    from workers.ml.tasks import get_task_code
    from workers.ml.tasks.base import samples_from_rows
    from workers.ml.train import FitRequest, fit_within_memory, now_iso

    record_hardware(storage)

    with open_session() as session:
        experiment = experiment_service.begin_run(session, experiment_id, job_id)
        project = session.get(Project, experiment.project_id)
        split = session.get(Split, experiment.split_id) if experiment.split_id else None
        assert project is not None
        if split is None:
            raise ValueError(f"experiment {experiment_id} has no split")
        spec = get_task(project.task_type)
        classes = annotation_service.project_classes(session, project.id)  # type: ignore[arg-type]
        config = dict(experiment.config)
        rows = annotation_service.subset_samples(
            session,
            storage,
            split_id=split.id,
            subsets=("train", "val", "test"),  # type: ignore[arg-type]
        )
        checkpoints = dict(experiment.checkpoints)
        evaluate_val = bool(experiment.provenance.get("evaluate_val"))
        project_id = project.id
        base_provenance = {
            "experiment_id": experiment_id,
            "project_id": project_id,
            "split_id": split.id,
            "split_fingerprint": split.fingerprint,
            "split_name": split.name,
            "studio_version": app.__version__,
            "git_revision": git_revision(),
            "started_at": (
                experiment.started_at.isoformat() if experiment.started_at else now_iso()
            ),
        }
    assert project_id is not None
    code = get_task_code(project.task_type)
    by_subset: dict[str, list[Any]] = {"train": [], "val": [], "test": []}
    for sample in samples_from_rows(rows):
        by_subset[sample.subset].append(sample)
    prepared = code.prepare(by_subset, classes, config)
    if not prepared.samples.get("train"):
        raise StudioError(
            "The split's train subset has no images this task can learn from "
            f"(left out: {prepared.dropped.get('train', 0)}); check the annotations.",
            code="nothing_to_train",
        )

    def emit(event: dict[str, Any]) -> None:
        if on_event is not None:
            on_event(event)

    for note in prepared.notes:
        emit({"type": "log", "message": note})

    def report(event: dict[str, Any]) -> None:
        kind = event["type"]
        with open_session() as session:
            if kind == "step" and event.get("loss") is not None:
                # The step curves: loss, and the learning rate (warm-up and schedule shape).
                experiment_service.add_points(
                    session,
                    experiment_id,
                    [
                        {
                            "step": event["step"],
                            "epoch": event["epoch"],
                            "key": key,
                            "value": float(event[field]),
                        }
                        for key, field in (("train/step_loss", "loss"), ("train/step_lr", "lr"))
                        if event.get(field) is not None
                    ],
                )
            elif kind == "epoch":
                experiment_service.add_points(
                    session,
                    experiment_id,
                    [
                        {
                            "step": event["step"],
                            "epoch": event["epoch"],
                            "key": k,
                            "value": float(v),
                        }
                        for k, v in event["metrics"].items()
                    ],
                )
                experiment_service.record_epoch(session, experiment_id, event["epoch"])
            elif kind == "started":
                experiment_service.record_start(
                    session, experiment_id, weights=event["weights"], device=event["device"]
                )
            elif kind == "checkpoint":
                info = {
                    "path": storage.relative(Path(event["path"])),
                    "epoch": event["epoch"],
                    "metric": event.get("metric"),
                    "metric_key": spec.primary_metric,
                    "saved_at": event["saved_at"],
                }
                experiment_service.record_checkpoint(session, experiment_id, event["which"], info)
        emit(event)

    def stop_in_db() -> bool:
        with open_session() as session:
            return experiment_service.stop_requested(session, experiment_id)

    db_stop = _Throttle(stop_in_db)

    def should_stop() -> bool:
        return bool(external_stop and external_stop()) or db_stop()

    out_dir = storage.experiment_dir(project_id, experiment_id)
    resume_from = None
    if resume and checkpoints.get("last"):
        resume_from = storage.resolve(checkpoints["last"]["path"])
        with open_session() as session:
            experiment_service.drop_points_after(
                session, experiment_id, int(checkpoints["last"]["epoch"])
            )
    notes: list[str] = list(prepared.notes)
    request = FitRequest(
        task=project.task_type,
        config=config,
        classes=classes,
        prepared=prepared,
        out_dir=out_dir,
        primary_metric=spec.primary_metric,
        metric_mode=spec.metric_mode,
        provenance=base_provenance,
        resume_from=resume_from,
    )

    def shrunk(changed: dict[str, Any], note: str) -> Path | None:
        """Keep the smaller batch in the experiment; resume from its last checkpoint."""
        emit({"type": "log", "message": note, "level": "warning"})
        with open_session() as session:
            row = session.get(Experiment, experiment_id)
            assert row is not None
            row.config = changed
            session.add(row)
            session.commit()
            last = row.checkpoints.get("last")
        return storage.resolve(last["path"]) if last else None

    result, shrink_notes = fit_within_memory(request, report, should_stop, shrunk)
    notes.extend(shrink_notes)
    provenance = {**result.provenance, "notes": [*result.notes, *notes]}
    best_path = out_dir / "best.ckpt"
    if best_path.exists():
        # What training learnt besides weights (thresholds...) as the best checkpoint has it.
        provenance.update(load_checkpoint(best_path)["provenance"].get("extras") or {})
    provenance["history_epochs"] = result.epochs_done
    provenance["dropped"] = prepared.dropped
    if result.best is not None:
        provenance["best"] = {k: result.best[k] for k in ("epoch", "metric")}
    stopped_by_user = result.status == "stopped" and db_stop.value
    if result.status == "completed":
        test_metrics: dict[str, Any] | None = None
        test_samples = prepared.samples.get("test", [])
        val_samples = prepared.samples.get("val", []) if evaluate_val else []
        wanted = bool(test_samples or val_samples) and best_path.exists()
        model = load_for_inference(best_path) if wanted else None
        if val_samples and model is not None:
            # in-domain figures for a domain-generalisation report (same code as the test's)
            provenance["val_metrics"] = _scalars(code, model, val_samples, "val")
        if test_samples and model is not None:
            test_metrics = _scalars(code, model, test_samples, "test")
            scalars = {k: v for k, v in test_metrics.items() if k not in ("checkpoint", "subset")}
            scalars.pop("n", None)
            with open_session() as session:
                experiment_service.add_points(
                    session,
                    experiment_id,
                    [
                        {
                            "step": result.global_step,
                            "epoch": result.epochs_done,
                            "key": f"test/{k}",
                            "value": float(v),
                        }
                        for k, v in scalars.items()
                    ],
                )
            emit({"type": "test", "metrics": test_metrics})
        provenance["test_metrics"] = test_metrics
        status = "completed"
    elif stopped_by_user or (external_stop is None):
        status = "stopped"
    else:
        status = "interrupted"
    with open_session() as session:
        experiment_service.finish_run(session, experiment_id, status=status, provenance=provenance)
    return {
        "experiment_id": experiment_id,
        "status": status,
        "epochs_done": result.epochs_done,
        "best": result.best,
        "test_metrics": provenance.get("test_metrics"),
        "weights": result.weights,
        "task_info": prepared.info,
        "dropped": prepared.dropped,
    }


def _scalars(code: Any, model: Any, samples: list[Any], subset: str) -> dict[str, Any]:
    """The best checkpoint's aggregate numbers on one subset."""
    outcome = code.evaluate(model, samples, options={})
    scalars = {
        k: v
        for k, v in outcome.aggregate.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    return {"checkpoint": "best", "subset": subset, **scalars, "n": len(outcome.rows)}


@register_handler("train")
def train_handler(ctx: JobContext) -> dict[str, Any]:
    experiment_id = int(ctx.params["experiment_id"])

    def progress(done: float, total: float, message: str, unit: str, **extra: Any) -> None:
        # progress() raises JobCancelled once a stop was asked; here the training loop owns the
        # safe point (it saves a checkpoint first), so the report must not raise.
        with contextlib.suppress(JobCancelled):
            ctx.progress(done, total, message=message, unit=unit, **extra)

    batches = {"n": 1}

    def on_event(event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "step":
            ctx.metric(**{k: v for k, v in event.items() if k != "type"}, kind="step")
            batches["n"] = int(event["batches"]) or 1
            progress(
                (event["epoch"] - 1) * batches["n"] + event["batch"],
                event["epochs"] * batches["n"],
                f"Epoch {event['epoch']}/{event['epochs']}",
                "batches",
            )
        elif kind == "epoch":
            ctx.metric(**{k: v for k, v in event.items() if k != "type"}, kind="epoch")
            progress(
                event["epoch"] * batches["n"],
                event["epochs"] * batches["n"],
                f"Epoch {event['epoch']}/{event['epochs']} done",
                "batches",
                force=True,
                train_eta_seconds=event.get("eta_seconds"),
            )
        elif kind == "checkpoint":
            ctx.metric(
                kind="checkpoint", **{k: v for k, v in event.items() if k not in ("type", "path")}
            )
        elif kind == "test":
            ctx.metric(kind="test", **event["metrics"])
        elif kind == "log":
            ctx.log(event["message"], level=event.get("level", "info"))

    result = run_experiment(
        ctx.session,
        ctx.storage,
        experiment_id,
        job_id=ctx.job_id,
        resume=bool(ctx.params.get("resume")),
        on_event=on_event,
        external_stop=lambda: ctx.cancelled,
    )
    if result["status"] in ("interrupted", "stopped"):
        # Stopped on request (the job ends "cancelled", with where it stopped) or by a studio
        # shutdown (the job ends "interrupted" and resumes): never "succeeded".
        if result["status"] == "interrupted" and ctx.user_cancelled():
            with ctx.session() as session:
                experiment_service.finish_run(session, experiment_id, status="stopped")
        raise JobCancelled(
            f"Stopped after epoch {result['epochs_done']}; resume it from the experiment page."
        )
    return result
