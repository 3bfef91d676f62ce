"""In-process tiny training for tests of later features (evaluation, export, prediction).

Goes through the real code path (workers.handlers.train.run_experiment -> workers.ml.train.fit,
the same Lightning module and checkpoint writer the worker uses) without a worker process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlmodel import Session

from app.models import Experiment
from app.services import experiments as experiment_service
from app.storage import Storage


def open_session_for(session: Session) -> Callable[[], AbstractContextManager[Session]]:
    """What run_experiment opens its sessions with: new ones on the test session's engine."""
    engine = session.get_bind()

    @contextmanager
    def open_session() -> Iterator[Session]:
        with Session(engine, expire_on_commit=False) as inner:
            yield inner

    return open_session


def train_tiny_experiment(
    session: Session,
    storage: Storage,
    project_id: int,
    split_id: int,
    *,
    epochs: int = 2,
    image_size: int = 32,
    multi_label: bool = False,
    name: str | None = None,
    **overrides: Any,
) -> Experiment:
    """Create and train a small-CNN experiment; returns it completed, with best/last
    checkpoints, provenance and test metrics recorded."""
    from workers.handlers.train import run_experiment

    body: dict[str, Any] = {
        "name": name
        or f"tiny-{project_id}-{split_id}-{len(experiment_service.list_experiments(session, project_id))}",
        "split_id": split_id,
        "model": "small_cnn",
        "epochs": epochs,
        "image_size": image_size,
        "batch_size": 16,
        "lr": 3e-3,
        "warmup_epochs": 0,
        "multi_label": True if multi_label else None,
        **overrides,
    }
    experiment = experiment_service.create_experiment(session, project_id, body)
    assert experiment.id is not None
    open_session = open_session_for(session)
    run_experiment(open_session, storage, experiment.id)
    session.expire_all()
    result = session.get(Experiment, experiment.id)
    assert result is not None
    return result


def stop_then_resume(
    session: Session, storage: Storage, experiment_id: int, stop_after: int
) -> tuple[dict[str, Any], dict[str, Any], list[int]]:
    """Train in-process, stop after `stop_after` epochs (as the stop button does), then resume
    to the end; returns both runs' results and the epochs reported, in order."""
    from workers.handlers.train import run_experiment

    open_session = open_session_for(session)
    epochs: list[int] = []

    def on_event(event: dict[str, Any]) -> None:
        if event["type"] == "epoch":
            epochs.append(event["epoch"])

    first = run_experiment(
        open_session,
        storage,
        experiment_id,
        on_event=on_event,
        external_stop=lambda: len(epochs) >= stop_after,
    )
    second = run_experiment(open_session, storage, experiment_id, resume=True, on_event=on_event)
    session.expire_all()
    return first, second, epochs
