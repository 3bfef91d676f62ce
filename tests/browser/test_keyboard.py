"""Keyboard use and forms in a real browser: the skip link, a visible focus ring, dialogs that
keep Tab inside and give focus back, the new-project dialog on a laptop screen, creating a
project opens it, and field errors in plain words beside their fields."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveStudio
from tests.browser.test_dataset import new_project, studio_session
from tests.factories import make_image, make_split

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ACTIVE_IN_DIALOG = "() => !!document.activeElement.closest('[aria-modal=\"true\"]')"


def test_skip_link_jumps_to_the_content_and_focus_is_visible(
    page: Page, studio: LiveStudio
) -> None:
    pid = new_project(studio, "Pets", "classification")
    page.goto(f"/projects/{pid}/dataset")
    page.keyboard.press("Tab")
    skip = page.get_by_test_id("skip-link")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    ring = skip.evaluate(
        "el => getComputedStyle(el).outlineStyle + ' ' + getComputedStyle(el).outlineWidth"
    )
    assert ring.startswith("solid") and float(ring.split()[1].removesuffix("px")) >= 2, ring
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")  # the next stop is inside the content, not the navigation
    assert page.evaluate("!!document.activeElement.closest('main')")


def test_four_keys_reach_the_first_thumbnail(page: Page, studio: LiveStudio) -> None:
    pid = new_project(studio, "Pets", "classification")
    with studio_session(studio) as (session, storage):
        for name in ("a.png", "b.png"):
            make_image(session, storage, pid, labels=["cat"], original_name=name)
    page.goto(f"/projects/{pid}/dataset")
    for key in ("Tab", "Tab", "Enter", "Tab"):
        page.keyboard.press(key)
    first = page.get_by_test_id("thumb").first.locator("a")
    expect(first).to_be_focused()


def test_new_project_dialog_keeps_focus_inside_and_returns_it(
    page: Page, studio: LiveStudio
) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto("/")
    opener = page.get_by_test_id("new-project")
    opener.focus()
    page.keyboard.press("Enter")
    name = page.get_by_label("Name", exact=True)
    expect(name).to_be_focused()
    # The Create button is on screen without scrolling on a 1280 x 800 laptop.
    create = page.get_by_test_id("create-project")
    expect(create).to_be_in_viewport(ratio=1.0)
    for _ in range(25):  # more stops than the dialog has: Tab wraps around inside it
        page.keyboard.press("Tab")
        assert page.evaluate(ACTIVE_IN_DIALOG)
    name.focus()
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(ACTIVE_IN_DIALOG)
    page.keyboard.press("Escape")
    expect(name).to_be_hidden()
    expect(opener).to_be_focused()


def test_creating_a_project_opens_it_and_errors_sit_beside_the_field(
    page: Page, studio: LiveStudio
) -> None:
    page.goto("/")
    page.get_by_test_id("new-project").click()
    page.get_by_test_id("create-project").click()  # no name yet
    error = page.locator("label:has(input[name=name]) [data-testid=field-error]")
    expect(error).to_have_text("Name is required")
    # The field keeps its accessible name and announces the error as its description.
    name = page.get_by_role("textbox", name="Name", exact=True)
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(name).to_have_accessible_description("Name is required")
    expect(name).to_be_focused()
    name.fill("Leaves")
    page.get_by_test_id("create-project").click()
    expect(page.get_by_test_id("project-title")).to_have_text("Leaves")
    expect(page.get_by_test_id("project-next-step")).to_contain_text("import data")


def test_training_form_says_which_number_is_out_of_range_beside_it(
    page: Page, studio: LiveStudio
) -> None:
    pid = new_project(studio, "Digits", "classification")
    with studio_session(studio) as (session, storage):
        images = [make_image(session, storage, pid, labels=[c]) for c in "abab"]
        make_split(session, pid, images, ratios=(0.5, 0.25, 0.25), name="main")
    page.goto(f"/projects/{pid}/training")
    expect(page.get_by_test_id("experiment-name")).to_have_value("small_cnn-1")
    lr = page.get_by_test_id("field-lr")
    assert lr.get_attribute("max") == "10" and lr.get_attribute("type") == "number"
    lr.fill("20")
    page.get_by_test_id("field-epochs").fill("0")
    page.get_by_test_id("experiment-create").click()
    beside_lr = page.locator("label:has([name=lr]) [data-testid=field-error]")
    expect(beside_lr).to_have_text("Learning rate must be at most 10")
    expect(page.locator("label:has([name=epochs]) [data-testid=field-error]")).to_have_text(
        "Epochs must be at least 1"
    )
    expect(page.locator("#experiment-form-error")).to_contain_text("Check the 2 marked fields")
