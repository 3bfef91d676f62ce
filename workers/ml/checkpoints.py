"""Checkpoints: plain tensors and containers only, written atomically, read with weights_only=True.

Layout: {"format", "state_dict" (the weights inference uses: EMA weights when EMA was on),
"provenance" (resolved config, classes, normalization, preprocess, split, versions...),
"extra" (epoch, metric; "trainer" with the Lightning loop/optimizer/scheduler state in `last`)}.
`provenance["task"]` names the task whose code half rebuilds the network.

Each checkpoint has a `<name>.sha256` beside it (sha256sum's format), written at save time
and checked by every load (evaluation, export, resume): a truncated, appended-to or
otherwise changed file is refused instead of being used. Checkpoints saved before digests
were recorded have none and load as before.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from app.errors import StudioError
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
    data = buffer.getvalue()
    # The digest first, still naming the file being replaced: a kill -9 between the two
    # writes leaves the old checkpoint, which must stay loadable (resume after a crash);
    # once the new file is in place the digest names it alone.
    digest = hashlib.sha256(data).hexdigest()
    lines = [f"{digest}  {path.name}\n"]
    if path.exists():
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")
    _atomic_write(digest_path(path), "".join(lines).encode())
    _atomic_write(path, data)
    if len(lines) > 1:
        _atomic_write(digest_path(path), lines[0].encode())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


class CheckpointCorrupt(StudioError):
    status = 409
    code = "checkpoint_corrupt"


def verify_checkpoint(path: Path) -> bytes:
    """The checkpoint's bytes, after checking them against the digest recorded at save."""
    data = path.read_bytes()
    try:
        recorded = {line.split()[0] for line in digest_path(path).read_text().splitlines() if line}
    except FileNotFoundError:
        return data  # saved before digests were recorded
    except (OSError, IndexError):
        recorded = set()
    if hashlib.sha256(data).hexdigest() not in recorded:
        raise CheckpointCorrupt(
            f"Checkpoint {path.name} does not match the sha256 recorded when it was saved "
            "(the file was changed or damaged); train again or resume from another checkpoint."
        )
    return data


def load_checkpoint(path: Path) -> dict[str, Any]:
    data = verify_checkpoint(path)
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)  # type: ignore[no-any-return]


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
