"""A regression dataset through the API: a CSV import with bad target cells (per-row warnings,
rows skipped), target values on the image list and detail with their column names, the
target-range filter (JSON read in SQL: SQLite and PostgreSQL), the target histogram in the
statistics, quantile-bin splits, and the refusal to train a constant target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.config import Settings
from app.services import imports as import_service
from app.storage import Storage
from tests.factories import make_project
from tests.helpers import assert_api_error
from tests.importers.builders import run_now


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"import_roots": [tmp_path / "data"]})


def write_table(folder: Path, rows: list[tuple[str, str, str]]) -> None:
    (folder / "images").mkdir(parents=True)
    lines = ["image,length,angle,source"]
    for index, (name, length, angle) in enumerate(rows):
        pixels = np.full((16, 16, 3), (index * 7) % 256, np.uint8)
        Image.fromarray(pixels).save(folder / "images" / name)
        lines.append(f"images/{name},{length},{angle},cam{index % 2}")
    (folder / "targets.csv").write_text("\n".join(lines) + "\n")


def import_table(
    session: Session, engine: Engine, storage: Storage, settings: Settings, folder: Path, name: str
) -> tuple[int, dict]:  # type: ignore[type-arg]
    """A regression project with `folder`'s CSV imported by the real importer: (id, report)."""
    project = make_project(session, name=name, task_type="regression")
    assert project.id is not None
    _, row = import_service.start_folder_import(
        session,
        settings=settings,
        project_id=project.id,
        data=import_service.FolderImport(path=str(folder), format="csv"),
    )
    assert row.id is not None
    return project.id, run_now(engine, storage, row.id)


@pytest.fixture
def regression(
    session: Session, engine: Engine, storage: Storage, settings: Settings, tmp_path: Path
) -> tuple[int, dict]:  # type: ignore[type-arg]
    rows = [(f"{i:03d}.png", str(float(i)), str(float(i % 7 - 3))) for i in range(40)]
    rows += [("bad1.png", "abc", "1.0"), ("bad2.png", "", "2.0"), ("bad3.png", "3.0", "inf")]
    write_table(tmp_path / "data" / "bars", rows)
    return import_table(session, engine, storage, settings, tmp_path / "data" / "bars", "Bars")


def test_csv_targets_import_with_warnings_for_bad_cells(
    client: TestClient,
    regression: tuple[int, dict],  # type: ignore[type-arg]
) -> None:
    project_id, result = regression
    assert result["images"] == 40  # the three bad rows' images are not imported
    imported = client.get(f"/api/projects/{project_id}/imports").json()["items"][0]
    warnings = [w["message"] for w in imported["warnings"]]
    assert any("'length' is 'abc', not a finite number; row skipped" in w for w in warnings)
    assert any("'length' is missing; row skipped" in w for w in warnings)
    assert any("'angle' is 'inf'" in w for w in warnings)

    page = client.get(f"/api/projects/{project_id}/images", params={"page_size": 500}).json()
    assert page["total"] == 40
    first = next(i for i in page["items"] if i["original_name"].endswith("010.png"))
    assert first["values"] == {"length": 10.0, "angle": 0.0}
    assert first["attributes"] == {"source": "cam0"}  # non-target columns stay attributes
    detail = client.get(f"/api/projects/{project_id}/images/{first['id']}").json()
    assert detail["values"] == {"length": 10.0, "angle": 0.0}
    value = next(a for a in detail["annotations"] if a["kind"] == "value")
    assert value["geometry"] == {"values": [10.0, 0.0], "names": ["length", "angle"]}


