"""Anomaly detection and regression in a real browser: evaluate a tiny model, drag the
threshold and watch precision/recall follow, save it, open a heatmap beside its mask, try an
export; a regression dataset's targets on thumbnails, the range filter and histogram, the
scatter plot drawn, sorting by error, and predicted values in try-it."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect
from sqlmodel import Session

from app.config import Settings
from app.db import engine_for
from app.storage import Storage
from tests.browser.conftest import LiveStudio
from tests.support.tasks import imported_project, train_tiny

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def trained(studio: LiveStudio, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[dict]:  # type: ignore[type-arg]
    """A project of the test's task with a tiny trained model, written into the live studio."""
    task = request.param
    (tmp_path / "data").mkdir()
    settings = Settings(
        workspace=studio.workspace, start_pool=False, import_roots=[tmp_path / "data"]
    )
    engine = engine_for(settings.resolved_database_url)
    storage = Storage(settings.workspace_dir)
    with Session(engine, expire_on_commit=False) as session:
        project, split = imported_project(
            session, engine, storage, settings, task, tmp_path / "data" / task, images=40
        )
        experiment = train_tiny(session, storage, project, split)
        ids = {"project": project.id, "experiment": experiment.id}
    yield {**ids, "folder": tmp_path / "data" / task}


def evaluate_in_page(page: Page, project_id: int) -> None:
    page.goto(f"/projects/{project_id}/evaluation")
    page.get_by_test_id("evaluate").click()
    expect(page.get_by_test_id("eval-metrics")).to_be_visible(timeout=180_000)


def try_an_image(page: Page, project_id: int, folder: Path) -> None:
    page.goto(f"/projects/{project_id}/export")
    page.get_by_test_id("export-start").click()
    item = page.get_by_test_id("export-item").first
    expect(item).to_have_attribute("data-status", "completed", timeout=180_000)
    expect(item.get_by_test_id("export-valid")).to_be_visible()
    image = next(p for p in sorted(folder.rglob("*.png")) if "ground_truth" not in p.parts)
    buffer = io.BytesIO()
    Image.open(image).convert("RGB").save(buffer, format="PNG")
    page.reload()
    page.get_by_test_id("try-files").set_input_files(
        files=[{"name": "probe.png", "mimeType": "image/png", "buffer": buffer.getvalue()}]
    )
    expect(page.get_by_test_id("prediction")).to_be_visible(timeout=60_000)


@pytest.mark.parametrize("trained", ["anomaly"], indirect=True)
def test_anomaly_threshold_heatmaps_and_try_it(
    page: Page,
    studio: LiveStudio,
    trained: dict,  # type: ignore[type-arg]
) -> None:
    pid, eid = trained["project"], trained["experiment"]
    evaluate_in_page(page, pid)
    explorer = page.get_by_test_id("threshold-explorer")
    expect(explorer).to_be_visible()
    calibrated = float(page.get_by_test_id("threshold-input").input_value())
    recall = page.get_by_test_id("live-recall")
    expect(recall).to_have_text(re.compile(r"\d+\.\d %"))  # computed in the browser from the scores

    # drag the threshold line to the right edge: nothing scores that high, recall falls to 0
    canvas = page.get_by_test_id("score-histogram")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] * 0.5, steps=8)
    page.mouse.up()
    expect(recall).to_have_text("0.0 %")
    dragged = float(page.get_by_test_id("threshold-input").input_value())
    assert dragged > calibrated
    page.get_by_test_id("save-threshold").click()
    expect(page.get_by_test_id("threshold-changed")).to_be_visible()
    decision = studio.api.get(f"/api/projects/{pid}/experiments/{eid}/decision").json()
    assert decision["decision"]["threshold"] == pytest.approx(dragged, rel=1e-5)
    page.get_by_test_id("reset-threshold").click()
    expect(page.get_by_test_id("threshold-changed")).to_have_count(0)

    # the most anomalous image: its heatmap beside its ground-truth mask
    page.get_by_test_id("filter-sort").select_option("confidence")
    page.get_by_test_id("eval-thumb").first.click()
    detail = page.get_by_test_id("eval-detail")
    expect(detail).to_be_visible()
    heat = detail.get_by_test_id("heatmap-overlay").locator("image.ov-mask")
    expect(heat).to_have_count(1)
    href = heat.get_attribute("href")
    assert href and page.request.get(href).headers["content-type"] == "image/png"
    expect(detail.get_by_test_id("detail-truth-mask")).to_be_visible()
    detail.get_by_role("button", name="Close").click()

    try_an_image(page, pid, trained["folder"])
    expect(page.get_by_test_id("prediction-verdict")).to_have_text(re.compile("normal|anomalous"))
    expect(page.get_by_test_id("prediction-heatmap").locator("image")).to_have_count(2)


@pytest.mark.parametrize("trained", ["regression"], indirect=True)
def test_regression_targets_scatter_and_try_it(
    page: Page,
    studio: LiveStudio,
    trained: dict,  # type: ignore[type-arg]
) -> None:
    pid = trained["project"]
    page.goto(f"/projects/{pid}/dataset")
    expect(page.get_by_test_id("thumb-value").first).to_contain_text("length")
    total = int(page.get_by_test_id("grid-total").inner_text().split()[0])
    page.get_by_test_id("filter-target").select_option("length")
    page.get_by_test_id("filter-target-min").fill("20")
    page.get_by_test_id("filter-target-max").fill("30")
    page.get_by_test_id("filter-target-max").press("Enter")
    expected = studio.api.get(
        f"/api/projects/{pid}/images",
        params={"target": "length", "target_min": 20, "target_max": 30},
    ).json()["total"]
    assert 0 < expected < total
    expect(page.get_by_test_id("grid-total")).to_have_text(f"{expected} images")
    expect(page.get_by_test_id("target-histogram")).to_have_count(2)

    evaluate_in_page(page, pid)
    expect(page.get_by_test_id("per-target-row")).to_have_count(2)
    scatter = page.get_by_test_id("scatter-0").locator("canvas")
    expect(scatter).to_have_attribute("data-drawn", "1")  # drawn by Chart.js
    page.get_by_test_id("filter-sort").select_option("error")
    page.get_by_test_id("eval-thumb").first.click()
    expect(page.get_by_test_id("detail-values")).to_contain_text("angle")

    try_an_image(page, pid, trained["folder"])
    expect(page.get_by_test_id("prediction-value")).to_have_count(2)
