"""Flat vs hierarchical + curriculum fine accuracy at the same training budget, on the
hierarchical synthetic set (benchmarks/synthetic/hierarchy.py: 2 coarse groups, 5 fine classes,
3 colour-cast domains), plus a leave-one-domain-out DG report of the hierarchical recipe.

Both recipes get the same epochs, batch and so the same optimizer steps; the hierarchical one
spends the first `--coarse-share` of its epochs on the coarse head alone, then trains coarse and
fine together (fine CE masked to the true group), gated coarse → fine inference. The data goes
the studio's way (generator → folder importer with taxonomy.csv → split → fit → the task's
evaluation). Prints one JSON line per run and a summary; record `uptime` beside the figures.

    python benchmarks/hierarchy_quality.py --images 300 --size 64 --epochs 30 --seeds 0,1,2 --dg
    python benchmarks/hierarchy_quality.py --hard --images 400 --size 48 --epochs 15 --seeds 0,1

`--hard`: the generator's subtle-sibling variant (fine classes differ only in corner count).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.services.dg_reports import bootstrap_ci  # noqa: E402
from app.services.experiments import resolve_config  # noqa: E402
from app.tasks.hierarchy import bind_taxonomy  # noqa: E402
from benchmarks.synthetic.hierarchy import write_hierarchical  # noqa: E402
from benchmarks.task_quality import split, studio_samples  # noqa: E402
from workers.ml.tasks.base import Sample  # noqa: E402

TASK = "classification"


def recipe(args: argparse.Namespace, seed: int, hierarchical: bool) -> dict[str, Any]:
    base = {
        "model": args.model,
        "image_size": args.size,
        "epochs": args.epochs,
        "batch_size": args.batch,
        "lr": args.lr,
        "warmup_epochs": 1,
        "augment": {"hflip": True, "rotation": 10.0},
        "seed": seed,
    }
    if hierarchical:
        coarse = max(1, round(args.epochs * args.coarse_share))
        base["hierarchy"] = {
            "levels": ["coarse", "fine"],
            "gated_inference": True,
            "curriculum": [
                {"level": "coarse", "epochs": coarse, "lr": args.lr},
                {"level": "fine", "epochs": args.epochs - coarse, "lr": args.lr},
            ],
        }
    return resolve_config(base, TASK)


def train_and_score(
    config: dict[str, Any], classes: list[str], parts: dict[str, list[Sample]], subsets: list[str]
) -> dict[str, Any]:
    from workers.ml.checkpoints import load_for_inference
    from workers.ml.tasks import get_task_code
    from workers.ml.train import FitRequest, fit

    code = get_task_code(TASK)
    prepared = code.prepare(parts, classes, config)
    with tempfile.TemporaryDirectory() as out:
        started = time.monotonic()
        result = fit(FitRequest(TASK, config, classes, prepared, Path(out)))
        seconds = time.monotonic() - started
        model = load_for_inference(Path(out) / "best.ckpt")
        scores = {
            s: code.evaluate(model, prepared.samples[s], options={}).aggregate for s in subsets
        }
    return {"steps": result.global_step, "seconds": seconds, "scores": scores}


def implied_coarse(aggregate: dict[str, Any], groups: dict[str, str]) -> float:
    """Coarse accuracy implied by a flat model's fine predictions (its confusion matrix)."""
    names, matrix = aggregate["classes"], aggregate["confusion_matrix"]
    total = sum(map(sum, matrix))
    same = sum(
        n
        for i, row in enumerate(matrix)
        for j, n in enumerate(row)
        if names[i] in groups and groups.get(names[i]) == groups.get(names[j])
    )
    return same / total if total else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--model", default="small_cnn")
    parser.add_argument("--coarse-share", type=float, default=0.2)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--dg", action="store_true", help="also a leave-one-domain-out report")
    parser.add_argument("--hard", action="store_true", help="siblings differ by corner count")
    args = parser.parse_args()
    flat_acc, hier_acc = [], []
    with tempfile.TemporaryDirectory() as data:
        folder = Path(data) / "hier"
        info = write_hierarchical(folder, images=args.images, size=args.size, hard=args.hard)
        from app.importers import read_source

        taxonomy = read_source(folder, TASK, "folders").taxonomy
        samples, leaves = studio_samples(folder, TASK, "folders")
        classes = leaves + sorted(set(taxonomy.values()))
        parents = {c: taxonomy.get(c) for c in classes}
        for seed in (int(s) for s in args.seeds.split(",")):
            parts = split(TASK, samples, seed)
            for hierarchical in (False, True):
                config = bind_taxonomy(recipe(args, seed, hierarchical), parents)
                run = train_and_score(config, classes, parts, ["test"])
                test = run["scores"]["test"]
                row = {
                    "recipe": "hierarchical+curriculum" if hierarchical else "flat",
                    "seed": seed,
                    "steps": run["steps"],
                    "s_per_step": round(run["seconds"] / max(1, run["steps"]), 3),
                    "fine_accuracy": test["accuracy"],
                    "coarse_accuracy": test.get("coarse/accuracy"),
                    "coarse_implied": test.get("coarse/implied_accuracy")
                    if hierarchical
                    else implied_coarse(test, taxonomy),
                    "hierarchical_accuracy": test.get("hierarchical_accuracy"),
                    "violations": test.get("violations"),
                    "load": os.getloadavg(),
                }
                (hier_acc if hierarchical else flat_acc).append(test["accuracy"])
                print(json.dumps(row), flush=True)
        dg: dict[str, Any] | None = None
        if args.dg:
            gaps = []
            for domain in info["domains"]:
                held = [s for s in samples if f"/{domain}/" in s.path.as_posix()]
                rest = [s for s in samples if s not in held]
                parts = split(TASK, rest, 0)
                parts = {"train": parts["train"] + parts["test"], "val": parts["val"], "test": held}
                config = bind_taxonomy(recipe(args, 0, True), parents)
                run = train_and_score(config, classes, parts, ["val", "test"])
                in_domain = run["scores"]["val"]["accuracy"]
                held_out = run["scores"]["test"]["accuracy"]
                gaps.append(in_domain - held_out)
                print(
                    json.dumps(
                        {
                            "dg_group": domain,
                            "in_domain": in_domain,
                            "held_out": held_out,
                            "gap": in_domain - held_out,
                        }
                    ),
                    flush=True,
                )
            dg = {"mean_gap": statistics.fmean(gaps), "ci95": bootstrap_ci(gaps)}
    print(
        json.dumps(
            {
                "flat_fine_median": statistics.median(flat_acc),
                "hierarchical_fine_median": statistics.median(hier_acc),
                "flat": flat_acc,
                "hierarchical": hier_acc,
                "dg": dg,
            }
        )
    )


if __name__ == "__main__":
    main()
