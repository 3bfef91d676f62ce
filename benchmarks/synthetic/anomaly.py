"""Anomaly scenes: a textured surface (woven, brushed or grained) with scratches and stains, in
MVTec's layout: train/good, test/good, test/<defect> and ground_truth/<defect>/<name>_mask.png.

Every image draws its own surface: the texture family, its colour, scale, direction and
lighting vary, so a detector has to learn what the surface looks like rather than one picture.
Defects: scratches are thin curved lines a little darker or lighter than the surface; stains
are soft-edged blobs of shifted colour. About a quarter of the images are defective, all in
test (as in MVTec); the masks mark the defect pixels.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from benchmarks.synthetic import generator

DEFECTS = ("scratch", "stain")
DEFECTIVE_SHARE = 0.25
TRAIN_SHARE = 0.55  # of all images: normal training images; the rest is test


def surface(rng: np.random.Generator, size: int) -> np.ndarray:
    """One surface as float RGB in 0..255: a periodic texture, colour, grain and lighting."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size
    angle = rng.uniform(0, math.pi)
    u = x * math.cos(angle) + y * math.sin(angle)
    v = -x * math.sin(angle) + y * math.cos(angle)
    family = rng.integers(0, 3)
    period = rng.uniform(10, 16) / 96  # a share of the side, so any image size looks alike
    phase = rng.uniform(0, 2 * math.pi, 2)
    if family == 0:  # woven: two crossing weaves
        pattern = np.sin(2 * math.pi * u / period + phase[0]) * np.sin(
            2 * math.pi * v / period + phase[1]
        )
    elif family == 1:  # brushed: fine streaks along one direction
        streaks = rng.normal(0, 1, size)
        index = np.clip((v * size).astype(int), 0, size - 1)
        pattern = 0.6 * streaks[index] + 0.4 * np.sin(2 * math.pi * v / period + phase[0])
    else:  # grain: wavy rings
        pattern = np.sin(2 * math.pi * (u + 0.05 * np.sin(2 * math.pi * v * 3 + phase[1])) / period)
    base = rng.uniform(90, 170, 3)
    tint = rng.uniform(0.75, 1.0, 3)
    light = 1 + 0.12 * (x - 0.5) * rng.uniform(-1, 1) + 0.12 * (y - 0.5) * rng.uniform(-1, 1)
    pixels = (base * tint)[None, None, :] + 22 * pattern[..., None]
    pixels = pixels * light[..., None] + rng.normal(0, 4, (size, size, 3))
    return np.clip(pixels, 0, 255)


def scratch(rng: np.random.Generator, size: int) -> Image.Image:
    """A thin curved line mask (L mode, 255 = defect)."""
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    length = size * rng.uniform(0.3, 0.6)
    x, y = rng.uniform(0.2 * size, 0.8 * size, 2)
    heading = rng.uniform(0, 2 * math.pi)
    bend = rng.uniform(-0.04, 0.04)
    steps = 24
    points = [(x, y)]
    for _ in range(steps):
        heading += bend
        x += math.cos(heading) * length / steps
        y += math.sin(heading) * length / steps
        points.append((x, y))
    draw.line(points, fill=255, width=max(1, round(size / 80)))
    return mask


def stain(rng: np.random.Generator, size: int) -> Image.Image:
    """A soft irregular blob mask (L mode, 255 = defect)."""
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy = rng.uniform(0.25 * size, 0.75 * size, 2)
    radius = size * rng.uniform(0.07, 0.14)
    count = 18
    wobble = rng.uniform(0.7, 1.3, count)
    points = [
        (
            cx + radius * wobble[k] * math.cos(2 * math.pi * k / count),
            cy + radius * wobble[k] * math.sin(2 * math.pi * k / count),
        )
        for k in range(count)
    ]
    draw.polygon(points, fill=255)
    return mask


def apply_defect(
    pixels: np.ndarray, kind: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The surface with one defect, and the defect's binary mask."""
    size = pixels.shape[0]
    if kind == "scratch":
        shape = scratch(rng, size)
        soft = np.asarray(shape.filter(ImageFilter.GaussianBlur(0.5)), np.float64) / 255
        shift = rng.choice([-1, 1]) * rng.uniform(45, 70)
        out = pixels + shift * soft[..., None]
    else:
        shape = stain(rng, size)
        soft = np.asarray(shape.filter(ImageFilter.GaussianBlur(size / 60)), np.float64) / 255
        colour = np.array([-1.0, -0.6, -0.2]) * rng.uniform(30, 50)
        out = pixels + colour[None, None, :] * soft[..., None]
    mask = (np.asarray(shape) > 127).astype(np.uint8) * 255
    return np.clip(out, 0, 255), mask


@generator(
    "anomaly",
    tiny={"model": "anomaly_unet", "epochs": 2, "image_size": 32, "batch_size": 8},
)
def write(root: Path, *, images: int, size: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    defective = max(len(DEFECTS), round(images * DEFECTIVE_SHARE))
    train = max(1, round(images * TRAIN_SHARE))
    train = min(train, images - defective - 1)
    for index in range(images):
        pixels = surface(rng, size)
        if index < train:
            folder, kind = root / "train" / "good", None
        elif index < images - defective:
            folder, kind = root / "test" / "good", None
        else:
            kind = DEFECTS[index % len(DEFECTS)]
            folder = root / "test" / kind
        name = f"{index:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        if kind is not None:
            pixels, mask = apply_defect(pixels, kind, rng)
            masks = root / "ground_truth" / kind
            masks.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask).save(masks / f"{name}_mask.png")
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{name}.png")
    return {"format": "anomaly", "classes": ["normal", "anomalous"]}
