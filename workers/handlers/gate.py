"""`gate_test` jobs: a dual-head experiment's best checkpoint over uploaded out-of-domain
images (or zips of them); the share the segmentation gate rejects is the out-of-domain
rejection rate. Files that are not readable images get a per-file error, never a failure."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from app.errors import Conflict, StudioError
from app.importers.archive import extract_zip
from app.importers.base import image_files
from app.models import Experiment
from app.services import evaluations as evaluation_service
from app.services import gate as gate_service
from workers.context import JobContext
from workers.handlers import register_handler

EXAMPLES = 24


def _images(
    folder: Path, files: list[dict[str, str]], errors: list[dict[str, str]], scratch: Path
) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for index, item in enumerate(files):
        path = folder / item["stored"]
        if item["name"].lower().endswith(".zip"):
            target = scratch / f"zip{index}"
            try:
                extract_zip(path, target)
            except StudioError as exc:
                errors.append({"file": item["name"], "message": str(exc)})
                continue
            for inner in image_files(target):
                found.append((f"{item['name']}/{inner.relative_to(target).as_posix()}", inner))
        else:
            found.append((item["name"], path))
    return found


@register_handler("gate_test")
def gate_test(ctx: JobContext) -> dict[str, Any]:
    from workers.ml.checkpoints import load_for_inference
    from workers.ml.predict import BadImage, open_image
    from workers.ml.tasks.classification.dual_head.evaluate import gate_image

    experiment_id = int(ctx.params["experiment_id"])
    with ctx.session() as session:
        experiment = session.get(Experiment, experiment_id)
        if experiment is None:
            raise StudioError("The experiment no longer exists.")
        checkpoints = {
            c.name: c for c in evaluation_service.list_checkpoints(ctx.storage, experiment)
        }
        checkpoint = checkpoints.get("best") or checkpoints.get("last")
        if checkpoint is None:
            raise Conflict("The experiment has no checkpoint.", code="checkpoint_missing")
        path = ctx.storage.resolve(checkpoint.path)
    rules = ctx.params.get("rules") or {}
    model = load_for_inference(path, device="cpu")
    folder = ctx.storage.job_dir(ctx.job_id)
    errors: list[dict[str, str]] = []
    verdicts: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(dir=folder) as scratch:
            images = _images(folder, ctx.params.get("files", []), errors, Path(scratch))
            for done, (name, image_path) in enumerate(images, start=1):
                ctx.check_cancelled()
                try:
                    picture = open_image(image_path)
                except BadImage as exc:
                    errors.append({"file": name, "message": str(exc)})
                    continue
                verdicts.append({"file": name, **gate_image(model, picture, rules)})
                ctx.progress(done, len(images), message="Gate test set", unit="images")
    finally:
        ctx.storage.remove_tree(folder / "inputs")
    rejected = [v for v in verdicts if not v["passed"]]
    result = {
        "rejection_rate": len(rejected) / len(verdicts) if verdicts else None,
        "images": len(verdicts),
        "rejected": len(rejected),
        "passed_examples": [v for v in verdicts if v["passed"]][:EXAMPLES],
        "rejected_examples": rejected[:EXAMPLES],
        "errors": errors,
        "checkpoint": checkpoint.name,
    }
    with ctx.session() as session:
        gate_service.store_out_of_domain(session, experiment_id, result)
    return result
