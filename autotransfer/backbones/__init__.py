"""Backbone families: ordered blocks, a new head, freeze depth and weights.

>>> from autotransfer.backbones import create_backbone
>>> bb = create_backbone("resnet18", num_classes=10, weights="none", input_size=32)
>>> bb.num_blocks
9
"""

from __future__ import annotations

from autotransfer.backbones._backbone import Backbone
from autotransfer.backbones._cost import InferenceCost, inference_cost, measure_inference
from autotransfer.backbones._depth import depth_of_fraction
from autotransfer.backbones._family import IMAGENET_MEAN, IMAGENET_STD, BackboneFamily
from autotransfer.backbones._layout import HEAD, BlockLayout
from autotransfer.backbones._lite import packaged_weights_path
from autotransfer.backbones._registry import (
    check_input_size,
    create_backbone,
    families,
    get_family,
    list_backbones,
    native_input_size,
    num_blocks,
    register_family,
    resolve_weights,
    suggest_input_size,
)
from autotransfer.backbones._split import FLATTEN, GLOBAL_POOL, ForwardPlan, PlanError, Steps
from autotransfer.backbones._state_dict import read_state_dict

__all__ = [
    "FLATTEN",
    "GLOBAL_POOL",
    "HEAD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Backbone",
    "BackboneFamily",
    "BlockLayout",
    "ForwardPlan",
    "InferenceCost",
    "PlanError",
    "Steps",
    "check_input_size",
    "create_backbone",
    "depth_of_fraction",
    "families",
    "get_family",
    "inference_cost",
    "list_backbones",
    "measure_inference",
    "native_input_size",
    "num_blocks",
    "packaged_weights_path",
    "read_state_dict",
    "register_family",
    "resolve_weights",
    "suggest_input_size",
]
