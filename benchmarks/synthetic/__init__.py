"""Published generators of synthetic datasets, one per task type, in formats the studio imports.

Each generator writes a folder an import reads as is (class folders, COCO JSON, index
masks...) with scenes of shapes on textured backgrounds whose colour never tells the class,
so a model has to learn shape. Benchmarks use them at a few hundred images; the task
conformance suite (tests/conformance) at a few dozen. Register a task's generator with
`@generator("task")`; `TINY_RECIPES` holds the recipe overrides a conformance run trains with.
A variant of a task (a recipe block with data of its own, e.g. hierarchical classification)
registers with `@generator("task", variant="name")` under the key "task/name", and the
conformance suite runs it too.

    python -m benchmarks.synthetic detection /tmp/shapes-det --images 300 --size 96
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

Generator = Callable[..., dict[str, Any]]  # (root, images, size, seed) -> {"format", "classes"}
GENERATORS: dict[str, Generator] = {}
TINY_RECIPES: dict[str, dict[str, Any]] = {}


def generator(
    task: str, tiny: dict[str, Any] | None = None, variant: str | None = None
) -> Callable[[Generator], Generator]:
    """Register `task`'s generator (or a variant's, key "task/variant") and the small recipe a
    conformance run trains with."""
    key = f"{task}/{variant}" if variant else task

    def decorate(function: Generator) -> Generator:
        GENERATORS[key] = function
        TINY_RECIPES[key] = dict(tiny or {})
        return function

    return decorate


def task_of(key: str) -> str:
    """The task type of a generator key ("classification/hierarchy" → "classification")."""
    return key.split("/", 1)[0]


def _load() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_") and info.name != "scenes":
            importlib.import_module(f"{__name__}.{info.name}")


def write_dataset(
    task: str, root: Path, *, images: int, size: int, seed: int = 0
) -> dict[str, Any]:
    """Write `images` scenes of `size` px for `task` under `root`; returns its format/classes."""
    _load()
    if task not in GENERATORS:
        raise KeyError(f"no synthetic generator for task {task!r}; have {sorted(GENERATORS)}")
    root.mkdir(parents=True, exist_ok=True)
    return GENERATORS[task](root, images=images, size=size, seed=seed)


def tasks() -> list[str]:
    """Task types with a generator."""
    _load()
    return sorted({task_of(key) for key in GENERATORS})


def variants() -> list[str]:
    """Every generator key: the task types and their variants ("task/variant")."""
    _load()
    return sorted(GENERATORS)


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a synthetic dataset for a task type.")
    parser.add_argument("task")
    parser.add_argument("root", type=Path)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    info = write_dataset(args.task, args.root, images=args.images, size=args.size, seed=args.seed)
    print(f"{args.images} images in {args.root} ({info['format']}, classes {info['classes']})")


if __name__ == "__main__":
    main()
