"""StudioModule: what every task's LightningModule shares with the generic training loop.

The loop (workers/ml/train.py) reads `val_metrics` (filled at validation end, keys without the
`val/` prefix), `last_loss` and `loss_parts` (set in training_step), `weights_note` (which
weights the network started from), `inference_model()` (EMA weights when EMA is on: the
weights checkpoints save) and `checkpoint_extras()` (task facts learnt in training, such as
multi-label thresholds, saved into the checkpoint provenance).
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L  # noqa: N812 - the library's own convention
import torch
from torch import nn


def schedule_factor(config: dict[str, Any], steps_per_epoch: float, total_steps: int):  # type: ignore[no-untyped-def]
    """LR multiplier per optimizer step; a pure function of the step so resume (and a raised
    epoch count) needs no scheduler internals beyond the step counter."""
    kind = config["scheduler"]
    total = max(1, total_steps)

    def factor(step: int) -> float:
        if kind == "none":
            return 1.0
        if kind == "step":
            epoch = int(step // max(1.0, steps_per_epoch))
            return float(config["gamma"] ** (epoch // config["step_size"]))
        if kind == "onecycle":
            warm = max(1, int(0.3 * total))
            if step < warm:
                return 0.04 + 0.96 * step / warm
            progress = min(1.0, (step - warm) / max(1, total - warm))
            return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * progress))
        warm = int(config["warmup_epochs"] * steps_per_epoch)
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return 0.5 * (1 + math.cos(math.pi * progress))

    return factor


class StudioModule(L.LightningModule):
    """Base of the tasks' modules: the network in `self.model`, optional EMA, the optimizer
    and schedule from the recipe, and the attributes the training loop reads."""

    def __init__(self, config: dict[str, Any], model: nn.Module, weights_note: str) -> None:
        super().__init__()
        self.config = config
        self.model = model
        self.weights_note = weights_note
        # Backbone parameters trained at lr x backbone_lr_factor (unfrozen last blocks).
        self.slow_params: list[nn.Parameter] = []
        # A backbone built from a recorded architecture (DINOv3 sizes) says which.
        archs = [getattr(m, "arch", None) for m in model.modules()]
        self.arch: dict[str, Any] | None = next((a for a in archs if isinstance(a, dict)), None)
        self.ema: nn.Module | None = None
        if config["ema"]:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(
                self.model, multi_avg_fn=get_ema_multi_avg_fn(config["ema_decay"]), use_buffers=True
            )
        self.val_metrics: dict[str, float] = {}
        self.last_loss: float | None = None
        self.loss_parts: dict[str, float] = {}

    def inference_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model  # type: ignore[return-value]

    def checkpoint_extras(self) -> dict[str, Any]:
        return {}

    def training_notes(self) -> list[str]:
        """Advice for the run's log and record, known once the model is built (e.g. a recipe
        that does not fit the weights it found)."""
        return []

    def checkpoint_stage(self) -> str | None:
        """The curriculum stage (phase) of the current epoch, for a best checkpoint per stage
        (`best-<stage>`); None for a run without stages."""
        return None

    def end_stalled_stage(self, epoch: int, waited: int) -> str | None:
        """After `epoch`, the current stage having gone `waited` epochs without improving: a
        curriculum with a patience per stage ends it here (workers/ml/hierarchy.py
        StagePatience) and returns the log line; None: nothing ended."""
        return None

    def stages_run(self) -> list[dict[str, Any]] | None:
        """The curriculum's stages as they ran (an early end shortens one), for the record."""
        return None

    @property
    def train_metrics(self) -> dict[str, float]:
        """Metrics of this epoch's training batches as trained (keys without `train/`): the
        leakage audit compares them with validation's."""
        return {}

    def forward(self, x: Any) -> Any:
        return self.model(x)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def parameter_groups(self) -> list[dict[str, Any]] | list[nn.Parameter]:
        """What the optimizer trains: the trainable parameters, with `slow_params` (unfrozen
        backbone blocks) in a group at lr x backbone_lr_factor; tasks may override."""
        slow = {id(p) for p in self.slow_params}
        rest = [p for p in self.model.parameters() if p.requires_grad and id(p) not in slow]
        if not slow:
            return rest
        factor = float(self.config.get("backbone_lr_factor", 0.1))
        groups: list[dict[str, Any]] = [
            {"params": rest},
            {"params": list(self.slow_params), "lr": float(self.config["lr"]) * factor},
        ]
        return groups

    def configure_optimizers(self) -> Any:
        config = self.config
        params = self.parameter_groups()
        if config["optimizer"] == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                params,
                lr=config["lr"],
                momentum=config["momentum"],
                weight_decay=config["weight_decay"],
                nesterov=config["momentum"] > 0,
            )
        else:
            optimizer = torch.optim.AdamW(
                params, lr=config["lr"], weight_decay=config["weight_decay"]
            )
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = total / max(1, int(self.trainer.max_epochs or 1))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, schedule_factor(config, per_epoch, total)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
