"""The task registry: what each task type is, as data. Its code half lives in workers/ml/tasks/.

A task type is a plug-in with two halves matched by key (docs/architecture.md, "Task types"):
this data half (no torch) says what the task offers and how its results read; the code half
trains, evaluates, exports and decodes. Shared code asks the registry and never names a task.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.errors import Invalid

if TYPE_CHECKING:
    from pydantic import BaseModel

    from app.tasks.hyperparams import TrainConfig
    from app.tasks.mapping import ClassBook, Mapped, Warn


FEATURES = ("projects", "import", "splits", "train", "evaluate", "export", "predict")
# Modules of this package that are shared helpers, not task types.
HELPER_MODULES = {"registry", "hyperparams", "mapping", "hierarchy", "dual_head", "channel_masks"}


@dataclass(frozen=True)
class MetricSpec:
    """One aggregate metric a task's evaluation reports (key in Evaluation.aggregate)."""

    key: str
    title: str
    mode: str = "max"  # max: higher is better; min: lower is better
    percent: bool = False  # a 0-1 share, shown with four decimals and comparable in points


@dataclass(frozen=True)
class AnnotationRow:
    """One annotation as the stratification hook sees it (splits are made in the web process)."""

    image_id: int
    kind: str
    class_name: str | None
    geometry: dict[str, Any]
    attributes: dict[str, Any]


# (sample, task, width, height, class book, source root, warn) -> annotation rows to store.
MapSample = Callable[..., "list[Mapped]"]
# Every annotation of a project -> the stratification tokens of each image.
Stratify = Callable[[list[AnnotationRow]], dict[int, set[str]]]
# (resolved config, the project's classes {name: parent name or None}) -> the config completed
# with what it takes from the classes (a taxonomy); raises Invalid naming the classes at fault.
BindClasses = Callable[[dict[str, Any], dict[str, "str | None"]], dict[str, Any]]
# Before training: the annotations of a split's subsets ({"train": [...], "val": [...]}) and
# the resolved recipe; raises a StudioError naming what the data lacks (nothing to learn).
CheckTraining = Callable[[dict[str, list[AnnotationRow]], dict[str, Any]], None]


