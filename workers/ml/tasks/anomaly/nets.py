"""The anomaly detectors. Every one maps a normalized batch [N, 3, H, W] to
(score [N], map [N, 1, H, W]): the map in the input's pixels, the score its peak, both on one
scale, so a threshold on the score also outlines the anomalous region of the map.

- DefectUNet (`anomaly_unet`): a small U-Net giving a defect logit per pixel; trained from
  random initialisation on synthetic defects (unsupervised) or real ones (supervised, BCE).
- ConvAutoencoder (`conv_autoencoder`): reconstructs its input through a bottleneck; the map
  is the squared error plus the structural (SSIM) error of the reconstruction.
- PaDiM (`padim_<backbone>`): a Gaussian per feature-map position over pretrained features
  (a ResNet's layers 1-3, a ConvNeXt's stages 1-3, a ViT's patch grid; a fixed random subset
  of channels); the map is the Mahalanobis distance. `fit` gathers the statistics; no
  gradient step.
- PatchCore (`patchcore_<backbone>`): locally averaged level 2-3 features (a ViT's patch
  grid) of every normal patch, thinned to a coreset by greedy k-centre selection; the map is
  the distance to the nearest.
The backbones are those whose catalog entry declares "memory" features (ResNet-18, DINOv3).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from workers.ml.backbones import build_backbone

SMOOTH = 5  # the map's smoothing window (pixels of the input): a defect is an area, not a pixel


def gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, round(3 * sigma))
    grid = torch.arange(-radius, radius + 1, dtype=torch.float32)
    line = torch.exp(-(grid**2) / (2 * sigma**2))
    kernel = line[:, None] * line[None, :]
    return (kernel / kernel.sum())[None, None]


class Blur(nn.Module):
    """A fixed Gaussian blur of a one-channel map (kept as a buffer, so it exports)."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.register_buffer("kernel", gaussian_kernel(sigma))
        self.pad = self.kernel.shape[-1] // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, [self.pad] * 4, mode="replicate"), self.kernel)


