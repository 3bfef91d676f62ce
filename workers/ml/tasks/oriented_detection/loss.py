"""Rotated FCOS training targets and losses: focal loss on classes, KLD on boxes (Gaussians),
binary cross-entropy on centre-ness.

Assignment (per image): a location is positive for a box when it lies inside the box's
rotated centre region (1.5 strides around the centre along the box's own axes, clipped to the
box) and on the box's pyramid level (chosen by half the long side: < 2 strides of level 8 px
→ level 0, and so on); among several boxes the smallest wins. A box that gets no location
(thinner than a stride) takes the location of its level nearest its centre, so every
training box is learned from.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F  # noqa: N812

from workers.ml.tasks.oriented_detection.models import STRIDES

RADIUS = 1.5


def gaussian(obb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean [N, 2], covariance [N, 2, 2]) of boxes (cx, cy, w, h, θ radians): the box's
    uniform distribution's first two moments up to a factor (w²/4, h²/4 as mmrotate)."""
    xy = obb[:, :2]
    wh = obb[:, 2:4].clamp(1e-3, 1e4)
    cos, sin = torch.cos(obb[:, 4]), torch.sin(obb[:, 4])
    rot = torch.stack([cos, -sin, sin, cos], -1).reshape(-1, 2, 2)
    diag = torch.diag_embed(wh * wh / 4)
    return xy, rot @ diag @ rot.transpose(1, 2)


