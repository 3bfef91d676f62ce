"""The import flow as a new user meets it: upload progress with cancel, then the job's
progress; analyze counts only readable images; the report unfolds its errors; a source with
no readable image says so once; the predefined split from the import works on Splits."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveStudio
from tests.importers.builders import class_folders, zip_folder

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _project(studio: LiveStudio, name: str) -> int:
    return int(
        studio.api.post("/api/projects", json={"name": name, "task_type": "classification"}).json()[
            "id"
        ]
    )


def _noisy_zip(path: Path, images: int = 6, side: int = 300) -> Path:
    """Incompressible images, so the zip is big enough (~1.6 MB) to upload visibly."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        for i in range(images):
            pixels = np.random.default_rng(i).integers(0, 256, (side, side, 3), np.uint8)
            buffer = io.BytesIO()
            PILImage.fromarray(pixels).save(buffer, "PNG", compress_level=0)
            out.writestr(f"{'cat' if i % 2 else 'dog'}/{i}.png", buffer.getvalue())
    return path


def test_upload_shows_bytes_percent_speed_and_can_be_cancelled(
    page: Page, studio: LiveStudio, tmp_path: Path
) -> None:
    pid = _project(studio, "Uploads")
    archive = _noisy_zip(tmp_path / "noisy.zip")
    page.goto(f"/projects/{pid}")
    page.get_by_test_id("import-open").click()
    page.get_by_test_id("import-file").set_input_files(str(archive))
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 20, "downloadThroughput": -1, "uploadThroughput": 150_000},
    )
    page.get_by_test_id("import-start").click()
    text = page.get_by_test_id("upload-text")
    expect(text).to_contain_text(" of ", timeout=15_000)
    expect(text).to_contain_text("%")
    expect(text).to_contain_text("/s")
    page.get_by_test_id("upload-cancel").click()
    expect(text).to_contain_text("Upload cancelled")
    assert studio.api.get(f"/api/projects/{pid}/imports").json()["total"] == 0

    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    page.get_by_test_id("import-start").click()
    expect(page.locator(".job-card")).to_be_visible(timeout=30_000)  # then the job's progress
    expect(page.get_by_test_id("import-report")).to_have_attribute(
        "data-status", "succeeded", timeout=60_000
    )
    expect(page.get_by_test_id("upload-progress")).to_be_hidden()


def test_unreadable_files_are_errors_in_analyze_and_in_the_report(
    page: Page, studio: LiveStudio, tmp_path: Path
) -> None:
    pid = _project(studio, "Half broken")
    root = class_folders(tmp_path / "src" / "pets", {"cat": 1, "dog": 1})
    (root / "cat" / "fake.jpg").write_text("a text file renamed .jpg")
    (root / "dog" / "fake.jpg").write_text("another one")
    archive = zip_folder(root.parent, tmp_path / "pets.zip")
    page.goto(f"/projects/{pid}")
    page.get_by_test_id("import-open").click()
    page.get_by_test_id("import-file").set_input_files(str(archive))
    page.get_by_test_id("import-analyze").click()
    expect(page.get_by_test_id("analysis-images")).to_have_text("2")
    expect(page.get_by_test_id("analysis-unreadable")).to_contain_text("2 cannot be read")
    expect(page.get_by_test_id("analysis-errors").locator("li")).to_have_count(2)
    page.get_by_test_id("import-start").click()
    expect(page.get_by_test_id("report-headline")).to_contain_text(
        "Imported 2 images", timeout=60_000
    )
    expect(page.get_by_test_id("report-headline")).to_contain_text("2 errors")
    errors = page.get_by_test_id("report-errors")
    expect(errors).to_be_visible()  # unfolded, not behind a <details>
    expect(errors.locator("li")).to_have_count(2)


def test_a_source_without_a_readable_image_says_so_once(
    page: Page, studio: LiveStudio, tmp_path: Path
) -> None:
    pid = _project(studio, "All broken")
    root = tmp_path / "src" / "bad"
    for name in ("cat/a.jpg", "dog/b.jpg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("text renamed .jpg")
    archive = zip_folder(root.parent, tmp_path / "bad.zip")
    page.goto(f"/projects/{pid}")
    page.get_by_test_id("import-open").click()
    page.get_by_test_id("import-file").set_input_files(str(archive))
    page.get_by_test_id("import-analyze").click()
    expect(page.get_by_test_id("analysis-none-readable")).to_contain_text("No readable image")
    page.get_by_test_id("import-start").click()
    expect(page.get_by_test_id("import-report")).to_have_attribute(
        "data-status", "failed", timeout=60_000
    )
    result = page.locator("#import-result")
    assert result.inner_text().count("No readable image") == 1, result.inner_text()
    assert "Could not recognise" not in result.inner_text()
    expect(page.get_by_test_id("report-errors").locator("li")).to_have_count(2)


def test_predefined_split_from_the_import_works_on_the_splits_page(
    page: Page, studio: LiveStudio, tmp_path: Path
) -> None:
    pid = _project(studio, "Predefined")
    archive = zip_folder(
        class_folders(tmp_path / "pets", {"cat": 4, "dog": 4}, ("train", "val")),
        tmp_path / "pets.zip",
    )
    page.goto(f"/projects/{pid}")
    page.get_by_test_id("import-open").click()
    page.get_by_test_id("import-file").set_input_files(str(archive))
    page.get_by_test_id("import-start").click()
    expect(page.get_by_test_id("import-report")).to_have_attribute(
        "data-status", "succeeded", timeout=60_000
    )
    page.goto(f"/projects/{pid}/splits")
    page.locator("input[name=name]").fill("from the folders")
    page.get_by_test_id("strategy").select_option("predefined")
    page.get_by_test_id("preview-split").click()
    preview = page.get_by_test_id("split-preview")
    expect(preview).to_contain_text("train")
    expect(preview).not_to_contain_text("no predefined split")
    page.get_by_test_id("save-split").click()
    expect(page.locator("#split-list")).to_contain_text("from the folders")
