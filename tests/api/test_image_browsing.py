"""Browsing large projects: file-name search through the name index, and keyset paging with
cursors (every sort, both directions, deep page numbers counted from the end)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, text
from sqlmodel import Session

from app.db import utcnow
from app.models import Image, Project
from app.services import image_index, name_search
from tests.factories import make_project
from tests.helpers import assert_api_error


def _rows(session: Session, project_id: int, names: list[str], seed: int = 0) -> list[int]:
    """Image rows only (the list never opens files): shuffled sizes and dates with ties."""
    rng = random.Random(seed)
    now = utcnow()
    rows = [
        {
            "project_id": project_id,
            "stored_path": f"projects/{project_id}/images/{i:06d}.png",
            "original_name": name,
            "width": 8,
            "height": 8,
            "channels": 3,
            "format": "PNG",
            "bytes": rng.choice([100, 200, 300]),  # many ties: the id breaks them
            "sha256": f"{i:064x}",
            "phash": "",
            "attributes": {},
            "created_at": now + timedelta(seconds=rng.randrange(5)),
        }
        for i, name in enumerate(names)
    ]
    session.execute(insert(Image), rows)
    ids = [
        int(i)
        for (i,) in session.execute(
            text("SELECT id FROM image WHERE project_id = :p ORDER BY id"), {"p": project_id}
        )
    ]
    image_index.refresh(session.connection(), ids)
    session.commit()
    return ids


def _list(client: TestClient, project_id: int, **params: Any) -> dict[str, Any]:
    response = client.get(f"/api/projects/{project_id}/images", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _ids(body: dict[str, Any]) -> list[int]:
    return [item["id"] for item in body["items"]]


def test_name_search_finds_substrings_in_any_case_and_stays_in_its_project(
    client: TestClient, session: Session, project: Project
) -> None:
    assert project.id is not None
    names = ["Field_07/IMG_001.jpg", "field_08/img_002.jpg", "x_100%.png", 'q"uote.png', "ab.png"]
    _rows(session, project.id, names)
    other = make_project(session, name="Other")
    assert other.id is not None
    _rows(session, other.id, ["field_07/img_999.jpg"] * 3)

    def found(q: str) -> list[str]:
        body = _list(client, project.id, q=q, page_size=10)  # type: ignore[arg-type]
        assert body["total"] == len(body["items"])  # counted in this project only
        return [item["original_name"] for item in body["items"]]

    assert found("FIELD_07") == ["Field_07/IMG_001.jpg"]
    assert found("img_00") == ["Field_07/IMG_001.jpg", "field_08/img_002.jpg"]
    assert found("100%") == ["x_100%.png"]  # % and _ are literal
    assert found('q"u') == ['q"uote.png']  # quotes cannot break the index query
    assert found("b.") == ["ab.png"]  # shorter than a trigram: still found
    assert found("nothing-like-it") == []


def test_cursor_pages_cover_every_sort_in_order_both_ways(
    client: TestClient, session: Session, project: Project
) -> None:
    assert project.id is not None
    names = [f"img_{random.Random(i).randrange(40):02d}.png" for i in range(53)]  # ties too
    _rows(session, project.id, names)
    for sort in ("name", "-name", "date", "-date", "size", "-size", "class", "-class"):
        everything = _ids(_list(client, project.id, sort=sort, page_size=500))
        assert len(everything) == 53
        pages, body = [], _list(client, project.id, sort=sort, page_size=10)
        while True:
            pages.append(body)
            if body["next_cursor"] is None:
                break
            body = _list(client, project.id, sort=sort, page_size=10, cursor=body["next_cursor"])
        assert [p["page"] for p in pages] == [1, 2, 3, 4, 5, 6], sort
        assert [i for p in pages for i in _ids(p)] == everything, sort
        # Back again from the last page by prev_cursor, page by page.
        back = pages[-1]
        for expected in reversed(pages[:-1]):
            back = _list(client, project.id, sort=sort, page_size=10, cursor=back["prev_cursor"])
            assert back["page"] == expected["page"] and _ids(back) == _ids(expected), sort
        assert back["prev_cursor"] is None
        # Page numbers (deep ones are read from the end) give the same pages.
        for p in pages:
            numbered = _list(client, project.id, sort=sort, page_size=10, page=p["page"])
            assert _ids(numbered) == _ids(p), (sort, p["page"])
    assert _list(client, project.id, page_size=10, page=7)["items"] == []


def test_a_cursor_only_works_with_its_own_query(
    client: TestClient, session: Session, project: Project
) -> None:
    assert project.id is not None
    _rows(session, project.id, [f"{i:03d}.png" for i in range(30)])
    cursor = _list(client, project.id, page_size=10)["next_cursor"]
    url = f"/api/projects/{project.id}/images"
    for params in ({"sort": "-size"}, {"q": "01"}, {"page_size": 20}):
        response = client.get(url, params={"page_size": 10, "cursor": cursor, **params})
        assert_api_error(response, 422, "cursor_mismatch")
    assert_api_error(client.get(url, params={"cursor": "not-a-cursor"}), 422, "invalid_cursor")


def test_prefix_search_without_pg_trgm(
    client: TestClient, session: Session, project: Project, db_backend: str
) -> None:
    """PostgreSQL without the pg_trgm extension: the migration builds a prefix index instead,
    and the search matches names starting with the text (the answer says so)."""
    if db_backend != "postgres":
        pytest.skip("the prefix fallback is PostgreSQL's (SQLite always has FTS5 here)")
    assert project.id is not None
    _rows(session, project.id, ["Field_07/a.jpg", "x/field_07.jpg", "field_0.jpg"])
    assert _list(client, project.id, q="field_07")["search"] == "contains"
    assert _list(client, project.id, q="field_07")["total"] == 2
    session.execute(text("DROP INDEX ix_image_name_trgm"))
    session.execute(
        text(
            "CREATE INDEX ix_image_name_prefix ON image "
            "(project_id, lower(original_name) text_pattern_ops)"
        )
    )
    session.commit()
    body = _list(client, project.id, q="FIELD_0")
    assert body["search"] == "prefix"
    assert sorted(i["original_name"] for i in body["items"]) == ["Field_07/a.jpg", "field_0.jpg"]
    assert _list(client, project.id, q="field_07")["total"] == 1


def test_neighbours_step_through_the_filtered_sorted_list(
    client: TestClient, session: Session, project: Project
) -> None:
    assert project.id is not None
    _rows(session, project.id, [f"{n}_{i:02d}.png" for i, n in enumerate(["cat", "dog"] * 15)])
    for params in ({"sort": "-size"}, {"sort": "name", "q": "dog"}, {"sort": "date"}):
        order = _ids(_list(client, project.id, page_size=500, **params))
        url = f"/api/projects/{project.id}/images/{{}}/neighbours"
        for position, image_id in enumerate(order):
            near = client.get(url.format(image_id), params=params).json()
            assert near["in_filter"] and near["position"] == position + 1, params
            assert near["total"] == len(order)
            assert near["previous"] == (order[position - 1] if position else None)
            assert near["next"] == (order[position + 1] if position + 1 < len(order) else None)
    cat = _ids(_list(client, project.id, q="cat_00"))[0]
    outside = client.get(url.format(cat), params={"q": "dog"}).json()
    assert outside == {
        "image_id": cat,
        "in_filter": False,
        "previous": None,
        "next": None,
        "position": None,
        "total": None,
    }
    assert_api_error(client.get(url.format(999999)), 404, "image_not_found")


def test_rare_trigram_plan_answers_what_the_phrase_match_does(
    client: TestClient,
    session: Session,
    project: Project,
    db_backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The name search's plan (match the rarest trigram, check the whole text) gives the same
    totals and pages as the plain phrase match, for random names with letters in both cases,
    LIKE's wildcards, quotes, a backslash and non-ASCII letters (which FTS5 folds and LIKE does
    not), also after renames, deletions and inserts; ASCII names are found exactly when they
    contain the text, ignoring case, on both databases."""
    assert project.id is not None
    rng = random.Random(20)
    alphabet = "abcAB_%/\\\"'. 0Üüß\u212a"  # \u212a: the Kelvin sign, folded to k by FTS5
    names = ["".join(rng.choices(alphabet, k=rng.randrange(3, 10))) for _ in range(160)]
    names += ["x\u212abc.png", "ÜBER.png"]
    # For "xyzab" the rarest trigram is "yza": "Üyzab" holds it (and is not ASCII) but not
    # the text, so only the whole text's phrase match may turn it away.
    names += ["xyzab.png", "Üyzab.png", "Üxyz1.png", "Üxyz2.png", "zab.png"]
    ids = _rows(session, project.id, names)
    other = make_project(session, name="Other")
    assert other.id is not None
    _rows(session, other.id, names[:40], seed=1)  # the name index holds every project's names
    queries = ["abc", "AB_", "_%/", 'a"b', "\\a", "ÜBE", "ab.", "\u212abc", "kbc", "ber"]
    queries += ["b c", "xyzab"] + [n[: rng.randrange(3, 6)] for n in rng.sample(names, 12)]

    def answer(q: str) -> list[tuple[int, list[int]]]:
        pages, page = [], 1
        while True:
            body = _list(client, project.id, q=q, sort="-size", page_size=7, page=page)  # type: ignore[arg-type]
            pages.append((body["total"], _ids(body)))
            if body["next_cursor"] is None:
                return pages
            page += 1

    def compare() -> None:
        current = {
            int(i): n
            for i, n in session.execute(
                text("SELECT id, original_name FROM image WHERE project_id = :p"),
                {"p": project.id},
            )
        }
        for q in queries:
            if len(q) < 3:
                continue
            if db_backend == "sqlite" and q.isascii():
                assert name_search.name_filter(session, q).bound is not None, q  # plan used
            planned = answer(q)
            found = {i for _, page in planned for i in page}
            assert len(found) == planned[0][0], q
            # Past the last page no row carries the window count: counted apart.
            beyond = _list(client, project.id, q=q, page_size=7, page=len(planned) + 1)  # type: ignore[arg-type]
            assert beyond["items"] == [] and beyond["total"] == len(found), q
            expected = {i for i, n in current.items() if n.isascii() and q.lower() in n.lower()}
            assert {i for i in found if current[i].isascii()} == expected, q
            if db_backend == "sqlite":
                with monkeypatch.context() as m:
                    m.setattr(name_search, "RARE", 0)  # never rare: the plain phrase match
                    assert answer(q) == planned, q

    compare()
    session.execute(
        text("UPDATE image SET original_name = 'ÜBER_abc.png' WHERE id IN (:a, :b)"),
        {"a": ids[0], "b": ids[1]},
    )
    session.execute(text("DELETE FROM image WHERE id = :c"), {"c": ids[2]})
    _rows(session, project.id, ["xabcx.png", "AB_%/.png", "\u212aBC.png"], seed=2)
    compare()
