"""Model export: ONNX (legacy TorchScript-based exporter), TorchScript trace, ONNX dynamic INT8,
each checked and compared against the PyTorch model in a parity report (parity.py).

Functions here take any torch nn.Module plus an ExportSpec (preprocessing, classes, task) and
paths; they know nothing about the database (workers/handlers/export.py is the glue)."""

from workers.ml.export.spec import FORMATS, ExportSpec

__all__ = ["FORMATS", "ExportSpec"]
