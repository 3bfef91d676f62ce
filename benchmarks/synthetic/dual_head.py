"""Plant-like objects with disease marks, channel masks and an out-of-domain set: the
dual-head (classification + segmentation) benchmark, in the spirit of the seed plan's §12.

Each image shows one leaf (a green ellipse with a stem line) on a soil-like background. Its
class is the disease drawn on it, each with its own manifestation channel (a pixel may be in
two channels, so masks are per-channel binary: `masks/<channel>/<name>.png`):
- healthy: tissue only;
- spot: round brown spots (surface);
- streak: dark stripes along the leaf (surface + degradation where they cross the tip);
- wilt: the leaf's tip yellow-brown (degradation);
- whip: a black whip-like structure from the base (structural).
Channels: tissue (every plant pixel), structural, surface, degradation. A band of 255
(uncertain) is written around each mark's edge. `ood/` holds images that are not in the
domain (noise, flat colours, a blue square, stripes). Not registered with `@generator` (the
conformance suite runs one generator per task type; this is a variant of classification's):

    python -m benchmarks.synthetic.dual_head /tmp/leaves --images 300 --size 64
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("healthy", "spot", "streak", "wilt", "whip")
CHANNELS = ("tissue", "structural", "surface", "degradation")


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    base = np.array([110, 85, 60], np.float64) + rng.normal(0, 12, 3)
    noise = rng.normal(0, 14, (size, size, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def _leaf(
    rng: np.random.Generator, size: int, disease: str
) -> tuple[Image.Image, dict[str, np.ndarray]]:
    picture = _background(rng, size)
    layers = {c: Image.new("L", (size, size), 0) for c in CHANNELS}
    draw = ImageDraw.Draw(picture)
    rx, ry = size * rng.uniform(0.18, 0.26), size * rng.uniform(0.32, 0.42)
    cx, cy = size / 2 + rng.uniform(-0.08, 0.08) * size, size / 2 + rng.uniform(-0.06, 0.06) * size
    box = (cx - rx, cy - ry, cx + rx, cy + ry)
    green = tuple(int(v) for v in np.clip(np.array([60, 150, 55]) + rng.normal(0, 15, 3), 0, 255))
    draw.ellipse(box, fill=green)
    ImageDraw.Draw(layers["tissue"]).ellipse(box, fill=1)
    marks: dict[str, ImageDraw.ImageDraw] = {c: ImageDraw.Draw(layers[c]) for c in CHANNELS}
    if disease == "spot":
        for _ in range(int(rng.integers(3, 6))):
            r = size * rng.uniform(0.04, 0.07)
            x, y = cx + rng.uniform(-0.6, 0.6) * rx, cy + rng.uniform(-0.6, 0.6) * ry
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(120, 70, 30))
            marks["surface"].ellipse((x - r, y - r, x + r, y + r), fill=1)
    elif disease == "streak":
        for k in (-0.4, 0.0, 0.4):
            x = cx + k * rx
            line = [(x, cy - 0.8 * ry), (x, cy + 0.8 * ry)]
            draw.line(line, fill=(40, 50, 20), width=max(2, size // 24))
            marks["surface"].line(line, fill=1, width=max(2, size // 24))
        tip = (cx - rx, cy - ry, cx + rx, cy - 0.55 * ry)
        marks["degradation"].rectangle(tip, fill=1)
    elif disease == "wilt":
        tip = (cx - rx, cy - ry, cx + rx, cy - 0.1 * ry)
        draw.chord(box, 180, 360, fill=(190, 160, 60))
        marks["degradation"].chord(box, 180, 360, fill=1)
        del tip
    elif disease == "whip":
        base = (cx, cy + ry)
        end = (cx + rng.uniform(-0.3, 0.3) * size, cy - ry * 1.1)
        width = max(3, size // 12)
        draw.line([base, end], fill=(15, 15, 15), width=width)
        marks["structural"].line([base, end], fill=1, width=width)
        marks["tissue"].line([base, end], fill=1, width=width)
    masks = {c: np.asarray(layers[c], np.uint8) for c in CHANNELS}
    masks["degradation"] = masks["degradation"] & masks["tissue"]
    for channel, mask in masks.items():
        # Uncertain edge: the 1-pixel ring just outside each mark is 255 (ignored by the loss).
        padded = np.pad(mask, 1)
        grown = np.zeros_like(mask)
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                grown |= padded[dy : dy + size, dx : dx + size]
        edge = (grown > 0) & (mask == 0)
        out = mask.copy()
        out[edge] = 255
        masks[channel] = out
    return picture, masks


def _out_of_domain(rng: np.random.Generator, size: int, index: int) -> Image.Image:
    kind = index % 4
    if kind == 0:
        return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    if kind == 1:
        return Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 256, 3)))
    if kind == 2:
        picture = Image.new("RGB", (size, size), (220, 220, 230))
        r = size * rng.uniform(0.2, 0.35)
        ImageDraw.Draw(picture).rectangle(
            (size / 2 - r, size / 2 - r, size / 2 + r, size / 2 + r), fill=(40, 60, 200)
        )
        return picture
    stripes = (np.indices((size, size)).sum(0) // max(2, size // 8)) % 2
    colours = rng.integers(0, 256, (2, 3))
    return Image.fromarray(colours[stripes].astype(np.uint8))


def write_dual_head(
    root: Path, *, images: int, size: int, seed: int = 0, ood: int = 20
) -> dict[str, Any]:
    """`<class>/<n>.png`, `masks/<channel>/<n>.png` (every image masked) and `ood/<n>.png`
    (kept outside `root`'s import: pass `root/ood` to the gate test set)."""
    rng = np.random.default_rng(seed)
    data = root / "data"
    for channel in CHANNELS:
        (data / "masks" / channel).mkdir(parents=True, exist_ok=True)
    for index in range(images):
        disease = CLASSES[index % len(CLASSES)]
        (data / disease).mkdir(parents=True, exist_ok=True)
        picture, masks = _leaf(rng, size, disease)
        name = f"{index:05d}.png"
        picture.save(data / disease / name)
        for channel, mask in masks.items():
            Image.fromarray(mask).save(data / "masks" / channel / name)
    (root / "ood").mkdir(parents=True, exist_ok=True)
    for index in range(ood):
        _out_of_domain(rng, size, index).save(root / "ood" / f"ood_{index:03d}.png")
    return {"format": "folders", "classes": list(CLASSES), "channels": list(CHANNELS)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--ood", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    info = write_dual_head(
        args.root, images=args.images, size=args.size, seed=args.seed, ood=args.ood
    )
    print(f"{args.images} images in {args.root}/data, {args.ood} in {args.root}/ood: {info}")


if __name__ == "__main__":
    main()
