"""A dataset's class taxonomy: `taxonomy.csv` (`class,parent`) at the source root, or (an
import option) class folders nested `coarse/fine/...`.

Any format may carry a taxonomy.csv; the import creates parent classes that are not in the data
yet (the coarse groups) and sets each listed class's parent. Cycles are refused with the classes
named, here for the file and again at commit time against the project's existing parents.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from app.importers.base import ImportProblem, ReadResult, SampleAnnotation, read_text

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


def taxonomy_problem(message: str, classes: list[str]) -> ImportProblem:
    """A taxonomy that cannot be read as one tree, naming the classes at fault."""
    return ImportProblem(message, code="invalid_taxonomy", details={"classes": classes})


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
            raise taxonomy_problem(
                f"{path.name}: class {child!r} has two parents ({parents[child]!r} and "
                f"{parent!r}); give each class one parent.",
                [child],
            )
        parents[child] = parent
    cycle = find_cycle(parents)
    if cycle:
        raise cycle_problem(cycle, path.name)
    return parents


def apply_folder_taxonomy(result: ReadResult) -> None:
    """Class folders `coarse/fine/...` (the `taxonomy_from_folders` import option): each image
    is labelled with its second folder, whose parent is the first; folders below the second stay
    the `folder` attribute. Without the option the first folder is the class and everything
    below it the `folder` attribute (what a domain-per-folder set needs), so this is opt-in.
    Merged into `result.taxonomy` (a taxonomy.csv may add the levels above the coarse one)."""
    if result.format != "folders":
        raise ImportProblem(
            f"taxonomy_from_folders reads nested class folders (coarse/fine/image); this source "
            f"was read as {result.format!r}. Import it without the option, or ship a "
            "taxonomy.csv.",
            code="taxonomy_needs_folders",
        )
    flat = [s.path for s in result.samples if not s.attributes.get("folder")]
    if flat:
        nested = len(result.samples) - len(flat)
        raise ImportProblem(
            f"taxonomy_from_folders needs every image two folders deep (coarse/fine/image); "
            f"{len(flat)} of {len(result.samples)} sit directly in a class folder (first: "
            f"{flat[0]}) while {nested} are nested. Move them into a fine-class folder, or "
            "import without the option.",
            code="taxonomy_folder_depth",
            details={"files": flat[:50], "flat": len(flat), "nested": nested},
        )
    parents: dict[str, str] = {}
    for sample in result.samples:
        coarse = str(sample.annotations[0].label)
        fine, _, rest = str(sample.attributes["folder"]).partition("/")
        if parents.get(fine, coarse) != coarse:
            raise taxonomy_problem(
                f"Fine class folder {fine!r} sits under two coarse folders ({parents[fine]!r} "
                f"and {coarse!r}); give each fine class one coarse group (rename one folder).",
                [fine],
            )
        parents[fine] = coarse
        sample.annotations = [SampleAnnotation("label", fine)]
        sample.attributes = {k: v for k, v in sample.attributes.items() if k != "folder"}
        if rest:
            sample.attributes["folder"] = rest
    both = sorted(set(parents) & set(parents.values()))
    if both:
        raise taxonomy_problem(
            f"{', '.join(both[:20])} is both a coarse folder and a fine-class folder; a class "
            "is either a group or a fine class.",
            both,
        )
    for child, parent in result.taxonomy.items():
        if parents.get(child, parent) != parent:
            raise taxonomy_problem(
                f"{TAXONOMY_FILE} gives {child!r} the parent {parent!r}; its folder says "
                f"{parents[child]!r}.",
                [child],
            )
    merged = {**result.taxonomy, **parents}
    cycle = find_cycle(merged)
    if cycle:
        raise cycle_problem(cycle, "the class folders with taxonomy.csv")
    result.taxonomy = merged
    result.classes = sorted(parents)
