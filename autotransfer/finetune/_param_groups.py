"""Named parameter groups with layer-wise learning rates written into each group."""

from __future__ import annotations

from typing import Any

from autotransfer.backbones import HEAD, Backbone


def group_name(block: int, decay: bool) -> str:
    base = "head" if block == HEAD else f"block{block:02d}"
    return f"{base}.{'decay' if decay else 'no_decay'}"


def param_groups(
    backbone: Backbone,
    *,
    base_lr: float,
    layer_decay: float = 1.0,
    head_lr_mult: float = 1.0,
    weight_decay: float = 0.0,
    l2sp: bool = False,
) -> list[dict[str, Any]]:
    """One group per (block, decays-or-not) over the *trainable* parameters only.

    Block ``b`` of ``n`` sits ``n-1-b`` blocks below the top and gets
    ``lr = base_lr * layer_decay**(n-1-b)``; the head gets ``base_lr * head_lr_mult``.
    Norm weights, biases and the layout's ``no_weight_decay`` names (position embeddings,
    class tokens) get no weight decay. With ``l2sp`` the pretrained parameters get no plain
    weight decay either: L2-SP pulls them towards their starting values instead, and only
    the new head decays towards zero. Each group carries its ``name``, ``block``,
    ``param_names`` and final ``lr``, so ``optimizer.param_groups`` explains itself.
    """
    top = backbone.num_blocks - 1
    groups: dict[str, dict[str, Any]] = {}
    for name, param in backbone.trainable_parameters():
        block = backbone.block_of[name]
        lr = base_lr * (head_lr_mult if block == HEAD else layer_decay ** (top - block))
        decays = not (param.ndim <= 1 or backbone.layout.is_no_weight_decay(name))
        if l2sp and block != HEAD:
            decays = False
        key = group_name(block, decays)
        group = groups.setdefault(
            key,
            {
                "name": key,
                "block": block,
                "params": [],
                "param_names": [],
                "lr": lr,
                "weight_decay": weight_decay if decays else 0.0,
            },
        )
        group["params"].append(param)
        group["param_names"].append(name)
    # head first, then blocks from the top down: the order people read the LR table in
    return sorted(groups.values(), key=lambda g: (g["block"] != HEAD, -g["block"], g["name"]))


def describe_groups(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A printable summary: name, lr, weight decay and parameter count per group."""
    return [
        {
            "name": g["name"],
            "lr": g["lr"],
            "weight_decay": g["weight_decay"],
            "params": sum(p.numel() for p in g["params"]),
        }
        for g in groups
    ]