def test_target_range_filter_and_histogram(
    client: TestClient,
    regression: tuple[int, dict],  # type: ignore[type-arg]
) -> None:
    project_id, _ = regression
    url = f"/api/projects/{project_id}/images"
    ranged = client.get(url, params={"target": "length", "target_min": 10, "target_max": 19.5})
    assert ranged.status_code == 200, ranged.text
    names = sorted(i["original_name"].rsplit("/", 1)[-1] for i in ranged.json()["items"])
    assert names == [f"{i:03d}.png" for i in range(10, 20)]
    above = client.get(url, params={"target": "angle", "target_min": 2.5}).json()
    assert above["total"] == sum(1 for i in range(40) if i % 7 - 3 >= 2.5)
    assert_api_error(
        client.get(url, params={"target": "width", "target_min": 1}), 422, "unknown_target"
    )
    assert_api_error(
        client.get(url, params={"target": "length", "target_min": 5, "target_max": 1}),
        422,
        "invalid_target_range",
    )
    assert_api_error(client.get(url, params={"target_min": 1}), 422, "unknown_target")  # two
    assert client.get(url, params={"target_min": "nan"}).status_code == 422
    # Keyset pages keep the target range; a cursor does not carry over to another range.
    ranged = {"target": "length", "target_min": 10, "target_max": 19.5, "page_size": 4}
    first = client.get(url, params=ranged).json()
    assert first["total"] == 10 and first["next_cursor"]
    second = client.get(url, params={**ranged, "cursor": first["next_cursor"]})
    assert second.status_code == 200, second.text
    lengths = [i["values"]["length"] for i in first["items"] + second.json()["items"]]
    assert len(lengths) == 8 and all(10 <= v <= 19.5 for v in lengths)
    moved = {**ranged, "target_min": 0, "cursor": first["next_cursor"]}
    assert client.get(url, params=moved).status_code == 422

    stats = client.get(f"/api/projects/{project_id}/stats").json()
    histograms = {h["name"]: h for h in stats["target_histograms"]}
    assert set(histograms) == {"length", "angle"}
    length = histograms["length"]
    assert length["count"] == 40 and length["min"] == 0 and length["max"] == 39
    assert sum(length["counts"]) == 40 and len(length["edges"]) == len(length["counts"]) + 1


def test_split_preview_shows_target_bins_and_constant_target_is_refused(
    client: TestClient,
    session: Session,
    regression: tuple[int, dict],  # type: ignore[type-arg]
) -> None:
    project_id, _ = regression
    preview = client.post(f"/api/projects/{project_id}/splits/preview", json={"seed": 1})
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert len(body["classes"]) == 4 and all(c.startswith("length ") for c in body["classes"])
    for subset in body["splits"][0]["subsets"]:
        assert sum(subset["classes"].values()) == subset["count"]  # every image in one bin
        assert len(subset["classes"]) == 4  # each subset covers the whole range
    created = client.post(f"/api/projects/{project_id}/splits", json={"name": "main", "seed": 1})
    assert created.status_code == 201, created.text
    split_id = created.json()["id"]
    ok = client.post(
        f"/api/projects/{project_id}/experiments", json={"name": "fine", "split_id": split_id}
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["config"]["loss"] == "mse" and ok.json()["config"]["normalize_targets"]
    assert_api_error(
        client.post(
            f"/api/projects/{project_id}/experiments",
            json={"name": "huber", "split_id": split_id, "loss": "cauchy"},
        ),
        422,
        "invalid_hyperparameters",
    )


def test_constant_target_cannot_train(
    client: TestClient,
    session: Session,
    engine: Engine,
    storage: Storage,
    settings: Settings,
    tmp_path: Path,
) -> None:
    write_table(tmp_path / "data" / "flat", [(f"{i}.png", "5.0", str(float(i))) for i in range(12)])
    project_id, _ = import_table(
        session, engine, storage, settings, tmp_path / "data" / "flat", "Flat"
    )
    split_id = client.post(f"/api/projects/{project_id}/splits", json={"name": "s"}).json()["id"]
    error = assert_api_error(
        client.post(
            f"/api/projects/{project_id}/experiments", json={"name": "x", "split_id": split_id}
        ),
        422,
        "constant_target",
    )
    assert "'length' is 5" in error["message"] and "R² is undefined" in error["message"]
    assert error["details"]["targets"] == ["length"]
