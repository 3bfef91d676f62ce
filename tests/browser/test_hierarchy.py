"""Hierarchical models in a real browser. Classification: the imported taxonomy as a tree (and
a parent edit), a hierarchical recipe from the training form, per-level evaluation, and a
domain-generalisation report whose experiments real workers train (tiny, 32 px). Semantic
segmentation: a hierarchical recipe from the form, trained by a worker, and the per-level
mIoU and pixel matrices on the evaluation page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session

from app.db import engine_for
from app.storage import Storage
from benchmarks.synthetic import write_dataset
from benchmarks.synthetic.hierarchy import write_hierarchical
from tests.browser.conftest import LiveStudio
from tests.importers.builders import class_folders, import_folder, zip_folder
from tests.support.training import train_tiny_experiment

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SLOW = 300_000
HIERARCHY = {
    "levels": ["coarse", "fine"],
    "gated_inference": True,
    "curriculum": [
        {"level": "coarse", "epochs": 1, "lr": 0.003},
        {"level": "fine", "epochs": 1, "lr": 0.003},
    ],
}


@pytest.mark.timeout(900)  # three DG experiments trained by real workers: minutes under load
def test_taxonomy_hierarchical_evaluation_and_dg_report(
    page: Page, studio: LiveStudio, tmp_path: Path
) -> None:
    project_id = studio.api.post(
        "/api/projects", json={"name": "Shapes", "task_type": "classification"}
    ).json()["id"]
    engine = engine_for(f"sqlite:///{studio.workspace / 'studio.db'}")
    storage = Storage(studio.workspace)
    write_hierarchical(tmp_path / "data", images=30, size=32)
    with Session(engine, expire_on_commit=False) as session:
        row = import_folder(session, engine, storage, project_id, tmp_path / "data")
        assert row.status == "succeeded", row.errors
    family = studio.api.post(
        f"/api/projects/{project_id}/splits",
        json={"name": "domains", "strategy": "leave_one_group_out", "group_attribute": "folder"},
    ).json()["family_members"]
    split_id = family[0]["id"]

    # the tree, and a parent picked on the class panel moves a class in it
    page.goto(f"/projects/{project_id}/dataset")
    tree = page.get_by_test_id("taxonomy-tree")
    expect(tree).to_contain_text("2 levels, 5 leaf classes")
    hollow = tree.locator('[data-testid="taxonomy-node"][data-name="hollow"]')
    expect(hollow).to_contain_text("ring")
    classes = studio.api.get(f"/api/projects/{project_id}/classes").json()["items"]
    ring_id = next(c["id"] for c in classes if c["name"] == "ring")
    ring = page.locator(f'[data-testid="class-row"][data-class-id="{ring_id}"]')
    ring.get_by_test_id("edit-class").click()
    ring.locator("select[name=parent_id]").select_option(label="solid")
    ring.get_by_test_id("save-class").click()
    solid = page.locator('[data-testid="taxonomy-node"][data-name="solid"]')
    expect(solid).to_contain_text("ring")
    expect(page.locator('[data-testid="taxonomy-node"][data-name="hollow"]')).not_to_contain_text(
        "ring"
    )
    ring = page.locator(f'[data-testid="class-row"][data-class-id="{ring_id}"]')
    ring.get_by_test_id("edit-class").click()
    ring.locator("select[name=parent_id]").select_option(label="hollow")
    ring.get_by_test_id("save-class").click()
    expect(page.locator('[data-testid="taxonomy-node"][data-name="hollow"]')).to_contain_text(
        "ring"
    )

    # a hierarchical recipe from the training form
    page.goto(f"/projects/{project_id}/training")
    page.get_by_test_id("experiment-name").fill("form hierarchy")
    page.get_by_test_id("field-hierarchy").fill(json.dumps(HIERARCHY))
    page.get_by_test_id("experiment-create").click()
    page.wait_for_url(f"**/projects/{project_id}/training/*")
    eid = int(page.url.rstrip("/").rsplit("/", 1)[-1])
    config = studio.api.get(f"/api/projects/{project_id}/experiments/{eid}").json()["config"]
    assert config["epochs"] == 2 and config["hierarchy"]["groups"]["coarse"]["ring"] == "hollow"
    page.goto(f"/projects/{project_id}/training")
    page.get_by_test_id("experiment-name").fill("broken")
    page.get_by_test_id("field-hierarchy").fill("{not json")
    page.get_by_test_id("experiment-create").click()
    expect(page.locator("#experiment-form-error")).to_contain_text("not valid JSON")

    # per-level evaluation of a trained hierarchical model
    with Session(engine, expire_on_commit=False) as session:
        train_tiny_experiment(
            session, storage, project_id, split_id, name="tiny hierarchy", hierarchy=HIERARCHY
        )
    page.goto(f"/projects/{project_id}/evaluation")
    expect(page.get_by_test_id("eval-experiment").first).to_contain_text("tiny hierarchy")
    page.get_by_test_id("evaluate").click()
    expect(page.get_by_test_id("eval-metrics")).to_be_visible(timeout=SLOW)
    expect(page.get_by_test_id("metric-coarse/accuracy")).to_be_visible()
    expect(page.get_by_test_id("metric-hierarchical_accuracy")).to_be_visible()
    expect(page.get_by_test_id("metric-fine/macro_f1")).to_be_visible()
    expect(page.get_by_test_id("level-coarse-f1")).to_contain_text("macro F1")
    levels = page.get_by_test_id("eval-levels")
    expect(levels.get_by_test_id("level-coarse")).to_contain_text("hollow")
    expect(levels.get_by_test_id("level-fine")).to_contain_text("wedge")

    # a DG report over the domain family: one experiment per held-out domain, trained by workers
    card = page.get_by_test_id("dg-reports")
    expect(card.get_by_test_id("dg-family")).to_contain_text("domains")
    recipe = {"model": "small_cnn", "image_size": 32, "batch_size": 16, "hierarchy": HIERARCHY}
    card.get_by_test_id("dg-config").fill(json.dumps(recipe))
    card.get_by_test_id("dg-create").click()
    groups = page.get_by_test_id("dg-group")
    expect(groups).to_have_count(3)
    for _ in range(60):
        page.get_by_test_id("dg-refresh").click()
        if page.get_by_test_id("dg-report").first.get_attribute("data-completed") == "3":
            break
        page.wait_for_timeout(5000)
    expect(page.get_by_test_id("dg-mean-gap")).to_contain_text("95 % CI")
    report = studio.api.get(f"/api/projects/{project_id}/dg-reports").json()["items"][0]
    assert {g["group"] for g in report["groups"]} == {"warm", "cool", "grey"}
    assert report["completed"] == 3 and report["ci95"] is not None
    expect(page.locator("#dg-reports canvas")).to_have_count(1)


def test_nested_class_folders_as_a_taxonomy_from_the_import_dialog(
    page: Page, studio: LiveStudio, tmp_path: Path
) -> None:
    pid = studio.api.post(
        "/api/projects", json={"name": "Nested", "task_type": "classification"}
    ).json()["id"]
    class_folders(tmp_path / "nested" / "solid", {"block": 2, "disc": 2})
    class_folders(tmp_path / "nested" / "hollow", {"ring": 2})
    archive = zip_folder(tmp_path / "nested", tmp_path / "nested.zip")
    class_folders(tmp_path / "mixed" / "hollow", {"ring": 1})
    class_folders(tmp_path / "mixed", {"solid": 1})  # one image directly in a coarse folder
    mixed = zip_folder(tmp_path / "mixed", tmp_path / "mixed.zip")

    page.goto(f"/projects/{pid}")
    page.get_by_test_id("import-open").click()
    page.get_by_test_id("import-file").set_input_files(str(mixed))
    page.get_by_test_id("import-taxonomy-folders").check()
    page.get_by_test_id("import-analyze").click()
    expect(page.locator("#import-error")).to_contain_text("two folders deep")

    page.get_by_test_id("import-file").set_input_files(str(archive))
    page.get_by_test_id("import-analyze").click()
    expect(page.get_by_test_id("analysis-taxonomy")).to_contain_text("3 classes under 2 groups")
    expect(page.get_by_test_id("analysis-taxonomy")).to_contain_text("hollow (ring)")
    page.get_by_test_id("import-start").click()
    report = page.get_by_test_id("import-report")
    expect(report).to_have_attribute("data-status", "succeeded", timeout=90_000)
    tree = studio.api.get(f"/api/projects/{pid}/taxonomy").json()
    groups = {n["name"]: sorted(c["name"] for c in n["children"]) for n in tree["items"]}
    assert groups == {"solid": ["block", "disc"], "hollow": ["ring"]}


@pytest.mark.timeout(600)
def test_hierarchical_segmentation_from_the_form_to_per_level_figures(
    page: Page, studio: LiveStudio, tmp_path: Path
) -> None:
    """Semantic segmentation: the taxonomy from taxonomy.csv, a hierarchical recipe from the
    training form trained by a real worker, and the per-level mIoU and pixel matrices."""
    project_id = studio.api.post(
        "/api/projects", json={"name": "Scenes", "task_type": "segmentation"}
    ).json()["id"]
    engine = engine_for(f"sqlite:///{studio.workspace / 'studio.db'}")
    write_dataset("segmentation/hierarchy", tmp_path / "data", images=16, size=32)
    with Session(engine, expire_on_commit=False) as session:
        row = import_folder(
            session, engine, Storage(studio.workspace), project_id, tmp_path / "data"
        )
        assert row.status == "succeeded", row.errors
    studio.api.post(
        f"/api/projects/{project_id}/splits",
        json={"name": "main", "ratios": {"train": 0.6, "val": 0.2, "test": 0.2}},
    )

    page.goto(f"/projects/{project_id}/training")
    page.get_by_test_id("experiment-name").fill("tiny hierarchy")
    page.get_by_test_id("field-image_size").fill("32")
    page.get_by_test_id("field-batch_size").fill("8")
    page.get_by_test_id("field-decoder_channels").fill("4")
    levels = {**HIERARCHY, "levels": ["binary", "coarse", "fine"]}
    page.get_by_test_id("field-hierarchy").fill(json.dumps(levels))
    page.get_by_test_id("experiment-create").click()
    expect(page.get_by_test_id("experiment-status")).to_have_text("created")
    page.get_by_test_id("train").click()
    expect(page.get_by_test_id("experiment-status")).to_have_text("completed", timeout=SLOW)

    page.goto(f"/projects/{project_id}/evaluation")
    page.get_by_test_id("evaluate").click()
    expect(page.get_by_test_id("eval-metrics")).to_be_visible(timeout=SLOW)
    expect(page.get_by_test_id("metric-coarse/miou")).to_be_visible()
    expect(page.get_by_test_id("metric-binary/miou")).to_be_visible()
    expect(page.get_by_test_id("metric-violations")).to_have_text("0.0000")  # gated
    per_level = page.get_by_test_id("eval-levels")
    expect(per_level).to_contain_text("gated coarse → fine inference")
    expect(per_level.get_by_test_id("level-coarse")).to_contain_text("mIoU")
    expect(per_level.get_by_test_id("level-coarse")).to_contain_text("spiky")
    expect(per_level.get_by_test_id("level-binary")).to_contain_text("shape")
    expect(per_level.get_by_test_id("level-fine")).to_contain_text("cross")
