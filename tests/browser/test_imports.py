"""Importing in a real browser: a zip through the dialog, analyze, start, progress to done."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveStudio
from tests.importers.builders import class_folders, zip_folder

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_import_a_zip_through_the_dialog_and_watch_it_finish(
    page: Page, studio: LiveStudio, tmp_path: Path
) -> None:
    project = studio.api.post(
        "/api/projects", json={"name": "Pets", "task_type": "classification"}
    ).json()
    archive = zip_folder(
        class_folders(tmp_path / "pets", {"cat": 30, "dog": 30}, ("train", "val")),
        tmp_path / "pets.zip",
    )
    page.goto(f"/projects/{project['id']}")
    page.get_by_test_id("import-open").click()
    page.get_by_test_id("import-file").set_input_files(str(archive))

    page.get_by_test_id("import-analyze").click()
    expect(page.get_by_test_id("analysis-images")).to_have_text("120")
    expect(page.get_by_test_id("analysis-format")).to_have_text("folders")
    assert studio.api.get(f"/api/projects/{project['id']}/imports").json()["total"] == 0

    page.get_by_test_id("import-start").click()
    card = page.locator(".job-card")
    expect(card).to_be_visible()
    expect(card.get_by_test_id("job-status")).to_have_text("succeeded", timeout=90_000)
    expect(card.get_by_test_id("job-progress")).to_have_text("100.0%")
    expect(page.locator(".progress-bar").first).to_have_attribute("style", "width: 100.0%")
    report = page.get_by_test_id("import-report")
    expect(report).to_have_attribute("data-status", "succeeded", timeout=30_000)
    expect(page.get_by_test_id("report-images")).to_have_text("120")
    assert studio.api.get(f"/api/projects/{project['id']}").json()["counts"]["images"] == 120


def test_digits_sample_button_imports_1797_images(page: Page, studio: LiveStudio) -> None:
    project = studio.api.post(
        "/api/projects", json={"name": "Digits", "task_type": "classification"}
    ).json()
    page.goto(f"/projects/{project['id']}")
    page.get_by_test_id("import-open").click()
    page.get_by_test_id("import-sample-digits").click()
    expect(page.get_by_test_id("job-status")).to_have_text("succeeded", timeout=120_000)
    expect(page.get_by_test_id("report-images")).to_have_text("1797", timeout=30_000)


def test_dataset_page_fills_in_when_an_import_ends_and_refuses_the_sample_twice(
    page: Page, studio: LiveStudio
) -> None:
    project = studio.api.post(
        "/api/projects", json={"name": "Digits on the dataset page", "task_type": "classification"}
    ).json()
    page.goto(f"/projects/{project['id']}/dataset")
    expect(page.get_by_test_id("dataset-counts")).to_contain_text("0 images")
    page.get_by_test_id("import-open").click()
    page.get_by_test_id("import-start").click()  # no file chosen
    expect(page.locator("#import-error")).to_contain_text("Choose a .zip file")
    page.get_by_test_id("import-sample-digits").click()
    expect(page.get_by_test_id("report-images")).to_have_text("1797", timeout=120_000)
    expect(page.locator("#import-error")).to_be_empty()  # the old message went with the success
    # No reload: the grid, the counts and the class panel follow the finished import.
    expect(page.get_by_test_id("dataset-counts")).to_contain_text("1797 images · 10 classes")
    expect(page.locator("#image-grid img").first).to_be_visible()
    expect(page.get_by_test_id("class-panel")).to_contain_text("9")
    page.get_by_test_id("import-sample-digits").click()
    expect(page.locator("#import-error")).to_contain_text("already in this project")
    assert studio.api.get(f"/api/projects/{project['id']}").json()["counts"]["images"] == 1797
