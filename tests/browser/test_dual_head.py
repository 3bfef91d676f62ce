"""A dual-head model in a real browser: class folders with masks imported, the model trained
in three phases (tiny, 32 px), evaluated from the page with its segmentation figures and gate
card (rules edited, an out-of-domain test set uploaded with a non-image in it), exported, and
tried on an in-domain and an out-of-domain image: mask overlay, gate verdict and reason,
then the class scores."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session

from app.db import engine_for
from app.storage import Storage
from benchmarks.synthetic.dual_head import write_dual_head
from tests.browser.conftest import LiveStudio
from tests.importers.builders import import_folder
from tests.jobs.test_dual_head_jobs import PHASES
from tests.support.training import train_tiny_experiment

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

SLOW = 300_000


def test_dual_head_evaluation_gate_and_try_it(
    page: Page, studio: LiveStudio, tmp_path: Path
) -> None:
    project_id = studio.api.post(
        "/api/projects", json={"name": "Leaves", "task_type": "classification"}
    ).json()["id"]
    engine = engine_for(f"sqlite:///{studio.workspace / 'studio.db'}")
    storage = Storage(studio.workspace)
    write_dual_head(tmp_path, images=30, size=32, ood=3)
    with Session(engine, expire_on_commit=False) as session:
        row = import_folder(session, engine, storage, project_id, tmp_path / "data")
        assert row.status == "succeeded", row.errors
    split_id = studio.api.post(
        f"/api/projects/{project_id}/splits",
        json={"name": "main", "ratios": {"train": 0.6, "val": 0.2, "test": 0.2}},
    ).json()["id"]
    with Session(engine, expire_on_commit=False) as session:
        experiment = train_tiny_experiment(
            session,
            storage,
            project_id,
            split_id,
            name="dual",
            model="dualhead_small_cnn",
            batch_size=8,
            dual_head={"phases": PHASES, "decoder_channels": 16},
        )
    assert experiment.status == "completed" and experiment.epochs_done == 3

    page.goto(f"/projects/{project_id}/evaluation")
    choice = page.get_by_test_id("eval-checkpoint")
    for phase in ("best-1-A", "best-2-B", "best-3-C"):  # each phase's own best, to evaluate
        expect(choice).to_contain_text(phase)
    page.get_by_test_id("evaluate").click()
    expect(page.get_by_test_id("eval-metrics")).to_be_visible(timeout=SLOW)
    expect(page.get_by_test_id("eval-segmentation")).to_contain_text("Mean IoU")
    card = page.get_by_test_id("gate-card")
    expect(card.get_by_test_id("gate-in-domain")).to_contain_text("%")
    expect(card.get_by_test_id("gate-calibration")).to_contain_text("spot")
    expect(card.get_by_test_id("gate-familiarity")).to_contain_text("limit in use")
    calibrated = float(card.get_by_test_id("gate-max-distance").input_value())
    assert calibrated > 0

    card.get_by_test_id("gate-default-ratio").fill("0.2")
    card.get_by_test_id("gate-save").click()
    expect(page.get_by_test_id("gate-changed")).to_be_visible()
    assert page.get_by_test_id("gate-default-ratio").input_value() == "0.2"
    # 0 turns the familiarity rule off; a number sets the limit
    page.get_by_test_id("gate-max-distance").fill("0")
    page.get_by_test_id("gate-save").click()
    expect(page.get_by_test_id("gate-familiarity")).to_contain_text("limit in use off")
    page.get_by_test_id("gate-max-distance").fill(f"{calibrated:.2f}")
    page.get_by_test_id("gate-save").click()
    expect(page.get_by_test_id("gate-familiarity")).to_contain_text(f"{calibrated:.2f}")

    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    ood = sorted((tmp_path / "ood").iterdir())
    page.get_by_test_id("gate-test-files").set_input_files([*map(str, ood), str(notes)])
    page.get_by_test_id("gate-test-run").click()
    expect(page.get_by_test_id("gate-out-of-domain")).to_contain_text(
        f"of {len(ood)} images rejected", timeout=SLOW
    )
    expect(page.get_by_test_id("gate-test-errors")).to_contain_text("notes.txt")

    page.goto(f"/projects/{project_id}/export")
    page.get_by_test_id("export-start").click()
    item = page.get_by_test_id("export-item").first
    expect(item).to_have_attribute("data-status", "completed", timeout=SLOW)
    expect(page.get_by_test_id("try-form")).to_be_visible()
    leaf = next((tmp_path / "data" / "spot").iterdir())
    page.get_by_test_id("try-files").set_input_files([str(leaf), str(ood[0])])
    predictions = page.get_by_test_id("prediction")
    expect(predictions).to_have_count(2, timeout=60_000)
    for index in range(2):
        one = predictions.nth(index)
        expect(one.get_by_test_id("gate-verdict")).to_contain_text("Gate:")
        expect(one.get_by_test_id("gate-channels")).to_contain_text("tissue")
        expect(one.get_by_test_id("prediction-overlay")).to_be_visible()
        expect(one.get_by_test_id("prediction-top")).to_be_visible()
        if "rejected" in one.get_by_test_id("gate-verdict").inner_text():
            expect(one.get_by_test_id("gate-no-class")).to_be_visible()
