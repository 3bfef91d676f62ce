"""What the compute workers can run on, as they reported it (workers/hardware.py writes it).

The web process never imports torch, so it cannot ask CUDA itself; forms offer the devices
the workers found, and a request for a device that is not there is refused before any job is
queued. Until a compute worker has started once, only `auto` and `cpu` are offered.
"""

from __future__ import annotations

from typing import Any

from app.errors import Invalid
from app.storage import Storage, read_json


def read_hardware(storage: Storage) -> dict[str, Any]:
    try:
        data = read_json(storage.hardware_path)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def devices(storage: Storage) -> list[str]:
    """Devices a job may ask for: auto and cpu always, cuda when a worker saw a CUDA device."""
    found = ["auto", "cpu"]
    if read_hardware(storage).get("cuda"):
        found.append("cuda")
    return found


def check_device(storage: Storage, device: str) -> None:
    valid = devices(storage)
    if device not in valid:
        raise Invalid(
            f"device={device} is not available on this studio's workers; use {' or '.join(valid)}.",
            code="device_unavailable",
            details={"valid": valid},
        )


def pretrained_backbones(storage: Storage) -> list[str] | None:
    """Backbone ids with local pretrained weights as the workers found them; None until a
    compute worker has looked."""
    found = read_hardware(storage).get("pretrained")
    return [str(x) for x in found] if isinstance(found, list) else None


def model_availability(storage: Storage, models: list[Any]) -> dict[str, str]:
    """Why a catalog model cannot train here (model id -> reason), for models that need
    pretrained weights the workers did not find; models missing here are available."""
    found = pretrained_backbones(storage)
    reasons = {}
    for model in models:
        needed = getattr(model, "requires_pretrained", "")
        if needed and (found is None or needed not in found):
            reasons[model.id] = (
                f"needs pretrained {needed} weights in a local weights folder "
                "(the Weights page, STUDIO_WEIGHTS_DIR, the torch hub or Hugging Face cache); "
                + ("none were found" if found is not None else "no worker has looked yet")
            )
    return reasons
