"""DINOv3 backbones (transformers' DINOv3ViTModel / DINOv3ConvNextModel) behind the backbone
interface: multi-scale (N, C, H, W) features plus `embed` for image-level heads.

ViT: the patch tokens reshaped to a 1/16 map (one level; dense heads build their pyramid
from it) and the CLS token as the image embedding. ConvNeXt: its four stages (strides
4-32) and the model's pooled, layer-normed token.

The architectures of the six catalog sizes are written here (the Hugging Face config.json
values), so nothing is fetched. `STUDIO_DINOV3_ARCH=tiny` builds a few-layer, narrow
version of the same code with random weights: what tests and CPU benchmarks train. The
architecture a network was built with goes into the checkpoint (`arch`), so evaluation,
export and prediction rebuild the same one whatever the environment says.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from workers.ml.backbones import Backbone, register_backbone

VIT: dict[str, dict[str, Any]] = {
    "dinov3_vit_small": {"hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 12,
                         "num_attention_heads": 6},
    "dinov3_vit_base": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                        "num_attention_heads": 12},
    "dinov3_vit_large": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                         "num_attention_heads": 16},
}  # fmt: skip
CONVNEXT: dict[str, dict[str, Any]] = {
    "dinov3_convnext_small": {"depths": [3, 3, 27, 3], "hidden_sizes": [96, 192, 384, 768]},
    "dinov3_convnext_base": {"depths": [3, 3, 27, 3], "hidden_sizes": [128, 256, 512, 1024]},
    "dinov3_convnext_large": {"depths": [3, 3, 27, 3], "hidden_sizes": [192, 384, 768, 1536]},
}
VIT_COMMON = {"patch_size": 16, "num_register_tokens": 4, "layerscale_value": 1.0}
TINY = {
    "vit": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2},
    "convnext": {"depths": [1, 1, 1, 1], "hidden_sizes": [16, 24, 32, 48]},
}  # fmt: skip


def dinov3_ids() -> list[str]:
    return [*VIT, *CONVNEXT]


def architecture(model_id: str, scale: str | None = None) -> dict[str, Any]:
    """{"kind": "vit"|"convnext", "config": transformers config kwargs, "scale"}."""
    scale = scale or os.environ.get("STUDIO_DINOV3_ARCH", "full")
    kind = "vit" if model_id in VIT else "convnext"
    sizes = TINY[kind] if scale == "tiny" else (VIT.get(model_id) or CONVNEXT[model_id])
    config = {**(VIT_COMMON if kind == "vit" else {}), **sizes}
    return {"kind": kind, "config": config, "scale": "tiny" if scale == "tiny" else "full"}


def build_network(arch: dict[str, Any]) -> nn.Module:
    """The bare transformers model (random weights) for an architecture record."""
    if arch["kind"] == "vit":
        from transformers import DINOv3ViTConfig, DINOv3ViTModel

        return DINOv3ViTModel(DINOv3ViTConfig(**arch["config"]))
    from transformers import DINOv3ConvNextConfig, DINOv3ConvNextModel

    return DINOv3ConvNextModel(DINOv3ConvNextConfig(**arch["config"]))


class DINOv3ViT(Backbone):
    def __init__(self, net: nn.Module, arch: dict[str, Any]) -> None:
        super().__init__()
        self.net = net
        self.arch = arch
        config = arch["config"]
        self.patch = int(config["patch_size"])
        self.skip = 1 + int(config["num_register_tokens"])  # CLS, then the register tokens
        self.out_channels = [int(config["hidden_size"])]
        self.strides = [self.patch]

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values=x).last_hidden_state  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.features_and_embed(x)[0]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(x)[:, 0]

    def features_and_embed(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        tokens = self.tokens(x)
        n, _, h, w = x.shape
        patches = tokens[:, self.skip :].transpose(1, 2)
        return [patches.reshape(n, -1, h // self.patch, w // self.patch)], tokens[:, 0]

    def last_blocks(self, n: int) -> list[nn.Module]:
        layers = list(self.net.model.layer)  # type: ignore[union-attr]
        return [*layers[len(layers) - n :], self.net.norm] if n > 0 else []  # type: ignore[list-item]


class DINOv3ConvNeXt(Backbone):
    def __init__(self, net: nn.Module, arch: dict[str, Any]) -> None:
        super().__init__()
        self.net = net
        self.arch = arch
        self.out_channels = [int(c) for c in arch["config"]["hidden_sizes"]]
        self.strides = [4, 8, 16, 32]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.features_and_embed(x)[0]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values=x).pooler_output  # type: ignore[no-any-return]

    def features_and_embed(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        out = self.net(pixel_values=x, output_hidden_states=True)
        return list(out.hidden_states[1:]), out.pooler_output

    def last_blocks(self, n: int) -> list[nn.Module]:
        blocks = [layer for stage in self.net.model.stages for layer in stage.layers]  # type: ignore[union-attr]
        return [*blocks[len(blocks) - n :], self.net.layer_norm] if n > 0 else []  # type: ignore[list-item]


def build_dinov3(
    model_id: str, pretrained: bool, arch: dict[str, Any] | None = None
) -> tuple[Backbone, str]:
    """The backbone with its local weights when wanted and present (the tiny test
    architecture loads only a file made for it)."""
    from workers.ml.weights import load_into

    arch = arch or architecture(model_id)
    net = build_network(arch)
    note = "random-init"
    if pretrained:
        note = load_into(net, model_id, only_if_fits=arch["scale"] != "full")
    backbone = DINOv3ViT(net, arch) if arch["kind"] == "vit" else DINOv3ConvNeXt(net, arch)
    return backbone, note


def _builder(model_id: str):  # type: ignore[no-untyped-def]
    def build(pretrained: bool, arch: dict[str, Any] | None = None) -> tuple[Backbone, str]:
        return build_dinov3(model_id, pretrained, arch)

    return build


for _id in dinov3_ids():
    register_backbone(_id)(_builder(_id))
