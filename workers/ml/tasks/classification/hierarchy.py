"""Hierarchical classification: one backbone, one head per level, a staged curriculum.

The network's `forward` returns fine logits over every project class (non-leaf classes masked),
so evaluation, export, parity and the decoder treat it as a flat classifier; with gated
inference the fine logits outside the coarse head's predicted group are masked inside the one
model. `levels()` gives every head's logits for training and the per-level evaluation.

Training (HierarchicalModule): loss = Σ w_level · CE_level over the stage's active levels, the
fine CE over logits masked to the sample's true coarse group, so a fine class only competes
with its siblings (soft targets, so MixUp/CutMix mix two samples' targets at every level).
The curriculum in time (stages, per-group learning rates, the optimizer's fresh start at a
boundary) is shared with hierarchical segmentation: workers/ml/hierarchy.py.
Optional parts (frozen early stages, per-group adapters, distillation from the previous
stage) live in hierarchy_parts.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from workers.ml.backbones import build_backbone, freeze_backbone, pretrained_wanted
from workers.ml.heads import ClassificationHead
from workers.ml.hierarchy import (
    NEG,
    fresh_optimizer_at_boundary,
    stage_at,
    stage_label,
    stage_plan,
    staged_optimizers,
)
from workers.ml.hierarchy import group_factor as group_factor
from workers.ml.hierarchy import hierarchy_info as hierarchy_info  # re-exported: tests
from workers.ml.hierarchy import schedule as schedule
from workers.ml.module import StudioModule
from workers.ml.tasks.classification.hierarchy_parts import (
    Distiller,
    GroupAdapters,
    adapted_logits,
    early_stages,
    freeze,
    hold_statistics,
)
from workers.ml.tasks.classification.metrics import _f1_per_class, multiclass_metrics
from workers.ml.tasks.classification.module import mix_batch


class HierarchicalClassifier(nn.Module):
    """Backbone + binary/coarse heads over groups + a fine head over classes."""

    def __init__(
        self,
        model_id: str,
        num_classes: int,
        info: dict[str, Any],
        pretrained: bool,
        arch: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.backbone, self.weights_note = build_backbone(
            model_id, pretrained=pretrained, arch=arch
        )
        channels = self.backbone.embed_channels
        self.levels_order: list[str] = list(info["levels"])
        self.heads = nn.ModuleDict(
            {lv: ClassificationHead(channels, len(info["groups"][lv])) for lv in info["groups"]}
        )
        self.heads["fine"] = ClassificationHead(channels, num_classes)
        self.adapters: GroupAdapters | None = None
        if info.get("adapters"):
            self.adapters = GroupAdapters(info["adapters"], len(info["groups"]["coarse"]), channels)
        for level, index in info["class_group"].items():
            self.register_buffer(f"group_{level}", torch.tensor(index, dtype=torch.long))
        self.register_buffer("leaf", torch.tensor(info["leaves"], dtype=torch.bool))
        self.gated = bool(info["gated"])

    def group_of(self, level: str) -> torch.Tensor:
        return getattr(self, f"group_{level}")  # type: ignore[no-any-return]

    def levels_and_features(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        features = self.backbone.embed(x)
        out = {level: head(features) for level, head in self.heads.items() if level != "fine"}
        if self.adapters is not None:
            fine = adapted_logits(
                self.heads["fine"],
                self.adapters(features),
                self.group_of("coarse"),
                self.heads["coarse"].fc.out_features,
            )
        else:
            fine = self.heads["fine"](features)
        out["fine"] = fine.masked_fill(~self.leaf, NEG)
        return out, features

    def levels(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.levels_and_features(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.levels(x)
        if not self.gated:
            return out["fine"]
        routed = out["coarse"].argmax(dim=1, keepdim=True)  # [N, 1]
        allowed = self.group_of("coarse").unsqueeze(0) == routed  # [N, C]
        return out["fine"].masked_fill(~allowed, NEG)


class HierarchicalModule(StudioModule):
    def __init__(self, config: dict[str, Any], classes: list[str], info: dict[str, Any]) -> None:
        model = HierarchicalClassifier(
            config["model"], len(classes), info["hierarchy"], pretrained_wanted(config)
        )
        block = config["hierarchy"]
        slow = freeze_backbone(model.backbone, config)
        self.frozen_stages = early_stages(model.backbone, int(block.get("freeze_early_layers", 0)))
        freeze(self.frozen_stages)
        super().__init__(config, model, model.weights_note)
        self.slow_params = slow  # the "backbone" group: its factor has backbone_lr_factor
        self.distiller = Distiller(block["distill"]) if block.get("distill") else None
        self.num_classes = len(classes)
        self.weights = dict(config["hierarchy"]["loss_weights"])
        self.plan = stage_plan(config, 1.0)
        self._val: list[dict[str, torch.Tensor]] = []

    @property
    def net(self) -> HierarchicalClassifier:
        return self.model  # type: ignore[return-value]

    def stage(self) -> dict[str, Any]:
        return stage_at(self.plan, epoch=int(self.current_epoch))

    def checkpoint_stage(self) -> str | None:
        return stage_label(self.plan, self.stage())

    def group_matrix(self, level: str) -> torch.Tensor:
        """[classes, groups] 0/1: which group of `level` each fine class belongs to."""
        index = self.net.group_of(level)
        matrix = torch.zeros(len(index), self.net.heads[level].fc.out_features, device=index.device)
        valid = index >= 0
        matrix[valid, index[valid]] = 1.0
        return matrix

    def losses(self, out: dict[str, torch.Tensor], soft: torch.Tensor, active: list[str]):  # type: ignore[no-untyped-def]
        """Soft-target CE per level (hard labels are one-hot; MixUp/CutMix mix them). A level's
        target sums the fine target over each group; the fine logits are masked to the groups
        the target lies in, so a fine class competes with its siblings only."""
        parts: dict[str, torch.Tensor] = {}
        for level in active:
            if level == "fine":
                coarse = self.group_matrix("coarse")
                allowed = (soft @ coarse @ coarse.T) > 0
                logits, target = out["fine"].masked_fill(~allowed, NEG), soft
            else:
                logits, target = out[level], soft @ self.group_matrix(level)
            parts[level] = -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
        return parts

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y, _ = batch
        soft = F.one_hot(y, self.num_classes).float()
        augment = self.config["augment"]
        mixup, cutmix = float(augment["mixup_alpha"]), float(augment["cutmix_alpha"])
        if (mixup > 0 or cutmix > 0) and x.shape[0] > 1:
            x, soft = mix_batch(x, soft, mixup, cutmix)
        out, features = self.net.levels_and_features(x)
        parts = self.losses(out, soft, self.stage()["active"])
        loss: torch.Tensor = sum(self.weights[lv] * value for lv, value in parts.items())  # type: ignore[assignment]
        if self.distiller is not None:
            extra = self.distiller.losses(x, features, out)
            loss = loss + sum(extra.values())
            parts.update(extra)
        self.last_loss = float(loss.detach())
        self.loss_parts = {f"{lv}_loss": float(v.detach()) for lv, v in parts.items()}
        return loss

    def on_train_epoch_start(self) -> None:
        stage = self.stage()
        fresh_optimizer_at_boundary(self, stage)
        boundary = self.current_epoch == stage["start_epoch"] and self.current_epoch > 0
        if boundary and self.distiller is not None:  # the model as the previous stage left it
            previous = self.plan[self.plan.index(stage) - 1]
            self.distiller.start(self.net, previous["active"])

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        hold_statistics(self.frozen_stages)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.distiller is not None:
            self.distiller.save(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.distiller is not None:
            self.distiller.load(checkpoint, self.net)

    def parameter_groups(self) -> list[dict[str, Any]]:
        parts: list[tuple[str, list[nn.Module]]] = [("backbone", [self.net.backbone])]
        parts += [(name, [head]) for name, head in self.net.heads.items()]
        if self.net.adapters is not None:  # the adapters learn with the fine head
            parts = [(n, [*m, self.net.adapters] if n == "fine" else m) for n, m in parts]
        groups = [
            {
                "params": [p for m in modules for p in m.parameters() if p.requires_grad],
                "name": name,
            }
            for name, modules in parts
        ]
        return [g for g in groups if g["params"]]

    def configure_optimizers(self) -> Any:
        return staged_optimizers(self, super().configure_optimizers())

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y, _ = batch
        net = self.inference_model()
        out = {k: v.float().cpu() for k, v in net.levels(x).items()}  # type: ignore[operator]
        out["routed"] = net(x).float().cpu()
        out["y"] = y.cpu()
        self._val.append(out)

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            self.val_metrics = {}
            return
        joined = {k: torch.cat([b[k] for b in self._val]) for k in self._val[0]}
        y = joined["y"].numpy()
        metrics = multiclass_metrics(joined["routed"].numpy(), y)
        # the loss of the fine head itself: routed logits put NEG on every class of a wrong group
        metrics["loss"] = multiclass_metrics(joined["fine"].numpy(), y)["loss"]
        levels = {lv: joined[lv].argmax(1).numpy() for lv in self.net.heads if lv != "fine"}
        report = level_scores(
            joined["routed"].argmax(1).numpy(),
            y,
            levels,
            {lv: self.net.group_of(lv).cpu().numpy() for lv in levels},
        )
        metrics.update({f"{k.replace('/', '_')}": v for k, v in report.items()})
        metrics["stage"] = float(self.plan.index(self.stage()) + 1)
        self.val_metrics = metrics


def class_scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Macro F1 (over the classes that occur in the truth or the predictions) and balanced
    accuracy (mean recall over the classes in the truth) of one level's labels: a level's
    accuracy hides a rare group that is never predicted, these two do not."""
    if not len(truth):
        return {"macro_f1": 0.0, "balanced_accuracy": 0.0}
    size = int(max(predicted.max(), truth.max())) + 1
    onehot_pred = np.eye(size, dtype=bool)[predicted]
    onehot_true = np.eye(size, dtype=bool)[truth]
    present = onehot_true.any(0) | onehot_pred.any(0)
    support = onehot_true.sum(0)
    recall = (onehot_pred & onehot_true).sum(0)[support > 0] / support[support > 0]
    return {
        "macro_f1": float(_f1_per_class(onehot_pred, onehot_true)[present].mean()),
        "balanced_accuracy": float(recall.mean()),
    }


