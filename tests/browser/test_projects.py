"""Projects in a real browser: create, open, rename, delete; errors shown in place."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveStudio

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def create_project(page: Page, name: str, task_label: str = "Classification") -> None:
    page.get_by_test_id("new-project").click()
    page.get_by_label("Name", exact=True).fill(name)
    page.locator(".task-option", has_text=task_label).first.click()
    page.get_by_test_id("create-project").click()


def test_create_rename_delete_a_project(page: Page, studio: LiveStudio) -> None:
    page.goto("/")
    expect(page.get_by_test_id("empty-projects")).to_be_visible()

    create_project(page, "Leaf diseases", "Semantic segmentation")
    expect(page.get_by_test_id("project-title")).to_have_text("Leaf diseases")  # opened
    page.goto("/")
    card = page.locator(".project-card", has_text="Leaf diseases")
    expect(card).to_be_visible()
    expect(card.locator(".badge")).to_have_text("Semantic segmentation")
    assert studio.api.get("/api/projects").json()["items"][0]["task_type"] == "segmentation"

    card.get_by_test_id("rename").click()
    card.get_by_label("New name").fill("Leaf diseases v2")
    card.get_by_test_id("save-rename").click()
    expect(page.locator(".project-card", has_text="Leaf diseases v2")).to_be_visible()
    assert studio.api.get("/api/projects").json()["items"][0]["name"] == "Leaf diseases v2"

    card = page.locator(".project-card", has_text="Leaf diseases v2")
    card.get_by_test_id("delete").click()
    expect(card.get_by_role("alertdialog")).to_contain_text("cannot be undone")
    card.get_by_test_id("confirm-delete").click()
    expect(page.get_by_test_id("empty-projects")).to_be_visible()
    assert studio.api.get("/api/projects").json()["total"] == 0


def test_duplicate_name_error_is_shown_in_the_dialog(page: Page, studio: LiveStudio) -> None:
    studio.api.post("/api/projects", json={"name": "Digits", "task_type": "classification"})
    page.goto("/")
    create_project(page, "digits")
    alert = page.locator("#create-error [role=alert]")
    expect(alert).to_contain_text("already exists")
    expect(page.get_by_label("Name", exact=True)).to_be_visible()  # the dialog stays open to fix it


def test_clicking_a_project_opens_its_page_and_hostile_names_stay_text(
    page: Page, studio: LiveStudio
) -> None:
    hostile = '<img src=x onerror="window.pwned=1">'
    studio.api.post("/api/projects", json={"name": hostile, "task_type": "detection"})
    page.goto("/")
    page.locator(".project-link").first.click()
    expect(page.get_by_test_id("project-title")).to_have_text(hostile)
    expect(page.get_by_test_id("subnav-project-name")).to_have_text(hostile)
    assert page.evaluate("window.pwned === undefined")
