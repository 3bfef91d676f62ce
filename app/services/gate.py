"""The segmentation gate of dual-head experiments, as data kept with the experiment.

Evaluation calibrates the rules (per-class minimum foreground ratio = 5th percentile on the
validation subset) and measures the in-domain pass rate; a user may edit the rules (stored as
`provenance["gate_rules"]`, over the calibrated ones); a gate test set (images from outside the
domain, no labels) measures the out-of-domain rejection rate in a `gate_test` job, whose
answer is kept as `provenance["gate_ood"]`. The effective rules go wherever decision settings
go (app/services/decisions.py): evaluation, export metadata and the studio's predictions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import Session

from app.errors import BadRequest, Conflict, Invalid, TooLarge
from app.models import Experiment, Job
from app.services.evaluations import find_evaluation, get_experiment
from app.services.jobs import submit_job
from app.services.predictions import store_inputs
from app.storage import Storage
from app.tasks.dual_head import GATE_DEFAULT_RULES as DEFAULT_RULES
from app.tasks.dual_head import is_dual_head

OVERRIDE, OUT_OF_DOMAIN, BASELINE = "gate_rules", "gate_ood", "gate_baseline"
# Seed §17: roll back to the classification-only baseline when the dual-head model's val
# accuracy falls more than 0.5 points below it or its mean IoU stays under 0.5.
MAX_ACCURACY_DROP, MIN_SEG_MIOU = 0.005, 0.5
MAX_FILES, MAX_BYTES = 2000, 512 * 1024 * 1024
CALIBRATED_ONLY = "feature_reference"  # measured from training images, never typed in


class GateRules(BaseModel):
    """What a PATCH may change; omitted fields keep their values. `max_feature_distance`
    null turns the familiarity rule off; a class missing from `max_ratio` has no upper bound.
    `ratio_margin` and `feature_margin` take effect at the next calibration (evaluation)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    default_min_ratio: float = Field(ge=0, le=1)
    min_ratio: dict[str, float]
    max_ratio: dict[str, float]
    ratio_margin: float = Field(ge=0, le=1)
    min_component_px: float = Field(ge=0, le=1e7)
    reference_side: int = Field(ge=8, le=4096)
    min_calibration_images: int = Field(ge=1, le=100000)
    max_feature_distance: float | None = Field(gt=0, le=1e6)
    feature_margin: float = Field(ge=0, le=100)
    feature_reference: dict[str, Any] | None


def is_dual(experiment: Experiment) -> bool:
    return is_dual_head(experiment.model_id or (experiment.config or {}).get("model"))


def _dual(session: Session, project_id: int, experiment_id: int) -> Experiment:
    experiment = get_experiment(session, project_id=project_id, experiment_id=experiment_id)
    if not is_dual(experiment):
        raise Conflict(
            f"Experiment {experiment_id} is not a dual-head model; only dualhead_* models have "
            "a segmentation gate.",
            code="no_gate",
        )
    return experiment


def calibrated(session: Session, experiment: Experiment) -> dict[str, Any]:
    """The newest completed evaluation's gate block (empty before one)."""
    assert experiment.id is not None
    evaluation = find_evaluation(session, experiment_id=experiment.id)
    if evaluation is None or evaluation.status != "completed":
        return {}
    return dict((evaluation.aggregate or {}).get("gate") or {})


def effective_rules(session: Session, experiment: Experiment) -> dict[str, Any]:
    rules = {**DEFAULT_RULES, **(calibrated(session, experiment).get("rules") or {})}
    rules.update((experiment.provenance or {}).get(OVERRIDE) or {})
    return rules