def level_scores(
    fine_pred: np.ndarray,
    fine_true: np.ndarray,
    level_pred: dict[str, np.ndarray],
    class_group: dict[str, np.ndarray],
) -> dict[str, float]:
    """Per-level accuracy, macro F1 and balanced accuracy, hierarchical accuracy (every level
    right) and violations (the fine prediction outside the coarse head's group) of one set of
    predictions."""
    n = len(fine_true)
    right = fine_pred == fine_true
    scores: dict[str, float] = {"fine/accuracy": float(right.mean()) if n else 0.0}
    scores.update({f"fine/{k}": v for k, v in class_scores(fine_pred, fine_true).items()})
    for level, predicted in level_pred.items():
        truth = class_group[level][fine_true]
        hit = predicted == truth
        scores[f"{level}/accuracy"] = float(hit.mean()) if n else 0.0
        scores.update({f"{level}/{k}": v for k, v in class_scores(predicted, truth).items()})
        scores[f"{level}/implied_accuracy"] = (
            float((class_group[level][fine_pred] == truth).mean()) if n else 0.0
        )
        right = right & hit
    scores["hierarchical_accuracy"] = float(right.mean()) if n else 0.0
    scores["violations"] = float(
        (class_group["coarse"][fine_pred] != level_pred["coarse"]).sum() if n else 0
    )
    return scores
