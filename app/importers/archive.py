"""Safe zip extraction: the whole listing is validated before a single byte is written.

Refused: `..`, absolute, drive-letter and backslash names, links, duplicates, encrypted
entries, too many entries, too many bytes, and entries whose compression ratio betrays a
bomb. Extraction streams each entry through a byte counter, so a lying header cannot write
more than the declared caps either. Entries are never renamed: one whose name the file
system cannot hold (a component over 255 bytes, a path over 4,000) is skipped with a warning.
"""

from __future__ import annotations

import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from app.errors import BadRequest
from app.storage import UnsafePath, safe_relative


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int = 200_000
    max_bytes: int = 20 * 1024**3
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 1024 * 1024  # small entries may compress very well


class UnsafeArchive(BadRequest):
    code = "unsafe_archive"


def _listing(archive: zipfile.ZipFile, limits: ArchiveLimits) -> list[zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise UnsafeArchive(
            f"The archive has {len(infos)} entries; at most {limits.max_entries} are allowed.",
            code="archive_too_many_entries",
        )
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        try:
            clean = safe_relative(name.rstrip("/") if info.is_dir() else name)
        except UnsafePath as exc:
            raise UnsafeArchive(
                f"Archive entry {name!r} is unsafe: {exc.message}", code="archive_unsafe_path"
            ) from None
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchive(
                f"Archive entry {name!r} is a symbolic link; links are not allowed.",
                code="archive_link",
            )
        if info.flag_bits & 0x1:
            raise UnsafeArchive(
                f"Archive entry {name!r} is encrypted; use an unencrypted zip.",
                code="archive_encrypted",
            )
        key = clean.as_posix().lower()
        if key in seen:
            raise UnsafeArchive(
                f"Archive entry {name!r} appears twice (names are compared case-insensitively).",
                code="archive_duplicate",
            )
        seen.add(key)
        total += info.file_size
        if total > limits.max_bytes:
            raise UnsafeArchive(
                f"The archive expands to more than {limits.max_bytes} bytes.",
                code="archive_too_large",
            )
        if info.file_size > limits.ratio_floor_bytes and info.file_size > limits.max_ratio * max(
            1, info.compress_size
        ):
            raise UnsafeArchive(
                f"Archive entry {name!r} expands {info.file_size / max(1, info.compress_size):.0f}"
                f"-fold; more than {limits.max_ratio:.0f}-fold looks like a zip bomb.",
                code="archive_ratio",
            )
    return infos


NAME_MAX_BYTES = 255
PATH_MAX_BYTES = 4000


def _too_long(destination: Path, clean: PurePosixPath) -> bool:
    return any(len(part.encode()) > NAME_MAX_BYTES for part in clean.parts) or (
        len(str(destination).encode()) > PATH_MAX_BYTES
    )


def extract_zip(
    source: Path,
    target: Path,
    limits: ArchiveLimits | None = None,
    skipped: list[dict[str, str]] | None = None,
) -> int:
    """Extract a validated zip into an empty target folder; returns the bytes written.
    Entries skipped (names too long for the file system) are added to `skipped`."""
    limits = limits or ArchiveLimits()
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadRequest(
            f"The upload is not a readable zip archive ({exc}).", code="bad_archive"
        ) from None
    written = 0
    with archive:
        infos = _listing(archive, limits)
        target.mkdir(parents=True, exist_ok=True)
        base = target.resolve()
        for info in infos:
            clean = safe_relative(info.filename.rstrip("/") if info.is_dir() else info.filename)
            destination = base / clean
            if _too_long(destination, clean):
                if skipped is not None:
                    skipped.append(
                        {
                            "file": info.filename[:200] + ("…" if len(info.filename) > 200 else ""),
                            "message": "name too long for the file system (over 255 bytes per "
                            "part or 4,000 in all); skipped",
                        }
                    )
                continue
            if not destination.resolve().is_relative_to(base):
                raise UnsafeArchive(f"Archive entry {info.filename!r} leaves the folder.")
            if info.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(info) as src, destination.open("xb") as dst:
                    while chunk := src.read(1024 * 1024):
                        written += len(chunk)
                        if written > limits.max_bytes:
                            raise UnsafeArchive(
                                f"The archive expands to more than {limits.max_bytes} bytes.",
                                code="archive_too_large",
                            )
                        dst.write(chunk)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
                raise BadRequest(
                    f"Archive entry {info.filename!r} is corrupt ({exc}).", code="bad_archive"
                ) from None
    return written


def single_root(folder: Path) -> Path:
    """Descend into a lone top-level folder (how most zips are made) to find the dataset."""
    entries = [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    from app.importers.base import subset_of

    lone = len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink()
    if lone and subset_of(entries[0].name) is None:
        return single_root(entries[0])
    return folder


def remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
