"""Backbones behind one interface: forward(x) -> list of feature maps, finest first.

Heads live in heads.py and only see `out_channels`/`strides`, so a detection or segmentation
head can reuse every backbone here. Image-level heads take `embed(x)` (mean of the coarsest
map; a ViT's CLS token). Torchvision models are built with weights=None; pretrained weights
are loaded from the local file app/catalog/weights.py finds (the studio's weights folder,
STUDIO_WEIGHTS_DIR, the torch hub cache), never downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.catalog import backbones_with
from app.catalog.weights import WeightLocations, find_weights


class Backbone(nn.Module):
    """Multi-scale feature extractor. Subclasses set out_channels and strides (one per level)."""

    out_channels: list[int]
    strides: list[int]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """One vector per image for image-level heads: the coarsest map, average-pooled."""
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self(x)[-1], 1), 1)

    def features_and_embed(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """`forward` and `embed` from one pass, for a model with a dense and an image-level
        head on one backbone (dual-head)."""
        features = self(x)
        return features, torch.flatten(nn.functional.adaptive_avg_pool2d(features[-1], 1), 1)

    @property
    def embed_channels(self) -> int:
        return self.out_channels[-1]

    def last_blocks(self, n: int) -> list[nn.Module]:
        """The last n blocks, last last: what `unfreeze_last_blocks` trains."""
        return []


def _conv_block(cin: int, cout: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index in range(convs):
        layers += [
            nn.Conv2d(cin if index == 0 else cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


class SmallCNN(Backbone):
    """Four conv-BN-ReLU blocks with max-pooling (the last two doubled): ~0.3 M parameters and
    ~9 M multiply-adds per 32 px image, so an epoch of the digits takes seconds on one core."""

    def __init__(
        self, widths: tuple[int, ...] = (16, 32, 64, 128), convs: tuple[int, ...] = (1, 1, 2, 2)
    ) -> None:
        super().__init__()
        blocks = []
        cin = 3
        for width, count in zip(widths, convs, strict=True):
            blocks.append(nn.Sequential(_conv_block(cin, width, count), nn.MaxPool2d(2)))
            cin = width
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = list(widths)
        self.strides = [2 ** (i + 1) for i in range(len(widths))]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features

    def last_blocks(self, n: int) -> list[nn.Module]:
        return list(self.blocks)[len(self.blocks) - n :] if n > 0 else []


class ResNetBackbone(Backbone):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layers = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        self.out_channels = [
            _last_channels(layer)
            for layer in self.layers  # type: ignore[arg-type]
        ]
        self.strides = [4, 8, 16, 32]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return features

    def last_blocks(self, n: int) -> list[nn.Module]:
        blocks = [block for layer in self.layers for block in layer]  # type: ignore[attr-defined]
        return blocks[len(blocks) - n :] if n > 0 else []


def _last_channels(module: nn.Module) -> int:
    channels = 0
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d):
            channels = sub.out_channels
        elif isinstance(sub, nn.BatchNorm2d):
            channels = sub.num_features
    return channels


class SequentialBackbone(Backbone):
    """torchvision `features` Sequential (EfficientNet, MobileNetV3): one level per stride."""

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        was_training = features.training
        features.eval()
        with torch.no_grad():
            x = torch.zeros(1, 3, 64, 64)
            sizes = []
            for block in features:
                x = block(x)
                sizes.append((x.shape[-1], x.shape[1]))
        features.train(was_training)
        # Keep the last block of each resolution.
        self.taps: list[int] = []
        for index, (size, _) in enumerate(sizes):
            if index + 1 == len(sizes) or sizes[index + 1][0] != size:
                self.taps.append(index)
        self.out_channels = [sizes[i][1] for i in self.taps]
        self.strides = [64 // sizes[i][0] for i in self.taps]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        taps = set(self.taps)
        for index, block in enumerate(self.features):
            x = block(x)
            if index in taps:
                features.append(x)
        return features

    def last_blocks(self, n: int) -> list[nn.Module]:
        return list(self.features)[len(self.features) - n :] if n > 0 else []


# --- the backbone registry ------------------------------------------------------------------

# id -> builder(pretrained[, arch=...]) -> (backbone, weights note: "pretrained:<file>" or
# "random-init"); `arch` (from a checkpoint) rebuilds a recorded architecture.
BackboneBuilder = Callable[..., tuple[Backbone, str]]
_BACKBONES: dict[str, BackboneBuilder] = {}


def register_backbone(model_id: str) -> Callable[[BackboneBuilder], BackboneBuilder]:
    """Register a backbone builder by catalog id (task heads build on any registered one)."""

    def decorate(builder: BackboneBuilder) -> BackboneBuilder:
        _BACKBONES[model_id] = builder
        return builder

    return decorate


def backbone_ids(kind: str | None = None) -> list[str]:
    """Registered backbone ids; with `kind`, those whose catalog entry declares that kind of
    features ("embedding", "dense", "memory": `ModelSpec.feature_kinds`), which is how a task
    asks which backbones its heads go on."""
    if kind is None:
        return list(_BACKBONES)
    declared = {m.id for m in backbones_with(kind)}
    return [b for b in _BACKBONES if b in declared]


def weight_dirs() -> list[Path]:
    """The flat folders local pretrained weights are looked for in, in order."""
    return [folder for _, folder in WeightLocations.from_env().folders()]


def pretrained_wanted(config: dict[str, Any]) -> bool:
    """The recipe's `pretrained` ("auto" | "required" | "none"; older recipes: true/false)."""
    return config.get("pretrained") in (True, "auto", "required")


