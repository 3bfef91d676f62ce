"""Engine, sessions and migrations for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.types import DateTime, TypeDecorator
from sqlmodel import Session, create_engine

ROOT = Path(__file__).resolve().parent.parent
WORKER_BUSY_SECONDS = 30.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both backends (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use app.db.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _sqlite_pragmas(busy_ms: int) -> Any:
    def apply(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # WAL lets the web process read while workers write; foreign keys make cascades real.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return apply


def make_engine(url: str, *, busy_seconds: float = WORKER_BUSY_SECONDS) -> Engine:
    """Create an engine with the per-backend settings the studio relies on.

    `busy_seconds` bounds every wait for the database: SQLite's busy timeout, PostgreSQL's
    lock_timeout and the wait for a pooled connection. Workers wait long (a big import commit
    may hold SQLite's write lock for a while); the web process waits a few seconds, then
    answers 503 database_busy instead of hanging (app/handlers.py).
    """
    pool = {"pool_size": 10, "max_overflow": 30, "pool_timeout": busy_seconds}
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": busy_seconds},
            pool_pre_ping=True,
            **pool,
        )
        event.listen(engine, "connect", _sqlite_pragmas(int(busy_seconds * 1000)))
        return engine
    options = f"-c lock_timeout={int(busy_seconds * 1000)}"
    engine = create_engine(url, pool_pre_ping=True, connect_args={"options": options}, **pool)
    # Bulk INSERTs without RETURNING as multi-row statements of 1,000 rows (as SQLAlchemy does
    # for psycopg2), not one statement per row: the browse-version triggers (migration
    # 0e2fdd88d1db) fire once per statement, so an import's 100k annotation rows bump the
    # version 100 times instead of 100k (which took 4 times as long as the insert itself).
    engine.dialect.use_insertmanyvalues_wo_returning = True
    return engine


@lru_cache(maxsize=8)
def engine_for(url: str, busy_seconds: float = WORKER_BUSY_SECONDS) -> Engine:
    """One engine per URL (and wait bound) per process."""
    return make_engine(url, busy_seconds=busy_seconds)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str) -> None:
    """Bring the database to the newest schema (start-up runs this)."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")
