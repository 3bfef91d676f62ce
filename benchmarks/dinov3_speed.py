"""Training step time of the DINOv3 backbones (classification head), head-only (the DINOv3
default) and fully trained, with ResNet-18 measured in the same run as the yardstick.

    .venv/bin/python benchmarks/dinov3_speed.py                    # tiny configs, CPU, 64 px
    .venv/bin/python benchmarks/dinov3_speed.py --scale full --image-size 224 --device cuda

`--scale tiny` builds the same transformers code with a few narrow layers (what the tests
train); `--scale full` the catalog sizes (random weights: speed does not depend on them).
Figures are medians over `--steps` optimizer steps after two warm-up steps.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from workers.ml.backbones import freeze_backbone  # noqa: E402
from workers.ml.dinov3 import architecture, dinov3_ids  # noqa: E402
from workers.ml.heads import build_classifier  # noqa: E402

MODELS = [*dinov3_ids(), "resnet18"]


def step_times(
    model_id: str, scale: str, *, frozen: bool, size: int, batch: int, steps: int, device: str
) -> list[float]:
    arch = architecture(model_id, scale) if model_id in dinov3_ids() else None
    model, _ = build_classifier(model_id, 10, pretrained=False, arch=arch)
    freeze_backbone(model.backbone, {"freeze_backbone": frozen})
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    times = []
    for _ in range(steps + 2):
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return times[2:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    print(f"scale={args.scale} image={args.image_size}px batch={args.batch} device={args.device} "
          f"threads={torch.get_num_threads()} load={os.getloadavg()[0]:.2f}")  # fmt: skip
    print("| model | params (M) | head-only s/step | full s/step | full vs ResNet-18 |")
    print("|---|---:|---:|---:|---:|")
    rows = {}
    for model_id in MODELS:
        arch = architecture(model_id, args.scale) if model_id in dinov3_ids() else None
        model, _ = build_classifier(model_id, 10, pretrained=False, arch=arch)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        common = {"size": args.image_size, "batch": args.batch, "steps": args.steps,
                  "device": args.device}  # fmt: skip
        frozen = statistics.median(step_times(model_id, args.scale, frozen=True, **common))
        full = statistics.median(step_times(model_id, args.scale, frozen=False, **common))
        rows[model_id] = (params, frozen, full)
    reference = rows["resnet18"][2]
    for model_id, (params, frozen, full) in rows.items():
        print(
            f"| {model_id} | {params:.2f} | {frozen:.4f} | {full:.4f} | {full / reference:.2f}x |"
        )


if __name__ == "__main__":
    main()
