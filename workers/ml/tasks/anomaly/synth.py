"""Synthetic defects for the self-supervised segmenter: blobs of foreign texture pasted onto
normal images (after DRAEM, Zavrtanik et al. 2021). The detector learns to find regions that do
not belong to the surface around them, which is what defects of any kind have in common; it
never sees a real defect, so nothing here is specific to one dataset's defects.

Blob masks are smoothed random noise thresholded at a random level and scale (round blotches,
elongated streaks, scattered specks); the pasted texture is another training image, rotated and
recoloured, blended at a random strength.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812

GRIDS = (2, 4, 8, 16)


def blob_masks(count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """[count, 1, size, size] binary masks covering about 0.5-15 % of the image each."""
    masks = []
    for _ in range(count):
        gx = GRIDS[int(torch.randint(len(GRIDS), (1,), generator=generator))]
        gy = GRIDS[int(torch.randint(len(GRIDS), (1,), generator=generator))]
        noise = torch.randn(1, 1, gy + 1, gx + 1, generator=generator)
        field = F.interpolate(noise, size=(size, size), mode="bicubic", align_corners=True)[0, 0]
        share = float(torch.empty(1).uniform_(0.005, 0.15, generator=generator))
        level = torch.quantile(field.flatten(), 1 - share)
        masks.append((field >= level).float())
    return torch.stack(masks)[:, None]


def paste_defects(
    x: torch.Tensor,
    share: float,
    generator: torch.Generator,
    mean: torch.Tensor,
    std: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images with synthetic defects on about `share` of them, and the defect masks.

    x: [N, C, H, W] images normalized with `mean`/`std` ([1, C, 1, 1]); the foreign texture
    comes from another image of the batch, recoloured in pixel space (0-1). The random draws
    come from `generator` on the CPU (the same defects on any device) and move to x's device.
    """
    n, _, h, w = x.shape
    device = x.device
    mean, std = mean.to(device), std.to(device)
    chosen = (torch.rand(n, generator=generator) < share).float()[:, None, None, None]
    if n < 2 or not chosen.any():
        return x, torch.zeros(n, 1, h, w, device=device)
    masks = (blob_masks(n, max(h, w), generator)[..., :h, :w] * chosen).to(device)
    pixels = x * std + mean
    shift = 1 + int(torch.randint(n - 1, (1,), generator=generator))
    source = torch.roll(pixels, shifts=shift, dims=0)
    source = torch.rot90(source, int(torch.randint(4, (1,), generator=generator)), dims=(2, 3))
    if source.shape[-2:] != (h, w):
        source = F.interpolate(source, size=(h, w), mode="bilinear", align_corners=False)
    gain = torch.empty(n, x.shape[1], 1, 1).uniform_(0.6, 1.4, generator=generator).to(device)
    offset = torch.empty(n, 1, 1, 1).uniform_(-0.2, 0.2, generator=generator).to(device)
    source = (source * gain + offset).clamp(0, 1)
    strength = torch.empty(n, 1, 1, 1).uniform_(0.15, 1.0, generator=generator).to(device)
    blend = masks * strength
    mixed = pixels * (1 - blend) + source * blend
    return (mixed - mean) / std, masks
