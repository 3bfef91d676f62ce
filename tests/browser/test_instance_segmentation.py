"""Instance segmentation in a real browser, the whole path: a COCO zip (polygons and RLE)
through the import dialog, a split, a Mask R-CNN experiment from the task's own form, the
evaluation with mask mAP, solid predicted instances over dashed truth and a background row,
an ONNX export with instance-matching parity, and try-it drawing the predicted polygons."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from benchmarks.synthetic import write_dataset
from tests.browser.conftest import LiveStudio
from tests.importers.builders import zip_folder

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(1500)]
SLOW = 600_000


def test_instance_segmentation_import_train_evaluate_export_try(
    page: Page, studio: LiveStudio, tmp_path: Path
) -> None:
    data = tmp_path / "shapes"
    write_dataset("instance_segmentation", data, images=24, size=48, seed=2)
    archive = zip_folder(data, tmp_path / "shapes.zip")
    project = studio.api.post(
        "/api/projects", json={"name": "Instances", "task_type": "instance_segmentation"}
    ).json()
    pid = project["id"]

    page.goto(f"/projects/{pid}/dataset")
    page.get_by_test_id("import-open").click()
    page.get_by_test_id("import-file").set_input_files(str(archive))
    page.get_by_test_id("import-start").click()
    expect(page.get_by_test_id("report-images")).to_have_text("24", timeout=120_000)

    split = studio.api.post(
        f"/api/projects/{pid}/splits",
        json={"name": "main", "ratios": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 0},
    )
    assert split.status_code == 201, split.text

    page.goto(f"/projects/{pid}/training")
    expect(page.get_by_test_id("task-settings")).to_contain_text("NMS IoU")
    expect(page.get_by_test_id("experiment-model")).to_have_value("maskrcnn_small")
    page.get_by_test_id("field-epochs").fill("3")  # more than the 2 warm-up epochs
    page.get_by_test_id("field-image_size").fill("48")
    page.get_by_test_id("field-batch_size").fill("8")
    page.get_by_test_id("field-score_threshold").fill("0.05")
    page.get_by_test_id("experiment-create").click()
    page.wait_for_url(re.compile(rf".*/projects/{pid}/training/\d+$"))
    page.get_by_test_id("train").click()
    expect(page.get_by_test_id("experiment-status")).to_have_text("completed", timeout=SLOW)
    expect(page.get_by_test_id("test-metrics")).to_contain_text("Mask mAP@.5")

    page.get_by_test_id("next-evaluate").click()
    # the page's scripts must have bound the form (a click before that submits it natively)
    page.wait_for_url(re.compile(r".*/evaluation.*"), wait_until="load")
    page.get_by_test_id("evaluate").click()
    expect(page.get_by_test_id("eval-metrics")).to_be_visible(timeout=SLOW)
    expect(page.get_by_test_id("metric-map50_mask")).to_have_text(re.compile(r"^\d\.\d{4}$"))
    expect(page.get_by_test_id("inst-counts")).to_contain_text("mask IoU")
    expect(page.get_by_test_id("confusion-matrix")).to_be_visible()
    page.get_by_test_id("eval-thumb").first.click()
    detail = page.get_by_test_id("eval-detail")
    expect(detail.get_by_test_id("eval-detail-overlay")).to_be_visible()
    expect(detail.get_by_test_id("inst-objects")).to_contain_text("Instances")
    # every true instance is drawn as a dashed outline (an image may have none)
    truth_rows = detail.get_by_test_id("inst-truth-row").count()
    assert detail.locator("[data-role=truth], [data-role=fn]").count() == truth_rows
    if detail.get_by_test_id("inst-pred-row").count():
        expect(detail.get_by_test_id("overlay-legend")).to_contain_text("predicted instance")
        assert detail.locator("[data-role=instance] [data-testid=ov-polygon]").count() > 0
    detail.get_by_role("button", name="Close").click()

    page.goto(f"/projects/{pid}/export")
    expect(page.get_by_test_id("parity-note")).to_contain_text("mask IoU")
    page.get_by_test_id("export-start").click()
    item = page.get_by_test_id("export-item").first
    expect(item).to_have_attribute("data-status", "completed", timeout=SLOW)
    expect(item.get_by_test_id("parity-report")).to_contain_text("Instances matched")

    expect(page.get_by_test_id("try-form")).to_be_visible()
    page.get_by_test_id("try-threshold").fill("0")
    image = sorted((data / "images").glob("*.png"))[0]
    page.get_by_test_id("try-files").set_input_files(str(image))
    prediction = page.get_by_test_id("prediction")
    expect(prediction).to_have_count(1, timeout=120_000)
    expect(prediction).to_contain_text("instance")
    expect(prediction.get_by_test_id("prediction-overlay")).to_be_visible()
    listed = prediction.locator("[data-testid=prediction-objects] li").count()
    drawn = prediction.locator("[data-role=instance] [data-testid=ov-polygon]").count()
    assert drawn == listed  # every listed instance is drawn as a filled outline
