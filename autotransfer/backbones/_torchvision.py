"""Families built from torchvision's model builders; their block layouts as data."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torchvision.models import get_model, get_model_weights
from torchvision.models.vision_transformer import VisionTransformer, interpolate_embeddings

from autotransfer.backbones._family import BackboneFamily
from autotransfer.backbones._layout import BlockLayout
from autotransfer.backbones._split import FLATTEN, GLOBAL_POOL
from autotransfer.errors import WeightsError


class TorchvisionFamily(BackboneFamily):
    """A family whose variants are torchvision model names; weights via torchvision's own API."""

    def __init__(
        self,
        name: str,
        layouts: Mapping[str, BlockLayout],
        *,
        min_input_size: int = 32,
    ) -> None:
        self.name = name
        self._layouts = dict(layouts)
        self.variants = tuple(self._layouts)
        self.min_input_size = min_input_size

    def layout(self, variant: str) -> BlockLayout:
        return self._layouts[variant]

    def weight_names(self, variant: str) -> tuple[str, ...]:
        return ("DEFAULT", *(w.name for w in get_model_weights(variant)))

    def build(self, variant: str, *, weights: str, input_size: int) -> nn.Module:
        if weights == "none":
            return get_model(variant, weights=None)
        enum = get_model_weights(variant)[weights]
        try:
            return get_model(variant, weights=enum)
        except (OSError, RuntimeError) as exc:  # URLError is an OSError; hub errors are Runtime
            hub = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
            raise WeightsError(
                f"Could not obtain torchvision weights {variant}/{enum.name} ({exc}). "
                f"Without network access, save them on a machine that has it with "
                f"`torch.save(torchvision.models.{variant}(weights='{enum.name}').state_dict(), "
                f"'{variant}.pth')` and pass --weights {variant}.pth, or copy the file "
                f"{enum.url} to {hub}."
            ) from exc


class VitFamily(TorchvisionFamily):
    """ViT: blocks are encoder layers; other input sizes interpolate the position embeddings."""

    def input_multiple(self, variant: str) -> int:
        return int(variant.rsplit("_", 1)[1])  # the patch size: vit_b_16 → 16

    def adapt_input_size(self, model: nn.Module, variant: str, input_size: int) -> nn.Module:
        assert isinstance(model, VisionTransformer)
        if model.image_size == input_size:
            return model
        first = model.encoder.layers[0]
        resized = VisionTransformer(
            image_size=input_size,
            patch_size=model.patch_size,
            num_layers=len(model.encoder.layers),
            num_heads=first.num_heads,
            hidden_dim=model.hidden_dim,
            mlp_dim=model.mlp_dim,
            dropout=model.dropout,
            attention_dropout=model.attention_dropout,
            num_classes=model.num_classes,
            representation_size=model.representation_size,
        )
        state = interpolate_embeddings(input_size, model.patch_size, model.state_dict())
        resized.load_state_dict(state)
        return resized


_RESNET_FORWARD = (
    "conv1", "bn1", "relu", "maxpool", "layer1.*", "layer2.*", "layer3.*", "layer4.*",
    "avgpool", FLATTEN, "fc",
)  # fmt: skip
# ConvNeXt and Swin: stages (odd indices) expand into their blocks, downsamplings do not.
_STAGED_FEATURES = tuple(f"features.{i}.*" if i % 2 else f"features.{i}" for i in range(8))


def _resnet_like() -> BlockLayout:
    return BlockLayout(
        stem=r"^(conv1|bn1)\.",
        blocks=(r"^layer(\d+)\.(\d+)\.",),
        head="fc",
        forward=_RESNET_FORWARD,
    )


def _features(
    neck: int,
    *,
    nested: bool,
    head: str = "classifier",
    extra_neck: str | None = None,
    superseded: tuple[str, ...] = (),
    forward: tuple[str, ...],
) -> BlockLayout:
    """``features[0]`` is the stem, ``features[neck]`` the final 1×1 conv, blocks in between."""
    block = r"^features\.(\d+)\.(\d+)\." if nested else r"^features\.(\d+)\."
    neck_re = rf"^features\.{neck}\." + (f"|{extra_neck}" if extra_neck else "")
    return BlockLayout(
        stem=r"^features\.0\.",
        blocks=(block,),
        neck=neck_re,
        head=head,
        superseded=superseded,
        forward=forward,
    )


