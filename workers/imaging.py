"""Per-image work of an import, run in a process pool: decode fully, measure, hash, copy,
thumbnail. Pillow only (no torch), so pool start-up is cheap."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

# A decompression bomb is an error, not a warning: 8,000 x 8,000 pixels is plenty here.
MAX_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
THUMB_SIZE = 256
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
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Decoded from the bytes already read: one read per file, nothing to close.
            picture = Image.open(io.BytesIO(data))
            fmt = picture.format or path.suffix.lstrip(".").upper()
            width, height = picture.size
            if width * height > MAX_PIXELS:
                return {"error": f"{width}x{height} pixels is over the {MAX_PIXELS} limit"}
            bands = len(picture.getbands())
            orientation = (
                picture.getexif().get(0x0112, 1) if fmt in {"JPEG", "TIFF", "WEBP", "PNG"} else 1
            )
            if fmt == "JPEG":
                # Draft mode decodes at a reduced scale, still reading the whole stream,
                # so truncation is caught at a fraction of the cost.
                picture.draft("RGB", (THUMB_SIZE, THUMB_SIZE))
            picture.load()
            thumb = ImageOps.exif_transpose(picture) if orientation != 1 else picture
    except Image.DecompressionBombError as exc:
        return {"error": f"decompression bomb refused ({exc})"}
    except Image.DecompressionBombWarning as exc:
        return {"error": f"decompression bomb refused ({exc})"}
    except (OSError, SyntaxError, ValueError) as exc:
        return {"error": f"not a readable image ({exc})"}
    if thumb.mode not in {"RGB", "L"}:
        thumb = (
            thumb.convert("RGBA").convert("RGB")
            if "A" in thumb.mode or thumb.mode == "P"
            else thumb.convert("RGB")
        )
    thumb.thumbnail((THUMB_SIZE, THUMB_SIZE))
    name = uuid.uuid4().hex
    suffix = (
        path.suffix.lower()
        if path.suffix.lower()
        in {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
        else ""
    )
    stored = Path(images_dir) / f"{name}{suffix}"
    stored.write_bytes(data)
    thumb_path = Path(thumbs_dir) / f"{name}.jpg"
    thumb.save(thumb_path, "JPEG", quality=85)
    return {
        "stored": str(stored),
        "thumb": str(thumb_path),
        "width": width,
        "height": height,
        "channels": bands,
        "format": fmt,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "phash": phash(thumb),
        "orientation": int(orientation),
    }


def process_batch(sources: list[str], images_dir: str, thumbs_dir: str) -> list[dict[str, Any]]:
    return [process_image(s, images_dir, thumbs_dir) for s in sources]


def ignore_stop_signals() -> None:
    """Pool children leave SIGTERM/SIGINT to the job process, which stops them at a safe
    point; a cancel must read as cancelled, not as a broken pool."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def pool_size() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0))))


def copy_file(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
