"""CSV (or space-separated TXT) tables: an image column plus labels, one-hot columns,
boxes, or numeric targets. Columns the format does not use are kept as image attributes.

Recognised columns (case-insensitive): image `image|image_name|filename|file_name|file|path`;
label `label|label_name|labels|class|class_name|category`; boxes `x1,y1,x2,y2`,
`xmin,ymin,xmax,ymax`, `x1,y1,w,h`, `x,y,w,h` or one `bbox` column; regression targets
`target|value|y` or, in a regression project, every numeric column.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

from app.importers import Importer, register_importer
from app.importers.base import (
    ImportProblem,
    ReadResult,
    Sample,
    SampleAnnotation,
    finite,
    image_files,
    read_text,
    rel,
    subset_of,
)
from app.importers.taxonomy import is_taxonomy

IMAGE_COLUMNS = ("image", "image_name", "filename", "file_name", "file", "path", "image_path")
LABEL_COLUMNS = ("label", "label_name", "labels", "class", "class_name", "category")
TARGET_COLUMNS = ("target", "value", "y", "targets")
BOX_SETS = (
    (("x1", "y1", "x2", "y2"), "xyxy"),
    (("xmin", "ymin", "xmax", "ymax"), "xyxy"),
    (("x1", "y1", "w", "h"), "xywh"),
    (("x", "y", "w", "h"), "xywh"),
    (("x", "y", "width", "height"), "xywh"),
)


class ImageIndex:
    """Finds the image a table row names: by relative path, in images/, or by unique stem."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = image_files(root)
        self.by_rel = {rel(root, p): p for p in self.files}
        self.by_stem: dict[str, list[Path]] = {}
        self.by_name: dict[str, list[Path]] = {}
        for path in self.files:
            self.by_stem.setdefault(path.stem, []).append(path)
            self.by_name.setdefault(path.name, []).append(path)

    def find(self, name: str, base: Path) -> Path | None:
        name = name.strip().replace("\\", "/")
        if not name or "\x00" in name:
            return None
        for folder in (base, base / "images", self.root, self.root / "images"):
            try:
                key = rel(self.root, folder / name) if folder.is_relative_to(self.root) else ""
            except ValueError:
                continue
            if ".." not in key.split("/") and key in self.by_rel:
                return self.by_rel[key]
        leaf = name.rsplit("/", 1)[-1]
        for table in (self.by_name, self.by_stem):
            hits = table.get(leaf, [])
            if len(hits) == 1:
                return hits[0]
            local = [h for h in hits if h.is_relative_to(base)]
            if len(local) == 1:
                return local[0]
        return None


def _tables(root: Path) -> list[Path]:
    direct = sorted(
        p
        for p in root.glob("*.csv")
        if p.is_file() and not p.is_symlink() and not is_taxonomy(root, p)
    )
    if direct:
        return direct
    split = sorted(
        p
        for p in root.glob("*/*.csv")
        if p.is_file() and not p.is_symlink() and subset_of(p.parent.name)
    )
    if split:
        return split
    return sorted(p for p in root.glob("*.txt") if p.is_file() and not p.is_symlink())


def detect(root: Path, task_type: str) -> float:
    tables = _tables(root)
    if not tables:
        return 0.0
    if tables[0].suffix == ".txt":
        index = ImageIndex(root)
        first = read_text(tables[0]).splitlines()[:5]
        hits = [line for line in first if line.split() and index.find(line.split()[0], root)]
        return 0.4 if first and len(hits) == len([x for x in first if x.strip()]) else 0.0
    return 0.6


def _rows(path: Path, result: ReadResult) -> tuple[list[str], list[list[str]]]:
    text = read_text(path, warn=result.warn)
    if path.suffix == ".txt":
        rows = [line.split() for line in text.splitlines() if line.strip()]
        width = max(len(r) for r in rows) if rows else 0
        return ["image", "label", *[f"col{i}" for i in range(2, width)]], rows
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect, skipinitialspace=True)
    try:
        table = [[cell.strip() for cell in row] for row in reader if row]
    except csv.Error as exc:
        raise ImportProblem(
            f"{path.name} is not valid CSV: {exc}.", code="malformed_file"
        ) from None
    if not table:
        raise ImportProblem(f"{path.name} is empty; it needs a header row.", code="malformed_file")
    return table[0], table[1:]


