"""A job's events as the job page lists them: one readable line each, with units.

Events keep their raw payload (the API and SSE stream send it unchanged); this turns the known
shapes (progress, status, log, training metrics) into words and numbers a person reads.
"""

from __future__ import annotations

import math
from typing import Any

from app.models import JobEvent


def _number(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        return f"{value:.2e}"
    return f"{value:.{digits}g}"


def _seconds(value: Any) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "—"
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(int(value), 60)
    return (
        f"{minutes} min {seconds:02d} s"
        if minutes < 60
        else f"{minutes // 60} h {minutes % 60:02d} min"
    )


def _rate(value: Any, unit: str) -> str:
    return f"{_number(float(value), 3)} {unit}/s" if isinstance(value, int | float) else ""


def _metric(payload: dict[str, Any]) -> str:
    kind = payload.get("kind")
    if kind == "epoch":
        metrics = payload.get("metrics") or {}
        parts = [f"epoch {payload.get('epoch')}/{payload.get('epochs')}"]
        parts += [
            f"{key} {_number(value)}"
            for key, value in metrics.items()
            if key not in ("images_per_s", "lr")
        ]
        if "lr" in metrics:
            parts.append(f"learning rate {_number(metrics['lr'])}")
        if metrics.get("images_per_s") is not None:
            parts.append(_rate(metrics["images_per_s"], "images"))
        if payload.get("seconds") is not None:
            parts.append(f"took {_seconds(payload['seconds'])}")
        return " · ".join(parts)
    if kind == "step":
        parts = [
            f"epoch {payload.get('epoch')}, batch {payload.get('batch')}/{payload.get('batches')}"
        ]
        if payload.get("loss") is not None:
            parts.append(f"loss {_number(payload['loss'])}")
        if payload.get("lr") is not None:
            parts.append(f"learning rate {_number(payload['lr'])}")
        if payload.get("images_per_s") is not None:
            parts.append(_rate(payload["images_per_s"], "images"))
        return " · ".join(parts)
    if kind == "checkpoint":
        text = f"saved the {payload.get('which')} checkpoint (epoch {payload.get('epoch')}"
        if payload.get("metric") is not None:
            text += f", {_number(payload['metric'])}"
        return text + ")"
    if kind == "test":
        values = {k: v for k, v in payload.items() if k not in ("kind", "checkpoint", "subset")}
        return "test subset: " + " · ".join(f"{k} {_number(v)}" for k, v in values.items())
    return " · ".join(f"{k} {_number(v)}" for k, v in payload.items() if k != "kind")


def _progress(payload: dict[str, Any]) -> str:
    parts = [str(payload.get("message") or "")]
    done, total, unit = payload.get("done"), payload.get("total"), payload.get("unit") or ""
    if done is not None and total:
        parts.append(f"{_number(done)} / {_number(total)} {unit}".strip())
    if payload.get("rate"):
        parts.append(_rate(payload["rate"], unit or "items"))
    if payload.get("eta_seconds") is not None:
        parts.append(f"about {_seconds(payload['eta_seconds'])} left")
    return " · ".join(p for p in parts if p)


def describe_event(event: JobEvent) -> dict[str, str]:
    """{"time", "type", "text", "level"} for one row of the job page's event table."""
    payload = event.payload or {}
    if event.type == "progress":
        text = _progress(payload)
    elif event.type == "metric":
        text = _metric(payload)
    elif event.type == "status":
        text = str(payload.get("status", ""))
        if payload.get("message") and str(payload["message"]).lower() != text:
            text += f": {payload['message']}"
    else:
        text = str(payload.get("message") or payload)
    label = {"metric": str(payload.get("kind") or "metric")}.get(event.type, event.type)
    return {
        "time": event.ts.strftime("%H:%M:%S"),
        "type": label,
        "text": text,
        "level": str(payload.get("level") or ""),
    }
