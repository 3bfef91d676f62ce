"""Splits in a real browser: sliders keep 100%, preview with charts, save, locked, delete."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session, create_engine

from app.storage import Storage
from tests.browser.conftest import LiveStudio
from tests.factories import make_digits

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def digits_project(studio: LiveStudio) -> Iterator[int]:
    """A project with 40 real digits, written straight into the live studio's database."""
    project = studio.api.post(
        "/api/projects", json={"name": "Digits", "task_type": "classification"}
    ).json()
    engine = create_engine(f"sqlite:///{studio.workspace / 'studio.db'}")
    with Session(engine, expire_on_commit=False) as session:
        make_digits(session, Storage(studio.workspace), project["id"], per_class=4)
    engine.dispose()
    yield project["id"]


def test_create_a_split_and_see_it_locked(
    page: Page, studio: LiveStudio, digits_project: int
) -> None:
    page.goto(f"/projects/{digits_project}/splits")
    expect(page.get_by_test_id("no-splits")).to_be_visible()

    # the sliders always sum to 100%
    page.get_by_test_id("ratio-train").fill("70")
    expect(page.get_by_test_id("ratio-value-train")).to_have_text("70%")
    values = [
        page.get_by_test_id(f"ratio-value-{k}").inner_text() for k in ("train", "val", "test")
    ]
    assert sum(int(v.rstrip("%")) for v in values) == 100, values
    page.get_by_test_id("ratio-val").fill("20")
    values = [
        page.get_by_test_id(f"ratio-value-{k}").inner_text() for k in ("train", "val", "test")
    ]
    assert [int(v.rstrip("%")) for v in values][1] == 20
    assert sum(int(v.rstrip("%")) for v in values) == 100, values

    page.get_by_label("Name", exact=True).fill("main")
    page.get_by_test_id("preview-split").click()
    expect(page.get_by_test_id("preview-result")).to_be_visible()
    expect(page.get_by_test_id("preview-subset")).to_have_count(3)
    expect(page.locator("canvas[data-drawn='1']")).to_have_count(1)  # Chart.js drew it
    assert studio.api.get(f"/api/projects/{digits_project}/splits").json()["total"] == 0

    page.get_by_test_id("save-split").click()
    row = page.locator(".split-row", has_text="main")
    expect(row).to_be_visible()
    expect(row.get_by_test_id("lock-badge")).to_have_text("locked")
    # the form is back at its defaults, sliders included (not at the range midpoint)
    expect(page.get_by_test_id("ratio-value-train")).to_have_text("80%")
    expect(page.get_by_test_id("ratio-train")).to_have_value("80")
    expect(page.get_by_test_id("ratio-test")).to_have_value("10")
    saved = studio.api.get(f"/api/projects/{digits_project}/splits").json()["items"][0]
    expect(row.get_by_test_id("fingerprint")).to_have_attribute("title", saved["fingerprint"])
    assert sum(saved["counts"].values()) == 40
    link = row.get_by_test_id("subset-link").first
    expect(link).to_have_attribute(
        "href", f"/projects/{digits_project}/dataset?split_id={saved['id']}&subset=train"
    )
    # a locked split refuses changes through the API
    response = studio.api.patch(f"/api/projects/{digits_project}/splits/{saved['id']}", json={})
    assert response.status_code == 409 and response.json()["error"]["code"] == "split_locked"

    # saving the same name again shows the error in the form
    page.get_by_label("Name", exact=True).fill("main")
    page.get_by_test_id("save-split").click()
    expect(page.locator("#split-form-error [role=alert]")).to_contain_text("already exists")

    row.get_by_test_id("delete-split").click()
    row.get_by_test_id("confirm-delete-split").click()
    expect(page.get_by_test_id("no-splits")).to_be_visible()


def test_group_strategy_errors_are_shown_in_place(page: Page, digits_project: int) -> None:
    page.goto(f"/projects/{digits_project}/splits")
    page.get_by_test_id("strategy").select_option("group_kfold")
    expect(page.get_by_test_id("ratio-train")).to_be_hidden()
    page.get_by_test_id("preview-split").click()
    expect(page.locator("#split-form-error [role=alert]")).to_contain_text("group_attribute")


def test_a_hidden_kfold_field_never_blocks_saving(
    page: Page, studio: LiveStudio, digits_project: int
) -> None:
    page.goto(f"/projects/{digits_project}/splits")
    page.get_by_test_id("strategy").select_option("stratified_kfold")
    page.get_by_label("Folds (k)").fill("1")  # invalid, then hidden again
    page.get_by_test_id("strategy").select_option("leave_one_group_out")
    expect(page.get_by_test_id("ratio-value-test")).to_be_hidden()
    page.get_by_test_id("strategy").select_option("stratified")
    expect(page.get_by_test_id("ratio-value-test")).to_have_text("10%")  # test share is back
    page.get_by_label("Name", exact=True).fill("after kfold")
    page.get_by_test_id("save-split").click()
    expect(page.locator(".split-row", has_text="after kfold")).to_be_visible()
    saved = studio.api.get(f"/api/projects/{digits_project}/splits").json()["items"][0]
    assert saved["strategy"] == "stratified" and saved["counts"]["test"] > 0
