"""Per-image work of an import, run in a process pool: decode fully, measure, hash, copy,
thumbnail. Pillow only (no torch), so pool start-up is cheap."""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import signal
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from app.importers.images import ImageRefused, decode_image

THUMB_SIZE = 256
# The stored file's suffix follows its real format, never the name it came with.
SUFFIXES = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "BMP": ".bmp",
    "GIF": ".gif",
    "TIFF": ".tif",
    "WEBP": ".webp",
}
_DCT: np.ndarray | None = None


def _dct_matrix(n: int = 32) -> np.ndarray:
    k = np.arange(n)
    matrix = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * np.sqrt(2 / n)
    matrix[0] /= np.sqrt(2)
    return matrix


def phash(picture: Image.Image) -> str:
    """64-bit DCT perceptual hash as 16 hex digits (near duplicates differ in few bits)."""
    global _DCT
    if _DCT is None:
        _DCT = _dct_matrix()
    # BOX averaging is what a DCT hash needs (low frequencies) at a fraction of LANCZOS's cost.
    factor = min(picture.width, picture.height) // 32
    reduced = picture.reduce(factor) if factor > 1 else picture
    small = reduced.resize((32, 32), Image.Resampling.BOX)
    grey = np.asarray(small.convert("L"), float)
    low = _DCT[:8]
    coeffs = (low @ grey @ low.T).flatten()
    bits = coeffs > np.median(coeffs[1:])
    return np.packbits(bits).tobytes().hex()


def process_image(source: str, images_dir: str, thumbs_dir: str) -> dict[str, Any]:
    """Validate and store one image; returns its metadata or {"error": reason}."""
    path = Path(source)
    try:
        data = path.read_bytes()
        # Decoded from the bytes already read: one read per file, nothing to close.
        decoded = decode_image(data, draft=THUMB_SIZE)
    except OSError as exc:
        return {"error": f"cannot be read ({exc.strerror or type(exc).__name__})"}
    except ImageRefused as exc:
        return {"error": str(exc)}
    picture = decoded.picture
    thumb = ImageOps.exif_transpose(picture) if decoded.orientation != 1 else picture
    if thumb.mode not in {"RGB", "L"}:
        thumb = (
            thumb.convert("RGBA").convert("RGB")
            if "A" in thumb.mode or thumb.mode == "P"
            else thumb.convert("RGB")
        )
    thumb.thumbnail((THUMB_SIZE, THUMB_SIZE))
    name = uuid.uuid4().hex
    suffix = SUFFIXES.get(decoded.format, "")
    stored = Path(images_dir) / f"{name}{suffix}"
    stored.write_bytes(data)
    thumb_path = Path(thumbs_dir) / f"{name}.jpg"
    thumb.save(thumb_path, "JPEG", quality=85)
    return {
        "stored": str(stored),
        "thumb": str(thumb_path),
        "width": decoded.width,
        "height": decoded.height,
        "channels": decoded.bands,
        "format": decoded.format,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "phash": phash(thumb),
        "orientation": decoded.orientation,
    }


def process_batch(sources: list[str], images_dir: str, thumbs_dir: str) -> list[dict[str, Any]]:
    return [process_image(s, images_dir, thumbs_dir) for s in sources]


PR_SET_PDEATHSIG = 1


def helper_start(parent_pid: int) -> None:
    """Initializer of the import's image helpers.

    They leave SIGTERM/SIGINT to the job process, which stops them at a safe point (a cancel
    must read as cancelled, not as a broken pool), and they die with the job process even
    when it is killed outright: the kernel sends them SIGKILL (Linux), instead of leaving
    them blocked forever under PID 1.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return  # not Linux: the pool still kills the job's whole process group
    if os.getppid() != parent_pid:  # the job died before the request took effect
        os._exit(1)


def pool_size() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0))))


def copy_file(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
