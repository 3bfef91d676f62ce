"""The studio works without internet: no page or script refers to a remote host."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REMOTE = re.compile(r"""(src|href)\s*=\s*["'](https?:)?//""", re.IGNORECASE)
TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))
OWN_SCRIPTS = sorted((ROOT / "static").glob("js/*.js"))


@pytest.mark.parametrize("path", TEMPLATES + OWN_SCRIPTS, ids=lambda p: p.name)
def test_no_remote_src_or_href(path: Path) -> None:
    assert not REMOTE.search(path.read_text()), f"{path} loads something from another host"


def test_vendored_files_match_their_checksums() -> None:
    vendor = ROOT / "static" / "vendor"
    lines = (vendor / "SHA256SUMS").read_text().split("\n")
    listed = {}
    for line in filter(None, lines):
        digest, name = line.split()
        listed[name] = digest
    assert listed, "SHA256SUMS is empty"
    for name, digest in listed.items():
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
    shipped = {p.name for p in vendor.iterdir() if p.suffix in {".js", ".css"}}
    assert shipped == set(listed), "every vendored file must be listed in SHA256SUMS"
