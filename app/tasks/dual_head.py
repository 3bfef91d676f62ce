"""Dual-head models (classification + segmentation on one backbone) as data: the `dual_head`
block of a classification recipe, its three phases and the gate's default rules (no torch;
the code half is workers/ml/tasks/classification/dual_head/).

Phases (seed plan §7, §14): A trains the segmentation decoder on a frozen backbone
(λ_seg 1), B trains everything jointly (λ_seg 0.4, λ_cls 0.6; backbone 1e-5, heads 1e-4),
C refines the classifier with the decoder frozen. They run as the staged curriculum
hierarchical models use (workers/ml/tasks/classification/hierarchy.py): one experiment,
learning rates per part as a function of the step, optimizer state cleared at each boundary,
`val/stage` marking the phases on the live chart; a phase out of patience ends early and the
later phases move up (the run gets shorter).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PREFIX = "dualhead_"
PARTS = ("backbone", "seg", "cls")

# The gate's rules before calibration (seed §10 plus the familiarity and upper-ratio rules);
# one copy read by the web process and the workers (examples/predict_onnx.py restates the
# decision on purpose: it runs without the studio).
GATE_DEFAULT_RULES: dict[str, Any] = {
    "default_min_ratio": 0.15,
    "min_ratio": {},  # class → calibrated minimum foreground ratio
    "max_ratio": {},  # class → calibrated maximum foreground ratio (none: no upper bound)
    "ratio_margin": 0.1,
    "min_component_px": 500.0,
    "reference_side": 224,
    "min_calibration_images": 5,
    "max_feature_distance": None,  # calibrated; None: the familiarity rule is off
    "feature_margin": 0.25,
    "feature_reference": None,  # {"means": [[...] per class], "scale": [...]} from training
}


def is_dual_head(model_id: str | None) -> bool:
    return bool(model_id) and str(model_id).startswith(PREFIX)


class Phase(BaseModel):
    """One phase: its epochs, a learning rate per part (0 = frozen), the loss weights and its
    patience: the phase ends early once the validation primary metric (the run's rule) has not
    improved for that many epochs, and the next phase starts at the next epoch (0 = off)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=20)
    epochs: int = Field(ge=1, le=1000)
    lr_backbone: float = Field(ge=0, le=10)
    lr_seg: float = Field(ge=0, le=10)
    lr_cls: float = Field(ge=0, le=10)
    lambda_seg: float = Field(ge=0, le=100)
    lambda_cls: float = Field(ge=0, le=100)
    patience: int = Field(0, ge=0, le=1000)


# Seed §14: A 30 epochs (decoder 1e-3), B 25 (backbone 1e-5, heads 1e-4), C 15 (backbone
# 1e-6, classifier 1e-4), patience 5 / 5 / 3 epochs per phase (workers/ml/hierarchy.py
# StagePatience); the experiment's early stopping still works on the whole run.
DEFAULT_PHASES: tuple[dict[str, Any], ...] = (
    {"name": "A", "epochs": 30, "lr_backbone": 0.0, "lr_seg": 1e-3, "lr_cls": 0.0,
     "lambda_seg": 1.0, "lambda_cls": 0.0, "patience": 5},
    {"name": "B", "epochs": 25, "lr_backbone": 1e-5, "lr_seg": 1e-4, "lr_cls": 1e-4,
     "lambda_seg": 0.4, "lambda_cls": 0.6, "patience": 5},
    {"name": "C", "epochs": 15, "lr_backbone": 1e-6, "lr_seg": 0.0, "lr_cls": 1e-4,
     "lambda_seg": 0.0, "lambda_cls": 1.0, "patience": 3},
)  # fmt: skip


class DualHeadConfig(BaseModel):
    """Phases, decoder width, segmentation loss and the mask tiers' loss weights."""

    model_config = ConfigDict(extra="forbid")

    phases: list[Phase] = Field(default_factory=lambda: [Phase(**p) for p in DEFAULT_PHASES])
    decoder_channels: int = Field(256, ge=8, le=1024)  # seed: 256 / 192 / 128 by tier
    seg_loss: Literal["auto", "bce", "ce"] = "auto"  # auto: CE for index masks, BCE otherwise
    dice_weight: float = Field(1.0, ge=0, le=100)
    # Outlier exposure (not in the seed plan): this share of training images is replaced by
    # a synthetic non-domain image — noise, a flat colour or a smooth colour field —
    # with an all-background mask and no class loss, so the gate has seen what "nothing" is.
    # Off by default: at 0.2 it raised out-of-domain rejection 2.5 % → 87.5 % but cut test
    # accuracy 1.0 → 0.53 on the benchmark (benchmarks/README.md; BatchNorm statistics mixed
    # with the negatives' are the likely cause, not yet fixed).
    negative_share: float = Field(0.0, ge=0, le=0.9)
    tier_weights: dict[str, float] = Field(default_factory=lambda: {"A": 1.0, "B": 0.5, "C": 0.0})

    @model_validator(mode="after")
    def _check(self) -> DualHeadConfig:
        if not self.phases:
            raise ValueError("a dual-head model needs at least one phase")
        if sum(p.epochs for p in self.phases) > 1000:
            raise ValueError("the phases' epochs add up to more than 1000")
        if set(self.tier_weights) - {"A", "B", "C"}:
            raise ValueError("tier_weights takes the tiers A, B and C")
        if any(w < 0 or w > 1 for w in self.tier_weights.values()):
            raise ValueError("tier weights must be 0-1")
        self.tier_weights = {"A": 1.0, "B": 0.5, "C": 0.0, **self.tier_weights}
        return self


def plan(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The phases as curriculum stages for the shared stage mechanism: `lrs` per part and the
    parts that train (`active`)."""
    stages = []
    for phase in config["dual_head"]["phases"]:
        lrs = {"backbone": phase["lr_backbone"], "seg": phase["lr_seg"], "cls": phase["lr_cls"]}
        stages.append(
            {
                **phase,
                "lr": max(lrs.values()) or float(config["lr"]),
                "lrs": lrs,
                "active": [part for part, lr in lrs.items() if lr > 0],
            }
        )
    return stages
