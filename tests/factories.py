"""Factories: rows made through the services where one exists, with overridable defaults."""

from __future__ import annotations

import hashlib
import io
import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from sqlmodel import Session, select

from app.db import utcnow
from app.models import (
    Annotation,
    Experiment,
    Export,
    Image,
    Job,
    JobQueue,
    LabelClass,
    Project,
    ProjectCreate,
    Split,
    SplitMember,
)
from app.services import image_index
from app.services import jobs as job_service
from app.services import projects as project_service
from app.services import splits as split_service
from app.storage import Storage

_counter = itertools.count(1)


def make_project(session: Session, **overrides: Any) -> Project:
    data = {"name": f"Project {next(_counter)}", "task_type": "classification"}
    data.update(overrides)
    return project_service.create_project(session=session, data=ProjectCreate(**data))


def make_job(session: Session, kind: str = "test.count", **overrides: Any) -> Job:
    overrides.setdefault("queue", JobQueue.compute)
    return job_service.submit_job(session, kind=kind, **overrides)


def make_class(session: Session, project_id: int, name: str, **overrides: Any) -> LabelClass:
    """Get or create a class by name, appended at the next index."""
    existing = session.exec(
        select(LabelClass).where(LabelClass.project_id == project_id, LabelClass.name == name)
    ).first()
    if existing is not None:
        return existing
    index = len(session.exec(select(LabelClass).where(LabelClass.project_id == project_id)).all())
    label_class = LabelClass(project_id=project_id, name=name, index=index, **overrides)
    session.add(label_class)
    session.commit()
    session.refresh(label_class)
    return label_class


def make_image(
    session: Session,
    storage: Storage,
    project_id: int,
    pixels: np.ndarray | None = None,
    labels: Sequence[str] = (),
    attributes: dict[str, Any] | None = None,
    original_name: str | None = None,
) -> Image:
    """A real PNG on disk plus its row and label annotations (tests without the importer).

    `pixels` is HxW (grey) or HxWx3 uint8; by default a random 32x32 RGB image.
    """
    if pixels is None:
        pixels = np.random.default_rng(next(_counter)).integers(0, 256, (32, 32, 3), np.uint8)
    picture = PILImage.fromarray(pixels)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    data = buffer.getvalue()
    images_dir = storage.images_dir(project_id)
    images_dir.mkdir(parents=True, exist_ok=True)
    path = images_dir / storage.new_name(".png")
    path.write_bytes(data)
    image = Image(
        project_id=project_id,
        stored_path=storage.relative(path),
        original_name=original_name or f"img_{next(_counter)}.png",
        width=picture.width,
        height=picture.height,
        channels=len(picture.getbands()),
        format="PNG",
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        attributes=attributes or {},
    )
    session.add(image)
    session.commit()
    session.refresh(image)
    assert image.id is not None
    for name in labels:
        label_class = make_class(session, project_id, name)
        session.add(
            Annotation(
                project_id=project_id, image_id=image.id, class_id=label_class.id, kind="label"
            )
        )
    session.flush()
    image_index.refresh(session, [image.id])  # as the importer does
    session.commit()
    session.refresh(image)
    return image


def make_digits(
    session: Session, storage: Storage, project_id: int, per_class: int = 10, size: int = 32
) -> list[Image]:
    """Real scikit-learn digits (upscaled to `size`), `per_class` of each of the ten classes."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images: list[Image] = []
    taken = dict.fromkeys(range(10), 0)
    for pixels, target in zip(digits.images, digits.target, strict=True):
        if taken[int(target)] >= per_class:
            continue
        taken[int(target)] += 1
        grey = (pixels * (255 / 16)).astype(np.uint8)
        big = np.asarray(PILImage.fromarray(grey).resize((size, size), PILImage.NEAREST))
        images.append(make_image(session, storage, project_id, big, labels=[str(int(target))]))
    return images


def make_split(
    session: Session,
    project_id: int,
    images: Sequence[Image],
    ratios: Sequence[float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    name: str | None = None,
) -> Split:
    """A saved, locked split by a seeded shuffle (no stratification; the splits service does that)."""
    order = np.random.default_rng(seed).permutation(len(images))
    n_train = round(ratios[0] * len(images))
    n_val = round(ratios[1] * len(images))
    split = Split(
        project_id=project_id,
        name=name or f"split {next(_counter)}",
        strategy="random",
        params={"ratios": list(ratios)},
        seed=seed,
    )
    session.add(split)
    session.commit()
    session.refresh(split)
    assert split.id is not None
    counts: dict[str, int] = {}
    for position, index in enumerate(order):
        subset = "train" if position < n_train else "val" if position < n_train + n_val else "test"
        counts[subset] = counts.get(subset, 0) + 1
        image_id = images[int(index)].id
        assert image_id is not None
        session.add(SplitMember(split_id=split.id, image_id=image_id, subset=subset))
    session.commit()
    split.counts = counts
    split.fingerprint = split_service.compute_fingerprint(session, split.id)
    session.add(split)
    session.commit()
    session.refresh(split)
    return split


def make_annotation(
    session: Session,
    image: Image,
    kind: str,
    geometry: dict[str, Any] | None = None,
    label_class: LabelClass | None = None,
    attributes: dict[str, Any] | None = None,
) -> Annotation:
    """An annotation row of any kind (label, bbox, polygon, mask, obb, value) on an image."""
    assert image.id is not None
    annotation = Annotation(
        project_id=image.project_id,
        image_id=image.id,
        class_id=label_class.id if label_class is not None else None,
        kind=kind,
        geometry=geometry or {},
        attributes=attributes or {},
    )
    session.add(annotation)
    session.flush()
    image_index.refresh(session, [image.id])
    session.commit()
    session.refresh(annotation)
    return annotation


def make_mask(
    session: Session,
    storage: Storage,
    image: Image,
    values: np.ndarray,
    label_class: LabelClass | None = None,
) -> Annotation:
    """A real index-mask PNG (value = class index, 255 = ignore) and its mask annotation."""
    folder = storage.project_dir(image.project_id) / "masks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / storage.new_name(".png")
    PILImage.fromarray(values.astype(np.uint8)).save(path, format="PNG")
    return make_annotation(
        session, image, "mask", {"path": storage.relative(path)}, label_class=label_class
    )


def make_onnx_export(
    session: Session,
    storage: Storage,
    project_id: int,
    name: str,
    write_model: Callable[[Path], None],
) -> Export:
    """A new experiment with one completed, valid ONNX export whose file `write_model` writes:
    the rows as the export job leaves them, for prediction tests and benchmarks."""
    experiment = Experiment(project_id=project_id, name=name, checkpoints={"best": {}})
    session.add(experiment)
    session.commit()
    assert experiment.id is not None
    path = storage.export_dir(project_id, experiment.id) / f"{name}.onnx"
    write_model(path)
    export = Export(
        experiment_id=experiment.id,
        checkpoint="best",
        format="onnx",
        status="completed",
        path=storage.relative(path),
        valid=True,
        finished_at=utcnow(),
    )
    session.add(export)
    session.commit()
    session.refresh(export)
    return export
