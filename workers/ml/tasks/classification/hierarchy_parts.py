"""The optional parts of a hierarchical classifier, each a switch of the `hierarchy` block:

- `freeze_early_layers: N` (roadmap milestone 1): the backbone's first N stages (the modules
  up to its N-th feature map) keep their weights and their BatchNorm statistics, so the
  generic low-level features learnt in pre-training (or an earlier stage) are not bent by the
  fine classes' few images.
- `adapters: "film" | "bottleneck"` (milestone 2): one small adapter per coarse group between
  the image embedding and the fine head. A fine class's logit is computed from the embedding
  as its own group's adapter changes it, so siblings share a group-specific view of the
  features without any routing (training and inference compute the same thing, and the
  export is one static graph). Both start as the identity, so switching them on does not
  change a model's first steps.
- `distill: {feature_weight, kl_weight, temperature}` (milestone 5): from the second
  curriculum stage on, a frozen copy of the model as it was when the stage began is the
  teacher: the embedding is pulled towards the teacher's (feature matching, MSE) and the group
  heads the previous stage trained towards the teacher's softened predictions (KL · T²), which
  keeps the coarse structure while the fine head is learnt.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from workers.ml.backbones import Backbone, ResNetBackbone, SequentialBackbone, SmallCNN


def early_stages(backbone: Backbone, n: int) -> list[nn.Module]:
    """The modules that compute the backbone's first `n` feature maps (the stem counts with
    the first). Freezing every stage is `freeze_backbone`'s job, so n must leave one."""
    stages = len(backbone.out_channels)
    if n >= stages:
        raise ValueError(
            f"freeze_early_layers={n}: this backbone has {stages} stages; freeze at most "
            f"{stages - 1} (freeze_backbone freezes all of it)"
        )
    if n <= 0:
        return []
    if isinstance(backbone, SmallCNN):
        return list(backbone.blocks)[:n]
    if isinstance(backbone, ResNetBackbone):
        return [backbone.stem, *list(backbone.layers)[:n]]
    if isinstance(backbone, SequentialBackbone):
        return list(backbone.features)[: backbone.taps[n - 1] + 1]
    raise ValueError(
        f"freeze_early_layers is not available for {type(backbone).__name__} backbones; "
        "use freeze_backbone or unfreeze_last_blocks"
    )


def freeze(modules: list[nn.Module]) -> None:
    for module in modules:
        for parameter in module.parameters():
            parameter.requires_grad = False


def hold_statistics(modules: list[nn.Module]) -> None:
    """Frozen stages also keep their BatchNorm running statistics (Lightning puts the whole
    model back in train mode at every epoch and after validation, hence once per batch)."""
    for module in modules:
        module.eval()


class GroupAdapters(nn.Module):
    """One adapter per group over an embedding [N, C] → adapted embeddings [G, N, C]."""

    def __init__(self, kind: str, groups: int, channels: int) -> None:
        super().__init__()
        self.kind = kind
        if kind == "film":
            self.scale = nn.Parameter(torch.ones(groups, channels))
            self.shift = nn.Parameter(torch.zeros(groups, channels))
        elif kind == "bottleneck":
            hidden = max(4, channels // 4)
            self.down = nn.Parameter(torch.randn(groups, channels, hidden) * channels**-0.5)
            self.down_bias = nn.Parameter(torch.zeros(groups, 1, hidden))
            self.up = nn.Parameter(torch.zeros(groups, hidden, channels))  # starts as identity
            self.up_bias = nn.Parameter(torch.zeros(groups, 1, channels))
        else:
            raise ValueError(f"unknown adapter kind {kind!r}; use film or bottleneck")

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.kind == "film":
            return features.unsqueeze(0) * self.scale.unsqueeze(1) + self.shift.unsqueeze(1)
        hidden = torch.relu(torch.einsum("nc,gch->gnh", features, self.down) + self.down_bias)
        return features.unsqueeze(0) + torch.einsum("gnh,ghc->gnc", hidden, self.up) + self.up_bias


def adapted_logits(
    head: nn.Module, adapted: torch.Tensor, class_group: torch.Tensor, groups: int
) -> torch.Tensor:
    """Fine logits [N, K] where class k's logit is the head applied to its own group's adapted
    embedding (classes without a group, the non-leaf ones, take group 0; they are masked)."""
    per_group = head(adapted)  # [G, N, K]
    pick = F.one_hot(class_group.clamp(min=0), groups).to(per_group.dtype)  # [K, G]
    return torch.einsum("gnk,kg->nk", per_group, pick)


class Distiller:
    """The previous stage's frozen model and the two distillation terms against it. Not a
    submodule (it is neither trained nor exported); its weights travel in the trainer state
    so a run resumed mid-stage distils from the same teacher."""

    KEY = "hierarchy_teacher"

    def __init__(self, settings: dict[str, Any]) -> None:
        self.feature_weight = float(settings["feature_weight"])
        self.kl_weight = float(settings["kl_weight"])
        self.temperature = float(settings["temperature"])
        self.teacher: nn.Module | None = None
        self.levels: list[str] = []  # the group levels the teacher's stage trained

    def start(self, model: nn.Module, levels: list[str]) -> None:
        self.teacher = copy.deepcopy(model).eval()
        for parameter in self.teacher.parameters():
            parameter.requires_grad = False
        self.levels = [lv for lv in levels if lv != "fine"]

    def losses(
        self,
        x: torch.Tensor,
        features: torch.Tensor,
        out: dict[str, torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        if self.teacher is None:
            return {}
        self.teacher.to(x.device)
        with torch.no_grad():
            taught, teacher_features = self.teacher.levels_and_features(x)  # type: ignore[operator]
        parts: dict[str, torch.Tensor] = {}
        if self.feature_weight > 0:
            parts["distill_feature"] = self.feature_weight * F.mse_loss(features, teacher_features)
        if self.kl_weight > 0 and self.levels:
            t = self.temperature
            kl = sum(
                F.kl_div(
                    F.log_softmax(out[lv] / t, dim=1),
                    F.log_softmax(taught[lv] / t, dim=1),
                    log_target=True,
                    reduction="batchmean",
                )
                for lv in self.levels
            )
            parts["distill_kl"] = self.kl_weight * (t * t) * kl  # type: ignore[operator]
        return parts

    def save(self, checkpoint: dict[str, Any]) -> None:
        if self.teacher is not None:
            checkpoint[self.KEY] = {
                "state_dict": self.teacher.state_dict(),
                "levels": self.levels,
            }

    def load(self, checkpoint: dict[str, Any], model: nn.Module) -> None:
        saved = checkpoint.get(self.KEY)
        if saved is None:
            self.teacher = None
            return
        self.start(model, list(saved["levels"]))
        assert self.teacher is not None
        self.teacher.load_state_dict(saved["state_dict"])