def kld_loss(pred: torch.Tensor, target: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """mmrotate's KLD loss (sqrt, log1p, τ): 1 - 1 / (τ + log1p(√KL(target ‖ pred))).

    Always in float32, also under mixed precision: the 2x2 determinants and inverses of thin
    boxes' covariances lose everything in 16 bits (and CUDA has no half-precision `det`)."""
    with torch.autocast(pred.device.type, enabled=False):
        return _kld(pred.float(), target.float(), tau)


def _kld(pred: torch.Tensor, target: torch.Tensor, tau: float) -> torch.Tensor:
    xy_p, sigma_p = gaussian(pred)
    xy_t, sigma_t = gaussian(target)
    det_p = sigma_p.det().clamp_min(1e-9)
    inv_p = (
        torch.stack(
            [sigma_p[:, 1, 1], -sigma_p[:, 0, 1], -sigma_p[:, 1, 0], sigma_p[:, 0, 0]], -1
        ).reshape(-1, 2, 2)
        / det_p[:, None, None]
    )
    d = (xy_p - xy_t)[:, :, None]
    centre = 0.5 * (d.transpose(1, 2) @ inv_p @ d).reshape(-1)
    shape = 0.5 * (inv_p @ sigma_t).diagonal(dim1=-2, dim2=-1).sum(-1)
    shape = shape + 0.5 * (det_p.log() - sigma_t.det().clamp_min(1e-9).log()) - 1
    distance = (centre + shape).clamp_min(1e-7).sqrt()
    return 1 - 1 / (tau + torch.log1p(distance))


def level_of(obb: torch.Tensor) -> torch.Tensor:
    """Pyramid level per box by half its long side: < 2 strides of the level below."""
    reach = torch.maximum(obb[:, 2], obb[:, 3]) / 2
    level = torch.zeros(len(obb), dtype=torch.long, device=obb.device)
    for k, stride in enumerate(STRIDES[1:], start=1):
        level = torch.where(reach >= stride, torch.full_like(level, k), level)
    return level


def assign(
    points: torch.Tensor, strides: torch.Tensor, obb: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """For every location: the index of its box (-1: background) and its centre-ness target."""
    n = len(points)
    if not len(obb):
        return torch.full((n,), -1, dtype=torch.long), torch.zeros(n)
    d = points[:, None, :] - obb[None, :, :2]  # [N, M, 2]
    cos, sin = torch.cos(obb[:, 4]), torch.sin(obb[:, 4])
    u = d[..., 0] * cos + d[..., 1] * sin  # along the box's w axis
    v = -d[..., 0] * sin + d[..., 1] * cos
    half_w, half_h = obb[:, 2] / 2, obb[:, 3] / 2
    radius = strides[:, None] * RADIUS
    inside = (u.abs() <= torch.minimum(half_w, radius)) & (v.abs() <= torch.minimum(half_h, radius))
    stride_of_box = torch.tensor(STRIDES, dtype=strides.dtype, device=strides.device)[level_of(obb)]
    on_level = strides[:, None] == stride_of_box[None, :]
    ok = inside & on_level
    lonely = ~ok.any(0)
    if lonely.any():  # boxes thinner than a stride: the nearest location of their level
        gap = (d * d).sum(-1) + (~on_level) * 1e12
        nearest = gap.argmin(0)
        cols = torch.nonzero(lonely).reshape(-1)
        ok[nearest[cols], cols] = True
    area = (obb[:, 2] * obb[:, 3])[None, :].expand(n, -1)
    area = torch.where(ok, area, torch.full_like(area, float("inf")))
    best_area, owner = area.min(1)
    owner = torch.where(torch.isfinite(best_area), owner, torch.full_like(owner, -1))
    left = (half_w[None] + u).clamp_min(0)
    right = (half_w[None] - u).clamp_min(0)
    top = (half_h[None] + v).clamp_min(0)
    bottom = (half_h[None] - v).clamp_min(0)
    ratio = (torch.minimum(left, right) / torch.maximum(left, right).clamp_min(1e-6)) * (
        torch.minimum(top, bottom) / torch.maximum(top, bottom).clamp_min(1e-6)
    )
    centerness = ratio.sqrt().clamp(0.05, 1.0)
    picked = centerness.gather(1, owner.clamp_min(0)[:, None]).reshape(-1)
    return owner, torch.where(owner >= 0, picked, torch.zeros_like(picked))


def losses(
    out: dict[str, torch.Tensor],
    targets: list[dict[str, torch.Tensor]],
    points: torch.Tensor,
    strides: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """{"loss_classifier", "loss_box_kld", "loss_centerness"} over a batch; targets hold
    "obb" [M, 5] (input pixels, θ radians, le90) and "labels" [M] (0-based)."""
    logits, centers, boxes = out["logits"], out["centerness"], out["obb"]
    cls_target = torch.zeros_like(logits)
    box_pred, box_target, weights, ctr_pred, ctr_target = [], [], [], [], []
    for b, target in enumerate(targets):
        obb = target["obb"].to(points)
        owner, ctr = assign(points, strides, obb)
        positive = owner >= 0
        if not positive.any():
            continue
        labels = target["labels"].to(logits.device)[owner[positive]]
        cls_target[b, positive.nonzero().reshape(-1), labels] = 1.0
        box_pred.append(boxes[b, positive])
        box_target.append(obb[owner[positive]])
        weights.append(ctr[positive])
        ctr_pred.append(centers[b, positive])
        ctr_target.append(ctr[positive])
    from torchvision.ops import sigmoid_focal_loss

    positives = max(1.0, float(sum(len(w) for w in weights)))
    parts: dict[str, Any] = {
        "loss_classifier": sigmoid_focal_loss(logits, cls_target, reduction="sum") / positives
    }
    if weights:
        weight = torch.cat(weights)
        kld = kld_loss(torch.cat(box_pred), torch.cat(box_target))
        parts["loss_box_kld"] = (kld * weight).sum() / weight.sum().clamp_min(1e-6)
        parts["loss_centerness"] = F.binary_cross_entropy_with_logits(
            torch.cat(ctr_pred), torch.cat(ctr_target), reduction="mean"
        )
    else:
        zero = boxes.sum() * 0 + centers.sum() * 0
        parts["loss_box_kld"] = zero
        parts["loss_centerness"] = zero
    return parts
