"""Training in the browser: create an experiment, start it, watch the curve grow, stop, resume."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveStudio

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SLOW = 240_000  # a worker imports torch and trains on 2 shared cores


def seed_project(studio: LiveStudio) -> int:
    """Digits and a split straight into the studio's database (import/split pages are other
    features)."""
    from sqlmodel import Session

    from app.db import engine_for
    from app.storage import Storage
    from tests.factories import make_digits, make_project, make_split

    engine = engine_for(f"sqlite:///{studio.workspace / 'studio.db'}")
    storage = Storage(studio.workspace)
    with Session(engine, expire_on_commit=False) as session:
        project = make_project(session, name="Digits")
        assert project.id is not None
        images = make_digits(session, storage, project.id, per_class=4)
        make_split(session, project.id, images, ratios=(0.6, 0.2, 0.2), name="main")
    engine.dispose()
    return project.id


def points(page: Page) -> int:
    return int(page.get_by_test_id("training-live").get_attribute("data-points") or 0)


def wait_points_above(page: Page, floor: int) -> None:
    page.wait_for_function(
        "floor => Number(document.querySelector('[data-testid=training-live]').dataset.points)"
        " > floor",
        arg=floor,
        timeout=SLOW,
    )


def test_start_watch_curve_stop_and_resume(page: Page, studio: LiveStudio) -> None:
    project_id = seed_project(studio)
    page.goto(f"/projects/{project_id}/training")
    expect(page.get_by_text("No experiments yet")).to_be_visible()
    page.get_by_test_id("experiment-name").fill("browser run")
    page.get_by_test_id("field-epochs").fill("40")
    page.get_by_test_id("field-batch_size").fill("8")
    page.get_by_test_id("experiment-create").click()
    page.wait_for_url(f"**/projects/{project_id}/training/*")
    expect(page.get_by_test_id("experiment-status")).to_have_text("created")

    page.get_by_test_id("train").click()
    expect(page.get_by_test_id("stop")).to_be_visible(timeout=SLOW)
    # The header and the job card agree while it runs; the weights used show without a reload.
    expect(page.get_by_test_id("job-status")).to_have_text("running", timeout=SLOW)
    expect(page.get_by_test_id("experiment-status")).to_have_text("running", timeout=5_000)
    expect(page.get_by_test_id("experiment-weights")).to_contain_text(
        "random initialisation", timeout=SLOW
    )
    # The curve grows live over SSE: first step losses, then epoch points.
    wait_points_above(page, 0)
    first = points(page)
    wait_points_above(page, first + 2)

    page.get_by_test_id("stop").click()
    expect(page.get_by_test_id("experiment-status")).to_have_text("stopped", timeout=SLOW)
    # Stopped everywhere, live: the job card does not say "succeeded 100 %", and the
    # provenance the run recorded appears without a reload.
    expect(page.get_by_test_id("job-status")).to_have_text("cancelled", timeout=SLOW)
    expect(page.locator(".job-card")).to_contain_text("Stopped after epoch")
    expect(page.get_by_test_id("job-progress")).not_to_have_text("100.0%")
    expect(page.get_by_test_id("provenance")).to_contain_text("torch", timeout=SLOW)
    page.reload()
    wait_points_above(page, 0)  # history survives a reload
    # The learning-rate curve the docs promise, per step (warm-up included).
    lr_points = page.evaluate(
        "() => { const c = Chart.getChart(document.getElementById('chart-lr'));"
        " return c ? c.data.datasets.reduce((n, d) => n + d.data.length, 0) : 0; }"
    )
    assert lr_points > 0
    before_resume = points(page)

    page.get_by_test_id("resume").click()
    expect(page.get_by_test_id("stop")).to_be_visible(timeout=SLOW)
    wait_points_above(page, before_resume + 2)
    page.get_by_test_id("stop").click()
    expect(page.get_by_test_id("experiment-status")).to_have_text("stopped", timeout=SLOW)

    page.goto(f"/projects/{project_id}/training")
    row = page.get_by_test_id("experiment-row")
    expect(row.get_by_test_id("experiment-status")).to_have_text("stopped")
