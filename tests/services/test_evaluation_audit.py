"""The leakage audit: fingerprint re-verified, exact and near duplicates, train/val gap."""

from __future__ import annotations

import numpy as np
from sqlmodel import Session, select

from app.models import Image, MetricPoint, Project, SplitMember
from app.services.evaluation_audit import leakage_audit
from app.storage import Storage
from tests.factories import make_image, make_split
from tests.support.evaluation import make_experiment


def _images(session: Session, storage: Storage, project: Project, n: int = 10) -> list[Image]:
    assert project.id is not None
    return [
        make_image(session, storage, project.id, labels=["a" if i % 2 else "b"]) for i in range(n)
    ]


def _subset_ids(session: Session, split_id: int, subset: str) -> list[int]:
    return list(
        session.exec(
            select(SplitMember.image_id).where(
                SplitMember.split_id == split_id, SplitMember.subset == subset
            )
        )
    )


def test_clean_split_passes_and_missing_curves_are_unavailable(
    session: Session, storage: Storage, project: Project
) -> None:
    split = make_split(session, project.id, _images(session, storage, project))  # type: ignore[arg-type]
    experiment = make_experiment(session, storage, project.id, split)  # type: ignore[arg-type]
    audit = leakage_audit(session, experiment, subsets=["test"])
    checks = audit["checks"]
    assert audit["status"] == "ok"
    assert checks["fingerprint"]["status"] == "ok"
    assert checks["fingerprint"]["current"] == split.fingerprint
    assert checks["exact_duplicates"] == {**checks["exact_duplicates"], "status": "ok", "count": 0}
    assert checks["exact_duplicates"]["checked"] == len(_subset_ids(session, split.id, "test"))  # type: ignore[arg-type]
    assert checks["near_duplicates"]["status"] == "unavailable"  # factories store no phash
    assert checks["metric_gap"]["status"] == "unavailable"


def test_byte_identical_test_image_and_changed_split_raise_alarms(
    session: Session, storage: Storage, project: Project
) -> None:
    images = _images(session, storage, project)
    split = make_split(session, project.id, images)  # type: ignore[arg-type]
    experiment = make_experiment(session, storage, project.id, split)  # type: ignore[arg-type]
    train_id = _subset_ids(session, split.id, "train")[0]  # type: ignore[arg-type]
    test_id = _subset_ids(session, split.id, "test")[0]  # type: ignore[arg-type]
    test_image = session.get(Image, test_id)
    assert test_image is not None
    test_image.sha256 = session.get(Image, train_id).sha256  # type: ignore[union-attr]
    session.add(test_image)
    session.commit()

    audit = leakage_audit(session, experiment, subsets=["val", "test"])
    assert audit["status"] == "alarm"
    exact = audit["checks"]["exact_duplicates"]
    assert exact["count"] == 1
    assert exact["pairs"] == [{"subset": "test", "image_id": test_id, "train_image_id": train_id}]
    # the edit changed a member's hash, so the split no longer matches its fingerprint
    assert audit["checks"]["fingerprint"]["status"] == "alarm"
    assert audit["checks"]["fingerprint"]["current"] != split.fingerprint


def test_near_duplicates_by_perceptual_hash(
    session: Session, storage: Storage, project: Project
) -> None:
    images = _images(session, storage, project, 12)
    split = make_split(session, project.id, images)  # type: ignore[arg-type]
    experiment = make_experiment(session, storage, project.id, split)  # type: ignore[arg-type]
    rng = np.random.default_rng(3)
    for image in images:
        image.phash = rng.integers(0, 2**63, dtype=np.int64).item().to_bytes(8, "big").hex()
        session.add(image)
    session.commit()
    train_id = _subset_ids(session, split.id, "train")[0]  # type: ignore[arg-type]
    test_id = _subset_ids(session, split.id, "test")[1]  # type: ignore[arg-type]
    train_hash = int(session.get(Image, train_id).phash, 16)  # type: ignore[union-attr]
    near = session.get(Image, test_id)
    assert near is not None
    near.phash = (train_hash ^ 0b1011).to_bytes(8, "big").hex()  # 3 bits apart
    session.add(near)
    session.commit()

    audit = leakage_audit(session, experiment, subsets=["test"], max_bits=4)
    check = audit["checks"]["near_duplicates"]
    assert check["status"] == "warning" and audit["status"] == "warning"
    assert {
        "subset": "test",
        "image_id": test_id,
        "train_image_id": train_id,
        "distance": 3,
    } in check["pairs"]
    strict = leakage_audit(session, experiment, subsets=["test"], max_bits=2)
    assert all(p["image_id"] != test_id for p in strict["checks"]["near_duplicates"]["pairs"])


def test_train_val_gap_thresholds(session: Session, storage: Storage, project: Project) -> None:
    """Thresholds on hand-made curves under the keys training writes (train/acc, val/acc per
    epoch; tests/ml/test_tiny_training.py checks a real training run writes them)."""
    split = make_split(session, project.id, _images(session, storage, project))  # type: ignore[arg-type]
    experiment = make_experiment(session, storage, project.id, split)  # type: ignore[arg-type]

    def curves(epoch: int, train: float, val: float) -> None:
        for key, value in (("train/acc", train), ("val/acc", val)):
            session.add(
                MetricPoint(
                    experiment_id=experiment.id, step=epoch * 10, epoch=epoch, key=key, value=value
                )  # type: ignore[arg-type]
            )
        session.commit()

    curves(0, 0.80, 0.77)  # 3 points
    curves(1, 0.90, 0.83)  # 7 points
    curves(2, 0.99, 0.80)  # 19 points

    def gap(epoch: int | None) -> dict:  # type: ignore[type-arg]
        audit = leakage_audit(session, experiment, subsets=["test"], checkpoint_epoch=epoch)
        return audit["checks"]["metric_gap"]

    assert gap(0)["status"] == "ok" and abs(gap(0)["gap_points"] - 3.0) < 1e-9
    assert gap(1)["status"] == "warning"
    assert gap(2)["status"] == "alarm" and gap(2)["train"] == 0.99 and gap(2)["val"] == 0.80
    assert gap(None)["epoch"] is None and gap(None)["status"] == "alarm"  # the latest values
    assert gap(0)["source"] == "training curves"
    # the evaluation's own train and val accuracies win over the curves when it has both
    own = leakage_audit(
        session,
        experiment,
        subsets=["train", "val", "test"],
        checkpoint_epoch=2,
        subset_metrics={"train": {"accuracy": 0.9}, "val": {"accuracy": 0.88}},
    )["checks"]["metric_gap"]
    assert own["status"] == "ok" and own["source"] == "this evaluation"
    assert abs(own["gap_points"] - 2.0) < 1e-9
