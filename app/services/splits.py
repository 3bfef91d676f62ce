"""Splits: immutable assignments of a project's images to subsets (and folds).

The fingerprint is what experiments and evaluations record to prove which images they saw:
SHA-256 over the sorted `subset|fold|sha256` lines of every member, so it depends on image
content, not on row ids, and is identical on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlmodel import Session, col, select

from app.models import Image, SplitMember


def fingerprint_lines(lines: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for line in sorted(lines):
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def member_line(subset: str, fold: int | None, sha256: str) -> str:
    return f"{subset}|{'' if fold is None else fold}|{sha256}"


def compute_fingerprint(session: Session, split_id: int) -> str:
    """Recompute a saved split's fingerprint from its members and the images' hashes."""
    rows = session.exec(
        select(SplitMember.subset, SplitMember.fold, Image.sha256)
        .join(Image, col(Image.id) == col(SplitMember.image_id))
        .where(SplitMember.split_id == split_id)
    ).all()
    return fingerprint_lines(member_line(subset, fold, sha) for subset, fold, sha in rows)
