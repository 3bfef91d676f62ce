"""The import pipeline: source → importer → parallel image work → one all-or-nothing commit.

Files are produced in the import's staging folder, moved into the project's folders just
before the database commit, and moved away again if the commit fails; a failed or cancelled
import leaves neither rows nor files behind.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import insert, update
from sqlmodel import Session, col, select

from app.db import utcnow
from app.errors import StudioError
from app.faults import scrub, user_message
from app.importers.archive import extract_zip, remove, single_root
from app.importers.base import ImportProblem, ReadResult, Sample
from app.importers.taxonomy import cycle_problem, find_cycle
from app.models import Annotation, DatasetImport, Image, LabelClass, Project, Split, SplitMember
from app.services import image_index
from app.services.import_analysis import no_readable_image, read_checked
from app.services.imports import PALETTE, moves_manifest, parse_source, work_dir
from app.services.splits import compute_fingerprint
from app.storage import Storage, atomic_write_json
from app.tasks import get_task, map_sample
from app.tasks.mapping import ClassBook, Mapped, MaskProblem, mask_classes, remap_mask
from workers.imaging import helper_start, pool_size, process_batch

MAX_REPORTED = 1000
BATCH = 32


class Reporter(Protocol):
    def progress(
        self,
        done: float,
        total: float | None = None,
        *,
        message: str = "",
        unit: str = "",
        force: bool = False,
    ) -> None: ...

    def check_cancelled(self) -> None: ...


class QuietReporter:
    """For running an import in-process (tests, scripts): no events, never cancelled."""

    def progress(self, done: float, total: float | None = None, **_: Any) -> None:
        return None

    def check_cancelled(self) -> None:
        return None


@dataclass
class Report:
    warnings: list[dict[str, str]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)

    def warner(self, file: str) -> Callable[[str], None]:
        return lambda message: self.warnings.append({"file": file, "message": message})


SessionFactory = Callable[[], AbstractContextManager[Session]]


def run_import(
    sessions: SessionFactory,
    storage: Storage,
    import_id: int,
    reporter: Reporter,
    *,
    taxonomy_from_folders: bool = False,
) -> dict[str, Any]:
    """Run one DatasetImport to completion; raises StudioError (import marked failed)."""
    with sessions() as session:
        row = session.get(DatasetImport, import_id)
        if row is None:
            raise StudioError(f"Import {import_id} does not exist.")
        project = session.get(Project, row.project_id)
        assert project is not None and project.id is not None
        row.status = "running"
        session.add(row)
        session.commit()
        existing = {
            c.name: c.index
            for c in session.exec(select(LabelClass).where(LabelClass.project_id == project.id))
        }
        source, fmt = row.source, row.format
    work = work_dir(storage, project.id, import_id)
    try:
        summary = _run(
            sessions,
            storage,
            project,
            import_id,
            source,
            fmt,
            existing,
            work,
            reporter,
            taxonomy_from_folders,
        )
    except StudioError as exc:
        files = exc.details.get("errors") if isinstance(exc.details.get("errors"), list) else []
        _fail(sessions, import_id, "failed", scrub(exc.message, storage.root), files)
        raise
    except BaseException as exc:
        cancelled = type(exc).__name__ == "JobCancelled"
        _fail(
            sessions,
            import_id,
            "cancelled" if cancelled else "failed",
            "Cancelled" if cancelled else user_message(exc, storage.root),
        )
        raise
    finally:
        remove(work)
    return summary


def _fail(
    sessions: SessionFactory,
    import_id: int,
    status: str,
    message: str,
    files: list[dict[str, str]] | None = None,
) -> None:
    """The import's one message (file "") first, then the per-file errors behind it."""
    with sessions() as session:
        row = session.get(DatasetImport, import_id)
        if row is not None:
            row.status = status
            row.errors = [{"file": "", "message": message}, *(files or [])][:MAX_REPORTED]
            row.finished_at = utcnow()
            session.add(row)
            session.commit()


def _source_root(source: str, work: Path, skipped: list[dict[str, str]]) -> tuple[Path, str | None]:
    kind, value = parse_source(source)
    if kind == "upload":
        extract_zip(work / "upload.zip", work / "src", skipped=skipped)
        return single_root(work / "src"), None
    if kind == "sample":
        write_digits(work / "src")
        return work / "src", "folders"
    return Path(value), None


