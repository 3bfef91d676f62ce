"""Plain words for failures of the machine rather than of the request.

Users see what they can act on ("the disk is full"), never an exception repr, an SQL
statement or an absolute path inside the workspace; the details go to the server or job log.
The web handlers and the worker runner both describe failures through `describe`.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass
from pathlib import Path

RETRY_AFTER_SECONDS = 2


@dataclass(frozen=True)
class Fault:
    code: str
    status: int
    message: str


DATABASE_BUSY = Fault(
    "database_busy",
    503,
    "The database is busy (another process holds a lock); try again in a few seconds.",
)
DISK_FULL = Fault(
    "disk_full",
    507,
    "The disk holding the studio's workspace or database is full; free some space and retry.",
)
READ_ONLY = Fault(
    "workspace_read_only",
    507,
    "The studio cannot write to its workspace or database (read-only file system).",
)
PERMISSION = Fault(
    "permission_denied",
    500,
    "The studio has no permission to write a file in its workspace; check the folder's owner "
    "and permissions.",
)
UNREADABLE_IMAGE = Fault("unreadable_image", 422, "An image could not be read (not a valid file).")
DATABASE_DOWN = Fault(
    "database_unavailable", 503, "The database does not answer; check that it is running."
)

_BUSY_TEXT = ("database is locked", "database table is locked", "lock timeout", "lock_timeout")
_FULL_TEXT = ("database or disk is full", "no space left on device", "could not extend file")


def _texts(exc: BaseException) -> str:
    parts = [str(exc)]
    orig = getattr(exc, "orig", None)
    if orig is not None:
        parts.append(str(orig))
        parts.append(str(getattr(orig, "sqlstate", "") or ""))
    return " ".join(parts).lower()


def describe(exc: BaseException) -> Fault | None:
    """A Fault for failures of storage, database or files; None for anything else."""
    from sqlalchemy import exc as sa_exc

    text = _texts(exc)
    if isinstance(exc, sa_exc.TimeoutError):
        return DATABASE_BUSY  # no pooled connection became free in time
    if isinstance(exc, sa_exc.DBAPIError):
        sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
        if sqlstate in {"55P03", "40P01", "57014"} or any(t in text for t in _BUSY_TEXT):
            return DATABASE_BUSY
        if sqlstate == "53100" or any(t in text for t in _FULL_TEXT):
            return DISK_FULL
        if "readonly database" in text or "read-only" in text:
            return READ_ONLY
        if isinstance(exc, sa_exc.OperationalError) and (
            "connection" in text or sqlstate.startswith("08")
        ):
            return DATABASE_DOWN
        return None
    if isinstance(exc, OSError):
        if exc.errno in {errno.ENOSPC, errno.EDQUOT}:
            return DISK_FULL
        if exc.errno == errno.EROFS:
            return READ_ONLY
        if exc.errno in {errno.EACCES, errno.EPERM}:
            return PERMISSION
    if type(exc).__name__ in {"UnidentifiedImageError", "DecompressionBombError"}:
        return UNREADABLE_IMAGE
    return None


_ABSOLUTE = re.compile(r"(?<![\w.])/(?:[^\s'\"<>:,;()\[\]]+/)*[^\s'\"<>:,;()\[\]]*")
_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>")
_SQL = re.compile(r"\[SQL: .*?\]|\(Background on this error at: [^)]*\)|\[parameters: .*?\]", re.S)


def scrub(message: str, workspace: Path | None = None) -> str:
    """A message safe to show: workspace paths made relative, other absolute paths, object
    reprs and SQL dropped."""
    text = _SQL.sub("", message)
    if workspace is not None:
        root = str(workspace).rstrip("/")
        text = text.replace(root + "/", "").replace(root, "the workspace")
    text = _OBJECT_REPR.sub("a file", text)
    text = _ABSOLUTE.sub("(a server path)", text)
    return re.sub(r"\s+", " ", text).strip()


def user_message(exc: BaseException, workspace: Path | None = None) -> str:
    """What a user reads about an unexpected failure: plain words for failures of the
    machine, else the exception's first line scrubbed of paths, reprs and SQL."""
    fault = describe(exc)
    if fault is not None:
        return fault.message
    lines = scrub(str(exc), workspace).splitlines() if str(exc) else []
    name = type(exc).__name__
    if not lines:
        return f"{name} (the details are in the job log)"
    return f"{name}: {lines[0]}"[:300]
