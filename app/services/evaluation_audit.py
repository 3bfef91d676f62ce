"""The leakage audit stored with every evaluation.

A good test score means nothing if the test images leaked into training. Four checks, each
with a status (ok | warning | alarm | unavailable), and an overall status (the worst):

1. fingerprint: the split's members still hash to the fingerprint saved when it was created
   and to the one the experiment recorded at training (the split cannot have changed under it);
2. exact_duplicates: evaluated non-train images whose sha256 is also in the train subset
   (must be zero);
3. near_duplicates: train/evaluated pairs whose perceptual hashes (Image.phash) differ in at
   most `NEAR_DUPLICATE_BITS` bits; listed for review, a warning when any exist;
4. metric_gap: training-vs-validation accuracy; warning above 5 points, alarm above 10. When
   the evaluation itself covered both train and val, its own accuracies are compared (same
   checkpoint, same eval transform); otherwise the experiment's MetricPoints (train/acc vs
   val/acc at the checkpoint's epoch) when training recorded both curves.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from app.models import Experiment, Image, MetricPoint, Split, SplitMember
from app.models.split import NEAR_DUPLICATE_BITS
from app.services.splits import compute_fingerprint

if TYPE_CHECKING:
    import numpy as np

GAP_WARNING_POINTS = 5.0
GAP_ALARM_POINTS = 10.0
MAX_LISTED_PAIRS = 100
_SEVERITY = {"ok": 0, "unavailable": 0, "warning": 1, "alarm": 2}

# MetricPoint keys tried, in order, for the train and validation accuracy.
TRAIN_KEYS = ("train/acc", "train/accuracy", "train_acc", "train/acc_epoch")
VAL_KEYS = ("val/acc", "val/accuracy", "val_acc", "val/acc_epoch")


def recorded_split_fingerprint(experiment: Experiment) -> str | None:
    """The fingerprint the experiment saw at training, wherever its provenance keeps it."""
    prov = experiment.provenance or {}
    split = prov.get("split")
    if isinstance(split, dict) and split.get("fingerprint"):
        return str(split["fingerprint"])
    for key in ("split_fingerprint", "fingerprint"):
        if prov.get(key):
            return str(prov[key])
    return None


def _fingerprint_check(session: Session, split: Split, experiment: Experiment) -> dict[str, Any]:
    assert split.id is not None
    current = compute_fingerprint(session, split.id)
    recorded = recorded_split_fingerprint(experiment)
    matches_split = current == split.fingerprint
    matches_training = recorded is None or recorded == current
    status = "ok" if matches_split and matches_training else "alarm"
    if matches_split and matches_training:
        message = "The split is unchanged since it was saved" + (
            " and since training." if recorded else "; the experiment recorded no fingerprint."
        )
    else:
        message = "The split's members changed: the evaluation may not be isolated from training."
    return {
        "status": status,
        "message": message,
        "current": current,
        "saved": split.fingerprint,
        "training": recorded,
    }


def _members(session: Session, split_id: int) -> dict[str, list[tuple[int, str, str]]]:
    rows = session.exec(
        select(SplitMember.subset, Image.id, Image.sha256, Image.phash)
        .join(Image, col(Image.id) == col(SplitMember.image_id))
        .where(SplitMember.split_id == split_id)
        .order_by(col(Image.id))
    ).all()
    by_subset: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for subset, image_id, sha, phash in rows:
        assert image_id is not None
        by_subset[subset].append((image_id, sha, phash or ""))
    return by_subset


def _exact_check(
    train: list[tuple[int, str, str]], evaluated: dict[str, list[tuple[int, str, str]]]
) -> dict[str, Any]:
    train_by_sha: dict[str, int] = {}
    for image_id, sha, _ in train:
        train_by_sha.setdefault(sha, image_id)
    pairs = [
        {"subset": subset, "image_id": image_id, "train_image_id": train_by_sha[sha]}
        for subset, items in evaluated.items()
        for image_id, sha, _ in items
        if sha in train_by_sha
    ]
    checked = sum(len(items) for items in evaluated.values())
    return {
        "status": "alarm" if pairs else "ok",
        "message": (
            f"{len(pairs)} evaluated image(s) are byte-identical to training images."
            if pairs
            else f"None of the {checked} evaluated images is in the training subset."
        ),
        "count": len(pairs),
        "checked": checked,
        "pairs": pairs[:MAX_LISTED_PAIRS],
    }


def _hash_matrix(hashes: list[str], width: int) -> np.ndarray:
    import numpy as np

    return np.array([list(bytes.fromhex(h)) for h in hashes], dtype=np.uint8).reshape(-1, width)


@functools.cache
def _popcount() -> np.ndarray:
    import numpy as np

    return np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _near_check(
    train: list[tuple[int, str, str]],
    evaluated: dict[str, list[tuple[int, str, str]]],
    max_bits: int,
) -> dict[str, Any]:
    import numpy as np

    def usable(items: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
        return [item for item in items if item[2] and len(item[2]) % 2 == 0]

    train_ok = usable(train)
    evaluated_ok = {subset: usable(items) for subset, items in evaluated.items()}
    widths = {len(item[2]) for item in train_ok} | {
        len(item[2]) for items in evaluated_ok.values() for item in items
    }
    missing = (
        len(train)
        - len(train_ok)
        + sum(len(evaluated[s]) - len(evaluated_ok[s]) for s in evaluated)
    )
    if not train_ok or not any(evaluated_ok.values()) or len(widths) != 1:
        return {
            "status": "unavailable",
            "message": "Perceptual hashes are missing, so near-duplicates were not searched.",
            "count": 0,
            "max_bits": max_bits,
            "missing_hashes": missing,
            "pairs": [],
        }
    width = widths.pop() // 2
    try:
        train_bits = _hash_matrix([item[2] for item in train_ok], width)
    except ValueError:
        return {"status": "unavailable", "message": "Unreadable perceptual hashes.", "pairs": []}
    pairs: list[dict[str, Any]] = []
    count = 0
    for subset, items in evaluated_ok.items():
        if not items:
            continue
        eval_bits = _hash_matrix([item[2] for item in items], width)
        for start in range(0, len(items), 256):  # bounded memory: 256 x train x width bytes
            chunk = eval_bits[start : start + 256]
            distance = _popcount()[chunk[:, None, :] ^ train_bits[None, :, :]].sum(
                axis=2, dtype=np.int32
            )
            for i, j in zip(*np.nonzero(distance <= max_bits), strict=True):
                count += 1
                if len(pairs) < MAX_LISTED_PAIRS:
                    pairs.append(
                        {
                            "subset": subset,
                            "image_id": items[start + int(i)][0],
                            "train_image_id": train_ok[int(j)][0],
                            "distance": int(distance[i, j]),
                        }
                    )
    pairs.sort(key=lambda p: (p["distance"], p["image_id"]))
    return {
        "status": "warning" if count else "ok",
        "message": (
            f"{count} evaluated/train pair(s) look alike (perceptual hash within {max_bits} bits)."
            if count
            else f"No evaluated image is within {max_bits} bits of a training image."
        ),
        "count": count,
        "max_bits": max_bits,
        "missing_hashes": missing,
        "pairs": pairs,
    }


def _value_at(points: list[MetricPoint], epoch: int | None) -> float | None:
    if not points:
        return None
    if epoch is not None:
        at_epoch = [p for p in points if p.epoch == epoch]
        if at_epoch:
            return at_epoch[-1].value
    return points[-1].value


def _gap_result(
    train: float, val: float, epoch: int | None, source: str, keys: tuple[str, str]
) -> dict[str, Any]:
    scale = 100.0 if max(abs(train), abs(val)) <= 1.0 else 1.0
    gap = (train - val) * scale
    status = "alarm" if gap > GAP_ALARM_POINTS else "warning" if gap > GAP_WARNING_POINTS else "ok"
    return {
        "status": status,
        "message": (
            f"Training accuracy is {gap:.1f} points above validation ({source}; "
            f"warning above {GAP_WARNING_POINTS:g}, alarm above {GAP_ALARM_POINTS:g})."
        ),
        "source": source,
        "epoch": epoch,
        "train": train,
        "val": val,
        "train_key": keys[0],
        "val_key": keys[1],
        "gap_points": gap,
        "warning_above": GAP_WARNING_POINTS,
        "alarm_above": GAP_ALARM_POINTS,
    }


def _gap_check(
    session: Session,
    experiment: Experiment,
    epoch: int | None,
    subset_metrics: dict[str, dict[str, Any]] | None,
) -> dict[str, Any]:
    subset_metrics = subset_metrics or {}
    train_eval = subset_metrics.get("train", {}).get("accuracy")
    val_eval = subset_metrics.get("val", {}).get("accuracy")
    if train_eval is not None and val_eval is not None:
        return _gap_result(
            float(train_eval), float(val_eval), epoch, "this evaluation", ("train", "val")
        )
    found: dict[str, tuple[str, float | None]] = {}
    for side, keys in (("train", TRAIN_KEYS), ("val", VAL_KEYS)):
        for key in keys:
            points = list(
                session.exec(
                    select(MetricPoint)
                    .where(MetricPoint.experiment_id == experiment.id, MetricPoint.key == key)
                    .order_by(col(MetricPoint.step), col(MetricPoint.id))
                )
            )
            if points:
                found[side] = (key, _value_at(points, epoch))
                break
    train = found.get("train", ("", None))
    val = found.get("val", ("", None))
    if train[1] is None or val[1] is None:
        return {
            "status": "unavailable",
            "message": "Training recorded no train-accuracy curve; evaluate the train and val "
            "subsets together to measure the gap.",
            "epoch": epoch,
        }
    return _gap_result(train[1], val[1], epoch, "training curves", (train[0], val[0]))


def leakage_audit(
    session: Session,
    experiment: Experiment,
    *,
    subsets: list[str],
    checkpoint_epoch: int | None = None,
    subset_metrics: dict[str, dict[str, Any]] | None = None,
    max_bits: int = NEAR_DUPLICATE_BITS,
) -> dict[str, Any]:
    """Run the four checks for an evaluation of `subsets` of the experiment's split;
    `subset_metrics` is the evaluation's metrics per subset (for the train/val gap)."""
    checks: dict[str, Any] = {}
    split = session.get(Split, experiment.split_id) if experiment.split_id is not None else None
    if split is None or split.id is None:
        checks["fingerprint"] = {"status": "alarm", "message": "The experiment has no split."}
    else:
        checks["fingerprint"] = _fingerprint_check(session, split, experiment)
        members = _members(session, split.id)
        train = members.get("train", [])
        evaluated = {s: members.get(s, []) for s in subsets if s != "train"}
        checks["exact_duplicates"] = _exact_check(train, evaluated)
        checks["near_duplicates"] = _near_check(train, evaluated, max_bits)
    checks["metric_gap"] = _gap_check(session, experiment, checkpoint_epoch, subset_metrics)
    worst = max((c.get("status", "ok") for c in checks.values()), key=lambda s: _SEVERITY[s])
    return {"status": "ok" if worst == "unavailable" else worst, "checks": checks}
