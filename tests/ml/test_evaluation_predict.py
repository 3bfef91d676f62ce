"""The evaluation loop on a really trained model (digits): same accuracy as training recorded,
TTA reported and averaged, per-image rows consistent with the aggregate."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk
from sqlmodel import Session

from app.services import annotations
from app.storage import Storage
from tests.factories import make_digits, make_split
from tests.support.training import train_tiny_experiment
from workers.ml.checkpoints import load_for_inference
from workers.ml.tasks.base import samples_from_rows
from workers.ml.tasks.classification.evaluate import (
    aggregate_metrics,
    eval_items,
    per_image,
    predict,
    tta_views,
)

pytestmark = pytest.mark.slow


def test_test_accuracy_equals_training_and_tta_is_reported(
    session: Session, storage: Storage, project
) -> None:
    images = make_digits(session, storage, project.id, per_class=8)
    split = make_split(session, project.id, images)
    experiment = train_tiny_experiment(session, storage, project.id, split.id, epochs=2)
    recorded = experiment.provenance["test_metrics"]
    assert recorded["checkpoint"] == "best"

    model = load_for_inference(storage.resolve(experiment.checkpoints["best"]["path"]))
    rows = annotations.subset_samples(session, storage, split_id=split.id, subsets=["test"])
    items, _kept, skipped = eval_items(model, samples_from_rows(rows))
    assert not any(skipped.values())
    assert len(items) == recorded["n"]
    seen: list[tuple[int, int]] = []
    output = predict(model, items, batch_size=7, report=lambda d, t: seen.append((d, t)))
    aggregate = aggregate_metrics(model, output)
    assert aggregate["accuracy"] == recorded["accuracy"]  # exactly, not approximately
    assert aggregate["f1_macro"] == pytest.approx(recorded["f1_macro"])
    assert seen[-1] == (len(items), len(items))
    assert output.tta == {"enabled": False, "hflip": False, "scales": [32], "views": 1}
    assert np.allclose(output.probs.sum(1).numpy(), 1.0, atol=1e-5)

    rows = [per_image(model, output, i) for i in range(len(items))]
    assert all(len(r["matches"]) == 1 for r in rows)
    preds = [r["matches"][0]["predicted_class"] for r in rows]
    truth = [r["matches"][0]["true_class"] for r in rows]
    assert all(r["error"] == float(not r["correct"]) for r in rows)
    assert sum(r["correct"] for r in rows) / len(rows) == recorded["accuracy"]
    assert (
        aggregate["confusion_matrix"]
        == sk.confusion_matrix(truth, preds, labels=list(range(10))).tolist()
    )
    assert all(r["score"] == max(r["prediction"]["scores"]) for r in rows)
    assert np.mean([r["loss"] for r in rows]) == pytest.approx(recorded["loss"], rel=1e-4)

    assert tta_views(model, ["hflip", "multiscale"])[0] == (32, False)  # plain view first
    flipped = predict(model, items, batch_size=16, tta=["hflip", "multiscale"])
    assert flipped.tta == {"enabled": True, "hflip": True, "scales": [28, 32, 36], "views": 6}
    assert np.allclose(flipped.probs.sum(1).numpy(), 1.0, atol=1e-5)
    assert not np.allclose(flipped.probs.numpy(), output.probs.numpy())
