"""Image files are served as what they were decoded as, with nosniff; only accepted image
formats are imported, whatever a file's name says."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.models import Image, Project
from app.storage import Storage
from tests.importers.builders import image_bytes, import_folder


def _fits() -> bytes:
    """A real 4x4 FITS file, which Pillow opens when it is not told which formats to try."""
    cards = ["SIMPLE  =                    T", "BITPIX  =                    8"]
    cards += ["NAXIS   =                    2", "NAXIS1  =                    4"]
    cards += ["NAXIS2  =                    4", "END"]
    header = "".join(c.ljust(80) for c in cards).ljust(2880).encode()
    return header + bytes(range(16)).ljust(2880, b"\0")


def test_polyglot_is_served_as_its_image_type_with_nosniff(
    client: TestClient,
    session: Session,
    engine: Engine,
    storage: Storage,
    project: Project,
    tmp_path: Path,
) -> None:
    root = tmp_path / "src"
    (root / "cat").mkdir(parents=True)
    html = b"<html><script>alert(document.cookie)</script></html>"
    (root / "cat" / "poly.html").write_bytes(image_bytes(fmt="JPEG") + html)  # named .html
    (root / "cat" / "poly.jpg").write_bytes(image_bytes(fmt="JPEG", seed=3) + html)
    row = import_folder(session, engine, storage, project.id, root)
    assert row.counts["images"] == 1  # .html is not an image name; the .jpg is a valid JPEG
    image = session.exec(select(Image).where(Image.project_id == project.id)).one()
    assert image.format == "JPEG" and image.stored_path.endswith(".jpg")
    response = client.get(f"/api/projects/{project.id}/images/{image.id}/file")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-content-type-options"] == "nosniff"
    thumb = client.get(f"/api/projects/{project.id}/images/{image.id}/thumbnail")
    assert thumb.headers["x-content-type-options"] == "nosniff"


def test_a_fits_file_named_png_is_not_imported(
    session: Session, engine: Engine, storage: Storage, project: Project, tmp_path: Path
) -> None:
    root = tmp_path / "src"
    (root / "cat").mkdir(parents=True)
    (root / "cat" / "real.png").write_bytes(image_bytes())
    (root / "cat" / "sky.png").write_bytes(_fits())
    row = import_folder(session, engine, storage, project.id, root)
    assert row.counts["images"] == 1 and row.counts["errors"] == 1
    error = next(e for e in row.errors if e["file"] == "cat/sky.png")
    assert "not a readable image" in error["message"] and "PNG" in error["message"]
    formats = session.exec(select(Image.format).where(Image.project_id == project.id)).all()
    assert formats == ["PNG"]


def test_pages_and_api_answers_carry_the_security_headers(client: TestClient) -> None:
    for url in ("/", "/api/health", "/docs", "/nothing-here"):
        response = client.get(url)
        assert response.headers["x-content-type-options"] == "nosniff", url
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], url
        assert response.headers["x-frame-options"] == "DENY", url
