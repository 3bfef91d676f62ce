"""Analyze: what an import of a source would bring in, without writing anything.

Analyze opens the images it counts through the same decoder the import uses
(`app.importers.images.decode_image`) and maps their annotations with the same mapping (the
task's `map_sample`, helpers in `app.tasks.mapping`), so its numbers follow the import's
rules: an image is a file that decodes, and an annotation is a row the import would store
(one per object, label or value; one per class present in a semantic mask). Up to
`OPEN_LIMIT` images are opened; beyond that an evenly spaced sample is, and the counts are
estimates that say so.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from app.importers import read_source
from app.importers.base import ImportProblem, ReadResult, image_files, rel
from app.importers.images import ImageRefused, decode_image

OPEN_LIMIT = 200
DRAFT = 64  # a JPEG still decodes its whole stream (truncation shows) at 1/8 of the cost


class Analysis(BaseModel):
    format: str
    files: int  # image files the format's reader found
    checked: int  # of those, opened here
    sampled: bool  # True: `checked` < `files`, so images and annotations are estimates
    images: int  # readable images (estimated when sampled)
    unreadable: int  # files among the checked ones that are not readable images
    annotations: int  # rows the import would store (estimated when sampled)
    classes: list[str]
    subsets: dict[str, int]
    annotation_kinds: dict[str, int]  # among the checked images
    warnings: list[dict[str, str]]
    errors: list[dict[str, str]]  # per file, among the checked images
    examples: list[str]
    taxonomy: dict[str, str] = {}  # {class: parent} from taxonomy.csv or nested class folders


def _pick(total: int, limit: int) -> list[int]:
    if total <= limit:
        return list(range(total))
    step = total / limit
    return sorted({int(i * step) for i in range(limit)})


def read_checked(
    root: Path, task_type: str, fmt: str | None, *, taxonomy_from_folders: bool = False
) -> ReadResult:
    """read_source, except that a source whose image files are all unreadable says exactly
    that instead of "could not recognise the format" (its layout may be fine)."""
    try:
        return read_source(root, task_type, fmt, taxonomy_from_folders=taxonomy_from_folders)
    except ImportProblem as exc:
        if exc.code not in {"format_not_detected", "no_images"}:
            raise
        files = image_files(root)
        if not files:
            raise
        errors = []
        for path in files[:OPEN_LIMIT]:
            try:
                decode_image(path.read_bytes(), draft=DRAFT)
            except (ImageRefused, OSError) as refused:
                errors.append({"file": rel(root, path), "message": str(refused)})
            else:
                raise exc from None  # a readable image: the format really is the problem
        raise no_readable_image(len(files), errors) from None


def no_readable_image(files: int, errors: list[dict[str, str]]) -> ImportProblem:
    noun = "file" if files == 1 else "files"
    return ImportProblem(
        f"No readable image: none of the {files} image {noun} in the source could be read.",
        code="no_readable_image",
        details={"errors": errors[:200]},
    )


def analyze(
    root: Path, task_type: str, fmt: str | None, *, taxonomy_from_folders: bool = False
) -> Analysis:
    """Read the annotations, open the images (or an even sample of them), count."""
    # numpy comes with the mapping: imported on the first analyze, not at start-up.
    from app.tasks import get_task, map_sample
    from app.tasks.mapping import ClassBook, MaskProblem, stored_rows

    result = read_checked(root, task_type, fmt, taxonomy_from_folders=taxonomy_from_folders)
    samples = result.samples
    picked = _pick(len(samples), OPEN_LIMIT)
    warnings = list(result.warnings)
    errors: list[dict[str, str]] = []
    book = ClassBook({}, result.classes, get_task(task_type).implicit_classes)
    kinds: dict[str, int] = {}
    readable = rows = 0
    for index in picked:
        sample = samples[index]
        try:
            decoded = decode_image((root / sample.path).read_bytes(), draft=DRAFT)
        except ImageRefused as exc:
            errors.append({"file": sample.path, "message": str(exc)})
            continue
        except OSError as exc:
            errors.append({"file": sample.path, "message": f"cannot be read ({exc.strerror})"})
            continue

        def warn(message: str, file: str = sample.path) -> None:
            warnings.append({"file": file, "message": message})

        try:
            mapped = map_sample(sample, task_type, decoded.width, decoded.height, book, root, warn)
        except MaskProblem as exc:
            errors.append({"file": sample.path, "message": str(exc)})
            continue
        readable += 1
        rows += stored_rows(mapped, book, kinds)
    subsets: dict[str, int] = {}
    for sample in samples:
        if sample.subset:
            subsets[sample.subset] = subsets.get(sample.subset, 0) + 1
    checked = len(picked)
    scale = len(samples) / checked if checked else 0.0
    return Analysis(
        format=result.format,
        files=len(samples),
        checked=checked,
        sampled=checked < len(samples),
        images=round(readable * scale),
        unreadable=len(errors),
        annotations=round(rows * scale),
        classes=[name for name, _ in sorted(book.index.items(), key=lambda item: item[1])],
        subsets=subsets,
        annotation_kinds=kinds,
        warnings=warnings[:200],
        errors=errors[:200],
        examples=[s.path for s in samples[:5]],
        taxonomy=dict(list(result.taxonomy.items())[:500]),
    )
