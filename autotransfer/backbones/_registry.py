"""The registry of backbone families and the one function that builds a ready backbone."""

from __future__ import annotations

import difflib
import functools
import math
from pathlib import Path

import torch
from torch import nn

from autotransfer.backbones._backbone import Backbone
from autotransfer.backbones._family import BackboneFamily
from autotransfer.backbones._layout import BlockLayout
from autotransfer.backbones._lite import EfficientNetLiteFamily
from autotransfer.backbones._state_dict import load_state_dict_file
from autotransfer.backbones._torchvision import torchvision_families
from autotransfer.errors import ConfigError, UnknownBackboneError, WeightsError

_FAMILIES: dict[str, BackboneFamily] = {}
_BY_VARIANT: dict[str, BackboneFamily] = {}
_NO_WEIGHTS = {"none", "random", "scratch"}
_FILE_SUFFIXES = {".pth", ".pt", ".bin", ".ckpt"}


def register_family(family: BackboneFamily) -> None:
    """Add a family; its variant names must not collide with registered ones."""
    clash = [v for v in family.variants if v in _BY_VARIANT]
    if clash:
        raise ValueError(f"Backbone names already registered: {clash}; choose other names.")
    _FAMILIES[family.name] = family
    for variant in family.variants:
        _BY_VARIANT[variant] = family


def families() -> list[BackboneFamily]:
    return list(_FAMILIES.values())


def list_backbones() -> list[str]:
    """Every registered backbone name, sorted."""
    return sorted(_BY_VARIANT)


def get_family(name: str) -> BackboneFamily:
    try:
        return _BY_VARIANT[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_BY_VARIANT), n=5, cutoff=0.5)
        hint = f"Did you mean {', '.join(close)}? " if close else ""
        raise UnknownBackboneError(
            f"Unknown backbone {name!r}. {hint}Run `autotransfer backbones` to list all "
            f"{len(_BY_VARIANT)} names."
        ) from None


def resolve_weights(name: str, weights: str | Path) -> str | Path:
    """``"none"``, a weight name the family knows, or a local state-dict file."""
    family = get_family(name)
    if isinstance(weights, Path):
        return weights
    if weights.lower() in _NO_WEIGHTS:
        return "none"
    known = family.weight_names(name)
    by_lower = {w.lower(): w for w in known}
    if weights.lower() in {"default", "pretrained"}:
        return known[0]
    if weights.lower() in by_lower:
        return by_lower[weights.lower()]
    path = Path(weights).expanduser()
    if path.suffix in _FILE_SUFFIXES or path.exists() or "/" in weights:
        return path
    raise WeightsError(
        f"Unknown weights {weights!r} for {name}: use one of {', '.join(known)}, 'none' for "
        f"random init, or the path of a local state-dict file (.pth)."
    )


def check_input_size(name: str, input_size: int) -> None:
    family = get_family(name)
    multiple = family.input_multiple(name)
    if input_size < family.min_input_size or input_size % multiple:
        rule = f" and a multiple of {multiple}" if multiple > 1 else ""
        raise ConfigError(
            f"input size must be at least {family.min_input_size}{rule} for {name}, but got "
            f"{input_size=}."
        )


def _find_linear(module: nn.Module, path: str) -> nn.Linear:
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"Head module {path!r} contains no nn.Linear; fix the family's layout.")
    return linears[-1]


def new_head(in_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    """Dropout then a linear classifier, small random init so early logits are near uniform."""
    linear = nn.Linear(in_features, num_classes)
    nn.init.normal_(linear.weight, std=0.01)
    nn.init.zeros_(linear.bias)
    return nn.Sequential(nn.Dropout(dropout), linear)


def _replace_head(model: nn.Module, layout: BlockLayout, num_classes: int, dropout: float) -> None:
    old = model.get_submodule(layout.head)
    model.set_submodule(
        layout.head, new_head(_find_linear(old, layout.head).in_features, num_classes, dropout)
    )
    for path in layout.superseded:
        model.set_submodule(path, nn.Identity())


def create_backbone(
    name: str,
    *,
    num_classes: int,
    weights: str | Path = "DEFAULT",
    dropout: float = 0.0,
    input_size: int = 224,
) -> Backbone:
    """Build ``name`` with ``weights``, a new ``num_classes`` head, ready to freeze and train.

    ``weights``: ``"DEFAULT"`` (the family's best pretrained weights), a weight name such
    as ``"IMAGENET1K_V1"``, ``"none"``, or a local state-dict file. Weights are loaded into
    the original architecture first, so a file saved from a torchvision model fits as is.
    """
    if num_classes < 2:
        raise ConfigError(f"num_classes must be at least 2, but got {num_classes=}.")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), but got {dropout=}.")
    family = get_family(name)
    check_input_size(name, input_size)
    layout = family.layout(name)
    resolved = resolve_weights(name, weights)
    if isinstance(resolved, Path):
        model = family.build(name, weights="none", input_size=input_size)
        load_state_dict_file(model, resolved, variant=name, head=layout.head)
        tag = str(resolved)
    else:
        model = family.build(name, weights=resolved, input_size=input_size)
        tag = resolved
    model = family.adapt_input_size(model, name, input_size)
    _replace_head(model, layout, num_classes, dropout)
    return Backbone(
        model,
        name=name,
        layout=layout,
        mean=family.mean,
        std=family.std,
        weights=tag,
        steps=family.forward_steps(model, name),
    )


@functools.cache
def num_blocks(name: str) -> int:
    """Block count of ``name`` without allocating its weights where the builder allows it."""
    family = get_family(name)
    size = max(224, family.min_input_size)
    size -= size % family.input_multiple(name)
    try:
        with torch.device("meta"):
            model = family.build(name, weights="none", input_size=size)
    except (NotImplementedError, RuntimeError):  # builders that compute with tensors (RegNet)
        model = family.build(name, weights="none", input_size=size)
    return Backbone(model, name=name, layout=family.layout(name)).num_blocks


for _family in (*torchvision_families(), EfficientNetLiteFamily()):
    register_family(_family)


def native_input_size(name: str) -> int:
    """The input size ``name``'s pretrained weights were trained at (Lite2: 260)."""
    return get_family(name).native_input_size(name)


def suggest_input_size(name: str, native: tuple[int, int], *, cap: int | None = 224) -> int:
    """An input size for data of ``native`` (h, w): its larger side rounded up to a multiple of
    32 (and of the patch size), at least the family's minimum and at most ``cap`` (None: the
    backbone's own, :func:`native_input_size`).

    Upsampling 8×8 digits to 224×224 costs 49× the compute of 32×32 for no information.

    >>> suggest_input_size("resnet18", (8, 8)), suggest_input_size("resnet18", (500, 375))
    (32, 224)
    >>> suggest_input_size("efficientnet_lite2", (500, 375), cap=None)
    256
    """
    family = get_family(name)
    cap = family.native_input_size(name) if cap is None else cap
    step = math.lcm(32, family.input_multiple(name))
    side = max(native)
    size = max(family.min_input_size, step * math.ceil(side / step))
    capped = min(size, max(step, cap - cap % step))
    return max(capped, family.min_input_size)
