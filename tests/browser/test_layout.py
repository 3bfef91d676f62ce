"""Every page at a phone's width (390 px), a tablet's (768 px) and a laptop's (1280 px): the
document is never wider than the viewport and no card's content spills out of it."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page
from sqlmodel import Session

from app.db import engine_for
from app.storage import Storage
from tests.browser.conftest import LiveStudio
from tests.factories import make_annotation, make_class, make_digits, make_image, make_split
from tests.helpers import wait_for
from tests.support.training import train_tiny_experiment

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# What overflows: the page itself, a card's content past the card's edge (a region meant to
# scroll sideways, such as a wide confusion matrix, scrolls inside its own box instead), or a
# navigation tab past the screen's edge.
OVERFLOW = """() => {
  const doc = document.documentElement;
  const spilled = [...document.querySelectorAll('.card, .page-header, .subnav, .topbar')]
    .filter((el) => el.offsetParent !== null && el.scrollWidth > el.clientWidth + 1)
    .map((el) => {
      const edge = el.getBoundingClientRect().right;
      const culprit = [...el.querySelectorAll('*')].find((c) => c.getBoundingClientRect().right > edge + 1);
      return (el.id ? '#' + el.id : el.className) + ' "' +
        (el.querySelector('h1, h2, h3') || el).textContent.trim().slice(0, 30) + '" ' +
        el.scrollWidth + '>' + el.clientWidth + (culprit ? ' by ' + culprit.outerHTML.slice(0, 120) : '');
    });
  const hidden = [...document.querySelectorAll('.subnav a, .topnav a')]
    .filter((a) => a.getBoundingClientRect().right > window.innerWidth + 1)
    .map((a) => 'tab ' + a.textContent.trim());
  return {page: doc.scrollWidth, viewport: window.innerWidth, spilled: spilled.concat(hidden)};
}"""


def _wait_job(studio: LiveStudio, job_id: int) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        job = studio.api.get(f"/api/jobs/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    job = wait_for(finished, timeout=240, interval=0.5, what=f"job {job_id}")
    assert job["status"] == "succeeded", job
    return job


def _populate(studio: LiveStudio) -> list[str]:
    """A classification project with everything (images, a split, a trained and an untrained
    experiment, an evaluation, an export, jobs) and an empty detection project with boxes."""
    api = studio.api
    pid = api.post(
        "/api/projects",
        json={"name": "Digits with a long name to wrap", "task_type": "classification"},
    ).json()["id"]
    did = api.post("/api/projects", json={"name": "Boxes", "task_type": "detection"}).json()["id"]
    engine = engine_for(f"sqlite:///{studio.workspace / 'studio.db'}")
    storage = Storage(studio.workspace)
    with Session(engine, expire_on_commit=False) as session:
        images = make_digits(session, storage, pid, per_class=4)
        split = make_split(session, pid, images, ratios=(0.5, 0.2, 0.3))
        trained = train_tiny_experiment(
            session, storage, pid, split.id, epochs=1, name="a rather long experiment name"
        )
        box = make_image(session, storage, did, original_name="street/scene_0001.jpg")
        car = make_class(session, did, "car")
        for k in range(12):
            make_annotation(
                session, box, "bbox", {"x": 1.123456789 + k, "y": 2.5, "w": 10.25, "h": 7.75}, car
            )
        image_id, box_id, split_id = images[0].id, box.id, split.id
    eid = trained.id
    other = api.post(
        f"/api/projects/{pid}/experiments", json={"name": "second", "split_id": split_id}
    ).json()["id"]
    evaluation = api.post(
        f"/api/projects/{pid}/experiments/{eid}/evaluation", json={"subsets": ["val", "test"]}
    ).json()
    _wait_job(studio, evaluation["job"]["id"])
    export = api.post(f"/api/projects/{pid}/experiments/{eid}/exports", json={"format": "onnx"})
    job_id = _wait_job(studio, export.json()["job"]["id"])["id"]
    return [
        "/",
        "/jobs",
        f"/jobs/{job_id}",
        f"/projects/{pid}",
        f"/projects/{pid}/dataset",
        f"/projects/{pid}/dataset/images/{image_id}",
        f"/projects/{pid}/splits",
        f"/projects/{pid}/training",
        f"/projects/{pid}/training/{eid}",
        f"/projects/{pid}/training/{other}",
        f"/projects/{pid}/training/compare?ids={eid}&ids={other}",
        f"/projects/{pid}/evaluation?experiment={eid}",
        f"/projects/{pid}/export",
        f"/projects/{did}",
        f"/projects/{did}/dataset",
        f"/projects/{did}/dataset/images/{box_id}",
        "/nothing-here",
    ]


def test_no_page_is_wider_than_a_phone_a_tablet_or_a_laptop(page: Page, studio: LiveStudio) -> None:
    paths = _populate(studio)
    problems = []
    for width in (390, 768, 1280):
        page.set_viewport_size({"width": width, "height": 844})
        for path in paths:
            page.goto(path)
            page.wait_for_load_state("networkidle")
            found = page.evaluate(OVERFLOW)
            if found["page"] > found["viewport"] or found["spilled"]:
                problems.append(f"{width}px {path}: {found}")
            if width == 390 and path.endswith("/training"):
                # Tables become stacked rows on a phone, each cell labelled with its column.
                row = page.get_by_test_id("experiment-row").first
                assert row.evaluate("el => getComputedStyle(el).display") == "block"
                assert row.locator("td").nth(1).get_attribute("data-label") == "Name"
    assert not problems, "\n".join(problems)
