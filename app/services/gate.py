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
from app.storage import Storage, atomic_write_bytes
from app.tasks.dual_head import is_dual_head

OVERRIDE, OUT_OF_DOMAIN = "gate_rules", "gate_ood"
MAX_FILES, MAX_BYTES = 2000, 512 * 1024 * 1024
DEFAULT_RULES: dict[str, Any] = {  # as workers/ml/tasks/classification/dual_head/gate.py
    "default_min_ratio": 0.15,
    "min_ratio": {},
    "min_component_px": 500.0,
    "reference_side": 224,
    "min_calibration_images": 5,
}


class GateRules(BaseModel):
    """What a PATCH may change; omitted fields keep their values."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    default_min_ratio: float = Field(ge=0, le=1)
    min_ratio: dict[str, float]
    min_component_px: float = Field(ge=0, le=1e7)
    reference_side: int = Field(ge=8, le=4096)
    min_calibration_images: int = Field(ge=1, le=100000)


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
    return {
        "experiment_id": experiment.id,
        "rules": effective_rules(session, experiment),
        "calibrated_rules": block.get("rules"),
        "changed": bool(provenance.get(OVERRIDE)),
        "calibration": {
            "subset": block.get("calibration_subset"),
            **(block.get("calibration") or {"per_class": {}}),
        },
        "in_domain": block.get("in_domain") or {"pass_rate": None, "per_class": {}},
        "out_of_domain": provenance.get(OUT_OF_DOMAIN) or {"rejection_rate": None, "images": 0},
    }


def patch_gate(
    session: Session, *, project_id: int, experiment_id: int, data: dict[str, Any]
) -> dict[str, Any]:
    experiment = _dual(session, project_id, experiment_id)
    if not isinstance(data, dict):
        raise Invalid("Send the rules to change as a JSON object.", code="invalid_gate")
    try:
        rules = GateRules.model_validate({**effective_rules(session, experiment), **data})
    except ValidationError as error:
        parts = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors()]
        raise Invalid(
            "Invalid gate rules: " + "; ".join(parts) + ".",
            code="invalid_gate",
            details={"fields": [{"field": ".".join(map(str, e["loc"]))} for e in error.errors()]},
        ) from None
    bad = {k: v for k, v in rules.min_ratio.items() if not 0 <= v <= 1}
    if bad:
        raise Invalid(
            f"min_ratio values must be 0-1: {bad}", code="invalid_gate", details={"classes": bad}
        )
    override = {k: v for k, v in rules.model_dump().items() if k in data}
    provenance = dict(experiment.provenance or {})
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
    folder = storage.job_dir(job.id) / "inputs"
    files = []
    for name, data in uploads:
        stored = storage.new_name("")
        atomic_write_bytes(folder / stored, data)
        files.append({"stored": f"inputs/{stored}", "name": name[:300]})
    job.params = {
        "experiment_id": experiment_id,
        "files": files,
        "rules": effective_rules(session, experiment),
    }
    session.add(job)
    session.commit()
    session.refresh(job)
    return job


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
