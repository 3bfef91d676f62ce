"""A predict worker must start fast: loading every handler, the resident predictor's module
and running a prediction with an exported ONNX file imports no torch (nor lightning,
torchvision)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from workers.ml.export.formats import export_onnx
from workers.ml.export.spec import ExportSpec

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
from pathlib import Path
from workers.handlers import load_handlers
load_handlers([])
import workers.predictor
from workers.ml.predict import Predictor
answer = Predictor(Path(sys.argv[1]), threads=1).predict([Path(sys.argv[2])])
assert answer["results"][0]["ok"], answer
heavy = sorted(m for m in ("torch", "torchvision", "lightning") if m in sys.modules)
print("HEAVY", heavy)
"""


def test_predicting_with_onnx_imports_no_torch(tmp_path: Path) -> None:
    spec = ExportSpec("classification", ["a", "b"], 16, [0.5] * 3, [0.25] * 3, ["logits"])
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 2)).eval()
    export_onnx(
        model,
        tmp_path / "m.onnx",
        spec=spec,
        metadata=spec.metadata(fmt="onnx", opset=17),
        opset=17,
    )
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "x.png")
    run = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "m.onnx"), str(tmp_path / "x.png")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "HEAVY []" in run.stdout
