"""Fixtures: a migrated database per test (SQLite file, or a real PostgreSQL database),
settings on a temporary workspace, the app, a TestClient and a session.

Tests under tests/api, tests/services and tests/db run on SQLite and on PostgreSQL; other
tests run on SQLite unless their module is marked `both_databases`. The PostgreSQL server is
started by the tests themselves (support/pg.py); with STUDIO_REQUIRE_POSTGRES=1 (the README's
test command) a missing server is an error, not a skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.config import Settings
from app.db import engine_for, migrate
from app.main import create_app
from app.models import Project
from app.storage import Storage
from tests.factories import make_project
from tests.support.pg import PostgresServer, find_pg_bin

BOTH_DB_DIRS = ("api", "services", "db")
BASE_URL = "http://127.0.0.1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_databases: run this module on SQLite and PostgreSQL")
    config.addinivalue_line("markers", "sqlite_only: never parametrize over PostgreSQL")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_backend" not in metafunc.fixturenames:
        return
    path = Path(str(metafunc.definition.fspath))
    both = (
        any(part in BOTH_DB_DIRS for part in path.relative_to(Path(__file__).parent).parts[:-1])
        or metafunc.definition.get_closest_marker("both_databases") is not None
    ) and metafunc.definition.get_closest_marker("sqlite_only") is None
    params = ["sqlite"]
    if both:
        params.append(pytest.param("postgres", marks=pytest.mark.postgres))
    metafunc.parametrize("db_backend", params, scope="function")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    bindir = find_pg_bin()
    if bindir is None:
        if os.environ.get("STUDIO_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL server binaries not found (run scripts/system-packages.sh)")
        pytest.skip("PostgreSQL server binaries not found")
    server = PostgresServer(bindir)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_template(pg_server: PostgresServer) -> str:
    name = pg_server.create_database()
    migrate(pg_server.url(name))
    engine_for.cache_clear()
    return name


@pytest.fixture
def db_url(request: pytest.FixtureRequest, db_backend: str, tmp_path: Path) -> str:
    if db_backend == "postgres":
        server: PostgresServer = request.getfixturevalue("pg_server")
        template = request.getfixturevalue("pg_template")
        return server.url(server.create_database(template=template))
    template_file: Path = request.getfixturevalue("sqlite_template")
    target = tmp_path / "studio.db"
    shutil.copyfile(template_file, target)
    return f"sqlite:///{target}"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def settings(workspace: Path, db_url: str) -> Settings:
    return Settings(
        workspace=workspace,
        database_url=db_url,
        start_pool=False,
        heartbeat_seconds=0.5,
        stale_after_seconds=3,
        cancel_grace_seconds=2,
        poll_seconds=0.1,
        workers=1,
        light_workers=1,
        job_plugins=["tests.jobs.kinds"],
        max_upload_mb=5,
    )


@pytest.fixture
def engine(settings: Settings):  # type: ignore[no-untyped-def]
    engine = engine_for(settings.resolved_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine) -> Iterator[Session]:  # type: ignore[no-untyped-def]
    with Session(engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def storage(settings: Settings) -> Storage:
    storage = Storage(settings.workspace_dir)
    storage.ensure()
    return storage


@pytest.fixture
def app(settings: Settings, engine):  # type: ignore[no-untyped-def]
    app = create_app(settings)
    yield app
    app.state.engine.dispose()


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, base_url=BASE_URL) as client:
        yield client


@pytest.fixture
def project(session: Session) -> Project:
    return make_project(session, name="Digits")


@pytest.fixture
def sketch_task() -> Iterator[str]:
    """A task type registered the way a plugin would, with no code half: projects, imports and
    splits only. Tests of "this stage is not available" use it, whatever the built-ins offer."""
    from app.tasks import TaskSpec, register_task
    from app.tasks.registry import _TASKS

    register_task(
        TaskSpec(
            key="sketch",
            title="Sketch",
            description="A test-only task type without training.",
            annotation_kinds=("label",),
        )
    )
    yield "sketch"
    _TASKS.pop("sketch", None)