def freeze_backbone(backbone: nn.Module, config: dict[str, Any]) -> list[nn.Parameter]:
    """Head-only training when the recipe freezes the backbone, except the last
    `unfreeze_last_blocks` blocks of a registered backbone, whose parameters are returned:
    they train at lr x backbone_lr_factor (StudioModule.slow_params). Other encoders (a
    U-Net's, torchvision's segmenters') freeze whole."""
    if not config.get("freeze_backbone"):
        return []
    for parameter in backbone.parameters():
        parameter.requires_grad = False
    slow: list[nn.Parameter] = []
    blocks = backbone.last_blocks if isinstance(backbone, Backbone) else lambda n: []
    for block in blocks(int(config.get("unfreeze_last_blocks") or 0)):
        for parameter in block.parameters():
            parameter.requires_grad = True
            slow.append(parameter)
    return slow


def torchvision_weight_names(enum_name: str) -> list[str]:
    """File names of torchvision's published weights (as the hub cache stores them): what
    the catalog's `weight_files` must list (a test compares)."""
    import torchvision.models as tvm

    enum = getattr(tvm, enum_name, None)
    if enum is None:
        import torchvision.models.detection as tvd

        enum = getattr(tvd, enum_name)
    return [Path(w.url).name for w in enum]


_TORCHVISION = {
    "resnet18": ("resnet18", "ResNet18_Weights"),
    "resnet34": ("resnet34", "ResNet34_Weights"),
    "resnet50": ("resnet50", "ResNet50_Weights"),
    "efficientnet_b0": ("efficientnet_b0", "EfficientNet_B0_Weights"),
    "efficientnet_b3": ("efficientnet_b3", "EfficientNet_B3_Weights"),
    "mobilenet_v3_small": ("mobilenet_v3_small", "MobileNet_V3_Small_Weights"),
    "mobilenet_v3_large": ("mobilenet_v3_large", "MobileNet_V3_Large_Weights"),
}


def find_pretrained(model_id: str) -> Path | None:
    """The local file of this backbone's published weights, if present."""
    found = find_weights(model_id, fallback=False)
    return found.path if found is not None else None


def torchvision_classifier(model_id: str) -> nn.Module | None:
    """The whole torchvision network (ImageNet head included) the published file fits."""
    if model_id not in _TORCHVISION:
        return None
    import torchvision.models as tvm

    return getattr(tvm, _TORCHVISION[model_id][0])(weights=None)  # type: ignore[no-any-return]


def _torchvision_backbone(model_id: str) -> BackboneBuilder:
    def build(pretrained: bool) -> tuple[Backbone, str]:
        from workers.ml.weights import load_into

        net = torchvision_classifier(model_id)
        assert net is not None
        note = load_into(net, model_id) if pretrained else "random-init"
        if model_id.startswith("resnet"):
            return ResNetBackbone(net), note
        return SequentialBackbone(net.features), note  # type: ignore[arg-type]

    return build


@register_backbone("small_cnn")
def _small_cnn(pretrained: bool) -> tuple[Backbone, str]:
    return SmallCNN(), "random-init"


for _id in _TORCHVISION:
    register_backbone(_id)(_torchvision_backbone(_id))


import workers.ml.dinov3  # noqa: E402,F401 - registers the DINOv3 backbones

BACKBONE_IDS = tuple(_BACKBONES)


def build_backbone(
    model_id: str, *, pretrained: bool = True, arch: dict[str, Any] | None = None
) -> tuple[Backbone, str]:
    """Build a registered backbone; returns it with its weights note. `arch`: the recorded
    architecture of a checkpoint (DINOv3 sizes), rebuilt as it was."""
    builder = _BACKBONES.get(model_id)
    if builder is None:
        raise ValueError(f"unknown backbone {model_id!r}; known: {', '.join(_BACKBONES)}")
    return builder(pretrained, arch=arch) if arch else builder(pretrained)
