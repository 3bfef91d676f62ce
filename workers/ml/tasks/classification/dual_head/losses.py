"""Segmentation loss of the dual-head model: Dice + CE (exclusive channels, segmentation's own
loss) or Dice + BCE (independent channels), blind to ignore pixels (255) and weighted per
image by its mask tier (images without a mask weigh 0)."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812

from workers.ml.tasks.segmentation.decode import IGNORE
from workers.ml.tasks.segmentation.losses import segmentation_loss


def channel_bits(mask: torch.Tensor, channels: int) -> torch.Tensor:
    """[N, H, W] bit masks → [N, K, H, W] 0/1 floats."""
    shifts = torch.arange(channels, device=mask.device).view(1, -1, 1, 1)
    return ((mask.unsqueeze(1) >> shifts) & 1).float()


def index_target(mask: torch.Tensor) -> torch.Tensor:
    """Exclusive bits → class positions (0 = background, k + 1 = channel k, 255 kept)."""
    index = torch.zeros_like(mask)
    valid = (mask != IGNORE) & (mask > 0)
    index[valid] = torch.log2(mask[valid].float()).round().long() + 1
    index[mask == IGNORE] = IGNORE
    return index


def bce_dice(
    logits: torch.Tensor, mask: torch.Tensor, smooth: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    valid = (mask != IGNORE).unsqueeze(1).float()
    truth = channel_bits(mask.clamp(max=254), logits.shape[1]) * valid
    bce = F.binary_cross_entropy_with_logits(logits.float(), truth, reduction="none")
    bce = (bce * valid).sum() / (valid.sum() * logits.shape[1]).clamp(min=1)
    probs = logits.float().sigmoid() * valid
    dims = (0, 2, 3)
    dice = (2 * (probs * truth).sum(dims) + smooth) / (probs.sum(dims) + truth.sum(dims) + smooth)
    return bce, 1 - dice.mean()


def seg_loss(
    logits: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    *,
    exclusive: bool,
    dice_weight: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Σ over tier weights w of w · loss(images of weight w) / images with a mask."""
    total = logits.sum() * 0.0
    parts: dict[str, float] = {}
    masked = int((weight > 0).sum())
    for w in sorted({float(v) for v in weight.tolist() if v > 0}):
        rows = weight == w
        if exclusive:
            loss, found = segmentation_loss(
                logits[rows], index_target(mask[rows]), dice_weight=dice_weight
            )
        else:
            bce, dice = bce_dice(logits[rows], mask[rows])
            loss = bce + dice_weight * dice
            found = {"loss_bce": float(bce.detach()), "loss_dice": float(dice.detach())}
        total = total + w * loss * int(rows.sum()) / masked
        for key, value in found.items():
            parts[key] = parts.get(key, 0.0) + value * int(rows.sum()) / masked
    return total, parts
