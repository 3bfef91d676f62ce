"""Reading a sample's truth (no torch: the package __init__ uses it): normal or anomalous, and
its defect mask file."""

from __future__ import annotations

from pathlib import Path

from workers.ml.tasks.base import Sample

ANOMALOUS = "anomalous"
NORMAL = "normal"
CLASSES = [NORMAL, ANOMALOUS]  # index 0 / 1 in labels, match rows and outputs


def label_of(sample: Sample) -> int | None:
    """1 anomalous, 0 normal, None unlabelled (anomalous wins when both are present)."""
    names = set(sample.class_names("label", "mask"))
    if ANOMALOUS in names:
        return 1
    return 0 if NORMAL in names else None


def mask_file(sample: Sample) -> Path | None:
    for ann in sample.annotations:
        if ann.kind == "mask" and ann.class_name == ANOMALOUS and ann.geometry.get("file"):
            return Path(str(ann.geometry["file"]))
    return None
