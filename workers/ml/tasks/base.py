"""The code half's contract: what every task type implements, and the shapes it exchanges with
the shared glue (workers/ml/train.py, workers/handlers/*, workers/ml/export/, the predictor).

This module imports neither torch nor numpy: the registry (and a task package's __init__) must
load in the resident predictor, which runs onnxruntime only. Heavy parts of a task live in its
submodules and are imported inside the methods that need them.

Shared glue calls, in order:
  train     prepare(samples) → build_module(config, classes, info) → datasets(...) → fit
  evaluate  load_model(checkpoint) → evaluate(model, samples, options, report) → EvalOutcome
  export    load_model(checkpoint) → export_module(model) → run it, the file, compare → parity()
  predict   decoder.decode(one image's named outputs, metadata, original size)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import numpy as np
    from torch import nn


@dataclass
class Ann:
    """One annotation of a sample, as the database holds it (geometry in stored-image pixels).
    Masks carry `file`: the absolute path of their PNG, resolved by the reader."""

    kind: str
    class_name: str | None
    geometry: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sample:
    """An image of a split subset with its annotations; `target` is the task's training target,
    set by `TaskCode.prepare`."""

    image_id: int
    path: Path
    subset: str = ""
    width: int = 0
    height: int = 0
    annotations: list[Ann] = field(default_factory=list)
    target: Any = None

    def class_names(self, *kinds: str) -> list[str]:
        """Class names of this sample's annotations of these kinds, in stored order."""
        return [a.class_name for a in self.annotations if a.kind in kinds and a.class_name]


def samples_from_rows(rows: list[dict[str, Any]]) -> list[Sample]:
    """The annotation reader's rows (app.services.annotations) as Samples."""
    return [
        Sample(
            image_id=int(row["image_id"]),
            path=Path(row["path"]),
            subset=str(row.get("subset", "")),
            width=int(row.get("width") or 0),
            height=int(row.get("height") or 0),
            annotations=[Ann(**a) for a in row.get("annotations", [])],
        )
        for row in rows
    ]


@dataclass
class Prepared:
    """Samples with targets, per subset, plus what the data says about the task (`info`, stored
    in the checkpoint provenance: e.g. multi-label or not) and what was left out."""

    samples: dict[str, list[Sample]]
    info: dict[str, Any] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class InferenceModel:
    """A checkpoint ready to run: the network plus everything needed to feed it."""

    model: nn.Module
    task: str
    classes: list[str]
    image_size: int
    mean: list[float]
    std: list[float]
    channels: int = 3
    provenance: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalOutcome:
    """What a task's evaluation returns; the handler stores it task-neutrally.

    rows: one per image: image_id, subset, score, loss, error, correct, prediction (JSON with
      "truth" and "predicted" lists in the annotation geometry format, plus task extras).
    matches: true/predicted class pairs per image (None = background: a FN has no predicted
      class, a FP no true class) with iou and score, so every confusion-matrix cell of any
      task is one indexed query.
    arrays: named numpy arrays kept as evaluation artefacts (scores.npz).
    files: artefact files written under the evaluation folder (relative names).
    """

    aggregate: dict[str, Any]
    rows: list[dict[str, Any]]
    matches: list[dict[str, Any]] = field(default_factory=list)
    arrays: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass
class ExportModule:
    """A network wrapped for export: one NCHW float32 input, named outputs.

    batch: None when the batch axis is dynamic; 1 for models whose export takes one image at a
    time (torchvision detectors). postprocess: what a deployment does with the outputs,
    written into the export metadata.
    """

    module: nn.Module
    output_names: list[str]
    batch: int | None = None
    postprocess: dict[str, Any] = field(default_factory=dict)
    output_axes: dict[str, dict[int, str]] | None = None  # None: axis 0 is the batch
    script: bool = False  # TorchScript by torch.jit.script instead of a trace


Report = Callable[[int, int], None]
Outputs = dict[str, "np.ndarray"]  # one image's (or one batch's) outputs by name


