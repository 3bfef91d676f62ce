"""Training hyperparameters as a validated pydantic model (data only; the web process uses it).

Every field has bounds and a help text; `validate_config` turns pydantic's errors into one
StudioError whose message says, per field, what is valid.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator

from app.errors import Invalid
from app.validation import api_sentence, describe


class Augmentations(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hflip: StrictBool = Field(
        False, description="Random horizontal flip (off for digits and text)."
    )
    vflip: StrictBool = Field(
        False, description="Random vertical flip (aerial or microscopy images)."
    )
    rotation: float = Field(10.0, ge=0, le=180, description="Random rotation, ± degrees (0-180).")
    color_jitter: float = Field(
        0.0, ge=0, le=1, description="Brightness/contrast/saturation jitter strength (0-1)."
    )
    random_resized_crop: StrictBool = Field(
        False, description="Random crop of 70-100% of the image, resized back."
    )
    mixup_alpha: float = Field(0.0, ge=0, le=10, description="MixUp alpha; 0 turns it off.")
    cutmix_alpha: float = Field(0.0, ge=0, le=10, description="CutMix alpha; 0 turns it off.")


class TrainConfig(BaseModel):
    """The resolved training recipe stored in experiment.config and in every checkpoint."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("small_cnn", description="Catalog model id.")
    pretrained: StrictBool = Field(
        True, description="Use local pretrained weights when present (else random init)."
    )
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="adamw or sgd.")
    lr: float = Field(3e-3, gt=0, le=10, description="Peak learning rate (0 < lr ≤ 10).")
    weight_decay: float = Field(1e-4, ge=0, le=1, description="Weight decay (0-1).")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (0 ≤ m < 1).")
    scheduler: Literal["cosine", "step", "onecycle", "none"] = Field(
        "cosine", description="cosine (with warmup), step, onecycle or none."
    )
    warmup_epochs: float = Field(1.0, ge=0, le=100, description="Linear warmup for cosine.")
    step_size: int = Field(10, ge=1, le=10000, description="Epochs between step decays.")
    gamma: float = Field(0.1, gt=0, le=1, description="Step decay factor (0 < g ≤ 1).")
    epochs: int = Field(10, ge=1, le=1000, description="Training epochs (1-1000).")
    batch_size: int = Field(32, ge=1, le=4096, description="Images per step (1-4096).")
    image_size: int | None = Field(
        None, ge=16, le=1024, description="Square input side in pixels (16-1024); model default."
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing (0 ≤ s < 1).")
    augment: Augmentations = Field(default_factory=Augmentations)
    early_stopping_patience: int = Field(
        0, ge=0, le=1000, description="Stop after N epochs without improvement; 0 = off."
    )
    accumulate_grad_batches: int = Field(
        1, ge=1, le=1024, description="Gradient accumulation steps (1-1024)."
    )
    mixed_precision: StrictBool = Field(False, description="fp16 autocast on CUDA; ignored on CPU.")
    ema: StrictBool = Field(False, description="Keep an exponential moving average of the weights.")
    ema_decay: float = Field(0.999, ge=0.9, lt=1, description="EMA decay (0.9 ≤ d < 1).")
    freeze_backbone: StrictBool = Field(False, description="Train the head only.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Random seed (0 to 2^31-1).")
    deterministic: StrictBool = Field(True, description="Deterministic algorithms (reproducible).")
    num_workers: int = Field(0, ge=0, le=32, description="Data-loader worker processes (0-32).")
    multi_label: StrictBool | None = Field(
        None, description="Multi-label (sigmoid + BCE); None = decide from the data."
    )
    tune_thresholds: StrictBool = Field(True, description="Tune per-class thresholds on val.")

    @model_validator(mode="after")
    def _warmup_fits(self) -> TrainConfig:
        if self.scheduler == "cosine" and self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"warmup_epochs ({self.warmup_epochs}) must be smaller than epochs ({self.epochs})"
            )
        return self


# Settings that only mean something when another has one of these values (momentum only with
# SGD, ...): what a page listing a recipe hides when they do not apply.
APPLIES_WHEN: dict[str, tuple[str, tuple[Any, ...]]] = {
    "momentum": ("optimizer", ("sgd",)),
    "step_size": ("scheduler", ("step",)),
    "gamma": ("scheduler", ("step",)),
    "warmup_epochs": ("scheduler", ("cosine",)),
    "ema_decay": ("ema", (True,)),
}

# The default recipe per task, over the model's field defaults above. Classification: 20
# epochs with MixUp (alpha 0.2) — median test accuracy 0.994 over five stratified digits
# splits where 10 epochs without MixUp had 0.989 (benchmarks/train_digits.py, README there).
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "classification": {"epochs": 20, "augment": {"mixup_alpha": 0.2}},
}


def _describe(error: ValidationError) -> tuple[str, list[dict[str, Any]]]:
    fields = describe(error)
    return "Invalid hyperparameters: " + api_sentence(fields), fields


def validate_config(data: dict[str, Any], task: str = "classification") -> TrainConfig:
    """Merge the task's defaults with `data` and validate; raises Invalid naming each field."""
    merged = {**TASK_DEFAULTS.get(task, {}), **data}
    if isinstance(merged.get("augment"), dict):
        merged["augment"] = {**TASK_DEFAULTS.get(task, {}).get("augment", {}), **merged["augment"]}
    try:
        return TrainConfig.model_validate(merged)
    except ValidationError as error:
        message, fields = _describe(error)
        raise Invalid(message, code="invalid_hyperparameters", details={"fields": fields}) from None


def hyperparameter_schema() -> dict[str, Any]:
    """JSON schema with defaults and help texts, for forms and /api/tasks."""
    return TrainConfig.model_json_schema()
