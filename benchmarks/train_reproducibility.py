"""Same config and seed, deterministic mode: identical per-epoch metrics twice (CPU).

.venv/bin/python benchmarks/train_reproducibility.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from train_common import digits_samples, fit_request, stratified_split

from app.services.experiments import default_config
from workers.ml.train import fit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "digits-png")
    args = parser.parse_args()
    train, val, _ = stratified_split(digits_samples(args.data))
    config = {
        **default_config("classification"),
        "epochs": args.epochs,
        "deterministic": True,
        "seed": 123,
    }
    runs = []
    for _ in range(2):
        with tempfile.TemporaryDirectory() as out:
            result = fit(fit_request(config, [str(i) for i in range(10)], train, val, Path(out)))
        runs.append(
            [{k: v for k, v in e["metrics"].items() if k != "images_per_s"} for e in result.history]
        )
    print(
        json.dumps(
            {
                "epochs": args.epochs,
                "identical": runs[0] == runs[1],
                "run1": runs[0],
                "run2": runs[1],
            }
        )
    )


if __name__ == "__main__":
    main()
