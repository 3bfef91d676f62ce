"""The only code that turns ids and user input into filesystem paths, and writes files safely."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from app.errors import BadRequest

_DRIVE = re.compile(r"^[A-Za-z]:")
WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors")


class UnsafePath(BadRequest):
    code = "unsafe_path"


def safe_relative(name: str) -> PurePosixPath:
    """Validate a relative path from an archive, a form or a dataset file, without touching disk.

    Rejects NUL, backslashes, absolute and drive paths, empty names and any `..` or `.` part,
    so a checked name can only ever point below the folder it is joined to.
    """
    if not name or "\x00" in name:
        raise UnsafePath(f"Path {name!r} is empty or contains a NUL byte.")
    if "\\" in name:
        raise UnsafePath(f"Path {name!r} contains a backslash; use forward slashes.")
    if name.startswith("/") or _DRIVE.match(name):
        raise UnsafePath(f"Path {name!r} is absolute; only relative paths are allowed.")
    parts = [p for p in name.split("/") if p != ""]
    if not parts or any(p in {"..", "."} for p in parts):
        raise UnsafePath(f"Path {name!r} must not contain '.' or '..' parts.")
    return PurePosixPath(*parts)


def contained(root: Path, name: str | PurePosixPath) -> Path:
    """Join a checked relative name to root and prove the result (links resolved) stays inside."""
    relative = safe_relative(str(name))
    base = root.resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base):
        raise UnsafePath(f"Path {str(name)!r} leaves its folder.")
    return target


def within(root: Path, candidate: Path) -> bool:
    """True when candidate (resolved, links followed) lies inside root."""
    return candidate.resolve().is_relative_to(root.resolve())


class Storage:
    """Folder layout of the workspace; every path is derived from integer ids or generated names."""

    def __init__(self, workspace: Path) -> None:
        self.root = workspace.resolve()

    def ensure(self) -> None:
        for folder in (self.projects_root, self.trash_root, self.tmp_root):
            folder.mkdir(parents=True, exist_ok=True)

    @property
    def projects_root(self) -> Path:
        return self.root / "projects"

    @property
    def trash_root(self) -> Path:
        return self.root / ".trash"

    @property
    def tmp_root(self) -> Path:
        return self.root / ".tmp"

    @property
    def predictor_wake_path(self) -> Path:
        """The named pipe the resident predictor waits on; a byte in it means "new job"."""
        return self.root / ".predictor-wake"

    @property
    def hardware_path(self) -> Path:
        """What the compute workers found (CUDA devices), written by the first one to start."""
        return self.root / "hardware.json"

    @property
    def weights_dir(self) -> Path:
        """Pretrained weights added through the studio (uploads, server folders), searched first."""
        return self.root / "weights"

    def weights_file(self, model_id: str, suffix: str) -> Path:
        """The studio's copy of a catalog model's weights (ids and suffixes are checked by the
        caller against the catalog and SUFFIXES; this refuses anything else)."""
        if not re.fullmatch(r"[a-z0-9_]{1,64}", model_id) or suffix not in WEIGHT_SUFFIXES:
            raise UnsafePath(f"{model_id!r}{suffix!r} is not a weights file name.")
        return self.weights_dir / f"{model_id}{suffix}"

    def project_dir(self, project_id: int) -> Path:
        return self.projects_root / str(int(project_id))

    def images_dir(self, project_id: int) -> Path:
        return self.project_dir(project_id) / "images"

    def thumbs_dir(self, project_id: int) -> Path:
        return self.project_dir(project_id) / "thumbs"

    def masks_dir(self, project_id: int) -> Path:
        return self.project_dir(project_id) / "masks"

    def staging_dir(self, project_id: int) -> Path:
        return self.project_dir(project_id) / "staging"

    def experiment_dir(self, project_id: int, experiment_id: int) -> Path:
        return self.project_dir(project_id) / "experiments" / str(int(experiment_id))

    def export_dir(self, project_id: int, experiment_id: int) -> Path:
        return self.experiment_dir(project_id, experiment_id) / "exports"

    def job_dir(self, job_id: int) -> Path:
        return self.root / "jobs" / str(int(job_id))

    def resolve(self, relative: str) -> Path:
        """A stored workspace-relative path (from a database row) back to an absolute path."""
        return contained(self.root, relative)

    def relative(self, path: Path) -> str:
        """The workspace-relative form stored in database rows."""
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root):
            raise UnsafePath(f"{path} is outside the workspace.")
        return resolved.relative_to(self.root).as_posix()

    def new_name(self, suffix: str) -> str:
        """A generated file name; user-supplied names are display metadata only."""
        clean = suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix) else ""
        return uuid.uuid4().hex + clean

    def remove_tree(self, path: Path) -> None:
        """Delete a folder below the workspace: move it to .trash atomically, then remove it."""
        if not path.exists():
            return
        if not within(self.root, path) or path.resolve() == self.root:
            raise UnsafePath(f"Refusing to delete {path}: not below the workspace.")
        self.trash_root.mkdir(parents=True, exist_ok=True)
        target = self.trash_root / uuid.uuid4().hex
        path.rename(target)
        shutil.rmtree(target, ignore_errors=True)

    def empty_trash(self) -> None:
        if self.trash_root.exists():
            for child in self.trash_root.iterdir():
                shutil.rmtree(child, ignore_errors=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so readers see the old or the new content, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=2, sort_keys=True, default=str).encode())


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())
