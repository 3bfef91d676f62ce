"""The in-process tiny trainer other features' tests rely on, and the checkpoint contract."""

from __future__ import annotations

import time

import pytest
import torch
from PIL import Image as PILImage
from sqlmodel import Session, select

from app.models import MetricPoint
from app.services.evaluation_audit import leakage_audit
from app.storage import Storage
from tests.factories import make_digits, make_split
from tests.support.training import train_tiny_experiment
from workers.ml.checkpoints import load_checkpoint, load_for_inference, preprocess
from workers.ml.tasks import get_task_code
from workers.ml.tasks.base import Ann, Sample


@pytest.mark.slow
def test_tiny_experiment_trains_and_records_everything(
    session: Session, storage: Storage, project
) -> None:
    images = make_digits(session, storage, project.id, per_class=8)
    split = make_split(session, project.id, images)
    started = time.monotonic()
    experiment = train_tiny_experiment(session, storage, project.id, split.id, epochs=2)
    elapsed = time.monotonic() - started
    assert experiment.status == "completed"
    assert experiment.epochs_done == 2
    assert set(experiment.checkpoints) == {"best", "last"}
    for info in experiment.checkpoints.values():
        assert storage.resolve(info["path"]).is_file()
    provenance = experiment.provenance
    assert provenance["split_fingerprint"] == split.fingerprint
    assert provenance["classes"] == [str(i) for i in range(10)]
    assert provenance["weights"] == "random-init"
    assert provenance["preprocess"]["resize"] == [32, 32]
    assert provenance["test_metrics"]["checkpoint"] == "best"
    points = session.exec(
        select(MetricPoint).where(MetricPoint.experiment_id == experiment.id)
    ).all()
    keys = {p.key for p in points}
    assert {"train/loss", "train/acc", "val/acc", "val/loss", "test/accuracy", "lr"} <= keys
    test_acc = next(p.value for p in points if p.key == "test/accuracy")
    assert test_acc == provenance["test_metrics"]["accuracy"]
    assert elapsed < 60, elapsed

    # The leakage audit's train/val gap reads the curves training itself wrote.
    by_key = {(p.key, p.epoch): p.value for p in points}
    assert [e for k, e in sorted(by_key) if k == "train/acc"] == [1, 2]
    gap = leakage_audit(session, experiment, subsets=["test"], checkpoint_epoch=2)["checks"][
        "metric_gap"
    ]
    assert gap["source"] == "training curves" and gap["train_key"] == "train/acc"
    assert gap["train"] == by_key[("train/acc", 2)] and gap["val"] == by_key[("val/acc", 2)]
    assert 0.0 <= gap["train"] <= 1.0

    # The checkpoint loads with weights_only=True and reproduces the test accuracy exactly
    # through load_for_inference + preprocess, the way evaluation does it.
    best = storage.resolve(experiment.checkpoints["best"]["path"])
    checkpoint = load_checkpoint(best)
    assert checkpoint["provenance"]["config"]["epochs"] == 2
    model = load_for_inference(best)
    assert model.classes == provenance["classes"] and not model.info["multi_label"]
    test_ids = [i for i, s in split_subsets(session, split.id) if s == "test"]
    by_id = {image.id: image for image in images}
    correct = 0
    for image_id in test_ids:
        image = by_id[image_id]
        with PILImage.open(storage.resolve(image.stored_path)) as pil:
            logits = model.model(preprocess(pil, model).unsqueeze(0))
        label = image_label(session, image_id)
        correct += int(model.classes[int(torch.argmax(logits))] == label)
    assert correct / len(test_ids) == pytest.approx(provenance["test_metrics"]["accuracy"])
    samples = [
        Sample(
            i,
            storage.resolve(by_id[i].stored_path),
            annotations=[Ann("label", image_label(session, i))],
        )
        for i in test_ids
    ]
    outcome = get_task_code("classification").evaluate(model, samples, options={})
    assert outcome.aggregate["accuracy"] == provenance["test_metrics"]["accuracy"]


def split_subsets(session: Session, split_id: int) -> list[tuple[int, str]]:
    from app.models import SplitMember

    rows = session.exec(
        select(SplitMember.image_id, SplitMember.subset).where(SplitMember.split_id == split_id)
    ).all()
    return [(int(a), str(b)) for a, b in rows]


def image_label(session: Session, image_id: int) -> str:
    from app.models import Annotation, LabelClass

    name = session.exec(
        select(LabelClass.name)
        .join(Annotation, Annotation.class_id == LabelClass.id)
        .where(Annotation.image_id == image_id)
    ).first()
    assert name is not None
    return name


@pytest.mark.slow
def test_project_with_several_labels_per_image_trains_multi_label(
    session: Session, storage: Storage, project
) -> None:
    from tests.factories import make_image

    labels = [["cat"], ["dog"], ["cat", "dog"], ["cat"], ["dog", "bird"], ["bird"]] * 2
    images = [make_image(session, storage, project.id, labels=ls) for ls in labels]
    split = make_split(session, project.id, images, ratios=(0.5, 0.25, 0.25))
    experiment = train_tiny_experiment(session, storage, project.id, split.id, epochs=1)
    assert experiment.status == "completed"
    provenance = experiment.provenance
    assert provenance["multi_label"] is True  # decided from the data: an image has 2 labels
    assert len(provenance["thresholds"]) == 3
    assert {"accuracy", "f1_macro", "map"} <= set(provenance["test_metrics"])
    model = load_for_inference(storage.resolve(experiment.checkpoints["best"]["path"]))
    assert model.info["multi_label"] and model.classes == ["cat", "dog", "bird"]


@pytest.mark.slow
def test_cuda_out_of_memory_halves_the_batch_and_resumes_from_the_last_checkpoint(
    session: Session, storage: Storage, project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handler's recovery loop with real fits and a real checkpoint: the first fit trains
    and writes `last`, then CUDA reports out of memory (no GPU here, so the error is raised
    by a wrapper around the real fit); the second fit must resume from that checkpoint with
    half the batch and twice the accumulation."""
    import workers.ml.train as train_module

    real_fit = train_module.fit
    calls: list[tuple[int, int, bool]] = []

    def fit_then_oom_once(request, report, should_stop=None):  # type: ignore[no-untyped-def]
        calls.append(
            (
                request.config["batch_size"],
                request.config["accumulate_grad_batches"],
                request.resume_from is not None,
            )
        )
        result = real_fit(request, report, should_stop)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return result

    monkeypatch.setattr(train_module, "fit", fit_then_oom_once)
    images = make_digits(session, storage, project.id, per_class=4)
    split = make_split(session, project.id, images)
    experiment = train_tiny_experiment(session, storage, project.id, split.id, epochs=1)
    assert calls == [(16, 1, False), (8, 2, True)]
    assert experiment.status == "completed"
    assert (experiment.config["batch_size"], experiment.config["accumulate_grad_batches"]) == (8, 2)
    assert any("CUDA out of memory: batch size now 8" in n for n in experiment.provenance["notes"])
