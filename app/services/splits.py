"""Splits: immutable assignments of a project's images to subsets (and folds).

The fingerprint is what experiments and evaluations record to prove which images they saw:
SHA-256 over the sorted `subset|fold|sha256` lines of every member, so it depends on image
content, not on row ids, and is identical on SQLite and PostgreSQL.

Strategies (request schema in app/models/split.py, algorithms in split_strategies.py):
stratified (ratios; iterative stratification on class presence), stratified_kfold (k folds,
optional fixed test subset), group / group_kfold (images sharing `group_attribute` never
straddle subsets), leave_one_group_out (one split per group value, test = that group, saved
as a family), predefined (from the images' `subset` attribute; the importer may also write
such Split rows itself). Exact duplicates (sha256) always stay together; near duplicates
(phash Hamming distance) are kept together or only reported.

Member rows: plain splits have one row per image, fold NULL. A k-fold split has, for each
non-test image, k rows: subset "val" with fold = its validation fold and subset "train" for
every other fold; the fixed test subset has one row per image with fold NULL. Ask with
`subset_image_ids(session, split_id, subset, fold)`; `Split.counts` is
{"train": n, "val": n, "test": n} or, for k-fold, {"test": n, "folds": [{"train", "val"}]}.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.errors import Conflict, Invalid, not_found
from app.models import Experiment, Image, Project, Split, SplitMember
from app.models.split import (
    GROUP_STRATEGIES,
    KFOLD_STRATEGIES,
    SUBSETS,
    DuplicateSummary,
    PlannedSplit,
    SplitBrief,
    SplitPreview,
    SplitRead,
    SplitRequest,
    SplitVerification,
    SplitWarning,
    SubsetSummary,
)
from app.services.projects import get_project
from app.services.split_strata import (
    expected_shares,
    image_tokens,
    kept_out,
    stratify_keeping_out,
)
from app.services.split_strategies import (
    Item,
    Unit,
    assign_folds,
    build_units,
    class_counts,
    expand,
    find_duplicates,
    iterative_stratification,
)
from app.tasks import get_task


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


# --- loading the data the algorithms see ----------------------------------------------------


@dataclass
class _Data:
    image_ids: list[int]
    items: list[Item]
    classes: list[str]
    missing_group: int = 0


def _load(session: Session, project_id: int, group_attribute: str | None, task: str) -> _Data:
    """The project's images ordered by content (sha256), each with its stratification tokens
    (the classes it shows, or the task's own tokens: app/services/split_strata.py)."""
    rows = session.exec(
        select(Image.id, Image.sha256, Image.phash, Image.attributes)
        .where(Image.project_id == project_id)
        .order_by(col(Image.sha256), col(Image.id))
    ).all()
    labels = image_tokens(session, project_id, task)
    items: list[Item] = []
    image_ids: list[int] = []
    missing = 0
    for row_id, sha, phash, attributes in rows:
        assert row_id is not None
        image_id = row_id
        group: str | None = None
        if group_attribute:
            value = (attributes or {}).get(group_attribute)
            if value is None or value == "":
                missing += 1
            else:
                group = str(value)
        image_ids.append(image_id)
        items.append(
            Item(
                sha256=sha,
                labels=frozenset(labels.get(image_id, ())),
                group=group,
                phash=phash or "",
            )
        )
    used = sorted({label for item in items for label in item.labels})
    return _Data(image_ids=image_ids, items=items, classes=used, missing_group=missing)


# --- planning (shared by preview and create) ------------------------------------------------


Member = tuple[int, str, int | None]


@dataclass
class _Planned:
    name: str
    family: str | None
    held_out: str | None
    members: list[Member]  # (item index, subset, fold)
    k: int | None = None

    def fingerprint(self, items: list[Item]) -> str:
        return fingerprint_lines(member_line(s, f, items[i].sha256) for i, s, f in self.members)

    def counts(self) -> dict[str, Any]:
        if self.k is None:
            counts: dict[str, Any] = {}
            for _, subset, _ in self.members:
                counts[subset] = counts.get(subset, 0) + 1
            return {name: counts[name] for name in SUBSETS if name in counts}
        folds = [{"train": 0, "val": 0} for _ in range(self.k)]
        test = 0
        for _, subset, fold in self.members:
            if fold is None:
                test += 1
            else:
                folds[fold][subset] += 1
        return {"test": test, "folds": folds}


@dataclass
class _Plan:
    data: _Data
    splits: list[_Planned]
    warnings: list[SplitWarning] = field(default_factory=list)
    duplicates: DuplicateSummary = field(default_factory=DuplicateSummary)


def _warn(plan_warnings: list[SplitWarning], code: str, message: str, **details: Any) -> None:
    plan_warnings.append(SplitWarning(code=code, message=message, details=details))


def _summaries(planned: _Planned, items: list[Item]) -> list[SubsetSummary]:
    buckets: dict[tuple[str, int | None], list[int]] = {}
    for index, subset, fold in planned.members:
        buckets.setdefault((subset, fold), []).append(index)
    order = {name: i for i, name in enumerate(("train", "val", "test"))}
    result = []
    for (subset, fold), indices in sorted(
        buckets.items(), key=lambda kv: (-1 if kv[0][1] is None else kv[0][1], order[kv[0][0]])
    ):
        counts = class_counts(items, indices)
        result.append(
            SubsetSummary(
                subset=subset,
                fold=fold,
                count=len(indices),
                classes={name: counts[name] for name in sorted(counts)},
            )
        )
    return result


def _check_subsets(
    plan: _Plan, planned: _Planned, wanted: dict[str, float], kept: set[str] | None = None
) -> None:
    """Warn about classes missing from a subset and subsets far from their ratio; `kept`
    classes are meant to be missing from train."""
    items = plan.data.items
    kept_set = kept or set()
    prefix = f"{planned.name}: " if planned.family else ""
    summaries = _summaries(planned, items)
    totals = class_counts(items, sorted({i for i, _, _ in planned.members}))
    n = len({i for i, _, _ in planned.members})
    for summary in summaries:
        where = (
            summary.subset if summary.fold is None else f"{summary.subset} of fold {summary.fold}"
        )
        missing = [
            c
            for c in sorted(totals)
            if summary.classes.get(c, 0) == 0 and not (summary.subset == "train" and c in kept_set)
        ]
        if missing:
            shown = ", ".join(missing[:10]) + (" …" if len(missing) > 10 else "")
            _warn(
                plan.warnings,
                "class_missing",
                f"{prefix}{len(missing)} class(es) have no image in {where}: {shown}",
                split=planned.name,
                subset=summary.subset,
                fold=summary.fold,
                classes=missing,
            )
        ratio = wanted.get(summary.subset) if summary.fold is None else None
        if ratio is not None and n and abs(summary.count / n - ratio) > 0.05:
            _warn(
                plan.warnings,
                "ratio_not_met",
                f"{prefix}{where} has {summary.count / n:.0%} of the images instead of "
                f"{ratio:.0%} (groups or duplicates are too coarse for these ratios)",
                split=planned.name,
                subset=summary.subset,
                actual=round(summary.count / n, 4),
                wanted=ratio,
            )
    for name, ratio in wanted.items():
        if ratio > 0 and planned.k is None and not any(s.subset == name for s in summaries):
            _warn(
                plan.warnings,
                "empty_subset",
                f"{prefix}{name} is empty; add images or change the ratios",
                split=planned.name,
                subset=name,
            )
    if wanted and planned.k is None:
        if wanted.get("val", 0) <= 0:
            _warn(
                plan.warnings,
                "no_val_subset",
                f"{prefix}no validation subset: training will have nothing to choose its best "
                "checkpoint by or to stop early on",
                split=planned.name,
            )
        if planned.held_out is None and wanted.get("test", 0) <= 0:
            _warn(
                plan.warnings,
                "no_test_subset",
                f"{prefix}no test subset: evaluation and the export parity check will have no "
                "held-out images to measure on",
                split=planned.name,
            )


def _warn_large_units(plan: _Plan, units: list[Unit], targets: dict[str, float], what: str) -> None:
    if not targets:
        return
    smallest_name = min(targets, key=lambda name: targets[name])
    smallest = targets[smallest_name]
    large = [unit for unit in units if unit.size > max(smallest, 1)]
    if large:
        names = [unit.key[2:] if unit.key.startswith("g:") else unit.key[2:14] for unit in large]
        _warn(
            plan.warnings,
            "group_too_large",
            f"{len(large)} {what} are larger than {smallest_name}'s target of "
            f"{smallest:.0f} images ({', '.join(names[:5])}{' …' if len(names) > 5 else ''}); "
            "subset sizes will miss their ratios",
            groups=names[:50],
            sizes=[unit.size for unit in large[:50]],
        )


def _plan(session: Session, project_id: int, request: SplitRequest) -> _Plan:
    group_attribute = request.group_attribute if request.strategy in GROUP_STRATEGIES else None
    task = get_project(session=session, project_id=project_id).task_type
    data = _load(session, project_id, group_attribute, task)
    items = data.items
    if not items:
        raise Invalid(
            "This project has no images yet; import a dataset before splitting it.",
            code="no_images",
        )
    plan = _Plan(data=data, splits=[])
    name = request.name or "preview"
    threshold = request.near_duplicate_threshold
    duplicates = find_duplicates(items, threshold)
    near_pairs = duplicates.near_pairs if request.near_duplicates == "group" else []
    plan.duplicates = DuplicateSummary(
        exact_groups=len(duplicates.exact_groups),
        exact_images=duplicates.exact_images,
        near_pairs=len(duplicates.near_pairs),
        near_mode=request.near_duplicates,
        near_threshold=threshold,
    )
    if duplicates.exact_groups:
        _warn(
            plan.warnings,
            "exact_duplicates",
            f"{duplicates.exact_images} images are exact copies ({len(duplicates.exact_groups)} "
            "groups); each group is kept in one subset",
            groups=len(duplicates.exact_groups),
            images=duplicates.exact_images,
        )
    if group_attribute and data.missing_group:
        _warn(
            plan.warnings,
            "missing_group",
            f"{data.missing_group} images have no {group_attribute!r} attribute; each is its "
            "own group"
            + (" and is never held out" if request.strategy == "leave_one_group_out" else ""),
            attribute=group_attribute,
            images=data.missing_group,
        )
    ratios = request.effective_ratios()
    n = len(items)
    strategy = request.strategy
    members: list[Member] = []
    kept = kept_out(task, request.keep_out_of_train) & set(data.classes)
    if kept and strategy != "predefined":
        count = sum(1 for item in items if kept & item.labels)
        _warn(
            plan.warnings,
            "kept_out_of_train",
            f"{count} images showing {', '.join(sorted(kept))} are kept out of train (val and "
            "test only); pass keep_out_of_train=[] to let them in",
            classes=sorted(kept),
            images=count,
        )

    if strategy == "predefined":
        # An image's subset: its own attribute, else the subset its import found (train/
        # val/test folders, a subset column), which the import recorded as a locked split.
        unassigned = 0
        attribute = request.subset_attribute
        rows = session.exec(
            select(Image.id, Image.attributes).where(Image.project_id == project_id)
        ).all()
        attrs = {image_id: attributes or {} for image_id, attributes in rows}
        from_imports = _imported_subsets(session, project_id)
        for index, image_id in enumerate(data.image_ids):
            value = str(attrs.get(image_id, {}).get(attribute, "")).strip().lower()
            value = {"valid": "val", "validation": "val", "training": "train"}.get(value, value)
            if value not in SUBSETS:
                value = from_imports.get(image_id, "")
            if value in SUBSETS:
                members.append((index, value, None))
            else:
                unassigned += 1
        if not members:
            raise Invalid(
                f"No image has a {attribute!r} attribute of train, val or test, and no import "
                "brought train/val/test subsets; this project has no predefined split.",
                code="no_predefined_split",
                details={"attribute": attribute, "valid": list(SUBSETS)},
            )
        if unassigned:
            _warn(
                plan.warnings,
                "unassigned_images",
                f"{unassigned} images have no {attribute!r} of train/val/test and are left out",
                images=unassigned,
            )
        subset_of = {index: subset for index, subset, _ in members}
        straddle = 0
        for group in duplicates.exact_groups:
            if len({subset_of.get(i) for i in group}) > 1:
                straddle += 1
        near_straddle = sum(
            1 for a, b, _ in duplicates.near_pairs if subset_of.get(a) != subset_of.get(b)
        )
        if straddle or near_straddle:
            _warn(
                plan.warnings,
                "duplicates_straddle",
                f"The predefined split leaks: {straddle} exact-duplicate groups and "
                f"{near_straddle} near-duplicate pairs straddle subsets",
                exact_groups=straddle,
                near_pairs=near_straddle,
            )
        planned = _Planned(name=name, family=None, held_out=None, members=members)
        plan.splits.append(planned)
        _check_subsets(plan, planned, {})
        return plan

    if strategy == "leave_one_group_out":
        group_units = build_units(items, near_pairs=near_pairs, by_group=True)
        held = [unit for unit in group_units if unit.key.startswith("g:")]
        if len(held) < 2:
            raise Invalid(
                f"leave_one_group_out needs at least 2 values of {group_attribute!r}; "
                f"found {len(held)}.",
                code="too_few_groups",
                details={"attribute": group_attribute, "groups": len(held)},
            )
        if len(held) > 50:
            raise Invalid(
                f"{group_attribute!r} has {len(held)} values; leave-one-group-out makes one "
                "split per value, at most 50. Choose a coarser attribute or use group_kfold.",
                code="too_many_groups",
                details={"attribute": group_attribute, "groups": len(held), "max": 50},
            )
        for unit in held:
            label = "+".join(sorted({g for i in unit.members if (g := items[i].group) is not None}))
            held_set = set(unit.members)
            rest_index = [i for i in range(n) if i not in held_set]
            position = {i: j for j, i in enumerate(rest_index)}
            rest_items = [items[i] for i in rest_index]
            rest_units = build_units(
                rest_items,
                near_pairs=[
                    (position[a], position[b], d)
                    for a, b, d in near_pairs
                    if a in position and b in position
                ],
            )
            per_unit = stratify_keeping_out(rest_units, ratios, request.seed, kept)
            subsets = expand(rest_units, per_unit, len(rest_items))
            members = [(i, "test", None) for i in unit.members]
            members += [(rest_index[j], subsets[j], None) for j in range(len(rest_items))]
            members.sort()
            planned = _Planned(
                name=f"{name} · {label}"[:100], family=name, held_out=label, members=members
            )
            plan.splits.append(planned)
            # the ratios apply to the images that are not held out
            rest_share = len(rest_items) / n
            expected = expected_shares(rest_units, ratios, kept)
            _check_subsets(plan, planned, {k: v * rest_share for k, v in expected.items()}, kept)
        return plan

    units = build_units(items, near_pairs=near_pairs, by_group=group_attribute is not None)
    what = f"groups of {group_attribute!r}" if group_attribute else "duplicate groups"
    if strategy in KFOLD_STRATEGIES:
        k = request.k
        test_ratio = request.test_ratio
        if kept and test_ratio <= 0:
            raise Invalid(
                f"k-fold trains on every image outside test, but images showing "
                f"{', '.join(sorted(kept))} must stay out of train; give test_ratio > 0 (they "
                "go to test) or pass keep_out_of_train=[].",
                code="nowhere_to_keep_out",
            )
        if test_ratio > 0:
            outer = iterative_stratification(
                units, {"pool": 1 - test_ratio, "test": test_ratio}, request.seed
            )
            outer = [
                "test" if kept & set(unit.labels) else o
                for unit, o in zip(units, outer, strict=True)
            ]
        else:
            outer = ["pool"] * len(units)
        pool_units = [unit for unit, where in zip(units, outer, strict=True) if where == "pool"]
        if len(pool_units) < k:
            raise Invalid(
                f"{k}-fold needs at least {k} separable units (images or groups) outside the "
                f"test subset; there are {len(pool_units)}.",
                code="too_few_units",
                details={"k": k, "units": len(pool_units)},
            )
        folds = assign_folds(pool_units, k, request.seed)
        members = []
        for unit, where in zip(units, outer, strict=True):
            if where == "test":
                members += [(i, "test", None) for i in unit.members]
        for unit, fold in zip(pool_units, folds, strict=True):
            for i in unit.members:
                for f in range(k):
                    members.append((i, "val" if f == fold else "train", f))
        members.sort(key=lambda m: (m[0], -1 if m[2] is None else m[2]))
        planned = _Planned(name=name, family=None, held_out=None, members=members, k=k)
        plan.splits.append(planned)
        pool_size = sum(unit.size for unit in pool_units)
        _warn_large_units(plan, units, {"a validation fold": pool_size / k}, what)
        _check_subsets(plan, planned, {}, kept)
        return plan

    per_unit = stratify_keeping_out(units, ratios, request.seed, kept)
    subsets = expand(units, per_unit, n)
    planned = _Planned(
        name=name,
        family=None,
        held_out=None,
        members=[(i, subsets[i], None) for i in range(n)],
    )
    plan.splits.append(planned)
    _warn_large_units(plan, units, {s: r * n for s, r in ratios.items()}, what)
    _check_subsets(plan, planned, expected_shares(units, ratios, kept), kept)
    return plan


def _ensure_supported(project: Project) -> None:
    if not get_task(project.task_type).supports("splits"):
        raise Invalid(
            f"Splits are not available for {project.task_type} projects in this build.",
            code="feature_unavailable",
        )


def _imported_subsets(session: Session, project_id: int) -> dict[int, str]:
    """image id → the subset its import assigned (the import's own predefined splits)."""
    subsets: dict[int, str] = {}
    splits = session.exec(
        select(Split)
        .where(Split.project_id == project_id, Split.strategy == "predefined")
        .order_by(col(Split.id))
    ).all()
    for split in splits:
        if "import_id" not in (split.params or {}):
            continue
        members = session.exec(
            select(SplitMember.image_id, SplitMember.subset).where(SplitMember.split_id == split.id)
        ).all()
        subsets.update({image_id: str(subset) for image_id, subset in members if subset})
    return subsets


def preview_split(session: Session, project_id: int, request: SplitRequest) -> SplitPreview:
    """What `create_split` would save, without saving it."""
    project = get_project(session=session, project_id=project_id)
    _ensure_supported(project)
    plan = _plan(session, project_id, request)
    items = plan.data.items
    return SplitPreview(
        strategy=request.strategy,
        seed=request.seed,
        images=len(items),
        classes=plan.data.classes,
        splits=[
            PlannedSplit(
                name=planned.name,
                family=planned.family,
                held_out=planned.held_out,
                fingerprint=planned.fingerprint(items),
                counts=planned.counts(),
                subsets=_summaries(planned, items),
            )
            for planned in plan.splits
        ],
        warnings=plan.warnings,
        duplicates=plan.duplicates,
    )


def create_split(session: Session, project_id: int, request: SplitRequest) -> list[Split]:
    """Save the planned split(s), locked, with members and fingerprint (one per LOGO group)."""
    project = get_project(session=session, project_id=project_id)
    _ensure_supported(project)
    if not request.name:
        raise Invalid("name: a split needs a name.", code="validation_error")
    plan = _plan(session, project_id, request)
    names = [planned.name for planned in plan.splits]
    taken: list[str] = list(
        session.exec(
            select(Split.name).where(Split.project_id == project_id, col(Split.name).in_(names))
        ).all()
    )
    if request.strategy == "leave_one_group_out":
        taken += [
            family
            for family in session.exec(
                select(Split.family).where(
                    Split.project_id == project_id, Split.family == request.name
                )
            ).all()
            if family
        ]
    if taken:
        raise Conflict(
            f"A split named {taken[0]!r} already exists in this project; choose another name.",
            code="split_exists",
            details={"names": sorted({str(t) for t in taken})},
        )
    params = request.model_dump(exclude={"name", "seed"})
    params["ratios"] = request.effective_ratios()
    items = plan.data.items
    saved: list[Split] = []
    for planned in plan.splits:
        split = Split(
            project_id=project_id,
            name=planned.name,
            strategy=request.strategy,
            params={**params, **({"held_out": planned.held_out} if planned.held_out else {})},
            seed=request.seed,
            locked=True,
            fingerprint=planned.fingerprint(items),
            family=planned.family,
            counts=planned.counts(),
        )
        session.add(split)
        session.flush()
        assert split.id is not None
        session.execute(
            insert(SplitMember),
            [
                {
                    "split_id": split.id,
                    "image_id": plan.data.image_ids[index],
                    "subset": subset,
                    "fold": fold,
                }
                for index, subset, fold in planned.members
            ],
        )
        saved.append(split)
    try:
        session.commit()
    except IntegrityError:  # a concurrent create took the name
        session.rollback()
        raise Conflict(
            "A split with this name was just created; choose another name.",
            code="split_exists",
            details={"names": names},
        ) from None
    for split in saved:
        session.refresh(split)
    return saved


# --- reading, verifying, deleting ------------------------------------------------------------


def get_split(session: Session, project_id: int, split_id: int) -> Split:
    split = session.get(Split, split_id)
    if split is None or split.project_id != project_id:
        raise not_found("split", split_id)
    return split


def list_splits(session: Session, project_id: int) -> list[Split]:
    get_project(session=session, project_id=project_id)
    return list(
        session.exec(
            select(Split)
            .where(Split.project_id == project_id)
            .order_by(col(Split.created_at).desc(), col(Split.id).desc())
        ).all()
    )


def experiments_using(session: Session, split_ids: list[int]) -> dict[int, list[int]]:
    used: dict[int, list[int]] = {}
    if not split_ids:
        return used
    for experiment_id, split_id in session.exec(
        select(Experiment.id, Experiment.split_id).where(col(Experiment.split_id).in_(split_ids))
    ).all():
        assert split_id is not None and experiment_id is not None
        used.setdefault(split_id, []).append(experiment_id)
    return used


def split_k(split: Split) -> int | None:
    folds = split.counts.get("folds")
    return len(folds) if isinstance(folds, list) else None


def read_splits(
    session: Session, splits: list[Split], *, with_subsets: bool = False
) -> list[SplitRead]:
    ids = [split.id for split in splits if split.id is not None]
    used = experiments_using(session, ids)
    families = sorted({split.family for split in splits if split.family})
    family_members: dict[str, list[SplitBrief]] = {}
    if families:
        for sid, name, family in session.exec(
            select(Split.id, Split.name, Split.family)
            .where(col(Split.family).in_(families))
            .order_by(col(Split.name))
        ).all():
            assert sid is not None and family is not None
            family_members.setdefault(family, []).append(SplitBrief(id=sid, name=name))
    result = []
    for split in splits:
        assert split.id is not None
        result.append(
            SplitRead(
                id=split.id,
                project_id=split.project_id,
                name=split.name,
                strategy=split.strategy,
                params=split.params,
                seed=split.seed,
                locked=split.locked,
                fingerprint=split.fingerprint,
                family=split.family,
                family_members=family_members.get(split.family or "", []),
                counts=split.counts,
                k=split_k(split),
                in_use=split.id in used,
                created_at=split.created_at,
                subsets=subset_summaries(session, split) if with_subsets else [],
            )
        )
    return result


def subset_summaries(session: Session, split: Split) -> list[SubsetSummary]:
    """Counts and class distribution per subset (and fold) of a saved split."""
    members = session.exec(
        select(SplitMember.image_id, SplitMember.subset, SplitMember.fold).where(
            SplitMember.split_id == split.id
        )
    ).all()
    project = get_project(session=session, project_id=split.project_id)
    labels = image_tokens(session, split.project_id, project.task_type)
    buckets: dict[tuple[str, int | None], list[int]] = {}
    for image_id, subset, fold in members:
        buckets.setdefault((subset, fold), []).append(image_id)
    order = {name: i for i, name in enumerate(SUBSETS)}
    result = []
    for (subset, fold), image_ids in sorted(
        buckets.items(),
        key=lambda kv: (-1 if kv[0][1] is None else kv[0][1], order.get(kv[0][0], 9)),
    ):
        counts: dict[str, int] = {}
        for image_id in image_ids:
            for name in labels.get(image_id, ()):
                counts[name] = counts.get(name, 0) + 1
        result.append(
            SubsetSummary(
                subset=subset,
                fold=fold,
                count=len(image_ids),
                classes=dict(sorted(counts.items())),
            )
        )
    return result


def verify_split(session: Session, project_id: int, split_id: int) -> SplitVerification:
    """Recompute the fingerprint from today's members and image hashes and compare."""
    split = get_split(session, project_id, split_id)
    computed = compute_fingerprint(session, split_id)
    members = session.exec(
        select(func.count()).select_from(SplitMember).where(SplitMember.split_id == split_id)
    ).one()
    return SplitVerification(
        split_id=split_id,
        match=computed == split.fingerprint,
        recorded=split.fingerprint,
        computed=computed,
        members=int(members),
    )


def refuse_change(session: Session, project_id: int, split_id: int) -> None:
    """Saved splits never change: experiments and evaluations rely on their fingerprint."""
    split = get_split(session, project_id, split_id)
    raise Conflict(
        f"Split {split.name!r} is locked: saved splits are immutable so experiments stay "
        "reproducible. Create a new split instead.",
        code="split_locked",
        details={"split_id": split_id, "fingerprint": split.fingerprint},
    )


def delete_split(session: Session, project_id: int, split_id: int) -> None:
    split = get_split(session, project_id, split_id)
    used = experiments_using(session, [split_id]).get(split_id, [])
    if used:
        raise Conflict(
            f"Split {split.name!r} is used by {len(used)} experiment(s) and cannot be deleted; "
            "delete those experiments first.",
            code="split_in_use",
            details={"split_id": split_id, "experiment_ids": sorted(used)},
        )
    session.execute(delete(SplitMember).where(col(SplitMember.split_id) == split_id))
    session.delete(split)
    session.commit()


def subset_image_ids(
    session: Session, split_id: int, subset: str, fold: int | None = None
) -> list[int]:
    """THE way to ask which images of split S (and fold f) are in a subset; sorted ids.

    Representation: plain splits have one member row per image (fold NULL). k-fold splits have,
    per non-test image, k rows: subset "val" with fold = its validation fold and subset "train"
    for every other fold; the optional fixed test subset has one row per image, fold NULL.
    So train/val of a k-fold split need `fold`; "test" never does.
    """
    split = session.get(Split, split_id)
    if split is None:
        raise not_found("split", split_id)
    if subset not in SUBSETS:
        raise Invalid(
            f"subset={subset!r} is not a subset; use one of: {', '.join(SUBSETS)}.",
            code="invalid_subset",
            details={"valid": list(SUBSETS)},
        )
    k = split_k(split)
    query = select(SplitMember.image_id).where(
        SplitMember.split_id == split_id, SplitMember.subset == subset
    )
    if k is not None and subset != "test":
        if fold is None or not 0 <= fold < k:
            raise Invalid(
                f"Split {split.name!r} has {k} folds; give fold=0..{k - 1} for {subset}.",
                code="fold_required",
                details={"k": k, "valid": list(range(k))},
            )
        query = query.where(SplitMember.fold == fold)
    elif fold is not None and k is None:
        raise Invalid(
            f"Split {split.name!r} has no folds; leave fold out.",
            code="no_folds",
            details={"split_id": split_id},
        )
    return sorted(set(session.exec(query).all()))


def attribute_choices(session: Session, project_id: int) -> list[dict[str, Any]]:
    """Image attributes usable as a group: name, how many images have it, distinct values."""
    seen: dict[str, set[str]] = {}
    present: dict[str, int] = {}
    for attributes in session.exec(
        select(Image.attributes).where(Image.project_id == project_id)
    ).all():
        for key, value in (attributes or {}).items():
            if value is None or isinstance(value, dict | list):
                continue
            present[key] = present.get(key, 0) + 1
            values = seen.setdefault(key, set())
            if len(values) <= 1000:
                values.add(str(value))
    return [
        {"name": key, "images": present[key], "distinct": len(seen[key])} for key in sorted(seen)
    ]


# Every task type can be split: stratification works on class presence, whatever the kind.
