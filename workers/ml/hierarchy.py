"""The task-independent half of hierarchical models (classification and semantic segmentation):
what the network needs to know of the taxonomy, and the curriculum in time — stages placed in
epochs and steps, the learning-rate factor of each parameter group per step, and the
optimizer's fresh start at a stage boundary.

The optimizer keeps one parameter group per part (the shared trunk, each level's head) for the
whole run so a checkpoint resumes mid-stage; a group's learning rate is a pure function of the
step (stage rate, warm-up of heads new in the stage, cosine within the stage, 0 for inactive
or frozen heads), and the optimizer's state is cleared at each stage boundary, which is what
rebuilding it would do, without losing the parameter-group layout a resume loads into.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import torch

from app.tasks.hierarchy import stages
from workers.ml.module import StudioModule

NEG = -1e4  # a masked logit: finite, so softmax and ONNX stay well defined
# Parts trained in every stage (no level of their own): the backbone (at backbone_lr_factor
# when the backbone is frozen but for its last blocks) and a segmenter's decoder.
SHARED_PARTS = ("backbone", "decoder")


def hierarchy_info(config: dict[str, Any], classes: list[str]) -> dict[str, Any]:
    """What the network needs, as plain types (kept in the checkpoint's provenance): the levels,
    each level's group names, and each class's group index per level (-1: not a fine class)."""
    block = config["hierarchy"]
    groups: dict[str, dict[str, str]] = block["groups"]
    info: dict[str, Any] = {
        "levels": list(block["levels"]),
        "gated": bool(block["gated_inference"]),
        "adapters": block.get("adapters"),
        "groups": {},
        "class_group": {},
    }
    for level in block["levels"][:-1]:
        names = sorted(set(groups[level].values()))
        info["groups"][level] = names
        info["class_group"][level] = [
            names.index(groups[level][c]) if c in groups[level] else -1 for c in classes
        ]
    info["leaves"] = [c in groups["coarse"] for c in classes]
    return info


def stage_plan(config: dict[str, Any], steps_per_epoch: float) -> list[dict[str, Any]]:
    """Stages with their first epoch/step, active and new heads."""
    levels = list(config["hierarchy"]["levels"])
    runs = []
    for stage in stages(config):
        upto = levels[: levels.index(stage["level"]) + 1]
        runs.append({**stage, "active": [lv for lv in upto if lv not in stage.get("freeze", [])]})
    return schedule(runs, steps_per_epoch)


def schedule(
    runs: list[dict[str, Any]], steps_per_epoch: float, lengths: list[int] | None = None
) -> list[dict[str, Any]]:
    """Curriculum stages (each with `epochs`, `lr` or `lrs` per part, and its `active` parts)
    placed in time: first epoch and step, length in steps, parts new in the stage. Shared by
    the hierarchical and dual-head models (their phases). `lengths`: the epochs each stage
    runs where one ended early (its `planned_epochs` stay), the later ones moved up."""
    plan: list[dict[str, Any]] = []
    epoch = 0
    previous: set[str] = set()
    for index, stage in enumerate(runs):
        active = list(stage["active"])
        epochs = int(lengths[index]) if lengths else int(stage["epochs"])
        plan.append(
            {
                **stage,
                "planned_epochs": int(stage["epochs"]),
                "epochs": epochs,
                "start_epoch": epoch,
                "start_step": round(epoch * steps_per_epoch),
                "steps": max(1, round(epochs * steps_per_epoch)),
                "new": [part for part in active if part not in previous],
            }
        )
        previous |= set(active)
        epoch += epochs
    return plan


def stage_at(plan: list[dict[str, Any]], *, epoch: int | None = None, step: int | None = None):  # type: ignore[no-untyped-def]
    key, value = ("start_epoch", epoch) if epoch is not None else ("start_step", step)
    current = plan[0]
    for stage in plan:
        if value is not None and value >= stage[key]:
            current = stage
    return current


def stage_label(plan: list[dict[str, Any]], stage: dict[str, Any]) -> str | None:
    """`<n>-<name>` for stage n of a plan of two or more (a phase's name or a stage's level,
    letters, digits, _ and - only): the suffix of the stage's best checkpoint."""
    if len(plan) < 2:
        return None
    name = str(stage.get("name") or stage.get("level") or "")
    slug = re.sub(r"[^A-Za-z0-9_-]+", "", name)[:24]
    index = plan.index(stage) + 1
    return f"{index}-{slug}" if slug else str(index)


def group_factor(
    config: dict[str, Any], plan: list[dict[str, Any]], part: str, warmup_steps: float
):  # type: ignore[no-untyped-def]
    """LR multiplier of one parameter group (`part` = one of SHARED_PARTS or a level) per step;
    a stage's `lrs` ({part: rate}, 0 = frozen) overrides its one `lr`."""
    base = float(config["lr"])
    cosine = config["scheduler"] != "none"

    def factor(step: int) -> float:
        stage = stage_at(plan, step=step)
        if part not in SHARED_PARTS and part not in stage["active"]:
            return 0.0
        into = step - stage["start_step"]
        value = float(stage.get("lrs", {}).get(part, stage["lr"])) / base
        if part == "backbone" and config.get("freeze_backbone"):
            value *= float(config.get("backbone_lr_factor", 0.1))  # unfrozen last blocks
        if cosine:
            progress = min(1.0, into / stage["steps"])
            value *= 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
        if part in stage["new"] and stage["start_step"] > 0 and warmup_steps > 0:
            value *= min(1.0, (into + 1) / warmup_steps)
        return value

    return factor


def fresh_optimizer_at_boundary(module: StudioModule, stage: dict[str, Any]) -> None:
    """At a stage's first epoch (not the run's), clear the optimizer's state: what rebuilding
    it would do, keeping the parameter-group layout a mid-stage resume loads into."""
    if module.current_epoch == stage["start_epoch"] and module.current_epoch > 0:
        for optimizer in module.trainer.optimizers:
            optimizer.state.clear()


def staged_optimizers(
    module: StudioModule,
    answer: dict[str, Any],
    plan_of: Callable[[float], list[dict[str, Any]]] | None = None,
    warmup_epochs: float | None = None,
) -> dict[str, Any]:
    """The module's optimizer (named parameter groups) with the curriculum's per-group
    learning-rate factors in place of the recipe's one schedule. `plan_of(steps per epoch)`
    places the stages (default: the hierarchy block's); `warmup_epochs` warms up new parts
    (default: the hierarchy block's head warm-up)."""
    optimizer = answer["optimizer"]
    total = int(module.trainer.estimated_stepping_batches)
    per_epoch = total / max(1, int(module.trainer.max_epochs or 1))
    plan = plan_of(per_epoch) if plan_of else stage_plan(module.config, per_epoch)
    module.step_plan = (per_epoch, plan)  # re-placed in place when a stage ends early
    if warmup_epochs is None:
        warmup_epochs = float(module.config["hierarchy"]["head_warmup_epochs"])
    warm = float(warmup_epochs) * per_epoch
    factors = [group_factor(module.config, plan, g["name"], warm) for g in optimizer.param_groups]
    answer["lr_scheduler"]["scheduler"] = torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
    return answer


class StagePatience:
    """Mixin for a StudioModule whose curriculum stages have a `patience` (0 = off): a stage
    whose validation primary metric has not improved for that many epochs (the run's own rule,
    counted by the training callback per stage) ends after the current epoch, and the later
    stages move up, shortening the run. The epochs each stage runs (`stage_lengths`) are the
    one source for the stage lookup (`plan`), the learning-rate factors (the LambdaLR closures
    read `step_plan`, re-placed in place) and `val/stage`; they travel in the checkpoint, so a
    resume places the stages as they ran before the plan is used."""

    plan: list[dict[str, Any]]
    step_plan: tuple[float, list[dict[str, Any]]] | None = None
    stage_lengths: list[int] | None = None  # None: as planned

    def plan_of(self, steps_per_epoch: float) -> list[dict[str, Any]]:
        """The stages placed at `steps_per_epoch`, with `stage_lengths` applied."""
        raise NotImplementedError

    def end_stalled_stage(self, epoch: int, waited: int) -> str | None:
        """After (1-based) `epoch`, the current stage having gone `waited` epochs without
        improving: end it if that reaches its patience and it has epochs left; the log line."""
        stage = stage_at(self.plan, epoch=epoch - 1)
        patience = int(stage.get("patience") or 0)
        ran = epoch - int(stage["start_epoch"])
        if not patience or waited < patience or ran >= int(stage["epochs"]):
            return None
        index = self.plan.index(stage)
        self.stage_lengths = [int(s["epochs"]) for s in self.plan]
        self.stage_lengths[index] = ran
        self._move_stages()
        name = stage.get("name") or stage.get("level") or index + 1
        what = f"{'Phase' if 'name' in stage else 'Stage'} {name}"
        done = f"stopped early after {waited} epoch{'s' * (waited != 1)} without improvement"
        if index + 1 < len(self.plan):
            after = self.plan[index + 1]
            upcoming = after.get("name") or after.get("level") or index + 2
            return (
                f"{what} {done}; {what.split()[0].lower()} {upcoming} starts at epoch {epoch + 1}."
            )
        return f"{what} {done}; it was the last, so the run ends at epoch {epoch}."

    def _move_stages(self) -> None:
        self.plan = self.plan_of(1.0)
        trainer = getattr(self, "_trainer", None)
        if trainer is not None:
            trainer.fit_loop.max_epochs = sum(int(s["epochs"]) for s in self.plan)
        if self.step_plan is None:
            return
        per_epoch, step_plan = self.step_plan
        step_plan[:] = self.plan_of(per_epoch)
        # The rate of the next step was set with the old plan: set it with the new one.
        for config in trainer.lr_scheduler_configs if trainer is not None else []:
            scheduler = config.scheduler
            if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
                groups = scheduler.optimizer.param_groups
                for group, base, factor in zip(
                    groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True
                ):
                    group["lr"] = base * factor(scheduler.last_epoch)
                scheduler._last_lr = [group["lr"] for group in groups]  # type: ignore[attr-defined]

    def stages_run(self) -> list[dict[str, Any]]:
        """The stages as they ran (for the experiment's record)."""
        return [
            {
                "name": s.get("name") or s.get("level"),
                "planned_epochs": s["planned_epochs"],
                "epochs": s["epochs"],
                "start_epoch": s["start_epoch"] + 1,
                "ended_early": s["epochs"] < s["planned_epochs"],
            }
            for s in self.plan
        ]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["stage_lengths"] = self.stage_lengths

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning restores the module before configure_optimizers: the plan is right by then.
        if checkpoint.get("stage_lengths"):
            self.stage_lengths = list(checkpoint["stage_lengths"])
            self._move_stages()
