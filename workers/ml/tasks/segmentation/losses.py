"""Cross-entropy (optional class weights) + Dice, both blind to ignore pixels (255)."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812

from workers.ml.tasks.segmentation.decode import IGNORE


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - mean soft Dice over classes, on the batch's valid pixels: a class's Dice is
    (2·Σ p·t + s) / (Σ p + Σ t + s) with p the softmax and t the one-hot truth; classes
    absent from both stay near 1 and barely move the mean."""
    classes = logits.shape[1]
    valid = (target != IGNORE).unsqueeze(1)
    probs = logits.float().softmax(dim=1) * valid
    onehot = F.one_hot(target.clamp(0, classes - 1), classes).permute(0, 3, 1, 2) * valid
    dims = (0, 2, 3)
    overlap = (probs * onehot).sum(dims)
    total = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * overlap + smooth) / (total + smooth)
    return 1 - dice.mean()


def segmentation_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    dice_weight: float = 0.0,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """CE + dice_weight · Dice and the parts (for the training curves). A batch whose every
    pixel is ignore gives a zero loss that still has a gradient path (no NaN)."""
    if bool((target == IGNORE).all()):
        zero = logits.sum() * 0.0
        return zero, {"loss_ce": 0.0, "loss_dice": 0.0}
    ce = F.cross_entropy(logits.float(), target, weight=weights, ignore_index=IGNORE)
    parts = {"loss_ce": float(ce.detach())}
    loss = ce
    if dice_weight > 0:
        dice = dice_loss(logits, target)
        parts["loss_dice"] = float(dice.detach())
        loss = ce + dice_weight * dice
    return loss, parts
