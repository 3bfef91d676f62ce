"""Anomaly folders: normal vs anomalous images (MVTec-style), with optional defect masks.

Layouts: `normal/` + `anomalous/` folders, or MVTec's `[category/]{train,test}/{good,<defect>}/`
with `ground_truth/<defect>/<name>_mask.png`. An image is anomalous when its folder says so
(`anomalous`, `defect`, ...) or a ground-truth mask exists for it; `good`/`normal`/`ok` and
mask-less folders next to masked ones are normal.
"""

from __future__ import annotations

from pathlib import Path

from app.importers import Importer, register_importer
from app.importers.base import ReadResult, Sample, SampleAnnotation, image_files, rel, subset_of

MASK_FOLDERS = {"ground_truth", "groundtruth", "masks", "mask"}
NORMAL = {"good", "normal", "ok", "nominal"}
ANOMALOUS = {"anomalous", "anomaly", "abnormal", "defect", "defective", "bad", "ng"}


def _is_mask(path: Path, root: Path) -> bool:
    return any(part.lower() in MASK_FOLDERS for part in path.relative_to(root).parts[:-1])


def detect(root: Path, task_type: str) -> float:
    names = {p.name.lower() for p in root.rglob("*") if p.is_dir()}
    if names & (NORMAL | ANOMALOUS | MASK_FOLDERS):
        return 0.8
    return 0.2 if any(p.parent != root for p in image_files(root)) else 0.0


def read(root: Path, task_type: str) -> ReadResult:
    result = ReadResult(format="anomaly", samples=[], classes=["normal", "anomalous"])
    skipped: list[dict[str, str]] = []
    files = image_files(root, skipped)
    masks: dict[tuple[str, str], Path] = {}
    for path in files:
        if _is_mask(path, root):
            stem = path.stem.removesuffix("_mask")
            masks[(path.parent.name, stem)] = path
    masked_folders = {folder for folder, _ in masks}
    for path in files:
        if _is_mask(path, root):
            continue
        folder = path.parent.name if path.parent != root else ""
        key = folder.lower()
        mask = masks.get((folder, path.stem))
        anomalous = (
            key in ANOMALOUS or mask is not None or (key not in NORMAL and folder in masked_folders)
        )
        if not anomalous and key not in NORMAL and not masked_folders:
            result.warn(
                rel(root, path),
                f"folder {folder!r} is neither normal ({', '.join(sorted(NORMAL))}) nor "
                "anomalous; skipped",
            )
            continue
        label = "anomalous" if anomalous else "normal"
        annotations = [SampleAnnotation("label", label)]
        if mask is not None:
            annotations.append(
                SampleAnnotation(
                    "mask_file", "anomalous", {"path": rel(root, mask), "binary": True}
                )
            )
        subset = next(
            (s for part in path.relative_to(root).parts[:-1] if (s := subset_of(part))), None
        )
        attributes = {"defect": folder} if anomalous and key not in ANOMALOUS else {}
        result.samples.append(
            Sample(rel(root, path), annotations, attributes=attributes, subset=subset)
        )
    result.warnings.extend(skipped)
    return result


register_importer(
    Importer(
        key="anomaly",
        title="Anomaly folders (normal / anomalous, optional masks)",
        detect=detect,
        read=read,
        tasks=("anomaly",),
    )
)
