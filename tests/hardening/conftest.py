"""The hostile-input and fault suite: a real studio (`python -m app` with its worker pool)
on a real SQLite file or PostgreSQL database, driven over HTTP like an attacker or a bad
day would drive it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.studio import LiveStudio

StudioFactory = Callable[..., LiveStudio]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def live_db(request: pytest.FixtureRequest) -> str | None:
    """None for the studio's own SQLite file, else a fresh (unmigrated) PostgreSQL database."""
    if request.param == "sqlite":
        return None
    server = request.getfixturevalue("pg_server")
    return str(server.url(server.create_database()))


@pytest.fixture
def start_studio(tmp_path: Path) -> Iterator[StudioFactory]:
    """Start studios on demand (each on its own workspace); all are stopped at the end."""
    started: list[LiveStudio] = []

    def start(
        env: dict[str, str] | None = None,
        database_url: str | None = None,
        prefix: list[str] | None = None,
    ) -> LiveStudio:
        workspace = tmp_path / f"workspace-{len(started)}"
        studio = LiveStudio(workspace, extra_env=env, database_url=database_url, prefix=prefix)
        started.append(studio)
        return studio

    yield start
    for studio in started:
        if studio.process.poll() is None:
            studio.stop()
