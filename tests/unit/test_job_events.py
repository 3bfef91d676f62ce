"""The job page's event lines: words and units instead of raw JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.models import JobEvent
from app.web.job_events import describe_event


def _event(type_: str, payload: dict[str, Any]) -> JobEvent:
    return JobEvent(
        job_id=1, seq=1, type=type_, payload=payload, ts=datetime(2026, 11, 30, 9, 5, 7, tzinfo=UTC)
    )


def test_an_epoch_reads_with_its_units() -> None:
    row = describe_event(
        _event(
            "metric",
            {
                "kind": "epoch",
                "epoch": 3,
                "epochs": 10,
                "step": 135,
                "seconds": 3.1416,
                "eta_seconds": 22.0,
                "metrics": {
                    "train/loss": 0.123456,
                    "val/acc": 0.98,
                    "lr": 0.00297,
                    "images_per_s": 812.34,
                },
            },
        )
    )
    assert row == {
        "time": "09:05:07",
        "type": "epoch",
        "text": "epoch 3/10 · train/loss 0.1235 · val/acc 0.98 · learning rate 0.00297 · "
        "812 images/s · took 3.1 s",
        "level": "",
    }


def test_steps_progress_status_and_logs() -> None:
    step = {
        "kind": "step",
        "epoch": 2,
        "batch": 7,
        "batches": 45,
        "loss": 0.5,
        "lr": 2e-5,
        "images_per_s": 90.0,
    }
    assert describe_event(_event("metric", step))["text"] == (
        "epoch 2, batch 7/45 · loss 0.5 · learning rate 2.00e-05 · 90 images/s"
    )
    progress = {
        "message": "Epoch 2/10",
        "done": 52,
        "total": 450,
        "unit": "batches",
        "rate": 3.25,
        "eta_seconds": 122.4,
    }
    assert describe_event(_event("progress", progress))["text"] == (
        "Epoch 2/10 · 52 / 450 batches · 3.25 batches/s · about 2 min 02 s left"
    )
    status = describe_event(
        _event("status", {"status": "cancelled", "message": "Stopped after epoch 2"})
    )
    assert status["text"] == "cancelled: Stopped after epoch 2"
    log = describe_event(_event("log", {"level": "warning", "message": "CUDA out of memory"}))
    assert log == {
        "time": "09:05:07",
        "type": "log",
        "text": "CUDA out of memory",
        "level": "warning",
    }