def peak(anomaly_map: torch.Tensor) -> torch.Tensor:
    return anomaly_map.flatten(1).amax(dim=1)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DefectUNet(nn.Module):
    """U-Net 16-32-64-128 with a one-channel defect logit; ~0.5 M parameters."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        self.downs = nn.ModuleList(
            _block(3 if i == 0 else widths[i - 1], w) for i, w in enumerate(widths)
        )
        self.ups = nn.ModuleList(
            _block(widths[i] + widths[i + 1], widths[i]) for i in range(len(widths) - 1)
        )
        self.out = nn.Conv2d(widths[0], 1, 1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Raw defect logits [N, 1, H, W], one per pixel (training compares them with masks,
        so thin defects keep their shape)."""
        skips = []
        for index, down in enumerate(self.downs):
            x = down(x if index == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips[-1]
        for index in reversed(range(len(self.ups))):
            x = F.interpolate(x, size=skips[index].shape[-2:], mode="bilinear", align_corners=False)
            x = self.ups[index](torch.cat([x, skips[index]], dim=1))
        return self.out(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        anomaly_map = defect_map(self.logits(x))
        return peak(anomaly_map), anomaly_map


def defect_map(logits: torch.Tensor) -> torch.Tensor:
    """The defect probability averaged over a small window: a defect is an area, so single
    noisy pixels do not make a peak."""
    probs = torch.sigmoid(logits)
    return F.avg_pool2d(probs, SMOOTH, stride=1, padding=SMOOTH // 2, count_include_pad=False)


def ssim_map(a: torch.Tensor, b: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Per-pixel SSIM of two [N, C, H, W] images in 0-1 (mean filter window). Variances are
    taken around mid-grey, which keeps float32 cancellation small (an exported model then
    matches the checkpoint closely)."""
    c1, c2 = 0.01**2, 0.03**2

    def mean(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, window, 1, window // 2, count_include_pad=False)

    a0, b0 = a - 0.5, b - 0.5
    m_a, m_b = mean(a0), mean(b0)
    var_a = (mean(a0 * a0) - m_a**2).clamp_min(0)
    var_b = (mean(b0 * b0) - m_b**2).clamp_min(0)
    cov = mean(a0 * b0) - m_a * m_b
    mu_a, mu_b = m_a + 0.5, m_b + 0.5
    luminance = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    return luminance * (2 * cov + c2) / (var_a + var_b + c2)


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.2, inplace=True),
    )


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.2, inplace=True),
    )


class ConvAutoencoder(nn.Module):
    """32-64-128 encoder to an 8-channel bottleneck at 1/8 resolution, mirrored decoder."""

    def __init__(self, mean: list[float], std: list[float], width: int = 32) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            _down(3, width), _down(width, 2 * width), _down(2 * width, 4 * width),
            nn.Conv2d(4 * width, 8, 1),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Conv2d(8, 4 * width, 1), _up(4 * width, 2 * width), _up(2 * width, width),
            _up(width, width), nn.Conv2d(width, 3, 3, padding=1),
        )  # fmt: skip
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32)[None, :, None, None])
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32)[None, :, None, None])
        self.blur = Blur(2.0)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        out = self.decoder(self.encoder(x))
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def errors(self, x: torch.Tensor, recon: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(squared error, 1 - SSIM), each [N, 1, H, W], on 0-1 pixels."""
        a = (x * self.std + self.mean).clamp(0, 1)
        b = (recon * self.std + self.mean).clamp(0, 1)
        squared = ((a - b) ** 2).mean(dim=1, keepdim=True)
        structural = (1 - ssim_map(a, b)).mean(dim=1, keepdim=True)
        return squared, structural

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        squared, structural = self.errors(x, self.reconstruct(x))
        anomaly_map = self.blur(10 * squared + structural)
        return peak(anomaly_map), anomaly_map


class FeatureMemory(nn.Module):
    """Shared by PaDiM and PatchCore: a frozen pretrained backbone and the smoothing of the
    upsampled distance map. `fit` sees every training batch once, `finish` builds the model."""

    def __init__(
        self, backbone_id: str, *, pretrained: bool, arch: dict[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.backbone, self.weights = build_backbone(backbone_id, pretrained=pretrained, arch=arch)
        for parameter in self.backbone.parameters():
            parameter.requires_grad = False
        self.blur = Blur(4.0)

    def levels(self, first: int) -> slice:
        """Levels `first`..2 of a multi-scale backbone; a single-map one (ViT) has only its
        patch grid."""
        return slice(first, 3) if len(self.backbone.strides) > 1 else slice(0, 1)

    def train(self, mode: bool = True) -> FeatureMemory:
        super().train(mode)
        self.backbone.eval()  # frozen statistics: BatchNorm stays in eval mode
        return self

    def finish_map(
        self, distances: torch.Tensor, size: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        up = F.interpolate(distances, size=size, mode="bilinear", align_corners=False)
        anomaly_map = self.blur(up)
        return peak(anomaly_map), anomaly_map


class PaDiM(FeatureMemory):
    def __init__(
        self,
        backbone_id: str,
        *,
        pretrained: bool,
        image_size: int,
        arch: dict[str, Any] | None = None,
        dims: int = 100,
        seed: int = 0,
    ) -> None:
        super().__init__(backbone_id, pretrained=pretrained, arch=arch)
        with torch.no_grad():
            side = int(self.backbone.eval()(torch.zeros(1, 3, image_size, image_size))[0].shape[-1])
        channels = sum(self.backbone.out_channels[self.levels(0)])
        generator = torch.Generator().manual_seed(seed)
        picked = torch.randperm(channels, generator=generator)[: min(dims, channels)]
        self.register_buffer("channels", picked.sort().values)
        d = len(picked)
        self.register_buffer("mu", torch.zeros(side * side, d))
        self.register_buffer("inv_cov", torch.eye(d).repeat(side * side, 1, 1))
        self._sum: torch.Tensor | None = None
        self._outer: torch.Tensor | None = None
        self._count = 0

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """[N, P, d]: levels 1-3 upsampled to level 1's grid, the chosen channels."""
        with torch.no_grad():
            feats = self.backbone(x)[self.levels(0)]
        size = feats[0].shape[-2:]
        joined = torch.cat(
            [feats[0]]
            + [
                F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in feats[1:]
            ],
            dim=1,
        )
        picked = joined.index_select(1, self.channels)
        return picked.flatten(2).transpose(1, 2)

    def fit(self, x: torch.Tensor) -> None:
        e = self.embed(x).double()
        s = e.sum(dim=0)
        o = torch.einsum("npd,npe->pde", e, e)
        self._sum = s if self._sum is None else self._sum + s
        self._outer = o if self._outer is None else self._outer + o
        self._count += len(x)

    def finish(self) -> None:
        assert self._sum is not None and self._outer is not None and self._count > 0
        mu = self._sum / self._count
        cov = self._outer / self._count - torch.einsum("pd,pe->pde", mu, mu)
        cov = cov + 0.01 * torch.eye(cov.shape[-1], dtype=cov.dtype)
        self.mu.copy_(mu.float())
        self.inv_cov.copy_(torch.linalg.inv(cov).float())
        self._sum, self._outer, self._count = None, None, 0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.embed(x) - self.mu[None]
        squared = torch.einsum("npd,pde,npe->np", e, self.inv_cov, e).clamp_min(0)
        side = math.isqrt(self.mu.shape[0])
        distances = squared.sqrt().reshape(-1, 1, side, side)
        return self.finish_map(distances, (x.shape[-2], x.shape[-1]))


class PatchCore(FeatureMemory):
    def __init__(
        self,
        backbone_id: str,
        *,
        pretrained: bool,
        image_size: int,
        arch: dict[str, Any] | None = None,
        bank_size: int = 2048,
        seed: int = 0,
    ) -> None:
        super().__init__(backbone_id, pretrained=pretrained, arch=arch)
        channels = sum(self.backbone.out_channels[self.levels(1)])
        self.bank_size = bank_size
        self.seed = seed
        self.register_buffer("bank", torch.zeros(bank_size, channels))
        self._patches: list[torch.Tensor] = []

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """[N, P, C] locally averaged level 2-3 patch features on level 2's grid."""
        with torch.no_grad():
            feats = self.backbone(x)[self.levels(1)]
        size = feats[0].shape[-2:]
        pooled = [F.avg_pool2d(f, 3, stride=1, padding=1, count_include_pad=False) for f in feats]
        joined = torch.cat(
            [pooled[0]]
            + [
                F.interpolate(f, size=size, mode="bilinear", align_corners=False)
                for f in pooled[1:]
            ],
            dim=1,
        )
        return joined.flatten(2).transpose(1, 2), (int(size[0]), int(size[1]))

    def fit(self, x: torch.Tensor) -> None:
        patches, _ = self.embed(x)
        self._patches.append(patches.reshape(-1, patches.shape[-1]).cpu())

    def finish(self) -> None:
        patches = torch.cat(self._patches)
        self._patches = []
        chosen = coreset(patches, self.bank_size, self.seed)
        self.bank = patches[chosen].to(self.bank.device)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patches, (h, w) = self.embed(x)
        squared = (
            (patches**2).sum(-1, keepdim=True)
            - 2 * patches @ self.bank.T
            + (self.bank**2).sum(-1)[None, None, :]
        )
        nearest = squared.amin(dim=-1).clamp_min(0).sqrt()
        return self.finish_map(nearest.reshape(-1, 1, h, w), (x.shape[-2], x.shape[-1]))


def coreset(features: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """Greedy k-centre selection (on a random 128-d projection, as PatchCore does for speed):
    indices of `size` rows that cover the others best."""
    count = len(features)
    if count <= size:  # every patch, repeated to fill the bank (a repeat changes no distance)
        return torch.arange(size) % count
    generator = torch.Generator().manual_seed(seed)
    projection = torch.randn(features.shape[1], 128, generator=generator) / math.sqrt(128)
    reduced = features @ projection
    start = int(torch.randint(count, (1,), generator=generator))
    chosen = [start]
    distance = ((reduced - reduced[start]) ** 2).sum(dim=1)
    for _ in range(size - 1):
        index = int(distance.argmax())
        chosen.append(index)
        distance = torch.minimum(distance, ((reduced - reduced[index]) ** 2).sum(dim=1))
    return torch.tensor(chosen)


MEMORY = {"padim": PaDiM, "patchcore": PatchCore}


def memory_method(method: str) -> tuple[type[FeatureMemory], str] | None:
    """(class, backbone id) of a feature-memory id such as `padim_dinov3_vit_small`."""
    kind, _, backbone_id = method.partition("_")
    return (MEMORY[kind], backbone_id) if kind in MEMORY and backbone_id else None


def build_detector(
    method: str,
    *,
    image_size: int,
    mean: list[float],
    std: list[float],
    pretrained: bool,
    arch: dict[str, Any] | None = None,
) -> tuple[nn.Module, str]:
    """The detector for a catalog id and its weights note; `arch`: a checkpoint's recorded
    backbone architecture (DINOv3 sizes)."""
    if method == "anomaly_unet":
        return DefectUNet(), "random-init"
    if method == "conv_autoencoder":
        return ConvAutoencoder(mean, std), "random-init"
    found = memory_method(method)
    if found is None:
        raise ValueError(f"unknown anomaly model {method!r}")
    kind, backbone_id = found
    net = kind(backbone_id, pretrained=pretrained, image_size=image_size, arch=arch)
    return net, net.weights