def read_gate(session: Session, *, project_id: int, experiment_id: int) -> dict[str, Any]:
    experiment = _dual(session, project_id, experiment_id)
    block = calibrated(session, experiment)
    provenance = experiment.provenance or {}
    rules = effective_rules(session, experiment)
    reference = rules.get(CALIBRATED_ONLY)
    if reference:  # means and spreads of every embedding dimension: a summary is enough here
        rules[CALIBRATED_ONLY] = {
            "classes": list(reference.get("classes") or []),
            "dimensions": len(reference.get("scale") or []),
        }
    calibrated_rules = dict(block.get("rules") or {}) or None
    if calibrated_rules and calibrated_rules.get(CALIBRATED_ONLY):
        calibrated_rules[CALIBRATED_ONLY] = rules[CALIBRATED_ONLY]
    return {
        "experiment_id": experiment.id,
        "rules": rules,
        "calibrated_rules": calibrated_rules,
        "changed": bool(provenance.get(OVERRIDE)),
        "calibration": {
            "subset": block.get("calibration_subset"),
            **(block.get("calibration") or {"per_class": {}}),
        },
        "in_domain": block.get("in_domain") or {"pass_rate": None, "per_class": {}},
        "out_of_domain": provenance.get(OUT_OF_DOMAIN) or {"rejection_rate": None, "images": 0},
        "rollback": rollback(session, experiment),
    }


def _val_metric(session: Session, experiment: Experiment, key: str) -> float | None:
    """The metric at the experiment's best epoch (else its last value)."""
    from sqlmodel import col, select

    from app.models import MetricPoint

    points = session.exec(
        select(MetricPoint)
        .where(MetricPoint.experiment_id == experiment.id, MetricPoint.key == key)
        .order_by(col(MetricPoint.step))
    ).all()
    if not points:
        return None
    best_epoch = ((experiment.provenance or {}).get("best") or {}).get("epoch")
    at_best = [p.value for p in points if p.epoch == best_epoch]
    return float(at_best[-1] if at_best else points[-1].value)


def rollback(session: Session, experiment: Experiment) -> dict[str, Any] | None:
    """The rollback rule against the named baseline; None when none is named."""
    baseline_id = (experiment.provenance or {}).get(BASELINE)
    baseline = session.get(Experiment, baseline_id) if baseline_id else None
    if baseline is None:
        return None
    dual_acc = _val_metric(session, experiment, "val/acc")
    base_acc = _val_metric(session, baseline, "val/acc")
    miou = _val_metric(session, experiment, "val/seg_miou")
    reasons = []
    if dual_acc is not None and base_acc is not None and dual_acc < base_acc - MAX_ACCURACY_DROP:
        reasons.append(
            f"val accuracy {dual_acc:.1%} is {100 * (base_acc - dual_acc):.1f} points below the "
            f"baseline's {base_acc:.1%} (more than 0.5)"
        )
    if miou is not None and miou < MIN_SEG_MIOU:
        reasons.append(f"mean IoU {miou:.2f} is under {MIN_SEG_MIOU}")
    known = dual_acc is not None and base_acc is not None and miou is not None
    return {
        "baseline_experiment_id": baseline.id,
        "baseline_name": baseline.name,
        "baseline_val_accuracy": base_acc,
        "val_accuracy": dual_acc,
        "seg_miou": miou,
        "roll_back": bool(reasons),
        "decided": known,
        "reasons": reasons,
        "better_experiment_id": baseline.id if reasons else experiment.id,
    }


def name_baseline(session: Session, experiment: Experiment, baseline_id: Any) -> None:
    """Check and record the classification-only baseline (same split, trained)."""
    if baseline_id is None:
        (experiment.provenance or {}).pop(BASELINE, None)
        return
    if not isinstance(baseline_id, int) or isinstance(baseline_id, bool):
        raise Invalid("baseline_experiment_id must be an experiment id.", code="invalid_gate")
    baseline = session.get(Experiment, baseline_id)
    problem = None
    if baseline is None or baseline.project_id != experiment.project_id:
        problem = f"experiment {baseline_id} is not in this project"
    elif is_dual(baseline):
        problem = f"experiment {baseline_id} is a dual-head model, not a classification-only one"
    elif baseline.split_id != experiment.split_id:
        problem = f"experiment {baseline_id} was trained on another split"
    elif baseline.status != "completed":
        problem = f"experiment {baseline_id} is {baseline.status}"
    if problem:
        raise Invalid(
            f"Cannot use it as the baseline: {problem}.",
            code="invalid_baseline",
            details={"baseline_experiment_id": baseline_id},
        )
    provenance = dict(experiment.provenance or {})
    provenance[BASELINE] = baseline_id
    experiment.provenance = provenance


