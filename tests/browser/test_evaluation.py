"""Evaluation in a real browser: evaluate a trained digits model, click a confusion-matrix
cell, see only that cell's images."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session

from app.db import engine_for
from app.models import Project
from app.storage import Storage
from tests.browser.conftest import LiveStudio
from tests.factories import make_digits, make_split
from tests.support.training import train_tiny_experiment

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_evaluate_then_click_a_confusion_cell(page: Page, studio: LiveStudio) -> None:
    created = studio.api.post(
        "/api/projects", json={"name": "Digits", "task_type": "classification"}
    )
    project_id = created.json()["id"]
    engine = engine_for(f"sqlite:///{studio.workspace / 'studio.db'}")
    storage = Storage(studio.workspace)
    with Session(engine, expire_on_commit=False) as session:
        project = session.get(Project, project_id)
        assert project is not None
        images = make_digits(session, storage, project_id, per_class=6)
        split = make_split(session, project_id, images, ratios=(0.5, 0.1, 0.4))
        experiment = train_tiny_experiment(
            session, storage, project_id, split.id, epochs=1, name="tiny digits"
        )

    page.goto(f"/projects/{project_id}/evaluation")
    expect(page.get_by_test_id("eval-experiment")).to_contain_text("tiny digits")
    expect(page.get_by_test_id("eval-checkpoint")).to_contain_text("best")
    page.get_by_test_id("evaluate").click()
    expect(page.locator(".job-live")).to_be_visible()
    metrics = page.get_by_test_id("eval-metrics")
    expect(metrics).to_be_visible(timeout=180_000)
    expect(page.get_by_test_id("eval-status")).to_have_text("completed")

    api = studio.api.get(
        f"/api/projects/{project_id}/experiments/{experiment.id}/evaluation"
    ).json()
    accuracy = api["aggregate"]["accuracy"]
    assert accuracy == experiment.provenance["test_metrics"]["accuracy"]
    expect(page.get_by_test_id("metric-accuracy")).to_have_text(f"{accuracy:.4f}")
    expect(page.get_by_test_id("audit-fingerprint")).to_have_attribute("data-status", "ok")

    # every test image is listed before filtering
    total = api["aggregate"]["samples"]
    expect(page.get_by_test_id("eval-total")).to_have_text(f"{total} images")

    # pick a non-empty cell, off the diagonal if the model made any mistake
    matrix = api["aggregate"]["confusion_matrix"]
    cells = [(n, i, j) for i, row in enumerate(matrix) for j, n in enumerate(row) if n]
    count, true_class, predicted = max(cells, key=lambda c: (c[1] != c[2], c[0]))
    page.locator(
        f'[data-testid="cm-cell"][data-true="{true_class}"][data-pred="{predicted}"]'
    ).click()

    thumbs = page.get_by_test_id("eval-thumb")
    expect(page.get_by_test_id("eval-total")).to_have_text(
        f"{count} image{'' if count == 1 else 's'}"
    )
    expect(thumbs).to_have_count(min(count, 24))
    classes = api["aggregate"]["classes"]
    for k in range(thumbs.count()):
        expect(thumbs.nth(k).locator(".eval-caption")).to_have_text(
            f"{classes[true_class]} → {classes[predicted]}"
        )
    expect(page.get_by_test_id("filter-true")).to_have_value(str(true_class))

    # the detail view shows the ground truth and the scores per class
    thumbs.first.click()
    detail = page.get_by_test_id("eval-detail")
    expect(detail).to_be_visible()
    expect(page.get_by_test_id("detail-truth")).to_have_text(classes[true_class])
    expect(detail.locator(".eval-scores li")).to_have_count(len(classes))
    detail.get_by_role("button", name="Close").click()

    # A re-run that fails keeps the good results: it asks first, then says what failed.
    last = storage.resolve(experiment.checkpoints["last"]["path"])
    last.write_bytes(b"not a checkpoint")
    page.get_by_test_id("eval-checkpoint").select_option("last")
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.get_by_test_id("evaluate").click()
    expect(page.get_by_test_id("eval-failed")).to_contain_text(
        "previous results below are kept", timeout=120_000
    )
    assert asked and "stay until the new evaluation completes" in asked[0]
    expect(page.get_by_test_id("metric-accuracy")).to_have_text(f"{accuracy:.4f}")
    kept = studio.api.get(f"/api/projects/{project_id}/experiments/{experiment.id}/evaluation")
    assert kept.json()["aggregate"]["accuracy"] == accuracy
    assert kept.json()["attempt"]["status"] == "failed"
