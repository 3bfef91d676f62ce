"""Object detection in a real browser, the whole path: a COCO zip through the import dialog,
boxes on the grid's thumbnails, a split, an FCOS experiment from the task's own form, the
evaluation with TP/FP/FN overlays and a background row, an ONNX export with box-matching
parity, and try-it drawing the predicted boxes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from benchmarks.synthetic import write_dataset
from tests.browser.conftest import LiveStudio
from tests.importers.builders import zip_folder

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]
SLOW = 300_000


def test_detection_import_train_evaluate_export_try(
    page: Page, studio: LiveStudio, tmp_path: Path
) -> None:
    data = tmp_path / "shapes"
    write_dataset("detection", data, images=30, size=64, seed=2)
    archive = zip_folder(data, tmp_path / "shapes.zip")
    project = studio.api.post(
        "/api/projects", json={"name": "Shapes", "task_type": "detection"}
    ).json()
    pid = project["id"]

    page.goto(f"/projects/{pid}/dataset")
    page.get_by_test_id("import-open").click()
    page.get_by_test_id("import-file").set_input_files(str(archive))
    page.get_by_test_id("import-start").click()
    expect(page.get_by_test_id("report-images")).to_have_text("30", timeout=120_000)
    page.goto(f"/projects/{pid}/dataset")
    thumbs = page.get_by_test_id("thumb-overlay")
    expect(thumbs.first).to_be_visible()
    assert page.locator("[data-testid=thumb-overlay] [data-testid=ov-bbox]").count() > 0
    page.get_by_test_id("toggle-grid-overlays").uncheck()
    expect(page.locator("[data-testid=thumb-overlay] .overlays").first).to_be_hidden()
    page.get_by_test_id("toggle-grid-overlays").check()

    split = studio.api.post(
        f"/api/projects/{pid}/splits",
        json={"name": "main", "ratios": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 0},
    )
    assert split.status_code == 201, split.text

    page.goto(f"/projects/{pid}/training")
    expect(page.get_by_test_id("task-settings")).to_contain_text("NMS IoU")
    expect(page.get_by_test_id("experiment-model")).to_have_value("fcos_small")
    page.get_by_test_id("field-epochs").fill("3")  # more than the 2 warm-up epochs
    page.get_by_test_id("field-image_size").fill("64")
    page.get_by_test_id("field-batch_size").fill("8")
    page.get_by_test_id("field-score_threshold").fill("0.05")
    page.get_by_test_id("experiment-create").click()
    page.wait_for_url(re.compile(rf".*/projects/{pid}/training/\d+$"))
    page.get_by_test_id("train").click()
    expect(page.get_by_test_id("experiment-status")).to_have_text("completed", timeout=SLOW)
    expect(page.get_by_test_id("test-metrics")).to_contain_text("mAP@.5")

    page.get_by_test_id("next-evaluate").click()
    # the page's scripts must have bound the form (a click before that submits it natively)
    page.wait_for_url(re.compile(r".*/evaluation.*"), wait_until="load")
    page.get_by_test_id("evaluate").click()
    expect(page.get_by_test_id("eval-metrics")).to_be_visible(timeout=SLOW)
    expect(page.get_by_test_id("metric-map50")).to_have_text(re.compile(r"^\d\.\d{4}$"))
    expect(page.get_by_test_id("det-counts")).to_contain_text("false positives")
    expect(page.get_by_test_id("confusion-matrix")).to_be_visible()
    expect(page.get_by_test_id("eval-overlay").first).to_be_visible()
    page.get_by_test_id("filter-fn").select_option("yes")
    expect(page.get_by_test_id("eval-total")).to_be_visible()
    page.get_by_test_id("filter-fn").select_option("")
    page.get_by_test_id("eval-thumb").first.click()
    detail = page.get_by_test_id("eval-detail")
    expect(detail.get_by_test_id("eval-detail-overlay")).to_be_visible()
    expect(detail.get_by_test_id("overlay-legend")).to_contain_text("false positive")
    expect(detail.get_by_test_id("det-objects")).to_contain_text("Objects")
    assert detail.locator("[data-role=truth], [data-role=fn], [data-role=tp]").count() > 0
    detail.get_by_role("button", name="Close").click()

    page.goto(f"/projects/{pid}/export")
    expect(page.get_by_test_id("parity-note")).to_contain_text("matched")
    page.get_by_test_id("export-start").click()
    item = page.get_by_test_id("export-item").first
    expect(item).to_have_attribute("data-status", "completed", timeout=SLOW)
    expect(item.get_by_test_id("parity-report")).to_contain_text("Boxes matched")

    expect(page.get_by_test_id("try-form")).to_be_visible()
    page.get_by_test_id("try-threshold").fill("0")
    image = sorted((data / "images").glob("*.png"))[0]
    page.get_by_test_id("try-files").set_input_files(str(image))
    prediction = page.get_by_test_id("prediction")
    expect(prediction).to_have_count(1, timeout=90_000)
    expect(prediction.get_by_test_id("prediction-overlay")).to_be_visible()
    assert prediction.locator("[data-testid=ov-bbox]").count() > 0
    prediction.locator("summary").click()  # more than 20 boxes at score 0: the list is folded
    expect(prediction.get_by_test_id("prediction-top")).to_be_visible()
