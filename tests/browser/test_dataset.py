"""The dataset page in a real browser: filter by class, boxes and masks drawn, class edits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session

from app.storage import Storage
from tests.browser.conftest import LiveStudio
from tests.factories import make_annotation, make_class, make_image, make_mask

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@contextmanager
def studio_session(studio: LiveStudio) -> Iterator[tuple[Session, Storage]]:
    """Rows straight into the live studio's database (the importer is not needed here)."""
    from app.db import engine_for

    engine = engine_for(f"sqlite:///{studio.workspace / 'studio.db'}")
    with Session(engine, expire_on_commit=False) as session:
        yield session, Storage(studio.workspace)
    engine.dispose()


def new_project(studio: LiveStudio, name: str, task_type: str) -> int:
    response = studio.api.post("/api/projects", json={"name": name, "task_type": task_type})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_filter_the_grid_by_class_and_page_through(page: Page, studio: LiveStudio) -> None:
    pid = new_project(studio, "Pets", "classification")
    with studio_session(studio) as (session, storage):
        for i in range(3):
            make_image(session, storage, pid, labels=["cat"], original_name=f"cat_{i}.png")
        for i in range(2):
            make_image(session, storage, pid, labels=["dog"], original_name=f"dog_{i}.png")
        dog = make_class(session, pid, "dog")
    page.goto(f"/projects/{pid}")
    page.get_by_role("link", name="Dataset").click()
    expect(page.get_by_test_id("grid-total")).to_have_text("5 images")
    expect(page.get_by_test_id("thumb")).to_have_count(5)
    # thumbnails are made on the fly and actually load
    first = page.get_by_test_id("thumb").first.locator("img")
    expect(first).to_have_js_property("complete", True)
    assert first.evaluate("img => img.naturalWidth") == 32

    page.get_by_test_id("filter-class").select_option(str(dog.id))
    expect(page.get_by_test_id("grid-total")).to_have_text("2 images")
    expect(page.get_by_test_id("thumb")).to_have_count(2)
    expect(page.locator("#image-grid")).not_to_contain_text("cat_0.png")
    assert f"class_id={dog.id}" in page.url  # the filter lives in the URL
    page.reload()
    expect(page.get_by_test_id("thumb")).to_have_count(2)
    expect(page.get_by_test_id("filter-class")).to_have_value(str(dog.id))

    # the chart and statistics load after the grid
    expect(page.get_by_test_id("stat-images")).to_have_text("5")
    expect(page.get_by_test_id("class-chart")).to_be_visible()


def test_open_an_image_with_boxes_drawn_and_toggle_them(page: Page, studio: LiveStudio) -> None:
    pid = new_project(studio, "Streets", "detection")
    with studio_session(studio) as (session, storage):
        image = make_image(
            session, storage, pid, np.full((64, 96, 3), 200, np.uint8), original_name="street.png"
        )
        car = make_class(session, pid, "car", color="#ff0000")
        person = make_class(session, pid, "person", color="#0000ff")
        make_annotation(session, image, "bbox", {"x": 5, "y": 10, "w": 30, "h": 20}, car)
        make_annotation(session, image, "bbox", {"x": 50, "y": 20, "w": 20, "h": 40}, person)
        make_annotation(
            session, image, "obb", {"cx": 70, "cy": 40, "w": 20, "h": 8, "angle": 30}, car
        )
    page.goto(f"/projects/{pid}/dataset")
    page.get_by_test_id("thumb").first.locator("a").click()
    expect(page.get_by_test_id("image-name")).to_have_text("street.png")
    boxes = page.get_by_test_id("ov-bbox")
    expect(boxes).to_have_count(2)
    expect(boxes.first).to_be_visible()
    expect(page.get_by_test_id("ov-obb")).to_be_visible()
    expect(page.get_by_test_id("overlays")).to_contain_text("car")
    expect(page.get_by_test_id("overlays")).to_contain_text("person")
    # the box sits where the geometry says, scaled with the image
    svg = page.get_by_test_id("viewer").bounding_box()
    box = boxes.first.bounding_box()
    assert svg and box
    scale = svg["width"] / 96
    assert abs(box["width"] - 30 * scale) < 3 and abs(box["x"] - svg["x"] - 5 * scale) < 3

    page.locator(f'[data-testid="toggle-class"][data-class-id="{person.id}"]').uncheck()
    expect(boxes.nth(1)).to_be_hidden()
    expect(boxes.first).to_be_visible()
    page.get_by_test_id("opacity").fill("0.3")
    expect(page.get_by_test_id("overlays")).to_have_attribute("style", "opacity: 0.3")


