"""Numbered pages served from the browse cache (a version's page anchors and totals) are the
pages the uncached OFFSET path answers, before and after every kind of write: each write goes
to one table whose trigger bumps the project's data version, then every page is compared."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, insert, text, update
from sqlmodel import Session, col, select

from app.db import utcnow
from app.models import UNLABELLED_SORT, Annotation, Image, ImageAttribute, Project, SplitMember
from app.models.browse import ImageQuery
from app.services import browse_cache, image_index
from tests.factories import make_class

SIZE = 3  # page size: a class (about 45 of the 260 images) has 15 pages, 8 from anchors
N = 260


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    browse_cache.clear()
    yield
    browse_cache.clear()


def _seed(client: TestClient, session: Session, project: Project) -> dict[str, int]:
    """Images with shuffled names, tied sizes and dates, a `camera` attribute, one label of
    four classes on two of three, and a random split made through the API."""
    assert project.id is not None
    rng = random.Random(7)
    classes = [make_class(session, project.id, f"c{i}").id for i in range(4)]
    now = utcnow()
    names = [f"n_{rng.randrange(10**6):06d}.png" for _ in range(N)]
    rows = [
        {
            "project_id": project.id,
            "stored_path": f"projects/{project.id}/images/{i:06d}.png",
            "original_name": name,
            "width": 8,
            "height": 8,
            "channels": 3,
            "format": "PNG",
            "bytes": rng.choice([100, 200, 300]),
            "sha256": f"{i:064x}",
            "phash": "",
            "attributes": {"camera": f"cam{rng.randrange(3)}"},
            "created_at": now + timedelta(seconds=rng.randrange(7)),
        }
        for i, name in enumerate(names)
    ]
    session.execute(insert(Image), rows)
    ids = list(session.exec(select(Image.id).where(col(Image.project_id) == project.id)).all())
    session.execute(
        insert(Annotation),
        [
            {
                "project_id": project.id,
                "image_id": i,
                "class_id": rng.choice(classes),
                "kind": "label",
                "geometry": {},
                "attributes": {},
            }
            for k, i in enumerate(ids)
            if k % 3
        ],
    )
    image_index.refresh(session, [i for i in ids if i is not None])
    session.commit()
    response = client.post(
        f"/api/projects/{project.id}/splits",
        json={"name": "s", "ratios": {"train": 0.6, "val": 0.2, "test": 0.2}},
    )
    assert response.status_code == 201, response.text
    assert classes[1] is not None
    return {"project_id": project.id, "class_id": classes[1], "split_id": response.json()["id"]}


# Without a filter deep pages stay OFFSET reads (cheap on the sort's covering index): only
# the total is cached; every other query's deep pages come from anchors.
QUERIES: dict[str, dict[str, Any]] = {
    "none": {"sort": "name"},
    "unannotated": {"annotated": "false", "sort": "name"},
    "class": {"class_id": "{class_id}", "sort": "-date"},
    "attr": {"attr": "camera=cam1", "sort": "size"},
    "subset": {"split_id": "{split_id}", "subset": "train", "sort": "-name"},
    "class by class": {"class_id": "{class_id}", "sort": "class"},
    "none by class": {"sort": "class"},
}


def _params(name: str, ids: dict[str, int]) -> dict[str, str]:
    params = {k: str(v).format(**ids) for k, v in QUERIES[name].items()}
    params["page_size"] = str(SIZE)
    return params


def _pages(client: TestClient, project_id: int, params: dict[str, str]) -> list[Any]:
    """(ids, total) of every page and one past the end."""
    found = []
    page, pages = 1, 1
    while page <= pages + 1:
        response = client.get(
            f"/api/projects/{project_id}/images", params={**params, "page": str(page)}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        found.append(([item["id"] for item in body["items"]], body["total"]))
        pages = max(1, -(-body["total"] // SIZE))
        page += 1
    return found


def _reference(
    client: TestClient, project_id: int, params: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> list[Any]:
    """The pages without the cache: an empty one that keeps nothing (every total counted), and
    no anchors (every page by OFFSET); the real cache is left as it was."""
    with monkeypatch.context() as patch:
        patch.setattr(browse_cache, "_CACHE", browse_cache._Lru(0))
        patch.setattr(browse_cache, "MAX_ANCHORS", -1)
        return _pages(client, project_id, params)


def _cached(session: Session, project: Project, params: dict[str, str]) -> browse_cache.Entry:
    session.expire_all()
    entry = browse_cache.get(browse_cache.key(session, project, ImageQuery(**params)))
    assert entry is not None
    return entry


def _agree(
    client: TestClient,
    session: Session,
    project: Project,
    params: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    *,
    warm: bool = True,
) -> None:
    """Every page read twice through the cache (a miss that builds the anchors, then hits)
    equals the uncached answer; with `warm`, the anchors were in use, else only the total."""
    assert project.id is not None
    expected = _reference(client, project.id, params, monkeypatch)
    assert len(expected) >= 9  # 8 pages or more: pages 4 and 5 at least from anchors
    assert _pages(client, project.id, params) == expected
    assert (_cached(session, project, params).anchors is not None) == warm
    assert _pages(client, project.id, params) == expected


def _version(session: Session, project_id: int) -> int:
    session.expire_all()
    return browse_cache.version(session, project_id)


def _some(session: Session, project_id: int, *where: Any, n: int = 12) -> list[int]:
    rows = session.exec(
        select(Image.id).where(col(Image.project_id) == project_id, *where).order_by(col(Image.id))
    ).all()
    return [int(i) for i in rows[:n] if i is not None]


# Each write: (the query it changes, the write), touching the table named in its id only.
unlabelled = col(Image.sort_class) == UNLABELLED_SORT


def _insert_images(session: Session, ids: dict[str, int]) -> None:
    now = utcnow()
    session.add_all(
        Image(
            project_id=ids["project_id"],
            stored_path=f"new/{k}.png",
            original_name=f"a_new_{k}.png",  # sorts first: every page shifts
            width=8,
            height=8,
            channels=3,
            format="PNG",
            bytes=100,
            sha256=f"{k:064x}",
            created_at=now,
        )
        for k in range(13)
    )


def _delete_images(session: Session, ids: dict[str, int]) -> None:
    doomed = _some(session, ids["project_id"], unlabelled, col(Image.original_name) < "n_3")
    session.execute(delete(Image).where(col(Image.id).in_(doomed)))


def _rename_images(session: Session, ids: dict[str, int]) -> None:
    for image_id in _some(session, ids["project_id"], unlabelled, n=17):
        image = session.get(Image, image_id)
        assert image is not None
        image.original_name = "a_" + image.original_name[::-1]
        session.add(image)


def _add_annotations(session: Session, ids: dict[str, int]) -> None:
    lacking = _some(session, ids["project_id"], col(Image.sort_class) != 1, n=25)
    session.add_all(
        Annotation(project_id=ids["project_id"], image_id=i, class_id=ids["class_id"], kind="bbox")
        for i in lacking
    )


def _move_annotations(session: Session, ids: dict[str, int]) -> None:
    rows = session.exec(
        select(Annotation).where(col(Annotation.class_id) == ids["class_id"]).limit(10)
    ).all()
    other = make_class(session, ids["project_id"], "moved")
    for annotation in rows:
        annotation.class_id = other.id
        session.add(annotation)


def _delete_annotations(session: Session, ids: dict[str, int]) -> None:
    rows = session.exec(
        select(Annotation.id).where(col(Annotation.class_id) == ids["class_id"]).limit(10)
    ).all()
    session.execute(delete(Annotation).where(col(Annotation.id).in_(list(rows))))


def _edit_attributes(session: Session, ids: dict[str, int]) -> None:
    session.execute(
        update(ImageAttribute)
        .where(
            col(ImageAttribute.image_id).in_(_some(session, ids["project_id"], n=30)),
            col(ImageAttribute.key) == "camera",
        )
        .values(value="cam1")
    )


def _move_split_members(session: Session, ids: dict[str, int]) -> None:
    members = session.exec(
        select(SplitMember.image_id)
        .where(col(SplitMember.split_id) == ids["split_id"], col(SplitMember.subset) != "train")
        .limit(20)
    ).all()
    session.execute(
        update(SplitMember)
        .where(col(SplitMember.split_id) == ids["split_id"], col(SplitMember.image_id).in_(members))
        .values(subset="train")
    )


def _reorder_by_class(session: Session, ids: dict[str, int]) -> None:
    """What the importer does after adding annotations: image rows get a new sort class."""
    images = _some(session, ids["project_id"], col(Image.sort_class) == 1, n=20)
    first = make_class(session, ids["project_id"], "c0")
    session.add_all(
        Annotation(project_id=ids["project_id"], image_id=i, class_id=first.id, kind="label")
        for i in images
    )
    session.flush()
    image_index.refresh(session, images)


WRITES: dict[str, tuple[str, Callable[[Session, dict[str, int]], None]]] = {
    "image insert": ("unannotated", _insert_images),
    "image delete (cascades)": ("unannotated", _delete_images),
    "image rename": ("unannotated", _rename_images),
    "image insert, no filter": ("none", _insert_images),
    "annotation insert": ("class", _add_annotations),
    "annotation class change": ("class", _move_annotations),
    "annotation delete": ("class", _delete_annotations),
    "image_attribute update": ("attr", _edit_attributes),
    "split_member update": ("subset", _move_split_members),
    "sort class refresh": ("class by class", _reorder_by_class),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_deep_pages_follow_every_write(
    client: TestClient,
    session: Session,
    project: Project,
    monkeypatch: pytest.MonkeyPatch,
    write: str,
) -> None:
    ids = _seed(client, session, project)
    query, change = WRITES[write]
    params = _params(query, ids)
    warm = not query.startswith("none")
    _agree(client, session, project, params, monkeypatch, warm=warm)
    before = _version(session, ids["project_id"])
    change(session, ids)
    session.commit()
    assert _version(session, ids["project_id"]) > before
    _agree(client, session, project, params, monkeypatch, warm=warm)


def test_every_query_pages_alike_with_and_without_anchors(
    client: TestClient, session: Session, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _seed(client, session, project)
    for name in QUERIES:
        warm = not name.startswith("none")
        _agree(client, session, project, _params(name, ids), monkeypatch, warm=warm)
    # Too many pages for the cap: the OFFSET path, the same pages.
    params = _params("attr", ids)
    assert project.id is not None
    expected = _reference(client, project.id, params, monkeypatch)
    monkeypatch.setattr(browse_cache, "MAX_ANCHORS", 5)
    browse_cache.clear()
    assert _pages(client, project.id, params) == expected
    assert _cached(session, project, params).anchors is None


def test_a_split_deleted_and_made_again_through_the_api(
    client: TestClient, session: Session, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The members cascade away after the split row: the split's own trigger bumps."""
    ids = _seed(client, session, project)
    url = f"/api/projects/{ids['project_id']}/splits"
    _agree(client, session, project, _params("subset", ids), monkeypatch, warm=True)
    before = _version(session, ids["project_id"])
    assert client.delete(f"{url}/{ids['split_id']}").status_code == 204
    assert _version(session, ids["project_id"]) > before
    again = client.post(
        url,
        json={"name": "t", "ratios": {"train": 0.5, "val": 0.5}, "seed": 3},
    )
    assert again.status_code == 201, again.text
    ids["split_id"] = again.json()["id"]
    _agree(client, session, project, _params("subset", ids), monkeypatch, warm=True)


def test_a_deleted_project_takes_its_version_along(
    client: TestClient, session: Session, project: Project
) -> None:
    ids = _seed(client, session, project)
    assert _version(session, ids["project_id"]) > 0
    assert client.delete(f"/api/projects/{ids['project_id']}").status_code == 204
    left = session.execute(text("SELECT count(*) FROM browse_version")).scalar_one()
    assert left == 0


def test_the_cache_keeps_at_most_its_size() -> None:
    lru = browse_cache._Lru(2)
    keys = [("db", 1, utcnow(), "digest", v) for v in range(3)]
    for k, found in enumerate(keys):
        lru.put(found, browse_cache.Entry(total=k))
    assert lru.get(keys[0]) is None
    assert [lru.get(k) for k in keys[1:]] == [
        browse_cache.Entry(total=1),
        browse_cache.Entry(total=2),
    ]
