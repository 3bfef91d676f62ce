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
