"""What only a machine with a CUDA GPU can check, in one run: every task type's training with
mixed precision and its evaluation on the GPU, the out-of-memory recovery on a real CUDA
out-of-memory error, and (with --dinov3) the DINOv3 step times at their real sizes.

    python benchmarks/cuda_check.py --out cuda.json [--dinov3]

Each task runs its conformance recipe (`benchmarks.synthetic.TINY_RECIPES`: a few dozen
64 px images, 1-2 epochs) through the benchmarks' pipeline (the studio's importer and
mapping, the splits service's 80/10/10, `workers.ml.train.fit`, the task's evaluation) with
`mixed_precision` on, so the 16-bit autocast path of every loss and the device moves of every
validation and evaluation step run for real. The out-of-memory check caps this process's
share of GPU memory, asks for a batch that cannot fit, and runs
`workers.ml.train.fit_within_memory` — the training job's own recovery — which must halve the
batch until it fits. Every part is recorded in the JSON file (ok, seconds, the error's last
lines), whatever the others do; the process exits 1 when a part failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from app.services.experiments import resolve_config  # noqa: E402
from app.tasks import get_task  # noqa: E402
from benchmarks.synthetic import TINY_RECIPES, task_of, variants, write_dataset  # noqa: E402
from benchmarks.task_quality import parse_overrides, split, studio_samples  # noqa: E402


def recipe(key: str, **extra: Any) -> dict[str, Any]:
    """The conformance recipe completed as the studio completes a saved one."""
    return resolve_config({**TINY_RECIPES[key], **extra}, task_of(key))


def prepared_data(
    key: str, work: Path, images: int
) -> tuple[dict[str, Any], list[str], dict[str, str | None]]:
    """The split samples, the classes and each class's parent (a taxonomy, when the data has
    one: the classes then include the groups, as an import makes them)."""
    from app.importers import read_source

    folder = work / key.replace("/", "-")
    info = write_dataset(key, folder, images=images, size=64, seed=0)
    samples, classes = studio_samples(folder, task_of(key), info["format"], folder / "_masks")
    taxonomy = read_source(folder, task_of(key), info["format"]).taxonomy or {}
    classes = classes + sorted(set(taxonomy.values()) - set(classes))
    parents = {c: taxonomy.get(c) for c in classes}
    return split(task_of(key), samples, 0), classes, parents


def train_and_evaluate(
    key: str, work: Path, device: str, overrides: dict[str, Any]
) -> dict[str, Any]:
    from workers.ml.checkpoints import load_for_inference
    from workers.ml.tasks import get_task_code
    from workers.ml.train import FitRequest, fit

    task = task_of(key)
    code = get_task_code(task)
    parts, classes, parents = prepared_data(key, work, 48)
    config = recipe(key, mixed_precision=True, seed=0, **overrides)
    bind = get_task(task).bind_classes
    if bind is not None and config.get("hierarchy"):
        config = bind(config, parents)
    prepared = code.prepare(parts, classes, config)
    out = work / f"run-{key.replace('/', '-')}"
    out.mkdir()
    result = fit(FitRequest(task, config, classes, prepared, out))
    model = load_for_inference(out / "best.ckpt", device=device)
    outcome = code.evaluate(model, prepared.samples["test"], options={})
    summary = {k: v for k, v in outcome.aggregate.items() if isinstance(v, (int, float))}
    return {
        "steps": result.global_step,
        "precision": result.provenance.get("precision"),
        "device": result.provenance.get("device"),
        "notes": result.notes,
        "test": dict(list(summary.items())[:6]),
    }


def dual_head(work: Path) -> dict[str, Any]:
    """A dual-head model through its three phases (the benchmark's recipe, an epoch each;
    evaluated on the CPU, as that benchmark does)."""
    from argparse import Namespace

    from benchmarks.dual_head_quality import recipe as dual_recipe
    from benchmarks.dual_head_quality import train
    from benchmarks.synthetic.dual_head import write_dual_head

    root = work / "dual-head"
    write_dual_head(root / "set", images=48, size=64, ood=4)
    samples, classes = studio_samples(root / "set" / "data", "classification", "folders", root)
    options = Namespace(
        phases="1,1,1", size=64, batch=8, lr=1e-3, model="small_cnn", decoder=32,
        negative_share=0.0, freeze_a=False,
    )  # fmt: skip
    config = {**dual_recipe(options, 0, True), "mixed_precision": True}
    out = root / "run"
    out.mkdir()
    _, evaluated, steps, _ = train(config, classes, split("classification", samples, 0), out)
    return {"steps": steps, "test": {k: v for k, v in evaluated.items() if k in KEYS}}


KEYS = ("accuracy", "seg_miou", "gate_pass_rate")


def out_of_memory(work: Path, fraction: float) -> dict[str, Any]:
    """A batch that cannot fit in `fraction` of the GPU: the recovery must shrink it."""
    from workers.ml.tasks import get_task_code
    from workers.ml.train import FitRequest, fit_within_memory

    torch.cuda.set_per_process_memory_fraction(fraction)
    parts, classes, _ = prepared_data("classification", work, 600)
    config = recipe(
        "classification",
        model="resnet18",
        pretrained="none",
        image_size=256,
        batch_size=512,
        epochs=1,
        mixed_precision=True,
        seed=0,
    )
    code = get_task_code("classification")
    prepared = code.prepare(parts, classes, config)
    out = work / "run-oom"
    out.mkdir()
    seen: list[tuple[int, int]] = []

    def shrunk(changed: dict[str, Any], note: str) -> Path | None:
        seen.append((changed["batch_size"], changed["accumulate_grad_batches"]))
        last = out / "last.ckpt"
        return last if last.exists() else None

    result, notes = fit_within_memory(
        FitRequest("classification", config, classes, prepared, out), None, None, shrunk
    )
    peak = torch.cuda.max_memory_allocated() / 2**30
    total = torch.cuda.get_device_properties(0).total_memory / 2**30
    torch.cuda.set_per_process_memory_fraction(1.0)
    return {
        "memory_cap_gib": round(fraction * total, 2),
        "batch_then_accumulation": [(512, 1), *seen],
        "steps": result.global_step,
        "status": result.status,
        "peak_allocated_gib": round(peak, 2),
        "notes": notes,
    }


def dinov3_speed() -> dict[str, Any]:
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "dinov3_speed.py"),
        "--scale",
        "full",
        "--image-size",
        "224",
        "--device",
        "cuda",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=400, check=False)
    return {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr[-3000:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cases", default=",".join([*variants(), "dual_head"]))
    parser.add_argument("--memory-fraction", type=float, default=0.02)
    parser.add_argument("--dinov3", action="store_true")
    parser.add_argument("--no-oom", action="store_true", help="skip the out-of-memory check")
    parser.add_argument("--set", action="append", default=[], help="recipe override key=value")
    parser.add_argument("--allow-cpu", action="store_true", help="dry run without a GPU")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        sys.exit("no CUDA device (use --allow-cpu for a dry run)")
    device = "cuda" if cuda else "cpu"
    overrides = parse_overrides(args.set)
    record: dict[str, Any] = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "parts": {},
    }

    def attempt(name: str, part: Any) -> None:
        started = time.perf_counter()
        try:
            entry = {"ok": True, **part()}
        except Exception as error:  # every part is reported, whatever fails
            entry = {"ok": False, "error": "".join(traceback.format_exception(error))[-4000:]}
        entry["seconds"] = round(time.perf_counter() - started, 1)
        record["parts"][name] = entry
        args.out.write_text(json.dumps(record, indent=1, default=str))
        print(name, "ok" if entry["ok"] else "FAILED", entry["seconds"], "s", flush=True)

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for key in [k for k in args.cases.split(",") if k and k != "dual_head"]:
            attempt(key, lambda key=key: train_and_evaluate(key, work, device, overrides))
        if "dual_head" in args.cases.split(","):
            attempt("dual_head", lambda: dual_head(work))
        if cuda and not args.no_oom:
            attempt("out_of_memory", lambda: out_of_memory(work, args.memory_fraction))
        if cuda and args.dinov3:
            attempt("dinov3_speed", dinov3_speed)
    sys.exit(0 if all(p["ok"] for p in record["parts"].values()) else 1)


if __name__ == "__main__":
    main()
