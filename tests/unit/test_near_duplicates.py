"""The pigeonhole near-duplicate search agrees with comparing every pair."""

from __future__ import annotations

import itertools
import random

from app.services.stats import near_duplicate_groups


def _brute_force(hashes: list[tuple[int, str]], threshold: int) -> list[list[int]]:
    parent = {i: i for i, _ in hashes}

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for (i, a), (j, b) in itertools.combinations(hashes, 2):
        if len(a) == len(b) and (int(a, 16) ^ int(b, 16)).bit_count() <= threshold:
            parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i, _ in hashes:
        groups.setdefault(find(i), []).append(i)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def test_matches_brute_force_on_clustered_random_hashes() -> None:
    rng = random.Random(3)
    hashes: list[tuple[int, str]] = []
    for image_id in range(400):
        if image_id % 4 and hashes:
            base = int(hashes[rng.randrange(len(hashes))][1], 16)
            for _ in range(rng.randrange(0, 10)):
                base ^= 1 << rng.randrange(64)
        else:
            base = rng.getrandbits(64)
        hashes.append((image_id, f"{base:016x}"))
    hashes.append((1000, "abcd"))  # another length is never compared with 64-bit hashes
    hashes.append((1001, "abcf"))
    hashes.append((1002, "not hex"))
    for threshold in (0, 3, 6, 10):
        groups, distances, truncated = near_duplicate_groups(hashes, threshold)
        assert not truncated
        assert groups == _brute_force(hashes[:-1], threshold)
        assert all(0 <= d <= 64 for d in distances)


def test_short_hashes_and_large_thresholds_use_the_python_search_and_agree() -> None:
    rng = random.Random(5)
    hashes = [(i, f"{rng.getrandbits(12):03x}") for i in range(150)]
    hashes += [(1000 + i, hashes[i][1]) for i in range(5)]  # identical hashes join directly
    for threshold in (0, 2, 9, 10, 11, 12):  # 12-bit hashes: numpy up to 10, Python above
        groups, _, truncated = near_duplicate_groups(hashes, threshold)
        assert not truncated
        assert groups == _brute_force(hashes, threshold)