def test_open_an_image_with_a_mask_drawn(page: Page, studio: LiveStudio) -> None:
    pid = new_project(studio, "Fields", "segmentation")
    with studio_session(studio) as (session, storage):
        background = make_class(session, pid, "background", color="#000000")
        crop = make_class(session, pid, "crop", color="#00ff00")
        weed = make_class(session, pid, "weed", color="#ff00ff")
        image = make_image(session, storage, pid, np.zeros((40, 40, 3), np.uint8))
        values = np.zeros((40, 40), np.uint8)
        values[:20] = 1
        values[30:] = 2
        values[20:30, :5] = 255
        make_mask(session, storage, image, values)
        make_annotation(session, image, "label", {}, crop)
        make_annotation(session, image, "label", {}, weed)
        image_id = image.id
    page.goto(f"/projects/{pid}/dataset/images/{image_id}")
    mask = page.get_by_test_id("ov-mask")
    expect(mask).to_be_visible()
    href = mask.get_attribute("href")
    assert href and "/overlay?hide=" in href

    # what the browser drew: rasterize the SVG overlay group onto a canvas and read pixels
    pixels = page.evaluate(
        """async () => {
            const el = document.querySelector('[data-testid=ov-mask]');
            const img = new Image();
            img.src = el.getAttribute('href');
            await img.decode();
            const c = document.createElement('canvas');
            c.width = img.naturalWidth; c.height = img.naturalHeight;
            const ctx = c.getContext('2d');
            ctx.drawImage(img, 0, 0);
            const at = (x, y) => Array.from(ctx.getImageData(x, y, 1, 1).data);
            return {top: at(10, 5), bottom: at(10, 35), middle: at(10, 25), ignore: at(2, 25)};
        }"""
    )
    assert pixels["top"] == [0, 255, 0, 255]
    assert pixels["bottom"] == [255, 0, 255, 255]
    assert pixels["middle"][3] == 0  # background starts hidden
    assert pixels["ignore"][3] == 0
    page.locator(f'[data-testid="toggle-class"][data-class-id="{weed.id}"]').uncheck()
    base = href.split("?")[0]
    expect(mask).to_have_attribute("href", f"{base}?hide={background.id},{weed.id}")
    page.locator(f'[data-testid="toggle-class"][data-class-id="{background.id}"]').check()
    expect(mask).to_have_attribute("href", f"{base}?hide={weed.id}")


def test_rename_and_recolor_a_class(page: Page, studio: LiveStudio) -> None:
    pid = new_project(studio, "Birds", "classification")
    with studio_session(studio) as (session, storage):
        make_image(session, storage, pid, labels=["sparow"])
        make_image(session, storage, pid, labels=["crow"])
        sparrow_id = make_class(session, pid, "sparow").id
    page.goto(f"/projects/{pid}/dataset")
    row = page.locator(f'[data-testid="class-row"][data-class-id="{sparrow_id}"]')
    row.get_by_test_id("edit-class").click()
    row.get_by_label("Name").fill("sparrow")
    row.get_by_label("Color").fill("#ff8800")
    row.get_by_test_id("save-class").click()
    expect(page.get_by_test_id("class-panel")).to_contain_text("sparrow")
    classes = studio.api.get(f"/api/projects/{pid}/classes").json()["items"]
    assert [(c["name"], c["color"]) for c in classes] == [
        ("sparrow", "#ff8800"),
        ("crow", "#888888"),
    ]
    # the grid and filter pick up the new name
    expect(page.get_by_test_id("filter-class")).to_contain_text("sparrow")

    row = page.locator(f'[data-testid="class-row"][data-class-id="{sparrow_id}"]')
    expect(row.locator(".class-name")).to_have_text("sparrow")
    row.get_by_test_id("edit-class").click()
    row.get_by_label("Name").fill("CROW")
    row.get_by_test_id("save-class").click()
    expect(page.locator("#class-error [role=alert]")).to_contain_text("already exists")
