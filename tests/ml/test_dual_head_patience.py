"""Patience per dual-head phase (seed §14): a phase whose validation accuracy stops improving
ends early, the next phase (its learning rates, `val/stage`) starts at the next epoch, the run
gets shorter, and a stop/resume after the early end keeps the phases where they ran."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.models import Experiment, Image, MetricPoint, Project
from app.services import experiments as experiment_service
from app.storage import Storage
from app.tasks.dual_head import plan as phase_list
from benchmarks.synthetic.dual_head import write_dual_head
from tests.factories import make_split
from tests.importers.builders import import_folder
from tests.support.training import open_session_for, stop_then_resume
from workers.handlers.train import run_experiment
from workers.ml.hierarchy import StagePatience, group_factor, schedule, stage_at

# Phase A trains nothing (every rate 0), so its validation metric is flat: with patience 1 it
# ends after its second epoch instead of its third. B trains with patience off.
PHASES = [
    {"name": "A", "epochs": 3, "lr_backbone": 0, "lr_seg": 0, "lr_cls": 0,
     "lambda_seg": 1, "lambda_cls": 0, "patience": 1},
    {"name": "B", "epochs": 3, "lr_backbone": 0.001, "lr_seg": 0.001, "lr_cls": 0.003,
     "lambda_seg": 0.4, "lambda_cls": 0.6},
]  # fmt: skip


class Phases(StagePatience):
    """The shared mechanism on its own: the phases, an optimizer and Lightning's two fields."""

    def __init__(self, config: dict[str, Any], per_epoch: float) -> None:
        self.config = config
        self.plan = self.plan_of(1.0)
        self.step_plan = (per_epoch, self.plan_of(per_epoch))
        weight = torch.nn.Parameter(torch.zeros(1))
        self.optimizer = torch.optim.SGD([weight], lr=float(config["lr"]))
        factor = group_factor(config, self.step_plan[1], "cls", 0)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, [factor])
        self._trainer = SimpleNamespace(
            fit_loop=SimpleNamespace(max_epochs=config["epochs"]),
            lr_scheduler_configs=[SimpleNamespace(scheduler=self.scheduler)],
        )

    def plan_of(self, steps_per_epoch: float) -> list[dict[str, Any]]:
        return schedule(phase_list(self.config), steps_per_epoch, self.stage_lengths)


def test_an_early_end_moves_the_later_phases_and_their_rates_up() -> None:
    config = {"lr": 0.003, "scheduler": "none", "epochs": 6, "dual_head": {"phases": PHASES}}
    phases = Phases(config, per_epoch=10)
    for _ in range(20):  # two epochs of phase A
        phases.optimizer.step()
        phases.scheduler.step()
    assert phases.optimizer.param_groups[0]["lr"] == 0.0
    assert phases.end_stalled_stage(2, 0) is None  # improving: nothing ends
    assert phases.end_stalled_stage(2, 1) == (
        "Phase A stopped early after 1 epoch without improvement; phase B starts at epoch 3."
    )
    assert phases.stage_lengths == [2, 3] and phases._trainer.fit_loop.max_epochs == 5
    assert stage_at(phases.plan, epoch=2)["name"] == "B"
    assert stage_at(phases.step_plan[1], step=20)["name"] == "B"
    # the very next step already has phase B's class-head rate (set before it, not after)
    assert phases.optimizer.param_groups[0]["lr"] == pytest.approx(0.003)
    assert phases.end_stalled_stage(5, 3) is None  # B ends where it was planned to anyway
    last = Phases({**config, "dual_head": {"phases": [PHASES[0]]}, "epochs": 3}, per_epoch=10)
    assert last.end_stalled_stage(2, 1) == (
        "Phase A stopped early after 1 epoch without improvement; it was the last, so the run "
        "ends at epoch 2."
    )
    assert last._trainer.fit_loop.max_epochs == 2


