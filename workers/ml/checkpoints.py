"""Checkpoints: plain tensors and containers only, written atomically, read with weights_only=True.

Layout: {"format", "state_dict" (the weights inference uses: EMA weights when EMA was on),
"provenance" (resolved config, classes, normalization, preprocess, split, versions...),
"extra" (epoch, metric; "trainer" with the Lightning loop/optimizer/scheduler state in `last`)}.
`provenance["task"]` names the task whose code half rebuilds the network.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from workers.ml.tasks.base import InferenceModel
from workers.ml.transforms import EvalTransform

FORMAT = "ai-studio-checkpoint/1"


def save_checkpoint(
    path: Path,
    *,
    state_dict: dict[str, Any],
    provenance: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> None:
    """Write tmp file, fsync, os.replace: a reader never sees a half-written checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "provenance": provenance,
        "extra": extra or {},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(buffer.getvalue())
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)  # type: ignore[no-any-return]


def load_for_inference(path: Path, device: str = "cpu") -> InferenceModel:
    """A checkpoint as a ready network: the task's code half builds the bare model from the
    provenance, the saved weights go in, and the task facts come along in `info`."""
    from workers.ml.tasks import get_task_code

    checkpoint = load_checkpoint(path)
    provenance = checkpoint["provenance"]
    code = get_task_code(provenance["task"])
    model = code.build_model(provenance)
    model.load_state_dict(checkpoint["state_dict"])
    return InferenceModel(
        model=model.to(device).eval(),
        task=code.key,
        classes=list(provenance["classes"]),
        image_size=int(provenance["image_size"]),
        mean=list(provenance["mean"]),
        std=list(provenance["std"]),
        channels=int(provenance.get("channels", 3)),
        provenance=provenance,
        device=device,
        info=code.model_info(provenance),
    )


def preprocess(pil_image: Image.Image, model: InferenceModel) -> torch.Tensor:
    """CHW float tensor: convert("RGB"), bilinear resize to image_size², 0-1, normalize."""
    return EvalTransform(model.image_size, model.mean, model.std)(pil_image)