@dataclass(frozen=True)
class TaskSpec:
    """A task type described as data only, so the web process can list it without torch.

    `features` says which workflow stages this build offers for the task; pages and the API
    show unavailable stages as such instead of offering a button that cannot work. A registry
    test fails when a declared stage has no code half behind it.
    """

    key: str
    title: str
    description: str
    annotation_kinds: tuple[str, ...]
    badge_color: str = "#64748b"
    order: int = 100  # position in task pickers and GET /api/tasks
    features: frozenset[str] = frozenset({"projects", "import", "splits"})
    default_model: str | None = None
    # Training: the curve that picks the best checkpoint (MetricPoint key) and its direction,
    # and the validation curves the live chart draws.
    primary_metric: str = ""
    metric_mode: str = "max"
    curve_metrics: tuple[str, ...] = ()
    # Evaluation: aggregate keys in table order; `summary_metric` is the headline number
    # (experiment lists, compare view, parity "metric from the export").
    metrics: tuple[MetricSpec, ...] = ()
    summary_metric: str = ""
    # Hyperparameters: the pydantic model of this task's recipe (common fields + task fields)
    # and overrides of the common defaults.
    config_model: type[TrainConfig] | None = None
    config_defaults: dict[str, Any] = field(default_factory=dict)
    # Evaluation result filters this task offers besides subset: "outcome" (correct/wrong),
    # "cell" (true/predicted class from match rows), "has_fp", "has_fn", "class".
    result_filters: tuple[str, ...] = ("outcome", "cell")
    # Sort orders the per-image grid offers (value, title); values are
    # app.services.evaluation_results.RESULT_SORTS ("cell": the largest match in the chosen
    # confusion-matrix cell first).
    result_sorts: tuple[tuple[str, str], ...] = (
        ("confidence", "most confident"),
        ("-confidence", "least confident"),
        ("error", "most errors"),
        ("loss", "highest loss"),
        ("-loss", "lowest loss"),
        ("image", "image id"),
    )
    # What a result's `score` and `error` mean on screen (detail facts, grid badge).
    result_titles: dict[str, str] = field(
        default_factory=lambda: {"score": "Confidence", "error": "Errors"}
    )
    # The shared result detail draws the image with `prediction_shapes`; False when the task's
    # _result_detail.html draws its own viewer (layers, per-class toggles).
    detail_overlay: bool = True
    # What the export's parity check compares and its tolerances, in a sentence (export page).
    parity_note: str = ""
    # Test-time augmentations the task's evaluation offers: (value, title).
    tta_options: tuple[tuple[str, str], ...] = ()
    # Import: what a normalized sample becomes in a project of this task, and classes a new
    # project gets before the first import (segmentation's background at index 0).
    map_sample: MapSample | None = None
    implicit_classes: tuple[str, ...] = ()
    # Import: layouts beyond the formats' own that the import dialog explains (HTML-free text,
    # one paragraph per item), e.g. masks beside class folders for dual-head models.
    import_help: tuple[str, ...] = ()
    # Built-in sample datasets a project of this task can import (name -> description).
    samples: dict[str, str] = field(default_factory=dict)
    # Splits: tokens to stratify on; None stratifies on the classes present in each image.
    # `strata_title` names them on the split pages ("classes", "target bins"); images showing
    # a token of `kept_out_of_train` go to val/test only unless a split request says otherwise
    # (anomaly detection keeps defects out of train).
    stratify: Stratify | None = None
    strata_title: str = "classes"
    kept_out_of_train: tuple[str, ...] = ()
    # Training: a recipe that depends on the project's classes (hierarchical levels from the
    # taxonomy) is checked and completed when an experiment is saved and when it is queued.
    bind_classes: BindClasses | None = None
    # Training: a check of the split's data before a run is queued (None: no check).
    check_training: CheckTraining | None = None
    # Settings a trained model's outputs are read with that may change without retraining
    # (an anomaly threshold): a pydantic model; the experiment stores them (app.services.
    # decisions), evaluation and export read them, prediction passes them as options.
    decision_model: type[BaseModel] | None = None
    # Evaluation grid: whether a result's score is a 0-1 share (shown as %) or a raw number.
    score_percent: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def defaults(self) -> dict[str, Any]:
        """Hyperparameter defaults of this task: its default model over the common defaults."""
        return {"model": self.default_model, **self.config_defaults}

    def supports(self, feature: str) -> bool:
        return feature in self.features

    def metric(self, key: str) -> MetricSpec | None:
        return next((m for m in self.metrics if m.key == key), None)

    @property
    def partials(self) -> str:
        """Folder of this task's result partials (templates/partials/tasks/<key>/)."""
        return f"partials/tasks/{self.key}"


_TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add or replace a task type; built-ins use the same door a plugin would."""
    unknown = set(spec.features) - set(FEATURES)
    if unknown:
        raise ValueError(f"task {spec.key}: unknown features {sorted(unknown)}")
    trains = spec.supports("train")
    if trains and (spec.config_model is None or not spec.primary_metric or not spec.metrics):
        raise ValueError(f"task {spec.key}: training needs a config model, metrics and a primary")
    if spec.metric_mode not in ("max", "min"):
        raise ValueError(f"task {spec.key}: metric_mode must be max or min")
    _TASKS[spec.key] = spec
    return spec


def discover(package: str = "app.tasks", extra: Iterable[str] = ()) -> None:
    """Import every task module of the package (and plugin modules), which register themselves."""
    module = importlib.import_module(package)
    for info in pkgutil.iter_modules(module.__path__):
        if info.name not in HELPER_MODULES and not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
    for name in extra:
        importlib.import_module(name)


def get_task(key: str) -> TaskSpec:
    try:
        return _TASKS[key]
    except KeyError:
        valid = ", ".join(sorted(_TASKS))
        raise Invalid(
            f"task_type={key!r} is not a task type; use one of: {valid}.",
            code="unknown_task_type",
            details={"valid": sorted(_TASKS)},
        ) from None


def list_tasks() -> list[TaskSpec]:
    return sorted(_TASKS.values(), key=lambda s: (s.order, s.key))


def map_sample(
    sample: Any, task: str, w: int, h: int, book: ClassBook, source_root: Any, warn: Warn
) -> list[Mapped]:
    """The annotation rows (and masks) one imported sample becomes in a project of this task."""
    spec = get_task(task)
    if spec.map_sample is None:
        return []
    return spec.map_sample(sample, w, h, book, source_root, warn)
