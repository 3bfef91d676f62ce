"""The pages of an anomaly and a regression project with a real (tiny) model: dataset targets,
split strata and keep-out, the evaluation page's charts, heatmaps, threshold changes and
sorts, through the HTML routes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.config import Settings
from app.models import EvaluationResult
from app.models.evaluation import EvaluationStart
from app.services import evaluations as evaluation_service
from app.services import jobs as job_service
from app.storage import Storage
from tests.support.tasks import imported_project, train_tiny
from workers.context import JobContext

pytestmark = [pytest.mark.slow]
HTMX = {"HX-Request": "true"}


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"import_roots": [tmp_path / "data"]})


def evaluate_now(
    session: Session, storage: Storage, settings: Settings, engine: Engine, pid: int, eid: int
) -> None:
    from workers.handlers.evaluate import evaluate

    evaluation_service.start_evaluation(
        session,
        storage,
        project_id=pid,
        experiment_id=eid,
        data=EvaluationStart(subsets=["val", "test"]),
    )
    job = job_service.claim_next_job(session, queue="compute")
    assert job is not None
    evaluate(JobContext(job, settings, engine))
    session.expire_all()


def chart_data(html: str, testid: str) -> dict:  # type: ignore[type-arg]
    block = html[html.index(f'data-testid="{testid}"') :]
    match = re.search(r"data-chart='([^']*)'", block)
    assert match, testid
    return json.loads(match.group(1).replace("&#34;", '"').replace("&quot;", '"'))


def test_anomaly_pages(
    client: TestClient,
    session: Session,
    storage: Storage,
    settings: Settings,
    engine: Engine,
    tmp_path: Path,
) -> None:
    project, split = imported_project(
        session, engine, storage, settings, "anomaly", tmp_path / "data" / "surfaces"
    )
    pid = project.id
    assert pid is not None

    # the split form offers the task's keep-out rule; clearing it lets anomalies into train
    page = client.get(f"/projects/{pid}/splits")
    assert 'data-testid="keep-out-of-train"' in page.text and "Keep anomalous images" in page.text
    form = {"strategy": "stratified", "ratio_train": "60", "ratio_val": "20", "ratio_test": "20"}
    kept = client.post(
        f"/projects/{pid}/splits/preview",
        data={**form, "keep_out_asked": "1", "keep_out_of_train": "on"},
    )
    assert 'data-code="kept_out_of_train"' in kept.text
    mixed = client.post(f"/projects/{pid}/splits/preview", data={**form, "keep_out_asked": "1"})
    assert mixed.status_code == 200 and 'data-code="kept_out_of_train"' not in mixed.text

    experiment = train_tiny(session, storage, project, split)
    eid = experiment.id
    assert eid is not None and isinstance(experiment.provenance.get("threshold"), float)
    for url in (f"/projects/{pid}/training", f"/projects/{pid}/training/{eid}", f"/projects/{pid}"):
        assert client.get(url).status_code == 200, url
    shown = client.get(f"/projects/{pid}/training/{eid}").text
    assert "<dt>Mode</dt><dd>unsupervised</dd>" in shown  # the experiment says its mode
    evaluate_now(session, storage, settings, engine, pid, eid)

    page = client.get(f"/projects/{pid}/evaluation", params={"experiment": eid})
    assert page.status_code == 200
    html = page.text
    assert 'data-testid="threshold-explorer"' in html and 'data-testid="metric-auroc"' in html
    assert 'data-testid="roc-chart"' in html or "No ROC curve" in html
    assert '<option value="confidence">highest score</option>' in html
    evaluation = evaluation_service.get_evaluation(session, project_id=pid, experiment_id=eid)
    threshold = evaluation.aggregate["threshold"]
    assert f"{threshold:.4g}" in html

    results = client.get(f"/projects/{pid}/evaluation/{eid}/results", params={"sort": "confidence"})
    assert results.status_code == 200
    assert 'data-testid="ov-mask"' in results.text  # the heatmap over every thumbnail
    assert not re.search(r'class="eval-conf"[^>]*>\d+%<', results.text)  # raw scores, not percent
    rows = session.exec(
        select(EvaluationResult).where(EvaluationResult.evaluation_id == evaluation.id)
    ).all()
    shown = [float(s) for s in re.findall(r'class="eval-conf"[^>]*>([-0-9.e]+)<', results.text)]
    assert shown == sorted(shown, reverse=True) and len(shown) == min(24, len(rows))

    masked = next(r for r in rows if len(r.prediction["truth"]) == 2)
    detail = client.get(f"/projects/{pid}/evaluation/{eid}/results/{masked.id}")
    assert 'data-testid="detail-heatmap"' in detail.text
    assert 'data-testid="truth-overlay"' in detail.text
    heat = re.search(r'href="(/api/projects/[^"]+/artefacts/map-\d+\.png)"', detail.text)
    assert heat
    png = client.get(heat.group(1))
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"

    confusion = client.get(f"/projects/{pid}/evaluation/{eid}/confusion")
    assert 'data-testid="confusion-matrix"' in confusion.text and "anomalous" in confusion.text

    # a new threshold from the page is stored with the experiment, without retraining
    changed = client.post(
        f"/projects/{pid}/evaluation/{eid}/decision",
        data={"threshold": str(threshold + 0.25)},
        headers=HTMX,
    )
    assert changed.status_code == 200 and 'data-testid="threshold-changed"' in changed.text
    api = client.get(f"/api/projects/{pid}/experiments/{eid}/decision").json()
    assert api["decision"]["threshold"] == pytest.approx(threshold + 0.25) and api["changed"]
    bad = client.post(
        f"/projects/{pid}/evaluation/{eid}/decision", data={"threshold": "lots"}, headers=HTMX
    )
    assert bad.status_code == 422 and "threshold" in bad.text
    restored = client.post(f"/projects/{pid}/evaluation/{eid}/decision", data={}, headers=HTMX)
    assert 'data-testid="threshold-changed"' not in restored.text
    assert not client.get(f"/api/projects/{pid}/experiments/{eid}/decision").json()["changed"]


def test_regression_pages(
    client: TestClient,
    session: Session,
    storage: Storage,
    settings: Settings,
    engine: Engine,
    tmp_path: Path,
) -> None:
    project, split = imported_project(
        session, engine, storage, settings, "regression", tmp_path / "data" / "bars", images=40
    )
    pid = project.id
    assert pid is not None

    dataset = client.get(f"/projects/{pid}/dataset")
    assert 'data-testid="target-filter"' in dataset.text
    assert dataset.text.count('data-testid="thumb-value"') == 2 * dataset.text.count(
        'data-testid="thumb"'
    )
    assert 'title="length">length ' in dataset.text and 'title="angle">angle ' in dataset.text
    narrow = client.get(
        f"/projects/{pid}/dataset",
        params={"target": "length", "target_min": "20", "target_max": "30"},
        headers={**HTMX, "HX-Target": "image-grid"},
    )
    total = int(re.search(r'data-total="(\d+)"', narrow.text).group(1))  # type: ignore[union-attr]
    api = client.get(
        f"/api/projects/{pid}/images",
        params={"target": "length", "target_min": 20, "target_max": 30},
    ).json()
    assert total == api["total"] and 0 < total < 40
    stats = client.get(f"/projects/{pid}/dataset/stats")
    assert (
        stats.text.count('data-testid="target-histogram"') == 2 and "Target: length" in stats.text
    )
    image_id = api["items"][0]["id"]
    viewer = client.get(f"/projects/{pid}/dataset/images/{image_id}")
    assert "<dt>length</dt>" in viewer.text and "<dt>angle</dt>" in viewer.text

    form = {"strategy": "stratified", "ratio_train": "60", "ratio_val": "20", "ratio_test": "20"}
    preview = client.post(f"/projects/{pid}/splits/preview", data=form)
    assert re.search(r'data-testid="preview-strata">\d target bins<', preview.text)
    assert "Target bins present" in preview.text

    experiment = train_tiny(session, storage, project, split)
    eid = experiment.id
    assert eid is not None
    for url in (f"/projects/{pid}/training", f"/projects/{pid}/training/{eid}", f"/projects/{pid}"):
        assert client.get(url).status_code == 200, url
    evaluate_now(session, storage, settings, engine, pid, eid)

    html = client.get(f"/projects/{pid}/evaluation", params={"experiment": eid}).text
    assert html.count('data-testid="per-target-row"') == 2
    scatter = chart_data(html, "scatter-0")
    assert scatter["xLabel"] == "actual length" and len(scatter["x"]) == len(scatter["y"]) > 0
    assert chart_data(html, "error-histogram-1")["xLabel"] == "|error| of angle"
    assert '<option value="error">largest error</option>' in html
    assert "Correct" not in html and 'name="outcome"' not in html  # no verdicts to filter

    confusion = client.get(f"/projects/{pid}/evaluation/{eid}/confusion")
    assert 'data-testid="cm-empty"' in confusion.text  # no classes: the empty state

    results = client.get(f"/projects/{pid}/evaluation/{eid}/results", params={"sort": "error"})
    assert "eval-mark" not in results.text and 'data-testid="result-value"' in results.text
    evaluation = evaluation_service.get_evaluation(session, project_id=pid, experiment_id=eid)
    rows = session.exec(
        select(EvaluationResult).where(EvaluationResult.evaluation_id == evaluation.id)
    ).all()
    worst = max(rows, key=lambda r: r.error or 0)
    first = re.search(r'hx-get="[^"]+/results/(\d+)"', results.text)
    assert first and int(first.group(1)) == worst.id
    detail = client.get(f"/projects/{pid}/evaluation/{eid}/results/{worst.id}")
    assert 'data-testid="detail-values"' in detail.text and "<td>angle</td>" in detail.text