class Decoder(ABC):
    """Numpy-only reading of an exported model's outputs, shared by the predictor, the parity
    check and examples/predict_onnx.py's logic. No torch here."""

    task: ClassVar[str]

    @abstractmethod
    def decode(
        self,
        outputs: Outputs,
        *,
        meta: dict[str, Any],
        size: tuple[int, int],
        options: dict[str, Any],
    ) -> dict[str, Any]:
        """One image's outputs → the task's fields of the prediction envelope, in original
        pixels (`size` = original width, height)."""


class TaskCode(ABC):
    """The code half of a task type. Subclasses register with `register_task_code`."""

    key: ClassVar[str]
    decoder: ClassVar[Decoder]

    # --- training ---------------------------------------------------------------------------

    @abstractmethod
    def prepare(
        self, samples: dict[str, list[Sample]], classes: list[str], config: dict[str, Any]
    ) -> Prepared:
        """Set each sample's target from its annotations; leave out what cannot train (and say
        so in `dropped`/`notes`); decide data facts such as multi-label."""

    @abstractmethod
    def build_module(self, config: dict[str, Any], classes: list[str], info: dict[str, Any]) -> Any:
        """The LightningModule (a workers.ml.module.StudioModule)."""

    @abstractmethod
    def datasets(
        self,
        prepared: Prepared,
        config: dict[str, Any],
        classes: list[str],
        info: dict[str, Any],
        normalization: tuple[list[float], list[float]],
    ) -> tuple[Any, Any, Callable[..., Any] | None]:
        """(train dataset, val dataset, collate function or None for the default)."""

    @abstractmethod
    def model_ids(self) -> set[str]:
        """Catalog ids this task's code can build (a registry test compares with the catalog)."""

    # --- inference --------------------------------------------------------------------------

    @abstractmethod
    def build_model(self, provenance: dict[str, Any]) -> nn.Module:
        """The bare network for a checkpoint (weights are loaded by the caller)."""

    def model_info(self, provenance: dict[str, Any]) -> dict[str, Any]:
        """Task facts a loaded checkpoint needs (what `prepare` decided and training learnt)."""
        return dict(provenance.get("task_info") or {})

    # Evaluation and export live in the task package's `evaluate` and `export` modules by
    # convention (functions of the same names), imported on first use so the package's
    # __init__ stays torch-free; a task overrides these methods to put them elsewhere.

    def reference_subsets(self, model: InferenceModel) -> tuple[str, ...]:
        """Split subsets evaluation also reads, unscored, as `options["reference_samples"]`
        (a dual-head gate compares images with the training images); none by default."""
        return ()

    def evaluate(
        self,
        model: InferenceModel,
        samples: list[Sample],
        *,
        options: dict[str, Any],
        report: Report | None = None,
    ) -> EvalOutcome:
        """Run the model on samples (with their annotations) and score it."""
        part = self.part("evaluate")
        return part.evaluate(model, samples, options=options, report=report)  # type: ignore[no-any-return]

    # --- export -----------------------------------------------------------------------------

    def export_module(self, model: InferenceModel) -> ExportModule:
        """The network wrapped for ONNX/TorchScript with named outputs."""
        return self.part("export").export_module(model)  # type: ignore[no-any-return]

    def parity(
        self,
        *,
        fmt: str,
        reference: list[Outputs],
        candidate: list[Outputs],
        samples: list[Sample],
        meta: dict[str, Any],
    ) -> dict[str, Any]:
        """Compare checkpoint outputs with the exported file's on the same images, with this
        task's own measures and tolerances; `valid` says whether the export may be trusted."""
        return self.part("export").parity(  # type: ignore[no-any-return]
            fmt=fmt, reference=reference, candidate=candidate, samples=samples, meta=meta
        )

    def part(self, name: str) -> Any:
        """A module of this task's package (`workers/ml/tasks/<task>/<name>.py`)."""
        import importlib

        return importlib.import_module(f"{type(self).__module__}.{name}")

    # --- helpers tasks may override ---------------------------------------------------------

    def parity_images(self, model: InferenceModel) -> int:
        """How many images the export's parity check runs: both runs' outputs are held in
        memory, so tasks with large outputs (a logit map per class) ask for fewer."""
        return 256

    def batch_size_of(self, batch: Any) -> int:
        """Images in a training batch (for images/s); batches are (inputs, targets, ...)."""
        return len(batch[0])
