"""The browse data version (migration 0e2fdd88d1db): bumped by triggers in the writer's own
transaction, gone with a rollback, one bump per statement on PostgreSQL, writers of one
project serialised on it while readers do not wait, and the migration's way down and up."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, insert, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from app.db import alembic_config, utcnow
from app.models import Image, Project
from tests.factories import make_project

TRIGGERS = {
    f"browse_bump_{table}_{event}"
    for table in ("image", "annotation", "image_attribute", "split_member")
    for event in ("insert", "update", "delete")
} | {"browse_bump_split_delete"}


def _image(project_id: int, k: int) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "stored_path": f"x/{k}.png",
        "original_name": f"{k}.png",
        "width": 1,
        "height": 1,
        "channels": 1,
        "format": "PNG",
        "bytes": 1,
        "sha256": "x",
        "phash": "",
        "attributes": {},
        "created_at": utcnow(),
    }


def _version(engine: Engine, project_id: int) -> int:
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT version FROM browse_version WHERE project_id = :p"), {"p": project_id}
        ).scalar()
    return int(found or 0)


def _triggers(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
        else:
            rows = conn.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))
        return {r[0] for r in rows if r[0].startswith("browse_")}


def test_every_trigger_is_there_at_head(engine: Engine) -> None:
    assert _triggers(engine) == TRIGGERS


def test_the_bump_is_part_of_the_writers_transaction(
    engine: Engine, session: Session, project: Project
) -> None:
    assert project.id is not None
    before = _version(engine, project.id)
    session.execute(insert(Image), [_image(project.id, 1)])
    inside = session.execute(
        text("SELECT version FROM browse_version WHERE project_id = :p"), {"p": project.id}
    ).scalar_one()
    assert inside > before
    assert _version(engine, project.id) == before  # not visible before the commit
    session.rollback()
    assert _version(engine, project.id) == before  # a rolled-back write does not bump
    session.execute(insert(Image), [_image(project.id, 2)])
    session.commit()
    assert _version(engine, project.id) == inside


def test_postgresql_bumps_once_per_statement(
    engine: Engine, session: Session, project: Project, db_backend: str
) -> None:
    """A 50-row INSERT is one bump on PostgreSQL (statement trigger), 50 on SQLite (row
    triggers; its writers are serial and each bump is a primary-key hit)."""
    assert project.id is not None
    session.execute(insert(Image), [_image(project.id, 0)])
    session.commit()
    before = _version(engine, project.id)
    session.execute(insert(Image), [_image(project.id, k) for k in range(50)])
    session.commit()
    assert _version(engine, project.id) - before == (1 if db_backend == "postgres" else 50)


def test_postgresql_writers_of_one_project_wait_for_each_other_and_readers_do_not(
    engine: Engine, session: Session, project: Project, db_backend: str
) -> None:
    if db_backend != "postgres":
        pytest.skip("SQLite serialises every writer by its database lock")
    assert project.id is not None
    other = make_project(session, name="Other")
    assert other.id is not None
    session.execute(insert(Image), [_image(project.id, 0)])
    session.commit()
    before = _version(engine, project.id)
    session.execute(insert(Image), [_image(project.id, 1)])  # holds the version row
    second = create_engine(engine.url)
    try:
        with second.connect() as conn:
            assert _version(second, project.id) == before  # a reader does not wait
            conn.execute(text("SET lock_timeout = '300ms'"))
            conn.execute(insert(Image), [_image(other.id, 2)])  # another project: no wait
            conn.commit()
            with pytest.raises(OperationalError, match="lock timeout"):
                conn.execute(insert(Image), [_image(project.id, 3)])
            conn.rollback()
        session.commit()
        with second.begin() as conn:
            conn.execute(insert(Image), [_image(project.id, 3)])  # free once committed
    finally:
        second.dispose()
    assert _version(engine, project.id) == before + 2


def test_downgrade_removes_table_and_triggers_and_writes_still_work(
    db_url: str, engine: Engine
) -> None:
    config = alembic_config(db_url)
    config.attributes["configure_logger"] = False
    command.downgrade(config, "9d8793b78782")
    assert _triggers(engine) == set()
    with engine.begin() as conn:
        tables = conn.execute(
            text(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'browse_version'"
            )
            if engine.dialect.name == "postgresql"
            else text("SELECT count(*) FROM sqlite_master WHERE name = 'browse_version'")
        ).scalar_one()
        assert tables == 0
        pid = conn.execute(
            text(
                "INSERT INTO project (name, name_key, task_type, description, created_at, "
                "updated_at) VALUES ('d', 'd', 'classification', '', CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP) RETURNING id"
            )
        ).scalar_one()
        conn.execute(insert(Image.__table__), [_image(pid, 1)])  # type: ignore[attr-defined]
    command.upgrade(config, "head")
    assert _triggers(engine) == TRIGGERS
    with engine.begin() as conn:
        conn.execute(insert(Image.__table__), [_image(pid, 2)])  # type: ignore[attr-defined]
    assert _version(engine, pid) == 1
