"""A locked database answers 503 database_busy with Retry-After within seconds, instead of
hanging for 30 s and answering 500."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.conftest import BASE_URL
from tests.helpers import assert_api_error


@contextmanager
def database_locked(url: str) -> Iterator[None]:
    """Another process holding the lock a web request needs: SQLite's write lock, or an
    exclusive lock on PostgreSQL's project table."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        conn.execute("LOCK TABLE project IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            conn.rollback()


def test_locked_database_answers_503_database_busy_quickly(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"db_busy_seconds": 1.0}))
    with TestClient(app, base_url=BASE_URL) as client:
        assert client.post("/api/projects", json={"name": "a", "task_type": "classification"})
        with database_locked(settings.resolved_database_url):
            started = time.monotonic()
            response = client.post(
                "/api/projects", json={"name": "b", "task_type": "classification"}
            )
            elapsed = time.monotonic() - started
            error = assert_api_error(response, 503, "database_busy")
            assert int(response.headers["retry-after"]) > 0
            assert "SQL" not in error["message"] and "sqlite" not in error["message"].lower()
            assert elapsed < 10, elapsed
            page = client.post("/projects", data={"name": "c", "task_type": "classification"})
            assert page.status_code == 503
            assert "database is busy" in page.text
        assert (
            client.post(
                "/api/projects", json={"name": "b", "task_type": "classification"}
            ).status_code
            == 201
        )
    app.state.engine.dispose()
