"""A dataset's class taxonomy: `taxonomy.csv` (`class,parent`) at the source root.

Any format may carry one; the import creates parent classes that are not in the data yet (the
coarse groups) and sets each listed class's parent. Cycles are refused with the classes named,
here for the file and again at commit time against the project's existing parents.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from app.importers.base import ImportProblem, read_text

TAXONOMY_FILE = "taxonomy.csv"
MAX_BYTES = 4 * 1024 * 1024


def is_taxonomy(root: Path, path: Path) -> bool:
    """Whether `path` is the source's taxonomy file (annotation readers skip it)."""
    return path.parent == root and path.name.lower() == TAXONOMY_FILE


def find_cycle(parents: dict[str, str]) -> list[str] | None:
    """The classes of one cycle in a child → parent map, in order; None when there is none."""
    for start in parents:
        path: list[str] = []
        seen: set[str] = set()
        current: str | None = start
        while current is not None and current in parents:
            if current in seen:
                return path[path.index(current) :]
            seen.add(current)
            path.append(current)
            current = parents[current]
    return None


def cycle_problem(cycle: list[str], source: str) -> ImportProblem:
    chain = " → ".join([*cycle, cycle[0]])
    return ImportProblem(
        f"The taxonomy in {source} contains a cycle ({chain}); each class needs a parent that "
        "is not below it.",
        code="taxonomy_cycle",
        details={"classes": cycle},
    )


def read_taxonomy(root: Path) -> dict[str, str]:
    """{class: parent} from `taxonomy.csv` at the root; {} when there is no such file."""
    path = next(
        (p for p in root.iterdir() if p.is_file() and not p.is_symlink() and is_taxonomy(root, p)),
        None,
    )
    if path is None:
        return {}
    rows = list(csv.reader(io.StringIO(read_text(path, MAX_BYTES))))
    rows = [[cell.strip() for cell in row] for row in rows if any(c.strip() for c in row)]
    if rows and [c.lower() for c in rows[0][:2]] == ["class", "parent"]:
        rows = rows[1:]
    parents: dict[str, str] = {}
    for number, row in enumerate(rows, start=2):
        if len(row) < 2 or not row[0] or not row[1]:
            raise ImportProblem(
                f"{path.name} line {number}: each row needs a class and its parent "
                "(header `class,parent`).",
                code="invalid_taxonomy",
                details={"line": number},
            )
        child, parent = row[0][:200], row[1][:200]
        if child == parent:
            raise cycle_problem([child], path.name)
        if parents.get(child, parent) != parent:
            raise ImportProblem(
                f"{path.name}: class {child!r} has two parents ({parents[child]!r} and "
                f"{parent!r}); give each class one parent.",
                code="invalid_taxonomy",
                details={"classes": [child]},
            )
        parents[child] = parent
    cycle = find_cycle(parents)
    if cycle:
        raise cycle_problem(cycle, path.name)
    return parents
