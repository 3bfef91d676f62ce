"""Adding pretrained weights: an upload or a file below the import roots, verified by a worker
subprocess (torch stays out of the web process), then stored in the studio's weights folder
with its sha256, where the lookup (app/catalog/weights.py) finds it first."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from app.catalog import get_model
from app.catalog.weights import SUFFIXES, WeightLocations, weights_overview
from app.config import Settings
from app.errors import BadRequest, Invalid
from app.services.imports import resolve_below_roots, save_upload
from app.storage import Storage, atomic_write_bytes, atomic_write_json

VERIFY_TIMEOUT_S = 600  # a ViT-L file is 1.2 GB: reading it on a loaded machine takes a while
ROOT = Path(__file__).resolve().parents[2]


def list_weights(settings: Settings, task: str | None = None) -> list[dict[str, Any]]:
    return weights_overview(WeightLocations.from_settings(settings), task)


def _check_target(model_id: str, filename: str) -> str:
    """The model must have published weights; the file must be one the loaders read."""
    spec = get_model(model_id)
    if spec.pretrained_source not in ("torchvision", "huggingface"):
        raise Invalid(
            f"{spec.title} has no published pretrained weights; it always trains from random "
            "initialisation.",
            code="no_pretrained_weights",
            details={"model_id": model_id},
        )
    suffix = Path(filename).suffix.lower()
    if suffix not in SUFFIXES:
        raise Invalid(
            f"{filename!r}: weights must be a {', '.join(SUFFIXES)} file (a PyTorch state dict "
            "or safetensors).",
            code="weights_bad_file",
            details={"valid": list(SUFFIXES)},
        )
    return suffix


def add_weights(
    settings: Settings,
    storage: Storage,
    *,
    model_id: str,
    stream: BinaryIO | None = None,
    filename: str = "",
    path: str | None = None,
) -> dict[str, Any]:
    """Verify and store; returns the model's weights row with the verdict. 422
    `weights_mismatch` names what did not match (missing, unexpected, mis-shaped tensors)."""
    if path is not None:
        source = resolve_below_roots(settings, path, folder=False)
        filename = source.name
    elif stream is None:
        raise BadRequest("Send a weights file or a path.", code="file_missing")
    suffix = _check_target(model_id, filename)
    temp = storage.tmp_root / f"weights-{storage.new_name(suffix)}"
    if path is not None:
        temp.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, temp)
    else:
        assert stream is not None
        save_upload(storage, temp, stream, settings.max_upload_bytes)
    try:
        verdict = _verify(settings, model_id, temp)
        if not verdict.get("ok"):
            problems = verdict.get("problems") or ["the check did not finish"]
            raise Invalid(
                f"{filename!r} does not match {get_model(model_id).title}: "
                + "; ".join(problems)
                + ".",
                code="weights_mismatch",
                details={"model_id": model_id, "problems": problems},
            )
        target = storage.weights_file(model_id, suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        for other in SUFFIXES:  # one file per model: the new one replaces any other format
            storage.weights_file(model_id, other).unlink(missing_ok=True)
        atomic_write_bytes(
            target.with_name(target.name + ".sha256"),
            f"{verdict['sha256']}  {target.name}\n".encode(),
        )
        temp.replace(target)
        atomic_write_json(
            target.with_name(target.name + ".json"),
            {
                "model_id": model_id,
                "original_name": Path(filename).name,
                "source": f"path:{path}" if path is not None else "upload",
                "sha256": verdict["sha256"],
                "bytes": verdict["bytes"],
                "tensors": verdict["tensors"],
                "added_at": datetime.now(UTC).isoformat(),
            },
        )
    finally:
        temp.unlink(missing_ok=True)
    row = next(r for r in list_weights(settings) if r["model_id"] == model_id)
    return {**row, "verified": verdict}


def _verify(settings: Settings, model_id: str, file: Path) -> dict[str, Any]:
    env = {**os.environ, **settings.child_env()}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    try:
        out = subprocess.run(  # our own module; the arguments are checked values
            [sys.executable, "-m", "workers.ml.weights", "verify", model_id, str(file)],
            capture_output=True,
            text=True,
            timeout=VERIFY_TIMEOUT_S,
            env=env,
            cwd=ROOT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "problems": [f"verification took over {VERIFY_TIMEOUT_S} s"]}
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        tail = (out.stderr or "").strip().splitlines()[-1:] or ["no output"]
        return {"ok": False, "problems": [f"the verifier failed: {tail[0][:300]}"]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result
