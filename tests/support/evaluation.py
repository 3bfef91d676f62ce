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


def complete_evaluation(
    session: Session,
    storage: Storage,
    evaluation_id: int,
    outcomes: list[tuple[int, str, int, int]],
    classes: list[str],
    *,
    aggregate: dict[str, Any] | None = None,
    audit: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Complete an evaluation with classification results (image_id, subset, true, predicted)
    as the evaluate job stores them: rows in the shared prediction shape plus match rows.
    Scores and losses grow with the position, so sorts are predictable."""
    from app.services import evaluations

    rows, matches = [], []
    for n, (image_id, subset, true, pred) in enumerate(outcomes):
        scores = [0.1] * len(classes)
        scores[pred] = 0.5 + n / 100
        rows.append(
            {
                "image_id": image_id,
                "subset": subset,
                "prediction": {
                    "truth": [{"kind": "label", "class": classes[true], "index": true}],
                    "predicted": [
                        {
                            "kind": "label",
                            "class": classes[pred],
                            "index": pred,
                            "score": scores[pred],
                        }
                    ],
                    "scores": scores,
                },
                "score": scores[pred],
                "loss": float(n),
                "error": float(true != pred),
                "correct": true == pred,
            }
        )
        matches.append(
            {"image_id": image_id, "subset": subset, "true_class": true, "predicted_class": pred}
        )
    evaluations.save_results(
        session,
        storage,
        evaluation_id,
        rows=rows,
        matches=matches,
        aggregate={"task": "multiclass", "classes": list(classes), **(aggregate or {})},
        audit=audit or {"status": "ok", "checks": {}},
    )
    return rows
