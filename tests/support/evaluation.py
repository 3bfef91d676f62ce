"""Rows for evaluation tests that need no trained model: an experiment with checkpoint files."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from app.models import Experiment, Split
from app.storage import Storage


def make_experiment(
    session: Session,
    storage: Storage,
    project_id: int,
    split: Split,
    *,
    checkpoints: tuple[str, ...] = ("best", "last"),
    missing: tuple[str, ...] = (),
    status: str = "completed",
    name: str = "exp",
    provenance: dict[str, Any] | None = None,
) -> Experiment:
    """An experiment row whose `checkpoints` point at placeholder files (`missing` ones are
    recorded but not written); enough for listing and validation, not for running a model."""
    experiment = Experiment(
        project_id=project_id,
        split_id=split.id,
        name=name,
        status=status,
        provenance=provenance or {"split": {"id": split.id, "fingerprint": split.fingerprint}},
    )
    session.add(experiment)
    session.commit()
    session.refresh(experiment)
    assert experiment.id is not None
    folder = storage.experiment_dir(project_id, experiment.id) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    entries: dict[str, Any] = {}
    for epoch, ckpt in enumerate((*checkpoints, *missing)):
        path = folder / f"{ckpt}.ckpt"
        if ckpt not in missing:
            path.write_bytes(b"placeholder")
        entries[ckpt] = {
            "path": storage.relative(path)
            if path.exists()
            else f"{storage.relative(folder)}/{ckpt}.ckpt",
            "epoch": epoch,
            "metric": 0.5,
            "saved_at": "2026-11-23T00:00:00+00:00",
        }
    experiment.checkpoints = entries
    session.add(experiment)
    session.commit()
    session.refresh(experiment)
    return experiment
