"""The pure split algorithms: stratification quality, determinism, containment, folds."""

from __future__ import annotations

import hashlib
import random
from collections import Counter

import pytest

from app.services.split_strategies import (
    Item,
    assign_folds,
    build_units,
    expand,
    find_duplicates,
    iterative_stratification,
    max_class_deviation,
)

RATIOS = {"train": 0.8, "val": 0.1, "test": 0.1}


def sha(i: object) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def single_label(n: int, classes: int, seed: int = 0) -> list[Item]:
    rng = random.Random(seed)
    # unbalanced on purpose: class c is drawn with weight c + 1
    weights = [c + 1 for c in range(classes)]
    return [
        Item(sha256=sha(i), labels=frozenset({f"c{rng.choices(range(classes), weights)[0]}"}))
        for i in range(n)
    ]


def split(items: list[Item], ratios: dict[str, float], seed: int, **kw: object) -> list[str]:
    units = build_units(items, **kw)  # type: ignore[arg-type]
    return expand(units, iterative_stratification(units, ratios, seed), len(items))


@pytest.mark.parametrize("seed", [0, 1, 42])
@pytest.mark.parametrize("ratios", [RATIOS, {"train": 0.7, "val": 0.15, "test": 0.15}])
def test_single_label_every_class_within_one_image_of_its_ideal(
    seed: int, ratios: dict[str, float]
) -> None:
    items = single_label(997, 12, seed)
    subsets = split(items, ratios, seed)
    assert max_class_deviation(items, subsets, ratios) < 1.0
    sizes = Counter(subsets)
    for name, ratio in ratios.items():
        assert abs(sizes[name] - ratio * len(items)) <= 6  # totals follow as well


def test_multi_label_every_class_reaches_every_subset() -> None:
    rng = random.Random(3)
    items = [
        Item(sha256=sha(i), labels=frozenset(f"c{rng.randrange(15)}" for _ in range(3)))
        for i in range(600)
    ]
    subsets = split(items, RATIOS, 5)
    for name in RATIOS:
        present = {
            label
            for item, s in zip(items, subsets, strict=True)
            if s == name
            for label in item.labels
        }
        assert present == {f"c{c}" for c in range(15)}
    assert max_class_deviation(items, subsets, RATIOS) <= 4


def test_same_seed_same_assignment_and_other_seed_differs() -> None:
    items = single_label(300, 5)
    assert split(items, RATIOS, 9) == split(items, RATIOS, 9)
    assert split(items, RATIOS, 9) != split(items, RATIOS, 10)
    # units are ordered by content, so the row order (row ids differ per database) is irrelevant
    shuffled = sorted(items, key=lambda item: item.sha256[::-1])
    by_sha = dict(zip([i.sha256 for i in shuffled], split(shuffled, RATIOS, 9), strict=True))
    assert [by_sha[i.sha256] for i in items] == split(items, RATIOS, 9)


def test_exact_and_near_duplicates_and_groups_stay_together() -> None:
    items = single_label(200, 4)
    copies = [Item(sha256=items[i].sha256, labels=items[i].labels) for i in range(0, 40, 2)]
    items = items + copies
    # near duplicates: 64-bit hashes one bit apart
    items = [
        Item(sha256=it.sha256, labels=it.labels, phash=f"{(i // 2) * 8:016x}" if i < 60 else "")
        for i, it in enumerate(items)
    ]
    report = find_duplicates(items, near_threshold=1)
    assert len(report.exact_groups) == 20
    assert report.near_pairs
    subsets = split(items, RATIOS, 1, near_pairs=report.near_pairs)
    by_sha: dict[str, set[str]] = {}
    for item, subset in zip(items, subsets, strict=True):
        by_sha.setdefault(item.sha256, set()).add(subset)
    assert all(len(s) == 1 for s in by_sha.values())
    for a, b, _ in report.near_pairs:
        assert subsets[a] == subsets[b]

    grouped = [
        Item(sha256=sha(f"g{i}"), labels=frozenset({f"c{i % 3}"}), group=f"site{i % 17}")
        for i in range(340)
    ]
    subsets = split(grouped, RATIOS, 4, by_group=True)
    where: dict[str | None, set[str]] = {}
    for item, subset in zip(grouped, subsets, strict=True):
        where.setdefault(item.group, set()).add(subset)
    assert all(len(s) == 1 for s in where.values())
    assert set(subsets) == set(RATIOS)


def test_near_duplicate_distance_is_hamming_on_64_bits() -> None:
    items = [
        Item(sha256=sha(1), phash="ffffffffffffffff"),
        Item(sha256=sha(2), phash="fffffffffffffff0"),  # 4 bits away
        Item(sha256=sha(3), phash="0000000000000000"),
        Item(sha256=sha(4), phash="not hex"),
    ]
    assert find_duplicates(items, 3).near_pairs == []
    assert find_duplicates(items, 4).near_pairs == [(0, 1, 4)]
    # longer hashes (e.g. 256-bit) work too; hashes of other lengths are never compared
    long = [
        Item(sha256=sha(5), phash="f" * 64),
        Item(sha256=sha(6), phash="f" * 63 + "e"),
        Item(sha256=sha(7), phash="ff"),
    ]
    assert find_duplicates(long, 1).near_pairs == [(0, 1, 1)]


def test_near_duplicates_scale_to_thousands_of_hashes() -> None:
    import time

    rng = random.Random(1)
    items = [Item(sha256=sha(i), phash=f"{rng.getrandbits(64):016x}") for i in range(5000)]
    items.append(Item(sha256=sha("copy"), phash=items[42].phash))
    started = time.perf_counter()
    pairs = find_duplicates(items, 6).near_pairs
    assert time.perf_counter() - started < 20
    assert (42, 5000, 0) in pairs


@pytest.mark.parametrize("k", [2, 5, 7])
def test_folds_cover_every_unit_once_and_balance_classes(k: int) -> None:
    items = single_label(503, 6, seed=k)
    units = build_units(items)
    folds = assign_folds(units, k, seed=42)
    assert len(folds) == len(units) and set(folds) == set(range(k))
    per_item = expand(units, [str(f) for f in folds], len(items))
    ratios = {str(f): 1.0 / k for f in range(k)}
    assert max_class_deviation(items, per_item, ratios) < 1.0
    sizes = Counter(per_item).values()
    assert max(sizes) - min(sizes) <= 6
