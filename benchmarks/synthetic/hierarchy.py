"""A hierarchical classification set: two coarse groups, five fine classes, three domains.

Coarse group = how a shape is drawn (`solid`: filled; `hollow`: an outline), fine class = the
shape within its group, so fine classes confuse mostly with their siblings. Each image also
belongs to a domain (`warm`, `cool`, `grey`: a colour cast over the whole picture) stored as
the middle folder, which the folder importer keeps as the `folder` attribute: a
leave-one-group-out split on it gives a domain-generalisation family. `taxonomy.csv` at the
root gives the tree. Registered as the variant "classification/hierarchy" (the conformance
suite trains it with a tiny coarse → fine curriculum):

    python -m benchmarks.synthetic.hierarchy /tmp/hier --images 300 --size 64 [--hard]

`hard=True` keeps the coarse cue as clear as before (filled vs outline) but makes the fine cue
subtle: the fine classes of a group are regular polygons that differ only in their number of
corners (5, 6, 7), drawn at any rotation, so the difference between siblings is a few pixels
of outline while everything else (size, position, rotation, colour, background, domain) varies
freely and carries no class information. Same two groups, five fine classes and three domains.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from benchmarks.synthetic import generator
from benchmarks.synthetic.scenes import background, colour, polygon

TAXONOMY = {
    "disc": ("solid", "circle"),
    "block": ("solid", "square"),
    "wedge": ("solid", "triangle"),
    "ring": ("hollow", "circle"),
    "frame": ("hollow", "square"),
}
# fine class -> (group, corners): siblings differ only in corner count
HARD_TAXONOMY = {
    "pent": ("solid", 5),
    "hex": ("solid", 6),
    "hept": ("solid", 7),
    "pent_outline": ("hollow", 5),
    "hex_outline": ("hollow", 6),
}
DOMAINS = {"warm": (255, 150, 60), "cool": (60, 130, 255), "grey": (128, 128, 128)}


def regular(
    corners: int, cx: float, cy: float, r: float, angle: float
) -> list[tuple[float, float]]:
    step = 2 * np.pi / corners
    return [
        (cx + r * float(np.cos(angle + k * step)), cy + r * float(np.sin(angle + k * step)))
        for k in range(corners)
    ]


def _picture(
    rng: np.random.Generator, size: int, fine: str, domain: str, hard: bool = False
) -> Image.Image:
    picture = background(rng, size)
    r = size * rng.uniform(0.22, 0.36)
    cx, cy = rng.uniform(r, size - r, 2)
    if hard:
        group, corners = HARD_TAXONOMY[fine]
        points = regular(corners, cx, cy, r, angle=float(rng.uniform(0, 2 * np.pi)))
    else:
        group, shape = TAXONOMY[fine]
        points = polygon(shape, cx, cy, r, angle=float(rng.uniform(-0.25, 0.25)))
    draw = ImageDraw.Draw(picture)
    if group == "solid":
        draw.polygon(points, fill=colour(rng))
    else:
        draw.line([*points, points[0]], fill=colour(rng), width=max(2, size // 20))
    cast = np.asarray(DOMAINS[domain], np.float64)
    pixels = np.asarray(picture, np.float64) * 0.65 + cast * 0.35
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@generator(
    "classification",
    variant="hierarchy",
    tiny={
        "model": "small_cnn",
        "image_size": 32,
        "batch_size": 16,
        "warmup_epochs": 0,
        "hierarchy": {
            "levels": ["coarse", "fine"],
            "gated_inference": True,
            "curriculum": [
                {"level": "coarse", "epochs": 1, "lr": 0.003},
                {"level": "fine", "epochs": 1, "lr": 0.003},
            ],
        },
    },
)
def write_hierarchical(
    root: Path, *, images: int, size: int, seed: int = 0, hard: bool = False
) -> dict[str, Any]:
    """`<fine>/<domain>/<n>.png` plus `taxonomy.csv`; classes cycle, domains cycle slower."""
    rng = np.random.default_rng(seed)
    taxonomy = {f: g for f, (g, _) in (HARD_TAXONOMY if hard else TAXONOMY).items()}
    fines = list(taxonomy)
    domains = list(DOMAINS)
    root.mkdir(parents=True, exist_ok=True)
    for index in range(images):
        fine = fines[index % len(fines)]
        domain = domains[(index // len(fines)) % len(domains)]
        folder = root / fine / domain
        folder.mkdir(parents=True, exist_ok=True)
        _picture(rng, size, fine, domain, hard).save(folder / f"{index:05d}.png")
    rows = ["class,parent", *(f"{fine},{group}" for fine, group in taxonomy.items())]
    (root / "taxonomy.csv").write_text("\n".join(rows) + "\n")
    return {
        "format": "folders",
        "classes": fines,
        "groups": sorted(set(taxonomy.values())),
        "group_attribute": "folder",
        "domains": domains,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hard", action="store_true", help="siblings differ by corner count")
    args = parser.parse_args()
    info = write_hierarchical(
        args.root, images=args.images, size=args.size, seed=args.seed, hard=args.hard
    )
    print(f"{args.images} images in {args.root}: {info}")


if __name__ == "__main__":
    main()