def write_digits(target: Path, size: int = 32) -> int:
    """scikit-learn's 1,797 real 8x8 digits as 32x32 grey PNGs in class folders."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        grey = (pixels * (255 / 16)).astype(np.uint8)
        picture = PILImage.fromarray(grey).resize((size, size), PILImage.Resampling.NEAREST)
        folder = target / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        picture.save(folder / f"digit_{i:04d}.png", optimize=False, compress_level=1)
    return len(digits.images)


def _run(
    sessions: SessionFactory,
    storage: Storage,
    project: Project,
    import_id: int,
    source: str,
    fmt: str | None,
    existing: dict[str, int],
    work: Path,
    reporter: Reporter,
    taxonomy_from_folders: bool = False,
) -> dict[str, Any]:
    assert project.id is not None
    clock = [time.perf_counter()]
    reporter.progress(0, None, message="Reading the source", force=True)
    skipped: list[dict[str, str]] = []
    root, forced = _source_root(source, work, skipped)
    result = read_checked(
        root, project.task_type, fmt or forced, taxonomy_from_folders=taxonomy_from_folders
    )
    report = Report(warnings=[*skipped, *result.warnings])
    out_images, out_thumbs, out_masks = work / "images", work / "thumbs", work / "masks"
    for folder in (out_images, out_thumbs, out_masks):
        folder.mkdir(parents=True, exist_ok=True)
    clock.append(time.perf_counter())
    metas = _process_images(root, result.samples, out_images, out_thumbs, reporter)
    clock.append(time.perf_counter())
    book = ClassBook(existing, result.classes, get_task(project.task_type).implicit_classes)
    records: list[tuple[Sample, dict[str, Any], list[Mapped]]] = []
    for sample, meta in zip(result.samples, metas, strict=True):
        if "error" in meta:
            report.errors.append({"file": sample.path, "message": meta["error"]})
            continue
        try:
            mapped = map_sample(
                sample,
                project.task_type,
                meta["width"],
                meta["height"],
                book,
                root,
                report.warner(sample.path),
            )
        except MaskProblem as exc:
            report.errors.append({"file": sample.path, "message": str(exc)})
            continue
        if meta.get("orientation", 1) != 1:
            report.warnings.append(
                {
                    "file": sample.path,
                    "message": "EXIF orientation "
                    f"{meta['orientation']}: thumbnail rotated, stored as is",
                }
            )
        records.append((sample, meta, mapped))
    for child, parent in result.taxonomy.items():  # groups that no image carries become classes
        book.add(parent)
        book.add(child)
    if not records:
        unreadable = sum(1 for meta in metas if "error" in meta)
        if unreadable == len(metas):
            raise no_readable_image(len(metas), report.errors)
        first = report.errors[0] if report.errors else {"file": "", "message": "unknown"}
        raise ImportProblem(
            f"No image could be imported: each of the {len(metas)} images has an error "
            f"(the first, {first['file']}: {first['message']}).",
            code="nothing_imported",
            details={"errors": report.errors[:MAX_REPORTED]},
        )
    reporter.check_cancelled()
    reporter.progress(len(metas), len(metas), message="Saving", unit="images", force=True)
    summary = _commit(
        sessions, storage, project, import_id, result, records, book, report, out_masks
    )
    clock.append(time.perf_counter())
    names = ("read_s", "images_s", "save_s")
    summary["timings"] = {
        n: round(b - a, 3) for n, a, b in zip(names, clock, clock[1:], strict=False)
    }
    return summary


def _process_images(
    root: Path, samples: list[Sample], images: Path, thumbs: Path, reporter: Reporter
) -> list[dict[str, Any]]:
    total = len(samples)
    paths = [str(root / s.path) for s in samples]
    metas: list[dict[str, Any]] = [{} for _ in samples]
    batches = [list(range(i, min(i + BATCH, total))) for i in range(0, total, BATCH)]
    done = 0
    reporter.progress(0, total, message="Importing images", unit="images", force=True)
    if len(batches) <= 1 or pool_size() == 1:
        for batch in batches:
            for i, meta in zip(
                batch,
                process_batch([paths[i] for i in batch], str(images), str(thumbs)),
                strict=True,
            ):
                metas[i] = meta
            done += len(batch)
            reporter.progress(done, total, message="Importing images", unit="images")
        return metas
    context = multiprocessing.get_context("fork")
    with cf.ProcessPoolExecutor(
        pool_size(), mp_context=context, initializer=helper_start, initargs=(os.getpid(),)
    ) as pool:
        futures = {
            pool.submit(process_batch, [paths[i] for i in b], str(images), str(thumbs)): b
            for b in batches
        }
        try:
            for future in cf.as_completed(futures):
                batch = futures[future]
                for i, meta in zip(batch, future.result(), strict=True):
                    metas[i] = meta
                done += len(batch)
                reporter.progress(done, total, message="Importing images", unit="images")
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return metas


def _commit(
    sessions: SessionFactory,
    storage: Storage,
    project: Project,
    import_id: int,
    result: ReadResult,
    records: list[tuple[Sample, dict[str, Any], list[Mapped]]],
    book: ClassBook,
    report: Report,
    out_masks: Path,
) -> dict[str, Any]:
    assert project.id is not None
    images_dir, thumbs_dir = storage.images_dir(project.id), storage.thumbs_dir(project.id)
    masks_dir = storage.masks_dir(project.id)
    moves: list[tuple[Path, Path]] = []
    with sessions() as session:
        # The first statement locks the project (SQLite's write lock, a PostgreSQL row lock),
        # so imports into one project commit one after the other and agree on classes.
        session.execute(
            update(Project).where(col(Project.id) == project.id).values(updated_at=utcnow())
        )
        classes = {
            c.name: c
            for c in session.exec(select(LabelClass).where(LabelClass.project_id == project.id))
        }
        remap = book.settle({name: c.index for name, c in classes.items()})
        if remap:
            for _sample, _meta, mapped in records:
                for item in mapped:
                    if (
                        item.kind == "mask"
                        and item.label is None
                        and item.mask is not None
                        and "channels" not in item.geometry  # bits, not class indices
                    ):
                        item.mask = remap_mask(item.mask, remap)
        for name in book.new:
            index = book.index[name]
            new_class = LabelClass(
                project_id=project.id,
                name=name[:200],
                index=index,
                color=PALETTE[index % len(PALETTE)],
            )
            session.add(new_class)
            classes[name] = new_class
        session.flush()
        if result.taxonomy:
            _apply_taxonomy(session, classes, result.taxonomy)
        images_rel, thumbs_rel = storage.relative(images_dir), storage.relative(thumbs_dir)
        now = utcnow()
        image_values: list[dict[str, Any]] = []
        for sample, meta, _ in records:
            stored, thumb = Path(meta["stored"]), Path(meta["thumb"])
            moves += [(stored, images_dir / stored.name), (thumb, thumbs_dir / thumb.name)]
            attributes = dict(sample.attributes)
            if meta.get("orientation", 1) != 1:
                attributes["exif_orientation"] = meta["orientation"]
            image_values.append(
                {
                    "project_id": project.id,
                    "import_id": import_id,
                    "stored_path": f"{images_rel}/{stored.name}",
                    "thumb_path": f"{thumbs_rel}/{thumb.name}",
                    "original_name": sample.path[:1000],
                    "width": meta["width"],
                    "height": meta["height"],
                    "channels": meta["channels"],
                    "format": str(meta["format"])[:16],
                    "bytes": meta["bytes"],
                    "sha256": meta["sha256"],
                    "phash": meta["phash"],
                    "attributes": attributes,
                    "created_at": now,
                }
            )
        # One multi-row INSERT … RETURNING (in parameter order) instead of 10,000 ORM objects.
        image_ids = list(
            session.execute(
                insert(Image).returning(col(Image.id), sort_by_parameter_order=True),
                image_values,
            ).scalars()
        )
        annotation_values: list[dict[str, Any]] = []
        for (_sample, _meta, mapped), image_id in zip(records, image_ids, strict=True):
            for item in mapped:
                annotation_values += _annotation_rows(
                    item, project.id, image_id, classes, out_masks, masks_dir, storage, moves
                )
        if annotation_values:
            session.execute(insert(Annotation), annotation_values)
        image_index.refresh(session, image_ids)
        annotations = len(annotation_values)
        subsets = {s.subset for s, _, _ in records if s.subset}
        split_id = None
        if subsets:
            split_id = _predefined_split(session, project.id, import_id, records, image_ids)
        row = session.get(DatasetImport, import_id)
        assert row is not None
        counts: dict[str, int] = {
            "images": len(image_ids),
            "annotations": annotations,
            "classes": len(book.new),
            "warnings": len(report.warnings),
            "errors": len(report.errors),
            "samples": len(result.samples),
        }
        row.status, row.format, row.counts = "succeeded", result.format, counts
        row.warnings = report.warnings[:MAX_REPORTED]
        row.errors = report.errors[:MAX_REPORTED]
        row.finished_at = utcnow()
        session.add(row)
        session.flush()
        for folder in (images_dir, thumbs_dir, masks_dir):
            folder.mkdir(parents=True, exist_ok=True)
        # Written before the first move: if the process dies before the commit, the pool
        # (app.services.imports.recover_abandoned) removes exactly these files.
        manifest = moves_manifest(storage, project.id, import_id)
        atomic_write_json(manifest, [storage.relative(dst) for _, dst in moves])
        done: list[tuple[Path, Path]] = []
        try:
            for src, dst in moves:
                src.rename(dst)
                done.append((src, dst))
            session.commit()
        except BaseException:
            session.rollback()
            for _, dst in done:
                dst.unlink(missing_ok=True)
            raise
        manifest.unlink(missing_ok=True)
    return {"import_id": import_id, "format": result.format, "split_id": split_id, **counts}


def _apply_taxonomy(
    session: Session, classes: dict[str, LabelClass], taxonomy: dict[str, str]
) -> None:
    """Set the parents taxonomy.csv names, refusing a cycle with the project's own parents."""
    by_id = {c.id: name for name, c in classes.items()}
    parents = {name: by_id[c.parent_id] for name, c in classes.items() if c.parent_id in by_id}
    parents.update(taxonomy)
    cycle = find_cycle(parents)
    if cycle:
        raise cycle_problem(cycle, "taxonomy.csv with the project's classes")
    for child, parent in taxonomy.items():
        classes[child].parent_id = classes[parent].id
        session.add(classes[child])
    session.flush()


