"""Export in a real browser: export a trained digits model, read the parity report,
download the file, and try an image in the try-it panel."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session, select

from app.config import Settings
from app.db import engine_for
from app.models import Image, SplitMember
from app.storage import Storage
from tests.browser.conftest import LiveStudio
from tests.factories import make_digits, make_split

training = pytest.importorskip("tests.support.training")

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_export_parity_download_and_try_an_image(
    page: Page, studio: LiveStudio, tmp_path: Path
) -> None:
    project = studio.api.post(
        "/api/projects", json={"name": "Digits", "task_type": "classification"}
    ).json()
    settings = Settings(workspace=studio.workspace, start_pool=False)
    engine = engine_for(settings.resolved_database_url)
    storage = Storage(settings.workspace_dir)
    with Session(engine, expire_on_commit=False) as session:
        images = make_digits(session, storage, project["id"], per_class=6, size=32)
        split = make_split(session, project["id"], images)
        experiment = training.train_tiny_experiment(
            session, storage, project["id"], split.id, epochs=1, name="tiny digits"
        )
        test_image = session.exec(
            select(Image.stored_path)
            .join(SplitMember, SplitMember.image_id == Image.id)
            .where(SplitMember.split_id == split.id, SplitMember.subset == "test")
        ).first()
    assert experiment.status == "completed" and test_image

    page.goto(f"/projects/{project['id']}/export")
    expect(page.get_by_test_id("try-empty")).to_be_visible()
    expect(page.get_by_test_id("format-onnx")).to_be_checked()
    page.get_by_test_id("export-start").click()
    item = page.get_by_test_id("export-item").first
    expect(item.locator(".job-card")).to_be_visible()  # the live job card while it runs
    expect(item).to_have_attribute("data-status", "completed", timeout=180_000)

    report = item.get_by_test_id("parity-report")
    expect(report).to_be_visible()
    expect(report).to_contain_text("Top-1 agreement")
    expect(item.get_by_test_id("export-valid")).to_be_visible()
    max_diff = float(item.get_by_test_id("parity-max-abs-diff").inner_text())
    assert max_diff <= 1e-4

    with page.expect_download() as info:
        item.get_by_test_id("export-download").click()
    download = info.value
    assert download.suggested_filename == "tiny-digits-best-onnx.onnx"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    records = studio.api.get(
        f"/api/projects/{project['id']}/experiments/{experiment.id}/exports"
    ).json()["items"]
    assert saved.stat().st_size == records[0]["bytes"]

    # the try-it panel reloaded its models when the export finished
    expect(page.get_by_test_id("try-form")).to_be_visible()
    page.get_by_test_id("try-files").set_input_files(str(storage.resolve(test_image)))
    prediction = page.get_by_test_id("prediction")
    expect(prediction).to_have_count(1, timeout=60_000)
    top = prediction.get_by_test_id("prediction-top")
    expect(top).to_be_visible()
    assert top.locator(".score-name").inner_text() in {str(i) for i in range(10)}
    expect(page.get_by_test_id("prediction-model")).to_contain_text(f"Export #{records[0]['id']}")
    expect(prediction.locator("img")).to_be_visible()  # the image it was given, beside its scores
