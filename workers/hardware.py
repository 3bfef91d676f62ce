"""Record what a compute worker can run on, for the web process (app/services/hardware.py)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from app.storage import Storage, atomic_write_json


def record_hardware(storage: Storage) -> None:
    """Write workspace/hardware.json (CUDA availability, device names, backbones with local
    pretrained weights). Called by compute handlers once torch is imported anyway; never
    fails a job."""
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
            {
                "cuda": cuda,
                "devices": names,
                "pretrained": pretrained_backbones(),
                "checked_at": datetime.now(UTC).isoformat(),
            },
        )


def pretrained_backbones() -> list[str]:
    """Backbone ids whose published weights lie in the local weights folders (methods that
    need pretrained features are offered only for these)."""
    from workers.ml.backbones import backbone_ids, find_pretrained

    found = []
    for model_id in backbone_ids():
        with contextlib.suppress(Exception):
            if find_pretrained(model_id) is not None:
                found.append(model_id)
    return found