def _rel(storage: Storage, path: Path) -> str:
    return storage.relative(path)


def _annotation_rows(
    item: Mapped,
    project_id: int,
    image_id: int,
    classes: dict[str, LabelClass],
    out_masks: Path,
    masks_dir: Path,
    storage: Storage,
    moves: list[tuple[Path, Path]],
) -> list[dict[str, Any]]:
    def row(
        label: str | None, kind: str, geometry: dict[str, Any], attrs: dict[str, Any]
    ) -> dict[str, Any]:
        class_id = classes[label].id if label is not None else None
        return {
            "project_id": project_id,
            "image_id": image_id,
            "class_id": class_id,
            "kind": kind,
            "geometry": geometry,
            "attributes": attrs,
        }

    if item.kind != "mask" or item.mask is None:
        return [row(item.label, item.kind, item.geometry, item.attributes)]
    name = f"{uuid.uuid4().hex}.png"
    PILImage.fromarray(item.mask).save(out_masks / name, compress_level=1)
    moves.append((out_masks / name, masks_dir / name))
    path = storage.relative(masks_dir / name)
    if item.label is not None:  # an instance or anomaly mask: 1 = the object
        return [row(item.label, "mask", {"path": path, "value": 1}, item.attributes)]
    if "channels" in item.geometry:  # channel bits (app/tasks/channel_masks.py): no class
        return [row(None, "mask", {"path": path, **item.geometry}, item.attributes)]
    # A semantic index mask: one row per class present, all sharing the file.
    by_index = {c.index: name for name, c in classes.items()}
    return [
        row(name, "mask", {"path": path, "index": index}, {"pixels": pixels})
        for name, index, pixels in mask_classes(item.mask, by_index)
    ]


def _predefined_split(
    session: Session,
    project_id: int,
    import_id: int,
    records: list[tuple[Sample, dict[str, Any], list[Mapped]]],
    image_ids: list[int],
) -> int:
    counts: dict[str, int] = {}
    split = Split(
        project_id=project_id,
        name=f"Predefined (import {import_id})",
        strategy="predefined",
        params={"import_id": import_id},
        locked=True,
    )
    session.add(split)
    session.flush()
    assert split.id is not None
    members = []
    for (sample, _, _), image_id in zip(records, image_ids, strict=True):
        if sample.subset:
            members.append({"split_id": split.id, "image_id": image_id, "subset": sample.subset})
            counts[sample.subset] = counts.get(sample.subset, 0) + 1
    session.execute(insert(SplitMember), members)
    session.flush()
    split.counts = counts
    split.fingerprint = compute_fingerprint(session, split.id)
    session.add(split)
    return split.id
