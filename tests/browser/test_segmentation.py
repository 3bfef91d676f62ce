"""Semantic segmentation in a real browser, with the studio's own worker pool: import mask
PNGs through the dialog, split, train a tiny U-Net, evaluate and look at an image's
predicted mask, ground truth and error map (layers, class toggles, opacity), open a pixel
confusion cell, export with parity and try an image."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveStudio
from tests.importers.builders import zip_folder
from tests.support.segmentation import CLASSES, write_source

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]
SLOW = 120_000


def test_masks_from_import_to_try_it(page: Page, studio: LiveStudio, tmp_path: Path) -> None:
    project = studio.api.post(
        "/api/projects", json={"name": "Shapes", "task_type": "segmentation"}
    ).json()
    pid = project["id"]
    write_source(tmp_path / "src")
    archive = zip_folder(tmp_path / "src", tmp_path / "shapes.zip")

    # import through the dialog; the bad masks are reported, the images kept
    page.goto(f"/projects/{pid}")
    page.get_by_test_id("import-open").click()
    page.get_by_test_id("import-file").set_input_files(str(archive))
    page.get_by_test_id("import-start").click()
    expect(page.get_by_test_id("import-report")).to_have_attribute(
        "data-status", "succeeded", timeout=SLOW
    )
    expect(page.get_by_test_id("report-images")).to_have_text("18")
    expect(page.get_by_test_id("import-report")).to_contain_text("not in the class map")

    # the statistics show each class's share of the mask pixels
    page.goto(f"/projects/{pid}/dataset")
    shares = page.get_by_test_id("pixel-share")
    expect(shares.locator("tr")).to_have_count(4)
    expect(shares).to_contain_text("background")

    # split, then train with a tiny recipe
    page.goto(f"/projects/{pid}/splits")
    page.get_by_label("Name", exact=True).fill("main")
    page.get_by_test_id("ratio-train").fill("50")
    page.get_by_test_id("ratio-val").fill("20")
    page.get_by_test_id("save-split").click()
    expect(page.get_by_test_id("lock-badge").first).to_have_text("locked")

    page.goto(f"/projects/{pid}/training")
    expect(page.get_by_test_id("experiment-model")).to_have_value("unet_small")
    page.get_by_test_id("experiment-name").fill("tiny unet")
    page.get_by_test_id("field-epochs").fill("2")
    page.get_by_test_id("field-batch_size").fill("4")
    page.get_by_test_id("field-image_size").fill("32")
    page.get_by_test_id("field-decoder_channels").fill("8")
    page.get_by_test_id("experiment-create").click()
    expect(page.get_by_test_id("experiment-status")).to_have_text("created")
    page.get_by_test_id("train").click()
    expect(page.get_by_test_id("experiment-status")).to_have_text("completed", timeout=SLOW)
    (experiment,) = studio.api.get(f"/api/projects/{pid}/experiments").json()["items"]
    eid = experiment["id"]

    # evaluate: metrics say how mIoU is counted; per-class IoU bars
    page.goto(f"/projects/{pid}/evaluation")
    page.get_by_test_id("evaluate").click()
    expect(page.get_by_test_id("eval-metrics")).to_be_visible(timeout=SLOW)
    agg = studio.api.get(f"/api/projects/{pid}/experiments/{eid}/evaluation").json()["aggregate"]
    expect(page.get_by_test_id("metric-miou")).to_have_text(f"{agg['miou']:.4f}")
    expect(page.get_by_test_id("metric-miou_no_bg")).to_have_text(f"{agg['miou_no_bg']:.4f}")
    expect(page.get_by_test_id("seg-miou-note")).to_contain_text("dataset-level")
    expect(page.get_by_test_id("seg-class-row")).to_have_count(len(CLASSES))
    expect(page.get_by_test_id("cm-covers")).to_contain_text("Counted in pixels")

    # a pixel confusion cell opens its images, the largest confusion first
    matrix = agg["confusion"]["matrix"]
    cells = [(n, t, p) for t, row in enumerate(matrix) for p, n in enumerate(row) if n and t != p]
    _, true_class, predicted = max(cells) if cells else (0, 0, 0)
    page.locator(
        f'[data-testid="cm-cell"][data-true="{true_class}"][data-pred="{predicted}"]'
    ).click()
    expect(page.get_by_test_id("eval-cell-filter")).to_be_visible()
    expect(page.get_by_test_id("filter-sort")).to_have_value("cell")
    thumbs = page.get_by_test_id("eval-thumb")
    expect(thumbs.first).to_be_visible()
    expect(thumbs.first.get_by_test_id("ov-mask")).to_have_count(1)  # the predicted mask

    # the detail: predicted mask, truth and error map as layers, class toggles, opacity
    thumbs.first.click()
    viewer = page.get_by_test_id("seg-viewer")
    expect(viewer).to_be_visible()
    masks = viewer.get_by_test_id("ov-mask")
    expect(masks).to_have_count(3)
    predicted_layer = viewer.locator('[data-role="pred"]')
    expect(predicted_layer).to_be_visible()
    expect(viewer.locator('[data-role="error"]')).to_be_hidden()
    href = predicted_layer.get_attribute("href") or ""
    assert href.endswith("?hide=0")  # background left clear
    assert page.request.get(href).headers["content-type"] == "image/png"
    viewer.get_by_test_id("layer-error").check()
    expect(viewer.locator('[data-role="error"]')).to_be_visible()
    assert "tint=dc2626&hide=0" in (
        viewer.locator('[data-role="error"]').get_attribute("href") or ""
    )
    toggles = viewer.get_by_test_id("seg-toggle")
    shown = [t for t in toggles.all() if t.is_checked()]
    assert shown, "some class other than background is in this image"
    index = shown[0].get_attribute("data-index")
    shown[0].uncheck()
    expect(predicted_layer).to_have_attribute("href", f"{href},{index}")
    viewer.get_by_test_id("seg-opacity").fill("0.3")
    expect(viewer.locator("g.overlays")).to_have_attribute("style", "opacity: 0.3")
    expect(page.get_by_test_id("detail-score")).to_be_visible()
    expect(page.get_by_test_id("seg-image-classes")).to_be_visible()
    page.get_by_role("button", name="Close").click()

    # export with parity, then try a non-square image: the mask comes back at its size
    page.goto(f"/projects/{pid}/export")
    page.get_by_test_id("export-start").click()
    item = page.get_by_test_id("export-item").first
    expect(item).to_have_attribute("data-status", "completed", timeout=SLOW)
    expect(item.get_by_test_id("parity-report")).to_contain_text("Argmax pixel agreement")
    expect(item.get_by_test_id("export-valid")).to_be_visible()
    page.get_by_test_id("try-files").set_input_files(
        str(tmp_path / "src" / "images" / "wide_a.png")
    )
    prediction = page.get_by_test_id("prediction")
    expect(prediction).to_be_visible(timeout=120_000)
    overlay = prediction.get_by_test_id("prediction-overlay")
    expect(overlay).to_have_attribute("viewBox", "0 0 48 32")
    mask = overlay.get_by_test_id("ov-mask")
    assert (mask.get_attribute("href") or "").startswith("data:image/png;base64,")
    expect(prediction.get_by_test_id("prediction-top")).to_be_visible()
    expect(prediction.get_by_test_id("prediction-mask-download")).to_be_visible()
