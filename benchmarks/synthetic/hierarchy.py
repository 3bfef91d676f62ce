"""A hierarchical classification set: two coarse groups, five fine classes, three domains.

Coarse group = how a shape is drawn (`solid`: filled; `hollow`: an outline), fine class = the
shape within its group, so fine classes confuse mostly with their siblings. Each image also
belongs to a domain (`warm`, `cool`, `grey`: a colour cast over the whole picture) stored as
the middle folder, which the folder importer keeps as the `folder` attribute: a
leave-one-group-out split on it gives a domain-generalisation family. `taxonomy.csv` at the
root gives the tree. Not registered with `@generator` (the conformance suite runs one generator
per task type; this one is a variant of classification's):

    python -m benchmarks.synthetic.hierarchy /tmp/hier --images 300 --size 64
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from benchmarks.synthetic.scenes import background, colour, polygon

TAXONOMY = {
    "disc": ("solid", "circle"),
    "block": ("solid", "square"),
    "wedge": ("solid", "triangle"),
    "ring": ("hollow", "circle"),
    "frame": ("hollow", "square"),
}
DOMAINS = {"warm": (255, 150, 60), "cool": (60, 130, 255), "grey": (128, 128, 128)}


def _picture(rng: np.random.Generator, size: int, fine: str, domain: str) -> Image.Image:
    group, shape = TAXONOMY[fine]
    picture = background(rng, size)
    r = size * rng.uniform(0.22, 0.36)
    cx, cy = rng.uniform(r, size - r, 2)
    points = polygon(shape, cx, cy, r, angle=float(rng.uniform(-0.25, 0.25)))
    draw = ImageDraw.Draw(picture)
    if group == "solid":
        draw.polygon(points, fill=colour(rng))
    else:
        draw.line([*points, points[0]], fill=colour(rng), width=max(2, size // 20))
    cast = np.asarray(DOMAINS[domain], np.float64)
    pixels = np.asarray(picture, np.float64) * 0.65 + cast * 0.35
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_hierarchical(root: Path, *, images: int, size: int, seed: int = 0) -> dict[str, Any]:
    """`<fine>/<domain>/<n>.png` plus `taxonomy.csv`; classes cycle, domains cycle slower."""
    rng = np.random.default_rng(seed)
    fines = list(TAXONOMY)
    domains = list(DOMAINS)
    root.mkdir(parents=True, exist_ok=True)
    for index in range(images):
        fine = fines[index % len(fines)]
        domain = domains[(index // len(fines)) % len(domains)]
        folder = root / fine / domain
        folder.mkdir(parents=True, exist_ok=True)
        _picture(rng, size, fine, domain).save(folder / f"{index:05d}.png")
    rows = ["class,parent", *(f"{fine},{group}" for fine, (group, _) in TAXONOMY.items())]
    (root / "taxonomy.csv").write_text("\n".join(rows) + "\n")
    return {
        "format": "folders",
        "classes": fines,
        "groups": sorted({g for g, _ in TAXONOMY.values()}),
        "group_attribute": "folder",
        "domains": domains,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    info = write_hierarchical(args.root, images=args.images, size=args.size, seed=args.seed)
    print(f"{args.images} images in {args.root}: {info}")


if __name__ == "__main__":
    main()
