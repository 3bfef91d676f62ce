"""Domain-generalisation reports: one experiment per held-out group of a leave-one-group-out
split family, the same recipe for all, and the gap between in-domain and held-out figures.

Each split of the family holds one group out as its test subset and splits the other groups
into train/val. The experiments a report queues evaluate their val subset as well as their test
subset when training completes (`evaluate_val` in their provenance), so both figures come from
the same evaluation code: in-domain = the val subset (groups seen in training), held-out = the
test subset (the group never seen). The gap is signed so that positive means worse on the
held-out group, whatever the metric's direction.
"""

from __future__ import annotations

import random
import statistics
from typing import Any

from sqlmodel import Session, col, select

from app.errors import Invalid, NotFound, not_found
from app.models import DGReport, Experiment, Job, Project, Split
from app.models.dg_report import DGReportCreate
from app.services import experiments as experiment_service
from app.tasks import get_task

BOOTSTRAP_SAMPLES = 2000


def _project(session: Session, project_id: int) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise not_found("project", project_id)
    return project


def family_splits(session: Session, project_id: int, split_id: int) -> list[Split]:
    """The leave-one-group-out family `split_id` belongs to, in creation order."""
    split = session.get(Split, split_id)
    if split is None or split.project_id != project_id:
        raise Invalid(
            f"split_id={split_id} is not a split of project {project_id}.",
            code="unknown_split",
            details={"field": "split_id"},
        )
    if split.strategy != "leave_one_group_out" or not split.family:
        raise Invalid(
            f"Split {split.name!r} is a {split.strategy} split; a domain-generalisation report "
            "needs a split of a leave_one_group_out family (create one on the Splits page).",
            code="not_a_group_family",
            details={"strategy": split.strategy},
        )
    return list(
        session.exec(
            select(Split)
            .where(Split.project_id == project_id, Split.family == split.family)
            .order_by(col(Split.id))
        ).all()
    )


def create_report(
    session: Session, project_id: int, data: DGReportCreate
) -> tuple[DGReport, list[Job]]:
    """Create one experiment per held-out group and queue their training."""
    project = _project(session, project_id)
    splits = family_splits(session, project_id, data.split_id)
    family = str(splits[0].family)
    recipe = {k: v for k, v in data.config.items() if k not in {"name", "split_id"}}
    # Validate the recipe once (and against the taxonomy) before anything is created.
    config = experiment_service.bind_classes(
        session, project, experiment_service.resolve_config(recipe, project.task_type)
    )
    count = len(session.exec(select(DGReport.id).where(DGReport.project_id == project_id)).all())
    name = data.name.strip() or f"DG {count + 1} · {family}"[:60]
    report = DGReport(project_id=project_id, name=name, family=family, config=config)
    session.add(report)
    session.commit()
    session.refresh(report)
    runs: list[dict[str, Any]] = []
    jobs: list[Job] = []
    for split in splits:
        group = str(split.params.get("held_out") or split.name)
        experiment = experiment_service.create_experiment(
            session,
            project_id,
            {
                **recipe,
                "name": _free_name(session, project_id, f"{name} · {group}"),
                "split_id": split.id,
            },
        )
        experiment.provenance = {
            **experiment.provenance,
            "dg_report_id": report.id,
            "evaluate_val": True,
        }
        session.add(experiment)
        session.commit()
        assert experiment.id is not None
        jobs.append(experiment_service.start_training(session, project_id, experiment.id))
        runs.append({"split_id": split.id, "group": group, "experiment_id": experiment.id})
    report.runs = runs
    session.add(report)
    session.commit()
    session.refresh(report)
    return report, jobs


def _free_name(session: Session, project_id: int, wanted: str) -> str:
    taken = set(
        session.exec(select(Experiment.name).where(Experiment.project_id == project_id)).all()
    )
    base = wanted[:90]
    name, n = base, 2
    while name in taken:
        name, n = f"{base} ({n})", n + 1
    return name


def get_report(session: Session, project_id: int, report_id: int) -> DGReport:
    report = session.get(DGReport, report_id)
    if report is None or report.project_id != project_id:
        raise NotFound(
            f"Domain-generalisation report {report_id} does not exist in project {project_id}.",
            code="dg_report_not_found",
        )
    return report


def list_reports(session: Session, project_id: int) -> list[DGReport]:
    _project(session, project_id)
    return list(
        session.exec(
            select(DGReport)
            .where(DGReport.project_id == project_id)
            .order_by(col(DGReport.id).desc())
        ).all()
    )


def bootstrap_ci(values: list[float], seed: int = 0) -> tuple[float, float] | None:
    """95 % percentile bootstrap interval of the mean (None below two values)."""
    if len(values) < 2:
        return None
    rng = random.Random(seed)
    means = sorted(
        statistics.fmean(rng.choices(values, k=len(values))) for _ in range(BOOTSTRAP_SAMPLES)
    )
    return means[int(0.025 * BOOTSTRAP_SAMPLES)], means[int(0.975 * BOOTSTRAP_SAMPLES) - 1]


def read_report(session: Session, report: DGReport) -> dict[str, Any]:
    """The report with its figures as they stand: per group the experiment's state, the
    in-domain (val) and held-out (test) metric and the gap; mean gap and its 95 % interval
    over the groups whose experiment has completed."""
    project = _project(session, report.project_id)
    spec = get_task(project.task_type)
    metric = spec.summary_metric
    spec_metric = spec.metric(metric)
    mode = spec_metric.mode if spec_metric else "max"
    groups: list[dict[str, Any]] = []
    for run in report.runs:
        experiment = session.get(Experiment, run["experiment_id"])
        if experiment is not None:
            experiment = experiment_service.sync_with_job(session, experiment)
        provenance = experiment.provenance if experiment is not None else {}
        in_domain = (provenance.get("val_metrics") or {}).get(metric)
        held_out = (provenance.get("test_metrics") or {}).get(metric)
        gap = None
        if isinstance(in_domain, int | float) and isinstance(held_out, int | float):
            gap = (in_domain - held_out) if mode == "max" else (held_out - in_domain)
        groups.append(
            {
                "group": run["group"],
                "split_id": run["split_id"],
                "experiment_id": run["experiment_id"],
                "status": experiment.status if experiment is not None else "deleted",
                "in_domain": in_domain,
                "held_out": held_out,
                "gap": gap,
            }
        )
    gaps = [g["gap"] for g in groups if g["gap"] is not None]
    ci = bootstrap_ci(gaps)
    return {
        "id": report.id,
        "name": report.name,
        "family": report.family,
        "metric": metric,
        "mode": mode,
        "config": report.config,
        "created_at": report.created_at,
        "groups": groups,
        "completed": len(gaps),
        "mean_gap": statistics.fmean(gaps) if gaps else None,
        "ci95": list(ci) if ci else None,
    }
