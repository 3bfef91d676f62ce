"""Training hyperparameters as validated pydantic models (data only; the web process uses them).

`TrainConfig` holds the fields every task shares; a task subclasses it with its own fields
(and its own `Augmentations`) and names the subclass in its TaskSpec. Every field has bounds,
a help text and a form group (`basic`, `augment`, `task`, `advanced`), so the training form,
the API schema and validation come from one place. `validate_config` turns pydantic's errors
into one StudioError whose message says, per field, what is valid.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from app.errors import Invalid
from app.validation import api_sentence, describe

GROUPS = ("basic", "augment", "task", "advanced")


def basic(**extra: Any) -> dict[str, Any]:
    return {"json_schema_extra": {"group": "basic", **extra}}


def task_field(**extra: Any) -> dict[str, Any]:
    return {"json_schema_extra": {"group": "task", **extra}}


class Augmentations(BaseModel):
    """Augmentations every task can apply (geometric ones move the annotations too)."""

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


class StillAugmentations(Augmentations):
    """No geometric change by default, for tasks whose truth a rotation or a flip can change:
    a measured angle or position (regression), a scratch whose direction is the defect
    (anomaly detection). Users may still turn them on."""

    rotation: float = Field(0.0, ge=0, le=180, description="Random rotation, ± degrees (0-180).")


class TrainConfig(BaseModel):
    """The fields every task's recipe has; stored resolved in experiment.config and checkpoints."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("small_cnn", description="Catalog model id.")
    pretrained: Literal["auto", "required", "none"] = Field(
        "auto",
        description="auto: local pretrained weights when present, else random initialisation; "
        "required: refuse to train without them; none: random initialisation.",
        json_schema_extra={
            "label": "Pretrained weights",
            "titles": {
                "auto": "If present locally",
                "required": "Required",
                "none": "None (random initialisation)",
            },
        },
    )
    optimizer: Literal["adamw", "sgd"] = Field(
        "adamw", description="adamw or sgd.", **basic(titles={"adamw": "AdamW", "sgd": "SGD"})
    )
    lr: float = Field(
        3e-3,
        gt=0,
        le=10,
        description="Peak learning rate (0 < lr ≤ 10).",
        **basic(label="Learning rate"),
    )
    weight_decay: float = Field(1e-4, ge=0, le=1, description="Weight decay (0-1).")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (0 ≤ m < 1).")
    scheduler: Literal["cosine", "step", "onecycle", "none"] = Field(
        "cosine",
        description="cosine (with warmup), step, onecycle or none.",
        **basic(
            titles={
                "cosine": "Cosine with warmup",
                "step": "Step",
                "onecycle": "One-cycle",
                "none": "None",
            }
        ),
    )
    warmup_epochs: float = Field(1.0, ge=0, le=100, description="Linear warmup for cosine.")
    step_size: int = Field(10, ge=1, le=10000, description="Epochs between step decays.")
    gamma: float = Field(0.1, gt=0, le=1, description="Step decay factor (0 < g ≤ 1).")
    epochs: int = Field(10, ge=1, le=1000, description="Training epochs (1-1000).", **basic())
    batch_size: int = Field(32, ge=1, le=4096, description="Images per step (1-4096).", **basic())
    image_size: int | None = Field(
        None,
        ge=16,
        le=1024,
        description="Square input side in pixels (16-1024); model default.",
        **basic(),
    )
    augment: Augmentations = Field(default_factory=Augmentations)
    early_stopping_patience: int = Field(
        0, ge=0, le=1000, description="Stop after N epochs without improvement; 0 = off."
    )
    accumulate_grad_batches: int = Field(
        1,
        ge=1,
        le=1024,
        description="Gradient accumulation steps (1-1024).",
        json_schema_extra={"label": "Gradient accumulation"},
    )
    mixed_precision: StrictBool = Field(False, description="fp16 autocast on CUDA; ignored on CPU.")
    ema: StrictBool = Field(
        False,
        description="Keep an exponential moving average of the weights.",
        json_schema_extra={"label": "EMA of weights"},
    )
    ema_decay: float = Field(0.999, ge=0.9, lt=1, description="EMA decay (0.9 ≤ d < 1).")
    freeze_backbone: StrictBool | None = Field(
        None,
        description="Train the head only; auto: the model's default (frozen for DINOv3).",
    )
    unfreeze_last_blocks: int = Field(
        0,
        ge=0,
        le=48,
        description="With a frozen backbone, still train its last N blocks (0-48).",
    )
    backbone_lr_factor: float = Field(
        0.1,
        gt=0,
        le=1,
        description="Learning rate of unfrozen backbone blocks, as a fraction of lr (0-1].",
        json_schema_extra={"label": "Backbone LR factor"},
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Random seed (0 to 2^31-1).")
    deterministic: StrictBool = Field(
        True,
        description=(
            "Deterministic algorithms (reproducible); on a GPU the few operations without one "
            "run anyway, with a warning in the log."
        ),
    )
    num_workers: int = Field(
        0,
        ge=0,
        le=32,
        description="Data-loader worker processes (0-32).",
        json_schema_extra={"label": "Data-loader workers"},
    )

    @field_validator("pretrained", mode="before")
    @classmethod
    def _pretrained_from_bool(cls, value: Any) -> Any:
        """Recipes stored before the three-way option said true/false."""
        if value is True:
            return "auto"
        if value is False:
            return "none"
        return value

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
    "unfreeze_last_blocks": ("freeze_backbone", (True, None)),
    "backbone_lr_factor": ("freeze_backbone", (True, None)),
}


