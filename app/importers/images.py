"""Which image files the studio accepts, and the one way it opens them.

The import job (workers/imaging.py) and analyze (app/services/imports.py) both go through
`decode_image`, so a file analyze counts as an image is one the import stores, and the
stored format picks the content type the file is served with (app/services/image_files.py).
Only the formats below are tried: Pillow would otherwise open FITS, PSD, ICO and dozens
more whatever the file's name says.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image

# A decompression bomb is an error, not a warning: 8,000 x 8,000 pixels is plenty here.
MAX_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

# Pillow format name → the content type the stored file is served with.
FORMATS = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",  # multi-picture JPEG, as many phones write it
    "PNG": "image/png",
    "BMP": "image/bmp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
    "WEBP": "image/webp",
}
OPENERS = ["JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP"]  # Pillow's JPEG opener yields MPO too
ACCEPTED = "JPEG, PNG, BMP, GIF, TIFF or WebP"


class ImageRefused(ValueError):
    """The file is not an image the studio accepts; the message says why, in plain words."""


@dataclass
class Decoded:
    picture: Image.Image
    format: str
    width: int
    height: int
    bands: int
    orientation: int


def decode_image(data: bytes, *, draft: int | None = None) -> Decoded:
    """Open and fully decode an image (load(), since verify() misses truncation).

    `draft` lets JPEG decode at a reduced scale (still reading the whole stream, so
    truncation is caught) when only a thumbnail-sized picture is needed.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(data), formats=OPENERS)
            fmt = str(picture.format)
            width, height = picture.size
            if width * height > MAX_PIXELS:
                raise ImageRefused(f"{width}x{height} pixels is over the {MAX_PIXELS} limit")
            exif_formats = {"JPEG", "MPO", "TIFF", "WEBP", "PNG"}
            orientation = picture.getexif().get(0x0112, 1) if fmt in exif_formats else 1
            if draft is not None and fmt in {"JPEG", "MPO"}:
                picture.draft("RGB", (draft, draft))
            picture.load()
    except ImageRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRefused(f"decompression bomb refused ({exc})") from None
    except Image.UnidentifiedImageError:
        raise ImageRefused(f"not a readable image (not {ACCEPTED})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRefused(f"not a readable image ({exc})") from None
    return Decoded(
        picture=picture,
        format=fmt,
        width=width,
        height=height,
        bands=len(picture.getbands()),
        orientation=int(orientation) if isinstance(orientation, int) else 1,
    )