def _experiment(
    session: Session, engine: Engine, storage: Storage, project: Project, tmp_path: Path
) -> int:
    pid = project.id
    assert pid is not None
    write_dual_head(tmp_path, images=12, size=32, ood=0)
    assert import_folder(session, engine, storage, pid, tmp_path / "data").status == "succeeded"
    images = list(session.exec(select(Image).where(Image.project_id == pid)).all())
    split = make_split(session, pid, images, ratios=(0.5, 0.5, 0.0))
    experiment = experiment_service.create_experiment(
        session,
        pid,
        {
            "name": "patience",
            "split_id": split.id,
            "model": "dualhead_small_cnn",
            "image_size": 32,
            "batch_size": 8,
            "warmup_epochs": 0,
            "scheduler": "cosine",
            "dual_head": {"phases": PHASES, "decoder_channels": 8},
        },
    )
    assert experiment.id is not None and experiment.config["epochs"] == 6
    return experiment.id


def _series(session: Session, experiment_id: int, key: str) -> dict[int, float]:
    points = session.exec(
        select(MetricPoint).where(
            MetricPoint.experiment_id == experiment_id, MetricPoint.key == key
        )
    ).all()
    return {p.epoch: p.value for p in points}


def _check_phases_as_run(session: Session, experiment_id: int) -> None:
    assert _series(session, experiment_id, "val/stage") == {1: 1.0, 2: 1.0, 3: 2.0, 4: 2.0, 5: 2.0}
    lr = _series(session, experiment_id, "lr")  # the backbone's rate, after each epoch
    assert lr[1] == lr[2] == 0.0  # phase A: frozen
    # Phase B's backbone rate from the epoch after A ended, cosine within B (3 epochs): after
    # epoch 3 it is one third into B (it would be at B's start had B not moved up).
    cosine = [0.001 * (0.1 + 0.45 * (1 + math.cos(math.pi * k / 3))) for k in (1, 2, 3)]
    assert [lr[e] for e in (3, 4, 5)] == pytest.approx(cosine)
    done = session.get(Experiment, experiment_id)
    assert done is not None and done.status == "completed" and done.epochs_done == 5
    assert done.provenance["stages_run"] == [
        {"name": "A", "planned_epochs": 3, "epochs": 2, "start_epoch": 1, "ended_early": True},
        {"name": "B", "planned_epochs": 3, "epochs": 3, "start_epoch": 3, "ended_early": False},
    ]
    assert done.checkpoints["best-1-A"]["epoch"] == 1  # a flat metric: the first epoch stays
    assert done.checkpoints["best-2-B"]["epoch"] >= 3


def test_a_phase_out_of_patience_ends_and_the_next_starts_at_once(
    session: Session, engine: Engine, storage: Storage, project: Project, tmp_path: Path
) -> None:
    experiment_id = _experiment(session, engine, storage, project, tmp_path)
    logs: list[str] = []
    epochs: list[int] = []

    def on_event(event: dict[str, Any]) -> None:
        if event["type"] == "log":
            logs.append(event["message"])
        elif event["type"] == "epoch":
            epochs.append(event["epochs"])

    run_experiment(open_session_for(session), storage, experiment_id, on_event=on_event)
    session.expire_all()
    assert (
        "Phase A stopped early after 1 epoch without improvement; phase B starts at epoch 3."
        in logs
    )
    assert epochs == [6, 5, 5, 5, 5]  # the run's length shrinks when A ends
    _check_phases_as_run(session, experiment_id)


@pytest.mark.slow
def test_stop_and_resume_after_an_early_phase_end(
    session: Session, engine: Engine, storage: Storage, project: Project, tmp_path: Path
) -> None:
    experiment_id = _experiment(session, engine, storage, project, tmp_path)
    first, second, epochs = stop_then_resume(session, storage, experiment_id, stop_after=3)
    assert first["status"] == "interrupted" and first["epochs_done"] == 3
    assert second["status"] == "completed" and second["epochs_done"] == 5
    assert epochs == [1, 2, 3, 4, 5]
    _check_phases_as_run(session, experiment_id)
