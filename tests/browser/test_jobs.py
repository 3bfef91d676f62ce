"""The live job card: progress over SSE, the polling fallback, cancel."""

from __future__ import annotations

import sqlite3

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveStudio

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def submit_test_job(studio: LiveStudio, steps: int, delay: float) -> int:
    """Queue a test-only job kind straight into the studio's database (no API creates these)."""
    from sqlmodel import Session

    from app.db import engine_for
    from app.services.jobs import submit_job

    engine = engine_for(f"sqlite:///{studio.workspace / 'studio.db'}")
    with Session(engine) as session:
        job = submit_job(
            session,
            kind="test.count",
            title="Counting sheep",
            params={"steps": steps, "delay": delay},
        )
    engine.dispose()
    assert job.id is not None
    return job.id


def progress_values(page: Page) -> float:
    return float(page.get_by_test_id("job-progress").inner_text().rstrip("%"))


def test_progress_bar_moves_and_finishes_over_sse(page: Page, studio: LiveStudio) -> None:
    job_id = submit_test_job(studio, steps=20, delay=0.15)
    page.goto(f"/jobs/{job_id}")
    expect(page.locator(".job-live[data-sse-open]")).to_have_count(1)
    page.wait_for_function(
        "() => { const v = parseFloat(document.querySelector('[data-testid=job-progress]').textContent); return v > 0 && v < 100; }"
    )
    first = progress_values(page)
    page.wait_for_function(
        f"() => parseFloat(document.querySelector('[data-testid=job-progress]').textContent) > {first}"
    )
    expect(page.get_by_test_id("job-status")).to_have_text("succeeded", timeout=30_000)
    assert progress_values(page) == 100.0


def test_card_falls_back_to_polling_when_sse_is_blocked(page: Page, studio: LiveStudio) -> None:
    page.route("**/card-stream", lambda route: route.abort())
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if r.url.endswith("/card") else None)
    job_id = submit_test_job(studio, steps=10, delay=0.3)
    page.goto(f"/jobs/{job_id}")
    expect(page.get_by_test_id("job-status")).to_have_text("succeeded", timeout=30_000)
    assert polls, "the card never polled"


def test_cancel_from_the_card(page: Page, studio: LiveStudio) -> None:
    job_id = submit_test_job(studio, steps=1000, delay=0.1)
    page.goto(f"/jobs/{job_id}")
    expect(page.get_by_test_id("job-status")).to_have_text("running", timeout=30_000)
    page.get_by_test_id("job-cancel").click()
    expect(page.get_by_test_id("job-status")).to_have_text("cancelled", timeout=30_000)
    con = sqlite3.connect(studio.workspace / "studio.db")
    assert con.execute("select status from job where id=?", (job_id,)).fetchone()[0] == "cancelled"
