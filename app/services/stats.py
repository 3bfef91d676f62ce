"""Dataset statistics: counts, class distribution, image sizes, exact and near duplicates."""

from __future__ import annotations

import itertools
from collections import defaultdict

from sqlalchemy import distinct, func
from sqlmodel import Session, col, select

from app.models import Annotation, Image, LabelClass
from app.models.browse import ClassCount, DatasetStats, Dimension, DuplicateGroup, SizeBucket
from app.models.split import NEAR_DUPLICATE_BITS
from app.services import targets
from app.services.projects import get_project

# Longest side, in pixels: where images of a dataset usually differ.
SIZE_EDGES = (0, 64, 128, 256, 512, 1024, 2048, 4096)
MAX_GROUPS = 50  # duplicate groups returned; the total is reported separately
MAX_CANDIDATES = 2_000_000  # near-duplicate pairs compared before giving up (reported)
DEFAULT_NEAR_THRESHOLD = NEAR_DUPLICATE_BITS


def _size_histogram(dims: list[tuple[int, int, int]]) -> list[SizeBucket]:
    buckets = []
    for i, low in enumerate(SIZE_EDGES):
        high = SIZE_EDGES[i + 1] if i + 1 < len(SIZE_EDGES) else None
        count = sum(
            n for w, h, n in dims if max(w, h) >= low and (high is None or max(w, h) < high)
        )
        label = f"{low}-{high - 1} px" if high is not None else f"≥ {low} px"
        buckets.append(SizeBucket(label=label, min_side=low, max_side=high, count=count))
    return buckets


def _groups(
    members: list[list[int]], names: dict[int, str], distances: list[int] | None = None
) -> list[DuplicateGroup]:
    return [
        DuplicateGroup(
            image_ids=ids,
            names=[names.get(i, "") for i in ids],
            distance=distances[k] if distances else 0,
        )
        for k, ids in enumerate(members[:MAX_GROUPS])
    ]


