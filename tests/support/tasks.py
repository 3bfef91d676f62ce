"""A project of any task with real data and a tiny trained model, for page and browser tests:
the task's synthetic generator → the real importer (in-process) → a stratified split (the
task's own keep-out rules) → a tiny fit through the training handler's code path."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.config import Settings
from app.models import Experiment, Project, Split
from app.models.split import SplitRequest
from app.services import experiments as experiment_service
from app.services import imports as import_service
from app.services import splits as split_service
from app.storage import Storage
from benchmarks.synthetic import TINY_RECIPES, task_of, write_dataset
from tests.factories import make_project
from tests.importers.builders import run_now


def imported_project(
    session: Session,
    engine: Engine,
    storage: Storage,
    settings: Settings,
    task: str,
    folder: Path,
    *,
    images: int = 36,
    size: int = 48,
    name: str | None = None,
) -> tuple[Project, Split]:
    """`images` synthetic images of the task (or a variant's: "task/variant") imported into a
    new project, split 60/20/20. `folder` must lie under one of `settings.import_roots`."""
    info = write_dataset(task, folder, images=images, size=size)
    project = make_project(session, name=name or f"{task} project", task_type=task_of(task))
    assert project.id is not None
    _, row = import_service.start_folder_import(
        session,
        settings=settings,
        project_id=project.id,
        data=import_service.FolderImport(path=str(folder), format=info["format"]),
    )
    assert row.id is not None
    run_now(engine, storage, row.id)
    (split,) = split_service.create_split(
        session,
        project.id,
        SplitRequest(name="main", ratios={"train": 0.6, "val": 0.2, "test": 0.2}, seed=0),
    )
    return project, split


def train_tiny(
    session: Session, storage: Storage, project: Project, split: Split, **overrides: Any
) -> Experiment:
    """The task's tiny recipe trained in-process (workers.handlers.train.run_experiment)."""
    from workers.handlers.train import run_experiment

    assert project.id is not None and split.id is not None
    body = {"name": "tiny", "split_id": split.id, **TINY_RECIPES[project.task_type], **overrides}
    experiment = experiment_service.create_experiment(session, project.id, body)
    assert experiment.id is not None
    engine = session.get_bind()

    @contextmanager
    def open_session() -> Iterator[Session]:
        with Session(engine, expire_on_commit=False) as inner:  # type: ignore[arg-type]
            yield inner

    run_experiment(open_session, storage, experiment.id)
    session.expire_all()
    trained = session.get(Experiment, experiment.id)
    assert trained is not None and trained.status == "completed", trained
    return trained