def _describe(error: ValidationError) -> tuple[str, list[dict[str, Any]]]:
    fields = describe(error)
    return "Invalid hyperparameters: " + api_sentence(fields), fields


def merged_defaults(defaults: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """`data` over the task's default overrides; nested dicts (augment) merge key by key."""
    merged = {**defaults, **data}
    for key, value in defaults.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            merged[key] = {**value, **data[key]}
    return merged


def validate_config(
    data: dict[str, Any], model: type[TrainConfig], defaults: dict[str, Any] | None = None
) -> TrainConfig:
    """Merge the task's defaults with `data` and validate; raises Invalid naming each field."""
    try:
        return model.model_validate(merged_defaults(defaults or {}, data))
    except ValidationError as error:
        message, fields = _describe(error)
        raise Invalid(message, code="invalid_hyperparameters", details={"fields": fields}) from None


def form_fields(
    model: type[TrainConfig], defaults: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """The training form's fields by group, from the model: name, kind, default, bounds, help.

    Nested models (augment) become `augment_<name>` fields in the `augment` group. `model` is
    left out: the form offers the catalog's models for the task instead.
    """
    resolved = model.model_validate(merged_defaults(defaults, {})).model_dump()
    schema = model.model_json_schema()
    groups: dict[str, list[dict[str, Any]]] = {g: [] for g in GROUPS}

    def add(name: str, prop: dict[str, Any], default: Any, group: str, prefix: str = "") -> None:
        extra_group = prop.get("group")
        entry = {
            "name": f"{prefix}{name}",
            "key": name,
            "label": prop.get("label") or name.replace("_", " ").capitalize(),
            "help": prop.get("description", ""),
            "default": default,
            "kind": _kind(prop, schema),
            "choices": _choices(prop),
            "min": _bound(prop, "minimum", "exclusiveMinimum"),
            "max": _bound(prop, "maximum", "exclusiveMaximum"),
            # Whole-number fields step by 1 (the browser then refuses 2.5 epochs by itself).
            "step": "1" if _integer(prop) else "any",
            "applies_when": APPLIES_WHEN.get(name),
        }
        groups[extra_group or group].append(entry)

    for name, prop in schema["properties"].items():
        if name == "model":
            continue
        if "$ref" in prop or (prop.get("allOf")):
            ref = prop.get("$ref") or prop["allOf"][0]["$ref"]
            sub = schema["$defs"][ref.rsplit("/", 1)[-1]]
            for sub_name, sub_prop in sub["properties"].items():
                add(sub_name, sub_prop, resolved[name][sub_name], "augment", prefix=f"{name}_")
            continue
        add(name, prop, resolved[name], "advanced")
    return groups


def _kind(prop: dict[str, Any], schema: dict[str, Any]) -> str:
    if any("$ref" in p for p in prop.get("anyOf", [])):
        return "json"  # an optional block of settings (hierarchy): edited as JSON text
    types = {p.get("type") for p in prop.get("anyOf", [prop])}
    if "boolean" in types:
        return "bool_or_auto" if "null" in types else "bool"
    if "enum" in prop or any("enum" in p for p in prop.get("anyOf", [])):
        return "choice"
    if types & {"integer", "number"}:
        return "number"
    return "text"


def _integer(prop: dict[str, Any]) -> bool:
    types = {p.get("type") for p in prop.get("anyOf", [prop])} - {"null"}
    return types == {"integer"}


def _choices(prop: dict[str, Any]) -> list[tuple[str, str]]:
    values: list[Any] = prop.get("enum") or next(
        (p["enum"] for p in prop.get("anyOf", []) if "enum" in p), []
    )
    titles = prop.get("titles") or {}
    return [(str(v), str(titles.get(v, v))) for v in values]


def _bound(prop: dict[str, Any], inclusive: str, exclusive: str) -> float | None:
    for p in prop.get("anyOf", [prop]):
        if inclusive in p:
            return float(p[inclusive])
        if exclusive in p:
            return float(p[exclusive])
    return None


def hyperparameter_schema(model: type[TrainConfig]) -> dict[str, Any]:
    """JSON schema with defaults, help texts and form groups, for /api/catalog/hyperparameters."""
    return model.model_json_schema()