def _close_pairs_python(
    values: list[int], bits: int, threshold: int
) -> tuple[list[tuple[int, int]], bool]:
    """Pigeonhole search on Python ints (any hash length): two values within `threshold` bits
    agree exactly on at least one of `threshold + 1` chunks, so only chunk-mates are compared."""
    chunks = max(1, min(threshold + 1, bits))
    width = -(-bits // chunks)
    mask = (1 << width) - 1
    pairs: set[tuple[int, int]] = set()
    compared = 0
    for c in range(chunks):
        buckets: dict[int, list[int]] = defaultdict(list)
        for index, value in enumerate(values):
            buckets[(value >> (c * width)) & mask].append(index)
        for bucket in buckets.values():
            for position, a in enumerate(bucket):
                for b in bucket[position + 1 :]:
                    compared += 1
                    if compared > MAX_CANDIDATES:
                        return sorted(pairs), True
                    if (values[a] ^ values[b]).bit_count() <= threshold:
                        pairs.add((a, b))
    return sorted(pairs), False


def _close_pairs_numpy(
    values: list[int], bits: int, threshold: int
) -> tuple[list[tuple[int, int]], bool]:
    """The same search vectorized for hashes of at most 64 bits, with threshold + 2 chunks:
    close values then agree on at least two chunks, so keying on chunk pairs (16 bits for a
    64-bit hash at threshold 6) keeps buckets tiny even for 100k images."""
    import numpy as np

    array = np.array(values, dtype=np.uint64)
    chunks = threshold + 2
    width = -(-bits // chunks)
    mask = np.uint64((1 << width) - 1)
    parts = [(array >> np.uint64(c * width)) & mask for c in range(chunks)]
    found: list[tuple[int, int]] = []
    compared = 0
    for a, b in itertools.combinations(range(chunks), 2):
        key = (parts[a] << np.uint64(width)) | parts[b]
        order = np.argsort(key, kind="stable")
        ordered = key[order]
        # Equal keys are contiguous once sorted: pair each entry with the one k places on.
        for k in range(1, len(values)):
            same = ordered[k:] == ordered[:-k]
            if not same.any():
                break
            left, right = order[:-k][same], order[k:][same]
            compared += len(left)
            if compared > MAX_CANDIDATES * 10:
                return sorted(set(found)), True
            close = np.bitwise_count(array[left] ^ array[right]) <= threshold
            found.extend(zip(left[close].tolist(), right[close].tolist(), strict=True))
    return sorted({(min(a, b), max(a, b)) for a, b in found}), False


def near_duplicate_groups(
    hashes: list[tuple[int, str]], threshold: int
) -> tuple[list[list[int]], list[int], bool]:
    """Groups of image ids whose perceptual hashes differ in at most `threshold` bits.

    Identical hashes are joined directly and the search runs on distinct values only, so a
    dataset full of blank images stays cheap. Hashes of different lengths are never compared.
    Returns groups (ids ascending, groups by their first id), each group's largest distance to
    its first member, and whether the comparison budget ran out (the groups are then partial).
    """
    by_length: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for image_id, text in hashes:
        try:
            by_length[len(text) * 4][int(text, 16)].append(image_id)
        except ValueError:
            continue  # not hex: treated like a missing hash
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: int, b: int) -> None:
        parent[find(a)] = find(b)

    values: dict[int, int] = {}
    truncated = False
    for bits, by_value in by_length.items():
        distinct = list(by_value)
        for value, ids in by_value.items():
            for image_id in ids:
                values[image_id] = value
                union(ids[0], image_id)
        search = _close_pairs_numpy if 0 < bits <= 64 and bits >= threshold + 2 else None
        pairs, cut = (search or _close_pairs_python)(distinct, bits, threshold)
        truncated = truncated or cut
        for a, b in pairs:
            union(by_value[distinct[a]][0], by_value[distinct[b]][0])
    grouped: dict[int, list[int]] = defaultdict(list)
    for image_id in list(parent):
        grouped[find(image_id)].append(image_id)
    groups = sorted((sorted(ids) for ids in grouped.values() if len(ids) > 1), key=lambda g: g[0])
    distances = [max((values[g[0]] ^ values[other]).bit_count() for other in g[1:]) for g in groups]
    return groups, distances, truncated


def class_pixels(session: Session, project_id: int) -> dict[int, int]:
    """Mask pixels per class id, from the `pixels` attribute index masks record per class."""
    counted = Annotation.attributes["pixels"].as_integer()
    rows = session.exec(
        select(Annotation.class_id, func.sum(counted))
        .where(
            col(Annotation.project_id) == project_id,
            col(Annotation.kind) == "mask",
            col(Annotation.class_id).is_not(None),
            counted.is_not(None),
        )
        .group_by(col(Annotation.class_id))
    ).all()
    return {int(cid): int(n or 0) for cid, n in rows if cid is not None and n}


def dataset_stats(
    *, session: Session, project_id: int, near_threshold: int = DEFAULT_NEAR_THRESHOLD
) -> DatasetStats:
    """Everything the dataset page's charts and duplicate panel show, in one answer."""
    get_project(session=session, project_id=project_id)
    in_project = col(Image.project_id) == project_id
    image_count = int(session.exec(select(func.count()).where(in_project)).one())
    bytes_total = int(
        session.exec(select(func.coalesce(func.sum(Image.bytes), 0)).where(in_project)).one()
    )
    annotated = int(
        session.exec(
            select(func.count(distinct(col(Annotation.image_id)))).where(
                col(Annotation.project_id) == project_id
            )
        ).one()
    )
    by_kind = {
        str(kind): int(n)
        for kind, n in session.exec(
            select(Annotation.kind, func.count())
            .where(col(Annotation.project_id) == project_id)
            .group_by(col(Annotation.kind))
        ).all()
    }
    per_class = {
        int(cid): (int(images), int(n))
        for cid, images, n in session.exec(
            select(
                Annotation.class_id, func.count(distinct(col(Annotation.image_id))), func.count()
            )
            .where(col(Annotation.project_id) == project_id, col(Annotation.class_id).is_not(None))
            .group_by(col(Annotation.class_id))
        ).all()
        if cid is not None
    }
    pixels = class_pixels(session, project_id)
    classes = session.exec(
        select(LabelClass)
        .where(LabelClass.project_id == project_id)
        .order_by(col(LabelClass.index))
    ).all()
    distribution = [
        ClassCount(
            class_id=c.id,
            name=c.name,
            color=c.color,
            images=per_class.get(c.id, (0, 0))[0],
            annotations=per_class.get(c.id, (0, 0))[1],
            pixels=pixels.get(c.id, 0) if pixels else None,
        )
        for c in classes
        if c.id is not None
    ]
    dims = [
        (int(w), int(h), int(n))
        for w, h, n in session.exec(
            select(Image.width, Image.height, func.count())
            .where(in_project)
            .group_by(col(Image.width), col(Image.height))
        ).all()
    ]
    dims.sort(key=lambda d: (-d[2], d[0], d[1]))

    dup_rows = session.exec(
        select(Image.sha256)
        .where(in_project)
        .group_by(col(Image.sha256))
        .having(func.count() > 1)
        .order_by(col(Image.sha256))
    ).all()
    exact: list[list[int]] = []
    names: dict[int, str] = {}
    if dup_rows:
        shown = list(dup_rows[:MAX_GROUPS])
        members: dict[str, list[int]] = defaultdict(list)
        for image_id, sha, name in session.exec(
            select(Image.id, Image.sha256, Image.original_name)
            .where(in_project, col(Image.sha256).in_(shown))
            .order_by(col(Image.id))
        ).all():
            assert image_id is not None
            members[sha].append(image_id)
            names[image_id] = name
        exact = sorted(members.values(), key=lambda g: g[0])

    hashes = [
        (int(i), str(h))
        for i, h in session.exec(
            select(Image.id, Image.phash).where(in_project, col(Image.phash) != "")
        ).all()
        if i is not None
    ]
    near, distances, truncated = near_duplicate_groups(hashes, near_threshold)
    wanted = [i for g in near[:MAX_GROUPS] for i in g if i not in names]
    for start in range(0, len(wanted), 500):
        for image_id, name in session.exec(
            select(Image.id, Image.original_name).where(
                col(Image.id).in_(wanted[start : start + 500])
            )
        ).all():
            if image_id is not None:
                names[image_id] = name

    return DatasetStats(
        image_count=image_count,
        annotated_images=annotated,
        unannotated_images=image_count - annotated,
        annotation_count=sum(by_kind.values()),
        annotations_by_kind=by_kind,
        class_distribution=distribution,
        size_histogram=_size_histogram(dims),
        dimensions=[Dimension(width=w, height=h, count=n) for w, h, n in dims[:20]],
        bytes_total=bytes_total,
        exact_duplicates=_groups(exact, names),
        exact_duplicate_groups=len(dup_rows),
        near_duplicates=_groups(near, names, distances),
        near_duplicate_threshold=near_threshold,
        near_duplicates_checked=len(hashes),
        near_duplicates_truncated=truncated,
        target_histograms=targets.histograms(session, project_id) if by_kind.get("value") else [],
    )
