"""The image view in a real browser: previous/next (buttons and arrow keys) within the grid's
filter and sort, geometry in whole pixels, a long object list folded, small images crisp."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveStudio
from tests.browser.test_dataset import new_project, studio_session
from tests.factories import make_annotation, make_class, make_image

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_previous_and_next_follow_the_filter_and_sort_also_by_arrow_keys(
    page: Page, studio: LiveStudio
) -> None:
    pid = new_project(studio, "Pets", "classification")
    with studio_session(studio) as (session, storage):
        for name in ("cat_b.png", "dog_a.png", "cat_c.png", "cat_a.png"):
            make_image(session, storage, pid, labels=[name[:3]], original_name=name)
    page.goto(f"/projects/{pid}/dataset?q=cat&sort=-name")
    page.get_by_test_id("thumb").first.locator("a").click()
    expect(page.get_by_test_id("image-name")).to_have_text("cat_c.png")
    expect(page.get_by_test_id("image-position")).to_have_text("1 of 3")
    page.get_by_test_id("next-image").click()
    expect(page.get_by_test_id("image-name")).to_have_text("cat_b.png")
    page.keyboard.press("ArrowRight")
    expect(page.get_by_test_id("image-name")).to_have_text("cat_a.png")  # dog_a is filtered out
    expect(page.get_by_test_id("image-position")).to_have_text("3 of 3")
    expect(page.get_by_test_id("next-image")).to_have_count(0)  # the end of the list
    page.keyboard.press("ArrowLeft")
    expect(page.get_by_test_id("image-name")).to_have_text("cat_b.png")
    page.get_by_test_id("back-to-grid").click()
    expect(page.get_by_test_id("thumb")).to_have_count(3)  # back to the same filter
    assert "q=cat" in page.url and "sort=-name" in page.url


def test_many_objects_fold_and_geometry_is_in_whole_pixels(page: Page, studio: LiveStudio) -> None:
    pid = new_project(studio, "Harbour", "oriented_detection")
    with studio_session(studio) as (session, storage):
        image = make_image(session, storage, pid, np.full((300, 400, 3), 90, np.uint8))
        ship = make_class(session, pid, "ship")
        for k in range(110):
            geometry = {
                "cx": 10.123456789 + 3 * k,
                "cy": 150.5,
                "w": 12.25,
                "h": 4.75,
                "angle": 33.333,
            }
            make_annotation(session, image, "obb", geometry, ship)
        image_id = image.id
    page.goto(f"/projects/{pid}/dataset/images/{image_id}")
    listing = page.get_by_test_id("annotation-list")
    expect(listing).to_contain_text("ship (110)")
    expect(page.get_by_test_id("annotation-table")).to_be_hidden()  # folded
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 2500, height
    listing.locator("summary").click()
    first = page.get_by_test_id("annotation-geometry").first
    expect(first).to_have_text("centre 10, 151 · 12 \u00d7 5 px · 33.3°")
    expect(page.get_by_test_id("annotation-table")).not_to_contain_text("10.12")


def test_a_small_image_is_enlarged_with_hard_pixel_edges(page: Page, studio: LiveStudio) -> None:
    pid = new_project(studio, "Checks", "classification")
    board = (np.indices((8, 8)).sum(axis=0) % 2 * 255).astype(np.uint8)
    with studio_session(studio) as (session, storage):
        image_id = make_image(session, storage, pid, board, labels=["x"]).id
    page.set_viewport_size({"width": 900, "height": 900})
    page.goto(f"/projects/{pid}/dataset/images/{image_id}")
    viewer = page.get_by_test_id("viewer-image")
    expect(viewer).to_be_visible()
    page.wait_for_function(
        "() => { const i = new Image(); i.src = document.querySelector('[data-testid=viewer-image]')"
        ".getAttribute('href'); return i.decode().then(() => true, () => false); }"
    )
    box = page.get_by_test_id("viewer").bounding_box()
    assert box is not None
    shot = page.screenshot(
        clip={
            "x": box["x"] + box["width"] / 2 - 60,
            "y": box["y"] + box["height"] / 2 - 60,
            "width": 120,
            "height": 120,
        }
    )
    grey = np.asarray(PILImage.open(io.BytesIO(shot)).convert("L"))
    # Hard edges: nearly every pixel is black or white; smoothing would leave a band of greys.
    between = ((grey > 40) & (grey < 215)).mean()
    assert between < 0.05, between