def _pick(header: list[str], names: tuple[str, ...]) -> int | None:
    lowered = [h.lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


def _numbers(text: str) -> list[float]:
    return [finite(t) for t in re.split(r"[\s,;\[\]()]+", text) if t]


def read(root: Path, task_type: str) -> ReadResult:
    result = ReadResult(format="csv", samples=[], classes=[])
    tables = _tables(root)
    if not tables:
        raise ImportProblem("No CSV file found at the top of the source.", code="no_table")
    if tables[0].parent == root and len(tables) > 1:
        for extra in tables[1:]:
            result.warn(rel(root, extra), f"ignored; only {tables[0].name} is read")
        tables = tables[:1]
    index = ImageIndex(root)
    by_image: dict[Path, Sample] = {}
    for table in tables:
        subset = subset_of(table.parent.name) if table.parent != root else None
        header, rows = _rows(table, result)
        _read_table(root, table, header, rows, subset, task_type, index, by_image, result)
    result.samples = list(by_image.values())
    return result


def _read_table(
    root: Path,
    table: Path,
    header: list[str],
    rows: list[list[str]],
    subset: str | None,
    task_type: str,
    index: ImageIndex,
    by_image: dict[Path, Sample],
    result: ReadResult,
) -> None:
    name = rel(root, table)
    image_col = _pick(header, IMAGE_COLUMNS)
    image_col = 0 if image_col is None else image_col
    label_col = _pick(header, LABEL_COLUMNS)
    box_cols: tuple[list[int], str] | None = None
    lowered = [h.lower() for h in header]
    for names, layout in BOX_SETS:
        if all(n in lowered for n in names):
            box_cols = ([lowered.index(n) for n in names], layout)
            break
    bbox_col = _pick(header, ("bbox", "box"))
    used = {image_col} | ({label_col} if label_col is not None else set())
    if box_cols:
        used |= set(box_cols[0])
    if bbox_col is not None:
        used.add(bbox_col)
    rest = [i for i in range(len(header)) if i not in used]
    target_cols: list[int] = []
    onehot_cols: list[int] = []
    if task_type == "regression":
        named = [i for i in rest if lowered[i] in TARGET_COLUMNS]
        target_cols = named or [i for i in rest if _mostly_numeric(rows, i)]
    elif label_col is None and box_cols is None and bbox_col is None:
        onehot_cols = [i for i in rest if _all_binary(rows, i)]
    attr_cols = [i for i in rest if i not in target_cols and i not in onehot_cols]
    if task_type == "regression" and not target_cols:
        raise ImportProblem(
            f"{name} has no numeric target column; name it target/value/y or add numbers.",
            code="no_targets",
        )
    if task_type != "regression" and label_col is None and not onehot_cols:
        raise ImportProblem(
            f"{name} has no label column ({', '.join(LABEL_COLUMNS)}) and no 0/1 columns.",
            code="no_labels",
        )
    for i in onehot_cols:
        if header[i] not in result.classes:
            result.classes.append(header[i])
    for number, row in enumerate(rows, start=2):
        where = f"{name}:{number}"
        if len(row) <= image_col or not row[image_col]:
            result.warn(where, "row without an image name; skipped")
            continue
        path = index.find(row[image_col], table.parent)
        if path is None:
            result.warn(where, f"image {row[image_col]!r} not found; row skipped")
            continue
        bad = _bad_target(row, header, target_cols)
        if bad:
            result.warn(where, f"{bad}; row skipped")
            continue
        sample = by_image.get(path)
        if sample is None:
            sample = Sample(rel(root, path), subset=subset)
            sample.attributes = {header[i]: _cell(row, i) for i in attr_cols if i < len(row)}
            by_image[path] = sample
        try:
            _row_annotations(
                row, header, label_col, box_cols, bbox_col, target_cols, onehot_cols, sample, result
            )
        except (ValueError, IndexError) as exc:
            result.warn(where, f"bad value ({exc}); row skipped")


def _row_annotations(
    row: list[str],
    header: list[str],
    label_col: int | None,
    box_cols: tuple[list[int], str] | None,
    bbox_col: int | None,
    target_cols: list[int],
    onehot_cols: list[int],
    sample: Sample,
    result: ReadResult,
) -> None:
    label = row[label_col] if label_col is not None else None
    if target_cols:
        values = [finite(row[i]) for i in target_cols]
        names = [header[i] for i in target_cols]
        sample.annotations.append(
            SampleAnnotation("value", None, {"values": values, "names": names})
        )
        return
    box: list[float] | None = None
    layout = "xyxy"
    if box_cols is not None:
        box = [finite(row[i]) for i in box_cols[0]]
        layout = box_cols[1]
    elif bbox_col is not None:
        box = _numbers(row[bbox_col])
        if len(box) != 4:
            raise ValueError(f"bbox {row[bbox_col]!r} needs 4 numbers")
    if box is not None:
        x, y, a, b = box
        w, h = (a - x, b - y) if layout == "xyxy" else (a, b)
        _add_class(result, label)
        sample.annotations.append(SampleAnnotation("bbox", label, {"x": x, "y": y, "w": w, "h": h}))
        return
    if onehot_cols:
        for i in onehot_cols:
            if row[i].strip() in {"1", "1.0", "true", "True"}:
                sample.annotations.append(SampleAnnotation("label", header[i]))
        return
    if label:
        for part in re.split(r"[;|]", label) if re.search(r"[;|]", label) else [label]:
            if part.strip():
                _add_class(result, part.strip())
                sample.annotations.append(SampleAnnotation("label", part.strip()))


def _add_class(result: ReadResult, label: str | None) -> None:
    if label and label not in result.classes:
        result.classes.append(label)


def _cell(row: list[str], i: int) -> Any:
    try:
        return finite(row[i])
    except ValueError:
        return row[i]


def _number_or_none(text: str) -> float | None:
    try:
        return finite(text)
    except ValueError:
        return None


def _mostly_numeric(rows: list[list[str]], i: int) -> bool:
    """A target column in a regression table: most of its cells are finite numbers (the rest
    are reported row by row and skipped, instead of turning the column into text)."""
    cells = [r[i] for r in rows if i < len(r)]
    numeric = sum(1 for c in cells if _number_or_none(c) is not None)
    return numeric > 0 and numeric >= 0.5 * len(cells)


def _bad_target(row: list[str], header: list[str], target_cols: list[int]) -> str:
    """Why a row's target cells cannot be used ('' when they can)."""
    for i in target_cols:
        cell = row[i].strip() if i < len(row) else ""
        if not cell:
            return f"target {header[i]!r} is missing"
        if _number_or_none(cell) is None:
            return f"target {header[i]!r} is {cell[:40]!r}, not a finite number"
    return ""


def _all_binary(rows: list[list[str]], i: int) -> bool:
    return bool(rows) and all(r[i].strip() in {"0", "1"} for r in rows if i < len(r))


register_importer(
    Importer(
        key="csv",
        title="CSV table (labels, multi-label, boxes or numeric targets)",
        detect=detect,
        read=read,
        tasks=("classification", "detection", "regression"),
    )
)
