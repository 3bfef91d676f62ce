"""Imports on a bad day, against a live studio with its real worker pool: killed workers
leave no helpers and no files, concurrent imports both land, and hostile sources (long zip
names, pipes, the workspace itself, bomb masks, Latin-1 tables) are reported per file."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image as PILImage
from sqlmodel import Session, select

from app.db import make_engine
from app.models import Image
from tests.hardening.conftest import StudioFactory
from tests.helpers import assert_api_error, wait_for
from tests.importers.builders import class_folders, image_bytes, picture
from tests.support.studio import LiveStudio

pytestmark = pytest.mark.slow
TERMINAL = {"succeeded", "failed", "cancelled", "interrupted"}


def _gradient_png() -> bytes:
    """A 1200 px PNG: cheap to write, ~40 ms to import, so 300 of them take seconds."""
    y, x = np.mgrid[0:1200, 0:1200]
    a = ((x + y) % 256).astype(np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(np.stack([a, a.T, a], -1)).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def _many_images(root: Path, count: int) -> Path:
    data = _gradient_png()
    for i in range(count):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:04d}.png").write_bytes(data)
    return root


def _project(client: httpx.Client, task: str = "classification") -> int:
    response = client.post(
        "/api/projects", json={"name": f"p{time.monotonic_ns()}", "task_type": task}
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _folder_import(client: httpx.Client, pid: int, path: Path) -> dict[str, Any]:
    response = client.post(f"/api/projects/{pid}/imports", json={"path": str(path)})
    assert response.status_code == 202, response.text
    return dict(response.json())


def _wait_job(client: httpx.Client, job_id: int, timeout: float = 120) -> dict[str, Any]:
    return wait_for(
        lambda: (j := client.get(f"/api/jobs/{job_id}").json())["status"] in TERMINAL and j,
        timeout=timeout,
        what=f"job {job_id} to end",
    )


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _project_files(studio: LiveStudio, pid: int) -> list[Path]:
    base = studio.workspace / "projects" / str(pid)
    return [p for d in ("images", "thumbs", "masks") for p in (base / d).glob("*") if p.is_file()]


def _studio_with_data(
    start_studio: StudioFactory, tmp_path: Path, env: dict[str, str] | None = None, **kw: Any
) -> tuple[LiveStudio, Path]:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return start_studio(env={"STUDIO_IMPORT_ROOTS": str(data), **(env or {})}, **kw), data


def test_killed_import_leaves_no_helper_processes_and_no_files(
    start_studio: StudioFactory, tmp_path: Path
) -> None:
    studio, data = _studio_with_data(start_studio, tmp_path)
    source = _many_images(data / "many", 300)
    pid = _project(studio.api)
    started = _folder_import(studio.api, pid, source)
    job_id = started["job"]["id"]

    def mid_images() -> bool:
        job = studio.api.get(f"/api/jobs/{job_id}").json()
        detail = job["progress_detail"]
        return job["message"] == "Importing images" and 0 < detail.get("done", 0) < 300

    wait_for(mid_images, timeout=60, interval=0.05, what="the import to be processing images")
    worker = studio.job(job_id).pid
    assert worker is not None
    helpers = _children(worker)
    assert helpers, "the import runs its image work in helper processes"
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: not any(_alive(h) for h in helpers), timeout=20, what="the helpers to end too")
    assert _wait_job(studio.api, job_id)["status"] == "interrupted"
    imp = wait_for(
        lambda: (
            (i := studio.api.get(f"/api/projects/{pid}/imports/{started['import']['id']}").json())[
                "status"
            ]
            == "interrupted"
            and i
        ),
        timeout=20,
        what="the import to be closed",
    )
    assert imp["counts"] == {} or imp["counts"].get("images", 0) == 0
    assert _project_files(studio, pid) == []
    assert not any((studio.workspace / "projects" / str(pid) / "staging").glob("import-*"))


def test_import_killed_while_moving_files_leaves_no_orphans(
    start_studio: StudioFactory, tmp_path: Path
) -> None:
    env = {"STUDIO_JOB_PLUGINS": "tests.jobs.kinds,tests.hardening.slow_moves"}
    studio, data = _studio_with_data(start_studio, tmp_path, env=env)
    source = class_folders(data / "pets", {"cat": 30, "dog": 30})
    pid = _project(studio.api)
    started = _folder_import(studio.api, pid, source)
    marker = studio.workspace / "moving"
    wait_for(marker.exists, timeout=60, interval=0.01, what="the moves into the project to start")
    time.sleep(0.3)  # some files are in the project folders, the commit has not happened
    assert _project_files(studio, pid), "the kill must land while files are being moved"
    worker = studio.job(started["job"]["id"]).pid
    assert worker is not None
    os.kill(worker, signal.SIGKILL)
    assert _wait_job(studio.api, started["job"]["id"])["status"] == "interrupted"
    wait_for(lambda: _project_files(studio, pid) == [], timeout=20, what="moved files to go")
    engine = make_engine(studio.database_url)
    with Session(engine) as session:
        assert session.exec(select(Image).where(Image.project_id == pid)).all() == []
    engine.dispose()


def test_concurrent_imports_into_one_project_both_succeed(
    start_studio: StudioFactory, tmp_path: Path, live_db: str | None
) -> None:
    studio, data = _studio_with_data(
        start_studio, tmp_path, env={"STUDIO_LIGHT_WORKERS": "2"}, database_url=live_db
    )
    first = class_folders(data / "first", {"cat": 20, "dog": 20})
    second = class_folders(data / "second", {"dog": 20, "bird": 20})
    pid = _project(studio.api)
    jobs: list[dict[str, Any]] = []
    threads = [
        threading.Thread(target=lambda s=s: jobs.append(_folder_import(studio.api, pid, s)))
        for s in (first, second)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ends = [_wait_job(studio.api, j["job"]["id"]) for j in jobs]
    assert [e["status"] for e in ends] == ["succeeded", "succeeded"], [e["error"] for e in ends]
    classes = studio.api.get(f"/api/projects/{pid}/classes").json()
    items = classes["items"] if isinstance(classes, dict) else classes
    assert sorted(c["name"] for c in items) == ["bird", "cat", "dog"]
    assert studio.api.get(f"/api/projects/{pid}/images").json()["total"] == 80


def test_a_named_pipe_in_a_server_folder_is_skipped_not_read(
    start_studio: StudioFactory, tmp_path: Path
) -> None:
    studio, data = _studio_with_data(start_studio, tmp_path)
    pid = _project(studio.api)
    # A named pipe among good images: skipped with a warning, never opened (it would hang).
    source = class_folders(data / "piped", {"cat": 2, "dog": 2})
    os.mkfifo(source / "cat" / "stuck.png")
    analysis = studio.api.post(f"/api/projects/{pid}/imports/analyze", json={"path": str(source)})
    assert analysis.status_code == 200, analysis.text
    assert any("not a regular file" in w["message"] for w in analysis.json()["warnings"])
    end = _wait_job(studio.api, _folder_import(studio.api, pid, source)["job"]["id"], 60)
    assert end["status"] == "succeeded" and end["result"]["images"] == 4


def test_the_workspace_is_never_an_import_source(
    start_studio: StudioFactory, tmp_path: Path
) -> None:
    studio = start_studio(env={"STUDIO_IMPORT_ROOTS": str(tmp_path)})
    pid = _project(studio.api)
    for path in (studio.workspace, studio.workspace / "projects", tmp_path):
        refused = studio.api.post(f"/api/projects/{pid}/imports", json={"path": str(path)})
        assert_api_error(refused, 400, "path_in_workspace")
        analyzed = studio.api.post(f"/api/projects/{pid}/imports/analyze", json={"path": str(path)})
        assert_api_error(analyzed, 400, "path_in_workspace")


def test_long_zip_names_latin1_tables_and_bomb_masks(
    start_studio: StudioFactory, tmp_path: Path
) -> None:
    studio = start_studio()
    workspace = str(studio.workspace)

    # Entry names longer than the file system allows: skipped with a warning, the rest lands.
    long_name = "cat/" + "x" * 300 + ".png"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("cat/a.png", image_bytes(seed=1))
        out.writestr("dog/b.png", image_bytes(seed=2))
        out.writestr(long_name, image_bytes(seed=3))
        out.writestr("dog/" + "y" * 250 + "/" + "z" * 250 + ".png", image_bytes(seed=4))
    pid = _project(studio.api)
    files = {"file": ("long.zip", archive.getvalue(), "application/zip")}
    analysis = studio.api.post(f"/api/projects/{pid}/imports/analyze", files=files)
    assert analysis.status_code == 200, analysis.text
    warned = [w for w in analysis.json()["warnings"] if "name too long" in w["message"]]
    assert len(warned) == 1 and analysis.json()["images"] == 3
    started = studio.api.post(f"/api/projects/{pid}/imports", files=files).json()
    end = _wait_job(studio.api, started["job"]["id"], 60)
    assert end["status"] == "succeeded", end["error"]
    report = studio.api.get(f"/api/projects/{pid}/imports/{started['import']['id']}").json()
    assert any("name too long" in w["message"] for w in report["warnings"])
    assert workspace not in str(report) and workspace not in str(end)

    # A Latin-1 CSV: decoded as such, with a warning instead of replacement characters.
    table = tmp_path / "latin" / "labels.csv"
    picture(table.parent / "images" / "a.png", seed=5)
    picture(table.parent / "images" / "b.png", seed=6)
    table.write_bytes("image,label\na.png,café\nb.png,crème\n".encode("latin-1"))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as out:
        for path in table.parent.rglob("*"):
            if path.is_file():
                out.write(path, path.relative_to(table.parent).as_posix())
    pid = _project(studio.api)
    files = {"file": ("latin.zip", archive.getvalue(), "application/zip")}
    analysis = studio.api.post(f"/api/projects/{pid}/imports/analyze", files=files).json()
    assert sorted(analysis["classes"]) == ["café", "crème"]
    assert any("not UTF-8" in w["message"] for w in analysis["warnings"])

    # A decompression-bomb mask: that image is an error, the other one is imported.
    seg = tmp_path / "seg"
    picture(seg / "JPEGImages" / "good.jpg", (40, 30), 7)
    picture(seg / "JPEGImages" / "bomb.jpg", (40, 30), 8)
    (seg / "SegmentationClass").mkdir()
    PILImage.fromarray(np.zeros((30, 40), np.uint8)).save(seg / "SegmentationClass" / "good.png")
    PILImage.new("L", (9000, 8000)).save(seg / "SegmentationClass" / "bomb.png")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in seg.rglob("*"):
            if path.is_file():
                out.write(path, path.relative_to(seg).as_posix())
    pid = _project(studio.api, "segmentation")
    files = {"file": ("seg.zip", archive.getvalue(), "application/zip")}
    started = studio.api.post(f"/api/projects/{pid}/imports", files=files).json()
    end = _wait_job(studio.api, started["job"]["id"], 60)
    assert end["status"] == "succeeded", end["error"]
    report = studio.api.get(f"/api/projects/{pid}/imports/{started['import']['id']}").json()
    assert report["counts"]["images"] == 1 and report["counts"]["errors"] == 1
    assert "decompression bomb" in report["errors"][0]["message"]