def _staged(
    neck: str, head: str, forward: tuple[str, ...], no_weight_decay: str | None = None
) -> BlockLayout:
    """ConvNeXt and Swin: stages at odd ``features`` indices, downsampling layers at even ones."""
    return BlockLayout(
        stem=r"^features\.0\.",
        blocks=(r"^features\.([1357])\.(\d+)\.", r"^features\.([246])\."),
        neck=neck,
        head=head,
        no_weight_decay=no_weight_decay,
        forward=forward,
    )


_VIT = BlockLayout(
    stem=r"^(conv_proj\.|class_token$|encoder\.pos_embedding$)",
    blocks=(r"^encoder\.layers\.encoder_layer_(\d+)\.",),
    neck=r"^encoder\.ln\.",
    head="heads",
    no_weight_decay=r"(^class_token|pos_embedding)$",
)
# every Conv2dNormActivation and stage is a Sequential: conv/norm/act and MBConv blocks
_EFFNET = ("features.*.*", "avgpool", FLATTEN, "classifier")
_SWIN_NO_DECAY = r"(relative_position_bias_table|logit_scale)$"


def torchvision_families() -> list[BackboneFamily]:
    mobilenet_v3 = {"mobilenet_v3_small": 12, "mobilenet_v3_large": 16}
    return [
        TorchvisionFamily("resnet", {f"resnet{d}": _resnet_like() for d in (18, 34, 50, 101, 152)}),
        TorchvisionFamily(
            "resnext",
            {
                v: _resnet_like()
                for v in ("resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d")
            },
        ),
        TorchvisionFamily(
            "wide_resnet", {v: _resnet_like() for v in ("wide_resnet50_2", "wide_resnet101_2")}
        ),
        TorchvisionFamily(
            "mobilenet_v2",
            {
                "mobilenet_v2": _features(
                    18, nested=False, forward=("features.*", GLOBAL_POOL, FLATTEN, "classifier")
                )
            },
        ),
        TorchvisionFamily(
            "mobilenet_v3",
            {
                v: _features(
                    neck,
                    nested=False,
                    head="classifier.3",
                    extra_neck=r"^classifier\.0\.",
                    superseded=("classifier.2",),
                    forward=("features.*", "avgpool", FLATTEN, "classifier.*"),
                )
                for v, neck in mobilenet_v3.items()
            },
        ),
        TorchvisionFamily(
            "efficientnet",
            {f"efficientnet_b{i}": _features(8, nested=True, forward=_EFFNET) for i in range(8)},
        ),
        TorchvisionFamily(
            "efficientnet_v2",
            {
                "efficientnet_v2_s": _features(7, nested=True, forward=_EFFNET),
                "efficientnet_v2_m": _features(8, nested=True, forward=_EFFNET),
                "efficientnet_v2_l": _features(8, nested=True, forward=_EFFNET),
            },
        ),
        TorchvisionFamily(
            "convnext",
            {
                f"convnext_{s}": _staged(
                    neck=r"^classifier\.0\.",
                    head="classifier.2",
                    forward=(*_STAGED_FEATURES, "avgpool", "classifier.*"),
                )
                for s in ("tiny", "small", "base", "large")
            },
        ),
        TorchvisionFamily(
            "regnet",
            {
                f"regnet_{kind}_{size}": BlockLayout(
                    stem=r"^stem\.",
                    blocks=(r"^trunk_output\.block(\d+)\.block\d+-(\d+)\.",),
                    head="fc",
                    forward=("stem", "trunk_output.*.*", "avgpool", FLATTEN, "fc"),
                )
                for kind, sizes in {
                    "x": ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf"),
                    "y": ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf", "128gf"),
                }.items()
                for size in sizes
            },
        ),
        VitFamily(
            "vit", {v: _VIT for v in ("vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14")}
        ),
        TorchvisionFamily(
            "swin",
            {
                v: _staged(
                    neck=r"^norm\.",
                    head="head",
                    forward=(*_STAGED_FEATURES, "norm", "permute", "avgpool", "flatten", "head"),
                    no_weight_decay=_SWIN_NO_DECAY,
                )
                for v in ("swin_t", "swin_s", "swin_b", "swin_v2_t", "swin_v2_s", "swin_v2_b")
            },
        ),
    ]


__all__ = ["TorchvisionFamily", "VitFamily", "torchvision_families"]
