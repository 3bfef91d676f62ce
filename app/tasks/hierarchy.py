"""Hierarchical models as data: the `hierarchy` block of a classification or semantic
segmentation recipe and its binding to the project's taxonomy (no torch; the code halves are
workers/ml/hierarchy.py and the tasks' own hierarchy modules).

Levels run from the top: `binary` (two root groups, e.g. "clean" vs "damaged"), `coarse` (the
fine classes' parents) and `fine` (the leaf classes, always last). A fine class's group at a
level is read from its chain of ancestors: the coarse group is its parent, the binary group its
grandparent, or the coarse group itself when the tree is one level shallower there.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from app.errors import Invalid

Level = Literal["binary", "coarse", "fine"]
LEVELS: tuple[str, ...] = ("binary", "coarse", "fine")
DEFAULT_LEVELS: tuple[Level, ...] = ("coarse", "fine")
DEFAULT_WEIGHTS = {"binary": 0.2, "coarse": 0.3, "fine": 1.0}


class CurriculumStage(BaseModel):
    """One stage: heads up to `level` train (the ones in `freeze` stay as they are)."""

    model_config = ConfigDict(extra="forbid")

    level: Level
    epochs: int = Field(ge=1, le=1000)
    lr: float = Field(gt=0, le=10)
    freeze: list[Level] = Field(default_factory=list)


class DistillConfig(BaseModel):
    """Distillation from the previous stage's frozen model (from the second stage on)."""

    model_config = ConfigDict(extra="forbid")

    feature_weight: float = Field(1.0, ge=0, le=100)  # MSE between image embeddings
    kl_weight: float = Field(1.0, ge=0, le=100)  # KL on the group heads the stage before trained
    temperature: float = Field(2.0, gt=0, le=20)


class HierarchyConfig(BaseModel):
    """One backbone, one head per level, fine loss masked to the true parent group."""

    model_config = ConfigDict(extra="forbid")

    levels: list[Level] = Field(default_factory=lambda: list(DEFAULT_LEVELS))
    loss_weights: dict[Level, float] = Field(default_factory=dict)
    curriculum: list[CurriculumStage] = Field(default_factory=list)
    gated_inference: StrictBool = False
    head_warmup_epochs: float = Field(1.0, ge=0, le=100)
    # Optional parts, each off by default (docs/hierarchy.md): the backbone's first N stages
    # frozen; one FiLM or bottleneck adapter per coarse group before the fine head;
    # distillation from the previous curriculum stage's frozen model.
    freeze_early_layers: int = Field(0, ge=0, le=8)
    adapters: Literal["film", "bottleneck"] | None = None
    distill: DistillConfig | None = None
    # Filled from the project's taxonomy when the experiment is saved or queued:
    # {level: {fine class: group}} for every level above fine.
    groups: dict[str, dict[str, str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> HierarchyConfig:
        if not self.levels or self.levels[-1] != "fine" or "coarse" not in self.levels:
            raise ValueError('levels must be ["coarse", "fine"] or ["binary", "coarse", "fine"]')
        if [lv for lv in LEVELS if lv in self.levels] != self.levels:
            raise ValueError("levels must be unique and ordered binary, coarse, fine")
        unknown = set(self.loss_weights) - set(self.levels)
        if unknown:
            raise ValueError(f"loss_weights for levels not in levels: {sorted(unknown)}")
        if any(w < 0 or w > 100 for w in self.loss_weights.values()):
            raise ValueError("loss weights must be 0-100")
        self.loss_weights = {
            lv: self.loss_weights.get(lv, DEFAULT_WEIGHTS[lv]) for lv in self.levels
        }
        order = [self.levels.index(s.level) for s in self.curriculum if s.level in self.levels]
        if len(order) != len(self.curriculum):
            raise ValueError("every curriculum stage's level must be one of levels")
        if order != sorted(order):
            raise ValueError("curriculum stages must go from the top level down (binary → fine)")
        if self.curriculum and self.curriculum[-1].level != "fine":
            raise ValueError("the last curriculum stage must train the fine level")
        if sum(s.epochs for s in self.curriculum) > 1000:
            raise ValueError("the curriculum's epochs add up to more than 1000")
        if self.distill is not None:
            if len(self.curriculum) < 2:
                raise ValueError(
                    "distill needs a curriculum of at least two stages (it distils from the "
                    "model as the previous stage left it)"
                )
            if self.distill.feature_weight == 0 and self.distill.kl_weight == 0:
                raise ValueError("distill needs feature_weight or kl_weight above 0")
        return self


def stages(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The curriculum as run: the stages given, or one joint stage of all levels."""
    block = config["hierarchy"]
    if block["curriculum"]:
        return [dict(s) for s in block["curriculum"]]
    return [{"level": "fine", "epochs": int(config["epochs"]), "lr": config["lr"], "freeze": []}]


def bind_taxonomy(
    config: dict[str, Any],
    parents: dict[str, str | None],
    own_groups: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Fill `hierarchy.groups` from the project's classes {name: parent name}; 422s name the
    classes that stop the taxonomy from serving the levels asked for. A leaf in `own_groups`
    without a parent (segmentation's background) is its own group at every level."""
    block = config.get("hierarchy")
    if not block:
        return config
    has_children = {p for p in parents.values() if p}
    leaves = [name for name in parents if name not in has_children]
    orphans = [name for name in leaves if not parents.get(name) and name not in own_groups]
    if orphans:
        raise Invalid(
            f"A hierarchical model needs a parent for every fine (leaf) class; these have "
            f"none: {', '.join(orphans[:20])}. Set their group on the class panel or in "
            "taxonomy.csv.",
            code="taxonomy_incomplete",
            details={"classes": orphans},
        )

    def chain(name: str) -> list[str]:
        path = [name]
        while (parent := parents.get(path[-1])) and parent not in path:
            path.append(parent)
        return path  # leaf first

    groups: dict[str, dict[str, str]] = {}
    for level in block["levels"][:-1]:
        depth = 1 if level == "coarse" else 2
        groups[level] = {leaf: chain(leaf)[min(depth, len(chain(leaf)) - 1)] for leaf in leaves}
        found = sorted(set(groups[level].values()))
        wanted_ok = len(found) == 2 if level == "binary" else len(found) >= 2
        if not wanted_ok:
            need = "exactly 2" if level == "binary" else "at least 2"
            raise Invalid(
                f"The {level} level needs {need} groups; the taxonomy gives {len(found)} "
                f"({', '.join(found[:20])}).",
                code="taxonomy_levels",
                details={"level": level, "groups": found},
            )
    return {**config, "hierarchy": {**block, "groups": groups}}
