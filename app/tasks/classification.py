"""Classification, the data half: multi-class (softmax + CE) and multi-label (sigmoid + BCE)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, StrictBool, model_validator

from app.tasks.dual_head import DualHeadConfig, is_dual_head
from app.tasks.hierarchy import HierarchyConfig, bind_taxonomy
from app.tasks.hyperparams import Augmentations, TrainConfig, task_field
from app.tasks.registry import MetricSpec, TaskSpec, register_task

if TYPE_CHECKING:
    from pathlib import Path

    from app.importers.base import Sample
    from app.tasks.mapping import ClassBook, Mapped, Warn


class ClassificationAugment(Augmentations):
    mixup_alpha: float = Field(
        0.0,
        ge=0,
        le=10,
        description="MixUp alpha; 0 turns it off.",
        json_schema_extra={"label": "MixUp alpha"},
    )
    cutmix_alpha: float = Field(
        0.0,
        ge=0,
        le=10,
        description="CutMix alpha; 0 turns it off.",
        json_schema_extra={"label": "CutMix alpha"},
    )


class ClassificationConfig(TrainConfig):
    augment: ClassificationAugment = Field(default_factory=ClassificationAugment)
    label_smoothing: float = Field(
        0.0, ge=0, lt=1, description="Label smoothing (0 ≤ s < 1).", **task_field()
    )
    multi_label: StrictBool | None = Field(
        None,
        description="Multi-label (sigmoid + BCE); None = decide from the data.",
        **task_field(label="Multi-label"),
    )
    tune_thresholds: StrictBool = Field(
        True, description="Tune per-class thresholds on val (multi-label).", **task_field()
    )
    hierarchy: HierarchyConfig | None = Field(
        None,
        description='Hierarchical coarse → fine model (JSON), e.g. {"levels": ["coarse", '
        '"fine"], "curriculum": [{"level": "coarse", "epochs": 3, "lr": 0.003}, {"level": '
        '"fine", "epochs": 7, "lr": 0.003}], "gated_inference": true}; optional '
        '"freeze_early_layers": N, "adapters": "film"|"bottleneck", "distill": '
        '{"feature_weight": 1, "kl_weight": 1} (docs/hierarchy.md); empty = flat.',
        **task_field(label="Hierarchy"),
    )

    dual_head: DualHeadConfig | None = Field(
        None,
        description="Dual-head (dualhead_* models) phases A/B/C and segmentation loss (JSON), "
        'e.g. {"phases": [{"name": "A", "epochs": 2, "lr_backbone": 0, "lr_seg": 0.001, '
        '"lr_cls": 0, "lambda_seg": 1, "lambda_cls": 0}, ...], "decoder_channels": 256}; '
        "empty = the defaults (A 30, B 25, C 15 epochs; patience 5, 5, 3: a phase ends early "
        "after that many epochs without improvement, 0 = off).",
        **task_field(label="Dual-head phases"),
    )

    @model_validator(mode="after")
    def _phases_set_epochs(self) -> ClassificationConfig:
        if is_dual_head(self.model):
            if self.hierarchy is not None:
                raise ValueError("a dual-head model is flat; leave hierarchy empty")
            if self.dual_head is None:
                self.dual_head = DualHeadConfig()
            self.epochs = sum(phase.epochs for phase in self.dual_head.phases)
        elif self.dual_head is not None:
            raise ValueError("dual_head settings need a dualhead_* model")
        return self

    @model_validator(mode="after")
    def _curriculum_sets_epochs(self) -> ClassificationConfig:
        if self.hierarchy is not None:
            if self.multi_label:
                raise ValueError("a hierarchical model is single-label; set multi_label off")
            if self.label_smoothing:
                raise ValueError(
                    "a hierarchical model trains without label smoothing (smoothing would put "
                    "target mass on the classes its fine loss masks); set it to 0"
                )
            if self.hierarchy.curriculum:
                self.epochs = sum(stage.epochs for stage in self.hierarchy.curriculum)
        return self


def map_sample(
    sample: Sample, w: int, h: int, book: ClassBook, source_root: Path, warn: Warn
) -> list[Mapped]:
    """Image-level labels; a detection or segmentation dataset gives its object classes. Channel
    masks beside class folders (app/importers/class_masks.py) come along, class-less, for
    dual-head models."""
    from app.tasks.channel_masks import channel_mask
    from app.tasks.mapping import image_labels

    out = image_labels(sample, book)
    for shape in sample.annotations:
        if shape.kind == "mask_file" and "channels" in shape.geometry:
            mask = channel_mask(source_root, shape.geometry, shape.attributes, w, h, warn)
            if mask is not None:
                out.append(mask)
    return out


SHARE_METRICS = (
    ("accuracy", "Accuracy"),
    ("balanced_accuracy", "Balanced accuracy"),
    ("top3_accuracy", "Top-3 accuracy"),
    ("top5_accuracy", "Top-5 accuracy"),
    ("subset_accuracy", "Subset (exact-match) accuracy"),
    ("map", "mAP (multi-label)"),
    ("precision_macro", "Precision (macro)"),
    ("recall_macro", "Recall (macro)"),
    ("f1_macro", "F1 (macro)"),
    ("precision_micro", "Precision (micro)"),
    ("recall_micro", "Recall (micro)"),
    ("f1_micro", "F1 (micro)"),
    ("roc_auc_macro", "ROC-AUC (macro)"),
)
# Hierarchical models add per-level keys (app/tasks/hierarchy.py); absent keys are not shown.
LEVEL_METRICS = (
    ("fine/accuracy", "Fine accuracy"),
    ("fine/macro_f1", "Fine F1 (macro)"),
    ("fine/balanced_accuracy", "Fine balanced accuracy"),
    ("coarse/accuracy", "Coarse accuracy (coarse head)"),
    ("coarse/macro_f1", "Coarse F1 (macro, coarse head)"),
    ("coarse/balanced_accuracy", "Coarse balanced accuracy (coarse head)"),
    ("coarse/implied_accuracy", "Coarse accuracy (implied by fine)"),
    ("binary/accuracy", "Binary accuracy (binary head)"),
    ("binary/macro_f1", "Binary F1 (macro, binary head)"),
    ("binary/balanced_accuracy", "Binary balanced accuracy (binary head)"),
    ("binary/implied_accuracy", "Binary accuracy (implied by fine)"),
    ("hierarchical_accuracy", "Hierarchical accuracy (every level right)"),
)
METRICS: tuple[MetricSpec, ...] = (
    *(MetricSpec(key, title, percent=True) for key, title in SHARE_METRICS),
    *(MetricSpec(key, title, percent=True) for key, title in LEVEL_METRICS),
    MetricSpec("violations", "Hierarchy violations (fine outside coarse)", mode="min"),
    # Dual-head models (app/tasks/dual_head.py): the segmentation head's mean IoU.
    MetricSpec("seg_miou", "Segmentation mean IoU (dual-head)", percent=True),
    MetricSpec("hamming_loss", "Hamming loss", mode="min"),
    MetricSpec("loss", "Loss", mode="min"),
)

register_task(
    TaskSpec(
        key="classification",
        title="Classification",
        description="One or more class labels per image (multi-class, multi-label, hierarchical).",
        annotation_kinds=("label",),
        badge_color="#2563eb",
        order=10,
        features=frozenset(
            {"projects", "import", "splits", "train", "evaluate", "export", "predict"}
        ),
        default_model="small_cnn",
        primary_metric="val/acc",
        curve_metrics=(
            "val/acc",
            "val/f1_macro",
            "val/map",
            "val/coarse_accuracy",
            "val/binary_accuracy",
            "val/hierarchical_accuracy",
            "val/seg_miou",
        ),
        metrics=METRICS,
        summary_metric="accuracy",
        config_model=ClassificationConfig,
        # 20 epochs with MixUp (alpha 0.2): median test accuracy 0.994 over five stratified
        # digits splits where 10 epochs without MixUp had 0.989 (benchmarks/train_digits.py).
        config_defaults={"epochs": 20, "augment": {"mixup_alpha": 0.2}},
        result_filters=("outcome", "cell"),
        parity_note="fp32 formats need max |Δ output| ≤ 1e-4; INT8 needs top-1 agreement "
        "≥ 97 % and an accuracy drop ≤ 1 point.",
        tta_options=(
            ("hflip", "horizontal flip"),
            ("multiscale", "multi-scale (0.875x, 1x, 1.125x)"),
        ),
        map_sample=map_sample,
        bind_classes=bind_taxonomy,
        import_help=(
            "Masks for dual-head models (classification + segmentation): a masks/ folder "
            "beside the class folders. Index masks: masks/channels.txt names the channels, one "
            "per line (line 1 = pixel value 0; a line 'background' marks the background), and "
            "masks/<class>/<name>.png holds one mask per image (<class>/<name>.jpg). "
            "Per-channel binary masks: masks/<channel>/<name>.png, non-zero = the channel, a "
            "pixel may be in several channels. At most 7 channels.",
            "In both layouts 255 = uncertain (ignored by the loss), a mask must have its "
            "image's size, and masks are optional per image (images without one train the "
            "class head only). An optional masks/quality.csv (image,tier) gives a mask tier A "
            "(loss weight 1), B (0.5) or C (left out of the segmentation loss).",
        ),
        samples={"digits": "scikit-learn digits: 1,797 handwritten digits, 10 classes, 32x32 grey"},
    )
)