def preferred_experiment(session: Session, experiments: list[Experiment]) -> int | None:
    """The export page's default: the newest experiment, unless it is a dual-head model whose
    rollback rule prefers its baseline."""
    if not experiments:
        return None
    newest = experiments[0]
    if is_dual(newest):
        verdict = rollback(session, newest)
        if verdict is not None and verdict["decided"]:
            return int(verdict["better_experiment_id"])
    return newest.id


def patch_gate(
    session: Session, *, project_id: int, experiment_id: int, data: dict[str, Any]
) -> dict[str, Any]:
    experiment = _dual(session, project_id, experiment_id)
    if not isinstance(data, dict):
        raise Invalid("Send the rules to change as a JSON object.", code="invalid_gate")
    data = dict(data)
    if CALIBRATED_ONLY in data:
        raise Invalid(
            "feature_reference is measured from the training images at evaluation; it cannot "
            "be set. Set max_feature_distance to null to turn the familiarity rule off.",
            code="invalid_gate",
            details={"fields": [{"field": CALIBRATED_ONLY}]},
        )
    if "baseline_experiment_id" in data:
        name_baseline(session, experiment, data.pop("baseline_experiment_id"))
        flag_modified(experiment, "provenance")
    try:
        rules = GateRules.model_validate({**effective_rules(session, experiment), **data})
    except ValidationError as error:
        parts = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors()]
        raise Invalid(
            "Invalid gate rules: " + "; ".join(parts) + ".",
            code="invalid_gate",
            details={"fields": [{"field": ".".join(map(str, e["loc"]))} for e in error.errors()]},
        ) from None
    for field in ("min_ratio", "max_ratio"):
        bad = {k: v for k, v in getattr(rules, field).items() if not 0 <= v <= 1}
        if bad:
            raise Invalid(
                f"{field} values must be 0-1: {bad}", code="invalid_gate", details={"classes": bad}
            )
    override = {k: v for k, v in rules.model_dump().items() if k in data}
    provenance = dict(experiment.provenance or {})
    if override:
        provenance[OVERRIDE] = {**(provenance.get(OVERRIDE) or {}), **override}
    experiment.provenance = provenance
    flag_modified(experiment, "provenance")
    session.add(experiment)
    session.commit()
    session.refresh(experiment)
    return read_gate(session, project_id=project_id, experiment_id=experiment_id)


def submit_test_set(
    session: Session,
    storage: Storage,
    *,
    project_id: int,
    experiment_id: int,
    uploads: list[tuple[str, bytes]],
) -> Job:
    """Store the uploads (images or zips of images; the job sorts them out, per file) and
    queue the `gate_test` job."""
    experiment = _dual(session, project_id, experiment_id)
    if experiment.status != "completed":
        raise Conflict(
            f"Experiment {experiment_id} is {experiment.status}; train it first.",
            code="not_trained",
        )
    if not uploads:
        raise BadRequest("Send images (or a zip of them) as multipart `files`.", code="no_files")
    if len(uploads) > MAX_FILES or sum(len(d) for _, d in uploads) > MAX_BYTES:
        raise TooLarge(
            f"Send at most {MAX_FILES} files and {MAX_BYTES // 2**20} MB per gate test set.",
            code="too_large",
        )
    job = submit_job(
        session,
        kind="gate_test",
        project_id=project_id,
        target=f"experiment:{experiment_id}",
        title=f"Gate test set for {experiment.name} ({len(uploads)} file(s))",
        commit=False,
    )
    assert job.id is not None
    files = store_inputs(storage, job.id, uploads)
    job.params = {
        "experiment_id": experiment_id,
        "files": files,
        "rules": effective_rules(session, experiment),
    }
    session.add(job)
    session.commit()
    session.refresh(job)
    return job


def gate_job(session: Session, job_id: int) -> Job | None:
    """A gate test set's job (for the card's progress), or None for any other job."""
    job = session.get(Job, job_id)
    return job if job is not None and job.kind == "gate_test" else None


def store_out_of_domain(session: Session, experiment_id: int, result: dict[str, Any]) -> None:
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        return
    provenance = dict(experiment.provenance or {})
    provenance[OUT_OF_DOMAIN] = result
    experiment.provenance = provenance
    flag_modified(experiment, "provenance")
    session.add(experiment)
    session.commit()
