"""Split algorithms as pure functions over plain data (numpy only; no database, no sklearn).

Everything here works on *units*: sets of images that must land in the same subset (exact
duplicates, near duplicates, images sharing a group value). A unit's label vector counts, per
class, how many of its images show that class (class presence, so single-label, multi-label,
detection and segmentation projects are all stratified the same way).

Determinism: callers order items by content (sha256) and classes by name, never by row id, so
the same seed and the same data give the same assignment on SQLite and PostgreSQL. The only
randomness is one `numpy.random.default_rng(seed)` permutation of the units.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Item:
    """One image as the algorithms see it."""

    sha256: str
    labels: frozenset[str] = frozenset()
    group: str | None = None
    phash: str = ""


@dataclass
class Unit:
    """Images that must stay together; `key` is a content-derived stable sort key."""

    key: str
    members: list[int]
    labels: Counter[str] = field(default_factory=Counter)

    @property
    def size(self) -> int:
        return len(self.members)


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass(frozen=True)
class DuplicateReport:
    exact_groups: list[list[int]]
    near_pairs: list[tuple[int, int, int]]  # (i, j, hamming distance), i < j

    @property
    def exact_images(self) -> int:
        return sum(len(g) for g in self.exact_groups)


def _hash_bytes(value: str) -> bytes | None:
    try:
        return bytes.fromhex(value) if value else None
    except ValueError:
        return None


def find_duplicates(items: Sequence[Item], near_threshold: int | None) -> DuplicateReport:
    """Exact duplicates by sha256; near duplicates by perceptual-hash Hamming distance.

    Hashes of any (equal) hex length are compared; only hashes of the same length are
    compared with each other. Distances are computed blockwise with XOR and popcount, so a few
    thousand images take milliseconds and memory stays bounded.
    """
    import numpy as np

    by_sha: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        by_sha.setdefault(item.sha256, []).append(index)
    exact = [members for members in by_sha.values() if len(members) > 1]
    pairs: list[tuple[int, int, int]] = []
    if near_threshold is not None and near_threshold >= 0:
        by_length: dict[int, list[tuple[int, bytes]]] = {}
        for index, item in enumerate(items):
            raw = _hash_bytes(item.phash)
            if raw:
                by_length.setdefault(len(raw), []).append((index, raw))
        for length, hashed in sorted(by_length.items()):
            if len(hashed) < 2:
                continue
            idx = [i for i, _ in hashed]
            matrix = np.frombuffer(b"".join(raw for _, raw in hashed), dtype=np.uint8)
            matrix = matrix.reshape(len(hashed), length)
            if length % 8 == 0:
                matrix = matrix.view(np.uint64)
            block = max(1, 4_000_000 // (len(hashed) * matrix.shape[1]))
            for start in range(0, len(hashed), block):
                chunk = matrix[start : start + block]
                distance = np.bitwise_count(chunk[:, None, :] ^ matrix[None, :, :]).sum(axis=2)
                rows, cols = np.nonzero(distance <= near_threshold)
                for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
                    a, b = start + r, c
                    if a < b and items[idx[a]].sha256 != items[idx[b]].sha256:
                        pairs.append((idx[a], idx[b], int(distance[r, c])))
    return DuplicateReport(exact_groups=exact, near_pairs=sorted(pairs))


def build_units(
    items: Sequence[Item],
    *,
    near_pairs: Sequence[tuple[int, int, int]] = (),
    by_group: bool = False,
) -> list[Unit]:
    """Merge items into units: same sha256, the given near-duplicate pairs, same group value.

    Items without a group value (when grouping) stay units of their own (with their
    duplicates). Units are returned sorted by their key (the smallest member sha256, or the
    group value), which depends on content only.
    """
    uf = _UnionFind(len(items))
    first_by_sha: dict[str, int] = {}
    first_by_group: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.sha256 in first_by_sha:
            uf.union(first_by_sha[item.sha256], index)
        else:
            first_by_sha[item.sha256] = index
        if by_group and item.group is not None:
            if item.group in first_by_group:
                uf.union(first_by_group[item.group], index)
            else:
                first_by_group[item.group] = index
    for a, b, _ in near_pairs:
        uf.union(a, b)
    members: dict[int, list[int]] = {}
    for index in range(len(items)):
        members.setdefault(uf.find(index), []).append(index)
    units = []
    for group_members in members.values():
        groups = sorted({g for i in group_members if (g := items[i].group) is not None})
        shas = sorted(items[i].sha256 for i in group_members)
        key = ("g:" + groups[0]) if by_group and groups else ("s:" + shas[0])
        labels: Counter[str] = Counter()
        for i in group_members:
            labels.update(items[i].labels)
        units.append(Unit(key=key, members=sorted(group_members), labels=labels))
    units.sort(key=lambda unit: unit.key)
    return units


def iterative_stratification(
    units: Sequence[Unit], ratios: Mapping[str, float], seed: int
) -> list[str]:
    """Assign each unit to a subset so every class's image share follows the ratios.

    Sechidis et al.'s iterative stratification, weighted by unit size: repeatedly take the
    class with the fewest unassigned images and hand each unit showing it (largest first, then
    in seeded random order) to a subset. While some subset is short of a whole image of that
    class (its floor(ratio * n)), the one that wants the most gets it; after that, the
    fractional remainder goes to the subset with the largest class demand x share of the subset
    still empty, so small classes do not all fall to the largest subset and subset sizes follow
    the ratios. Units without classes fill the remaining overall demand. For single-label data
    every class ends within one image of its ideal count in every subset (the owed phase never
    takes a subset below zero demand, the remainder phase only gives to subsets still wanting
    some). Returns one subset name per unit, in the units' order.
    """
    import numpy as np

    names = [name for name, ratio in ratios.items() if ratio > 0]
    if not names:
        raise ValueError("at least one ratio must be positive")
    total_ratio = sum(ratios[name] for name in names)
    share = np.array([ratios[name] / total_ratio for name in names])
    order = np.random.default_rng(seed).permutation(len(units))
    rank = np.empty(len(units), dtype=np.int64)
    rank[order] = np.arange(len(units))

    classes = sorted({label for unit in units for label in unit.labels})
    class_index = {name: i for i, name in enumerate(classes)}
    totals = np.zeros(len(classes))
    for unit in units:
        for label, count in unit.labels.items():
            totals[class_index[label]] += count
    want_class = share[:, None] * totals[None, :]
    want_total = share * sum(unit.size for unit in units)
    capacity = np.maximum(want_total.copy(), 1e-9)

    assignment: list[str | None] = [None] * len(units)
    remaining = totals.copy()

    def commit(u: int, best: int) -> None:
        assignment[u] = names[best]
        unit = units[u]
        for label, count in unit.labels.items():
            want_class[best, class_index[label]] -= count
            remaining[class_index[label]] -= count
        want_total[best] -= unit.size

    def pick(candidates: list[int], *keys: np.ndarray) -> int:
        # lexicographic over the given demand arrays; the ratios' order breaks exact ties
        return max(candidates, key=lambda s: (*(float(k[s]) for k in keys), -s))

    def place_for_class(u: int, c: int) -> None:
        wants = want_class[:, c]
        # the share of each subset still empty weighs who gets a class's fractional remainder
        # (class demand x emptiness), so small classes do not all fall to the largest subset
        # and subset sizes follow the ratios even for many rare, co-occurring classes
        spare = want_total / capacity
        owed = [s for s in range(len(names)) if wants[s] >= 1]
        if owed:  # someone is still short of its floor(ratio * n) of this class
            commit(u, pick(owed, wants, spare))
            return
        open_ = [s for s in range(len(names)) if wants[s] > 0]
        if open_:
            commit(u, pick(open_, wants * spare, wants))
        else:  # every subset has its share of this class (multi-label overshoot): fill by size
            commit(u, pick(list(range(len(names))), spare))

    while True:
        open_classes = [c for c in range(len(classes)) if remaining[c] > 0]
        if not open_classes:
            break
        rarest = min(open_classes, key=lambda c: (remaining[c], classes[c]))
        label = classes[rarest]
        todo = [u for u in range(len(units)) if assignment[u] is None and label in units[u].labels]
        todo.sort(key=lambda u: (-units[u].size, rank[u]))
        for u in todo:
            place_for_class(u, rarest)
    rest = [u for u in range(len(units)) if assignment[u] is None]
    rest.sort(key=lambda u: (-units[u].size, rank[u]))
    for u in rest:
        commit(u, pick(list(range(len(names))), want_total))
    return [name for name in assignment if name is not None]


def fold_names(k: int) -> list[str]:
    return [str(f) for f in range(k)]


def assign_folds(units: Sequence[Unit], k: int, seed: int) -> list[int]:
    """Stratified (group) k-fold: each unit's validation fold, classes balanced across folds."""
    if k < 2:
        raise ValueError("k must be at least 2")
    subsets = iterative_stratification(units, dict.fromkeys(fold_names(k), 1.0), seed)
    return [int(name) for name in subsets]


def expand(units: Sequence[Unit], per_unit: Sequence[str], n_items: int) -> list[str]:
    """Per-unit subsets back to one subset per item."""
    result = [""] * n_items
    for unit, subset in zip(units, per_unit, strict=True):
        for index in unit.members:
            result[index] = subset
    return result


def class_counts(items: Sequence[Item], indices: Sequence[int]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for index in indices:
        counts.update(items[index].labels)
    return counts


def max_class_deviation(
    items: Sequence[Item], subsets: Sequence[str], ratios: Mapping[str, float]
) -> float:
    """Largest |actual - ideal| image count of any class in any subset (quality figure)."""
    total_ratio = sum(r for r in ratios.values() if r > 0)
    totals = class_counts(items, range(len(items)))
    worst = 0.0
    for name, ratio in ratios.items():
        if ratio <= 0:
            continue
        members = [i for i, subset in enumerate(subsets) if subset == name]
        counts = class_counts(items, members)
        for label, total in totals.items():
            worst = max(worst, abs(counts.get(label, 0) - ratio / total_ratio * total))
    return worst
