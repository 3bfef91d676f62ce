"""Loading and verifying pretrained weight files (the lookup itself is app/catalog/weights.py).

Files are read as tensors only: `torch.load(weights_only=True)` or safetensors. A file is
accepted for a model when its tensor names and shapes match the architecture the published
weights were made for (torchvision's ImageNet or COCO networks, the DINOv3 sizes); Hugging
Face checkpoints name their tensors without transformers' `model.` prefix, which is added.

`python -m workers.ml.weights verify MODEL_ID FILE` prints the verdict as JSON: the web
process (which never imports torch) runs it when weights are added.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.catalog import get_model
from app.catalog.weights import find_weights, sha256_of


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file; raises ValueError for anything else."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path)))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("the file holds no state dict (a mapping of tensor names to tensors)")
    return state


def align_keys(state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """Hugging Face files say `layer.0...`, transformers' modules `model.layer.0...`."""
    aligned = {}
    for key, value in state.items():
        aligned[key if key in expected or f"model.{key}" not in expected else f"model.{key}"] = (
            value
        )
    return aligned


def reference_network(model_id: str) -> nn.Module:
    """The architecture the model's published weights belong to, built on the meta device
    (no memory, no init time)."""
    from workers.ml.backbones import torchvision_classifier
    from workers.ml.dinov3 import architecture, build_network, dinov3_ids

    with torch.device("meta"):
        if model_id in dinov3_ids():
            return build_network(architecture(model_id, "full"))
        net = torchvision_classifier(model_id)
        if net is not None:
            return net
        from workers.ml.tasks.detection.models import build_detector, detector_ids

        if model_id in detector_ids():
            spec = get_model(model_id)
            model, _ = build_detector(model_id, 90, spec.default_image_size, {}, False)
            return model
    raise ValueError(f"{model_id} has no published pretrained weights to add")


def mismatches(state: dict[str, torch.Tensor], net: nn.Module) -> list[str]:
    """What does not match, in words (empty: the file fits the architecture)."""
    own = net.state_dict()
    state = align_keys(state, set(own))
    problems = []
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: file {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    for label, items in (
        ("missing tensors", missing),
        ("unexpected tensors", unexpected),
        ("shape mismatches", shapes),
    ):
        if items:
            more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:5])}{more}")
    return problems


def verify(model_id: str, path: Path) -> dict[str, Any]:
    """{"ok", "problems", "tensors", "bytes", "sha256"} for a candidate weights file."""
    result: dict[str, Any] = {
        "ok": False,
        "model_id": model_id,
        "bytes": path.stat().st_size,
        "sha256": sha256_of(path),
        "problems": [],
        "tensors": 0,
    }
    try:
        state = read_state(path)
    except Exception as error:  # any unreadable file is a verdict, not a crash
        result["problems"] = [f"cannot be read as tensors ({type(error).__name__}: {error})"[:500]]
        return result
    result["tensors"] = len(state)
    try:
        net = reference_network(model_id)
    except ValueError as error:
        result["problems"] = [str(error)]
        return result
    result["problems"] = mismatches(state, net)
    result["ok"] = not result["problems"]
    return result


def load_into(net: nn.Module, model_id: str, *, only_if_fits: bool = False) -> str:
    """Load the model's local weights into `net` (strict); the weights note. `only_if_fits`:
    a file that does not fit is left unused (a reduced test architecture beside real files)."""
    found = find_weights(model_id, fallback=False)
    if found is None:
        return "random-init"
    state = read_state(found.path)
    if only_if_fits and mismatches(state, net):
        return "random-init"
    state = align_keys(state, set(net.state_dict()))
    net.load_state_dict(state)
    return f"pretrained:{found.path.name}"


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "verify":
        print("usage: python -m workers.ml.weights verify MODEL_ID FILE", file=sys.stderr)
        return 2
    print(json.dumps(verify(argv[1], Path(argv[2]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
