"""The evaluation page of a hierarchical classifier (no model needed): per-level accuracy, macro
F1 and balanced accuracy in the metric table and above each level's confusion matrix."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.models import Project
from app.models.evaluation import EvaluationStart
from app.services import annotations
from app.services import evaluations as service
from app.storage import Storage
from tests.factories import make_image, make_split
from tests.support.evaluation import complete_evaluation, make_experiment


def test_level_macro_f1_shows_in_the_metric_table_and_level_cards(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    assert project.id is not None
    images = [make_image(session, storage, project.id, labels=[n]) for n in "abab"]
    split = make_split(session, project.id, images, ratios=(0.5, 0.0, 0.5))
    experiment = make_experiment(session, storage, project.id, split, name="levels")
    evaluation, _ = service.start_evaluation(
        session,
        storage,
        project_id=project.id,
        experiment_id=experiment.id,  # type: ignore[arg-type]
        data=EvaluationStart(),
    )
    rows = annotations.subset_samples(session, storage, split_id=split.id, subsets=["test"])
    outcomes = [(r["image_id"], "test", n % 2, 0) for n, r in enumerate(rows)]
    levels = {
        "coarse": {"labels": ["G", "H"], "matrix": [[1, 0], [1, 0]]},
        "fine": {"labels": ["a", "b"], "matrix": [[1, 0], [1, 0]]},
    }
    complete_evaluation(
        session,
        storage,
        evaluation.id,  # type: ignore[arg-type]
        outcomes,
        ["a", "b"],
        aggregate={
            "samples": len(outcomes),
            "accuracy": 0.5,
            "fine/accuracy": 0.5,
            "fine/macro_f1": 0.3333,
            "fine/balanced_accuracy": 0.5,
            "coarse/accuracy": 0.5,
            "coarse/macro_f1": 0.3333,
            "coarse/balanced_accuracy": 0.5,
            "hierarchical_accuracy": 0.5,
            "violations": 0,
            "levels": levels,
            "by_subset": {"test": {"coarse/macro_f1": 0.3333}},
        },
    )
    text = client.get(f"/projects/{project.id}/evaluation").text
    for key in ("fine/macro_f1", "coarse/macro_f1", "coarse/balanced_accuracy"):
        assert re.search(rf'data-testid="metric-{re.escape(key)}">0\.(3333|5000)<', text), key
    assert "Coarse F1 (macro, coarse head)" in text
    assert re.search(r'data-testid="level-coarse-f1">macro F1 0\.333<', text)
    assert 'data-testid="metric-binary/macro_f1"' not in text  # no binary level: no row
