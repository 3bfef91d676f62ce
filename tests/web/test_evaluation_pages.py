"""The evaluation page and its fragments, rendered by the app (no model needed)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.models import Project
from app.services import annotations
from app.services import evaluations as service
from app.storage import Storage
from tests.factories import make_image, make_split
from tests.support.evaluation import complete_evaluation, make_experiment

HTMX = {"HX-Request": "true"}


def _completed(session: Session, storage: Storage, project: Project):  # type: ignore[no-untyped-def]
    assert project.id is not None
    images = [make_image(session, storage, project.id, labels=[n]) for n in "abab" * 3]
    split = make_split(session, project.id, images, ratios=(0.5, 0.0, 0.5))
    experiment = make_experiment(session, storage, project.id, split, name="tiny-cnn")
    from app.models.evaluation import EvaluationStart

    evaluation, _ = service.start_evaluation(
        session,
        storage,
        project_id=project.id,
        experiment_id=experiment.id,  # type: ignore[arg-type]
        data=EvaluationStart(),
    )
    rows = annotations.subset_samples(session, storage, split_id=split.id, subsets=["test"])
    outcomes = [(r["image_id"], "test", n % 2, (n // 2) % 2) for n, r in enumerate(rows)]
    cm = [[0, 0], [0, 0]]
    for _, _, true, pred in outcomes:
        cm[true][pred] += 1
    rows = complete_evaluation(
        session,
        storage,
        evaluation.id,  # type: ignore[arg-type]
        outcomes,
        ["a", "b"],
        aggregate={
            "samples": len(outcomes),
            "accuracy": 0.5,
            "f1_macro": 0.5,
            "checkpoint": "best",
            "device": "cpu",
            "tta": {"enabled": False},
            "by_subset": {"test": {"accuracy": 0.5}},
            "per_class": [
                {
                    "index": i,
                    "class": c,
                    "precision": 0.5,
                    "recall": 0.5,
                    "f1": 0.5,
                    "roc_auc": None,
                    "support": 3,
                }
                for i, c in enumerate("ab")
            ],
        },
        audit={
            "status": "warning",
            "checks": {
                "fingerprint": {"status": "ok", "message": "ok"},
                "metric_gap": {"status": "warning", "message": "gap", "gap_points": 7.5},
            },
        },
    )
    return experiment, rows, cm


def test_empty_page_and_nav(client: TestClient, project: Project) -> None:
    page = client.get(f"/projects/{project.id}/evaluation")
    assert page.status_code == 200
    assert 'data-testid="no-experiments"' in page.text
    overview = client.get(f"/projects/{project.id}").text
    assert f'href="/projects/{project.id}/evaluation"' in overview


def test_page_with_a_completed_evaluation(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    experiment, _rows, cm = _completed(session, storage, project)
    page = client.get(f"/projects/{project.id}/evaluation")
    assert page.status_code == 200, page.text
    text = page.text
    assert "tiny-cnn" in text and 'data-testid="eval-metrics"' in text
    assert re.search(r'data-testid="metric-accuracy">0\.5000<', text)
    base = f"/projects/{project.id}/evaluation/{experiment.id}"
    assert f'hx-get="{base}/confusion"' in text
    confusion = client.get(f"{base}/confusion", headers=HTMX).text
    cells = re.findall(
        r'data-testid="cm-cell"\s+data-true="(-?\d)" data-pred="(-?\d)" data-count="(\d+)"',
        confusion,
    )
    assert [int(n) for _, _, n in cells] == [n for row in cm for n in row]
    assert 'data-testid="cm-covers">Covers test · 6 counted.' in confusion
    assert 'data-testid="audit-metric_gap" data-status="warning"' in text
    assert f'href="/projects/{project.id}/export" data-testid="next-export"' in text
    # and the completed experiment's own page points here (a real one has its full config)
    from app.services.experiments import default_config

    experiment.config = default_config("classification")
    session.add(experiment)
    session.commit()
    trained = client.get(f"/projects/{project.id}/training/{experiment.id}").text
    assert f'href="/projects/{project.id}/evaluation?experiment={experiment.id}"' in trained
    assert "7.5 pts" in text

    cell = client.get(
        f"{base}/results", params={"true_class": 1, "predicted_class": 0}, headers=HTMX
    )
    thumbs = re.findall(r'class="eval-caption small">\s*(\w+) → (\w+)', cell.text)
    expected = cm[1][0]
    assert len(thumbs) == expected > 0 and set(thumbs) == {("b", "a")}
    assert f"{expected} image" in cell.text

    wrong = client.get(f"{base}/results", params={"outcome": "incorrect"}, headers=HTMX)
    assert "✓" not in wrong.text and "✗" in wrong.text

    first = re.search(rf'hx-get="{base}/results/(\d+)"', cell.text)
    assert first
    detail = client.get(f"{base}/results/{first.group(1)}", headers=HTMX)
    assert detail.status_code == 200
    assert 'data-testid="detail-truth">b<' in detail.text
    assert "Scores per class" in detail.text

    # the poll answers with the panel once the evaluation ended
    assert client.get(f"{base}/poll", headers=HTMX).text.lstrip().startswith('<div id="eval-panel"')


def test_evaluate_and_reset_from_the_page(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    assert project.id is not None
    images = [make_image(session, storage, project.id, labels=[n]) for n in "abab"]
    split = make_split(session, project.id, images, ratios=(0.5, 0.0, 0.5))
    experiment = make_experiment(session, storage, project.id, split)
    base = f"/projects/{project.id}/evaluation/{experiment.id}"
    none_ticked = client.post(
        base, data={"checkpoint": "last"}, headers={**HTMX, "X-Error-Target": "#eval-config-error"}
    )
    assert none_ticked.status_code == 422 and "at least one subset" in none_ticked.text
    assert service.find_evaluation(session, experiment_id=experiment.id) is None  # type: ignore[arg-type]
    started = client.post(
        base,
        data={
            "checkpoint": "last",
            "subsets": ["train", "test"],
            "batch_size": "8",
            "device": "cpu",
            "tta": ["hflip"],
        },
        headers=HTMX,
    )
    assert started.status_code == 200, started.text
    assert 'class="job-live"' in started.text and f'hx-get="{base}/poll"' in started.text
    assert client.get(f"{base}/poll", headers=HTMX).status_code == 204  # still queued
    evaluation = service.find_evaluation(session, experiment_id=experiment.id)  # type: ignore[arg-type]
    assert evaluation is not None
    assert evaluation.subsets == ["train", "test"] and evaluation.options["tta"] == ["hflip"]

    bad = client.post(
        base, data={"subsets": ["test"]}, headers={**HTMX, "X-Error-Target": "#eval-config-error"}
    )
    assert bad.status_code == 409 and bad.headers["HX-Retarget"] == "#eval-config-error"
    assert "being evaluated" in bad.text

    reset = client.delete(base, headers=HTMX)
    assert reset.status_code == 200 and 'data-testid="evaluate"' in reset.text
    session.expire_all()
    assert service.find_evaluation(session, experiment_id=experiment.id) is None  # type: ignore[arg-type]


def test_confusion_matrix_names_its_subsets_and_can_be_limited_to_one(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    from sqlmodel import select

    from app.models import EvaluationMatch

    experiment, _rows, _cm = _completed(session, storage, project)
    evaluation = service.find_evaluation(session, experiment_id=experiment.id)  # type: ignore[arg-type]
    assert evaluation is not None
    # The first two match rows become val rows, as a val + test evaluation writes them.
    matches = session.exec(
        select(EvaluationMatch)
        .where(EvaluationMatch.evaluation_id == evaluation.id)
        .order_by(EvaluationMatch.id)  # type: ignore[arg-type]
    ).all()
    expected: dict[str, list[list[int]]] = {"val": [[0, 0], [0, 0]], "test": [[0, 0], [0, 0]]}
    for n, match in enumerate(matches):
        match.subset = "val" if n < 2 else "test"
        expected[match.subset][match.true_class][match.predicted_class] += 1  # type: ignore[index]
        session.add(match)
    evaluation.subsets = ["val", "test"]
    session.add(evaluation)
    session.commit()

    def counts(html: str) -> list[int]:
        return [int(n) for n in re.findall(r'data-testid="cm-cell"[^>]*data-count="(\d+)"', html)]

    def flat(matrix: list[list[int]]) -> list[int]:
        return [n for row in matrix for n in row]

    base = f"/projects/{project.id}/evaluation/{experiment.id}/confusion"
    both = client.get(base, headers=HTMX).text
    total = [a + b for a, b in zip(flat(expected["val"]), flat(expected["test"]), strict=True)]
    assert counts(both) == total and f"Covers val + test · {sum(total)} counted" in both
    only = client.get(base, params={"subset": "test"}, headers=HTMX).text
    test_total = sum(flat(expected["test"]))
    assert counts(only) == flat(expected["test"]) and f"test only · {test_total} counted" in only
    assert "showCell(0, 1, 'test')" in only  # a cell filters the images by subset too
    wrong = client.get(base, params={"subset": "train"}, headers=HTMX)
    assert wrong.status_code == 422 and "was not evaluated" in wrong.text
    api = client.get(
        f"/api/projects/{project.id}/experiments/{experiment.id}/evaluation/confusion",
        params={"subset": "train"},
    )
    assert api.status_code == 422 and api.json()["error"]["code"] == "subset_not_evaluated"
