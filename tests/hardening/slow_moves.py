"""Fault injection for the import job (loaded through STUDIO_JOB_PLUGINS in one test only):
moving files into the project becomes slow and announces itself, so a test can kill the
worker between the first move and the database commit."""

from __future__ import annotations

import os
import time
from pathlib import Path

_rename = Path.rename


def _slow_rename(self: Path, target: str | os.PathLike[str]) -> Path:
    destination = Path(target)
    if "projects" in destination.parts and destination.parent.name in {"images", "thumbs"}:
        marker = Path(os.environ["STUDIO_WORKSPACE"]) / "moving"
        marker.touch()
        time.sleep(0.05)
    return _rename(self, target)


Path.rename = _slow_rename  # type: ignore[method-assign]
