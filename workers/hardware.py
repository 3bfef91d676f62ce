"""Record what a compute worker can run on, for the web process (app/services/hardware.py)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from app.storage import Storage, atomic_write_json


def record_hardware(storage: Storage) -> None:
    """Write workspace/hardware.json (CUDA availability and device names). Called by compute
    handlers once torch is imported anyway; never fails a job."""
    import torch

    with contextlib.suppress(Exception):
        cuda = bool(torch.cuda.is_available())
        names = (
            [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if cuda
            else []
        )
        atomic_write_json(
            storage.hardware_path,
            {"cuda": cuda, "devices": names, "checked_at": datetime.now(UTC).isoformat()},
        )
