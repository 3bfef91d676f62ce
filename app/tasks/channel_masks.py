"""Channel masks of classification images (the dual-head model's segmentation targets), as the
import worker stores them: one 8-bit PNG per image whose bit k marks foreground channel k
(at most 7 channels), 255 = ignore. Exclusive (index-mask) and overlapping (per-channel binary)
sources share the format; the stored geometry says which (`exclusive`) and names the
channels. The rows are class-less (`class_id` None): channels are not image classes.

Imported by the import worker only (numpy, PIL), like app/tasks/mapping.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from app.tasks.mapping import IGNORE, Mapped, Warn, open_mask, task_background

MAX_CHANNELS = 7


def _pixels(root: Path, name: str, w: int, h: int, warn: Warn) -> np.ndarray | None:
    """A mask file's values ([H, W]; colour masks: the largest channel), or None."""
    opened = open_mask(root, name, w, h, warn)
    if opened is None:
        return None
    pixels = opened[0]
    return pixels if pixels.ndim == 2 else pixels[..., :3].max(axis=2)


def channel_mask(
    root: Path, geometry: dict[str, Any], attributes: dict[str, Any], w: int, h: int, warn: Warn
) -> Mapped | None:
    """The stored bit mask of one image from an index mask or per-channel binary masks."""
    names: list[str] = list(geometry.get("channels") or [])
    if geometry.get("layout") == "index":
        foreground = [n for n in names if not task_background(n)]
        if len(foreground) > MAX_CHANNELS:
            warn(f"channels.txt names {len(foreground)} channels; at most {MAX_CHANNELS}")
            return None
        values = _pixels(root, str(geometry["path"]), w, h, warn)
        if values is None:
            return None
        values = values.astype(np.int64)
        table = np.full(max(256, int(values.max(initial=0)) + 1), IGNORE, dtype=np.uint8)
        for value, name in enumerate(names):
            if value < 255:
                table[value] = 0 if task_background(name) else 1 << foreground.index(name)
        beyond = sorted({int(v) for v in np.unique(values) if len(names) <= v != IGNORE})
        if beyond:
            warn(
                f"mask {geometry['path']!r}: values {beyond[:10]} are beyond the "
                f"{len(names)} channels of channels.txt; those pixels set to ignore (255)"
            )
        bits = table[values]
        exclusive = True
    else:
        foreground = names
        bits = np.zeros((h, w), dtype=np.uint8)
        ignore = np.zeros((h, w), dtype=bool)
        files: dict[str, str] = geometry.get("files") or {}
        read = 0
        for channel, name in files.items():
            values = _pixels(root, name, w, h, warn)
            if values is None:
                continue
            read += 1
            ignore |= values == IGNORE
            bits |= ((values > 0) & (values != IGNORE)).astype(np.uint8) << names.index(channel)
        if not read:
            return None
        bits[ignore] = IGNORE
        exclusive = False
    attrs = {k: v for k, v in attributes.items() if k == "tier"}
    geometry_out = {"channels": foreground, "exclusive": exclusive}
    return Mapped("mask", None, geometry_out, attrs, np.ascontiguousarray(bits))
