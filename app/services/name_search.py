"""File-name search for the dataset grid: which index the database has, and the filter it makes.

Migration 5c1e2b7d9a41 builds one of three structures, and the search follows it:
- SQLite: an FTS5 trigram table (`image_name_fts`): names *containing* the text, from the
  index for 3 characters or more (a trigram needs three); shorter texts scan the names.
  A phrase match reads the posting list of every trigram of the text, and trigrams that every
  name shares (`img`, `dir`) have lists as long as the project; so the search first counts,
  capped, how many names hold each trigram and, when one is rare, matches that trigram alone
  and checks the whole text on those few names (`_rare_plan`).
- PostgreSQL with pg_trgm: a GIN trigram index; names containing the text (ILIKE).
- PostgreSQL without pg_trgm (not installed, or no right to create it): a prefix index on
  lower(original_name); names *starting with* the text, so the search stays an index lookup.
Matching ignores letter case everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    BindParameter,
    Integer,
    LargeBinary,
    and_,
    bindparam,
    cast,
    column,
    func,
    or_,
    text,
)
from sqlmodel import Session, col

from app.models import Image
from app.models.image import NAME_SEARCH_INDEXES, NAME_SEARCH_TABLE

SearchMode = Literal["contains", "prefix"]
TRIGRAM = 3


# A trigram held by fewer names than this is "rare": its names are the candidates, and the
# list sorts them all in one query that also counts them (app.services.images).
RARE = 4096
# At most this many of a long text's trigrams are counted (any one of them gives a superset).
PROBES = 12


@dataclass(frozen=True)
class NameFilter:
    """A clause on image rows, a set of image ids (from the FTS table, which holds every
    project's names: not scoped to one project), or both (candidate ids and the exact check).
    `bound`, when known, is at most how many ids the set holds."""

    clause: Any = None
    ids: Any = None
    bound: int | None = None


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _index(session: Session) -> str | None:
    """The search structure this database has: the FTS table, one of the indexes, or None."""
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        found = session.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'table' AND name = :name"),
            {"name": NAME_SEARCH_TABLE},
        ).first()
        return NAME_SEARCH_TABLE if found else None
    if bind.dialect.name == "postgresql":
        rows = session.execute(
            text("SELECT indexname FROM pg_indexes WHERE tablename = 'image'")
        ).all()
        names = {row[0] for row in rows}
        return next((name for name in NAME_SEARCH_INDEXES if name in names), None)
    return None


def search_mode(session: Session) -> SearchMode:
    """What the search box matches on this database: names containing or starting with it."""
    return "prefix" if _index(session) == "ix_image_name_prefix" else "contains"


def name_filter(session: Session, q: str) -> NameFilter:
    """The grid's `q` as a filter, served by whichever index the database has."""
    index = _index(session)
    name = col(Image.original_name)
    if index == "ix_image_name_prefix":
        pattern = _escape_like(q.lower()) + "%"
        return NameFilter(clause=func.lower(name).like(pattern, escape="\\"))
    if index == NAME_SEARCH_TABLE and len(q) >= TRIGRAM:
        return _rare_plan(session, q) or NameFilter(ids=_matching(q))
    pattern = f"%{_escape_like(q)}%"
    # SQLite's LIKE already ignores ASCII case; lower() would only cost time there.
    if session.get_bind().dialect.name == "sqlite":
        return NameFilter(clause=name.like(pattern, "\\"))
    return NameFilter(clause=name.ilike(pattern, "\\"))


def _phrase(q: str) -> str:
    return '"' + q.replace('"', '""') + '"'


def _matching(q: str) -> Any:
    """Ids of the names containing q (every project's), from the FTS table. The parameter is
    unique: a text clause's parameters otherwise merge by name, and one statement may hold two
    of these (a rare trigram's and the whole text's)."""
    phrase: BindParameter[str] = bindparam("phrase", _phrase(q), unique=True)
    return (
        text("SELECT rowid FROM image_name_fts WHERE image_name_fts MATCH :phrase")
        .bindparams(phrase)
        .columns(column("rowid", Integer))
    )


def _rare_plan(session: Session, q: str) -> NameFilter | None:
    """Names holding q's rarest trigram as candidates, checked for all of q; None when no
    trigram is rare (the phrase match is then no dearer than the candidates) or q is not ASCII.

    The check gives what the phrase match gives: for an ASCII text and an ASCII name, FTS5's
    case folding and LIKE's are the same (ASCII letters), so LIKE decides; a name with other
    characters (which FTS5 folds by Unicode rules, LIKE does not: the Kelvin sign matches `k`)
    that LIKE rejects is asked of the phrase match itself, which SQLite then runs once, and
    only if such a name is among the candidates.
    """
    if not q.isascii():
        return None
    trigrams = list(dict.fromkeys(q[i : i + TRIGRAM].lower() for i in range(len(q) - 2)))
    step = max(1, -(-len(trigrams) // PROBES))
    held, rarest = RARE, ""
    for trigram in trigrams[::step]:
        # Counted up to the rarest so far: a common trigram costs no more than that.
        count = session.execute(
            text(
                "SELECT count(*) FROM (SELECT 1 FROM image_name_fts "
                "WHERE image_name_fts MATCH :phrase LIMIT :cap)"
            ),
            {"phrase": _phrase(trigram), "cap": held},
        ).scalar_one()
        if count < held:
            held, rarest = int(count), trigram
        if not held:
            break
    if not rarest:
        return None
    name = col(Image.original_name)
    # A LIKE match is a phrase match (it matched ASCII characters, which FTS5 folds the same
    # way); only a name with other characters that LIKE rejects needs the phrase match.
    ascii_name = func.length(name) == func.length(cast(name, LargeBinary))
    check = or_(
        name.like(f"%{_escape_like(q)}%", "\\"),
        and_(~ascii_name, col(Image.id).in_(_matching(q))),
    )
    return NameFilter(clause=check, ids=_matching(rarest), bound=held)
