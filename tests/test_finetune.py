"""Parameter groups, schedules and regularizers on tiny real models (no training data needed)."""

from __future__ import annotations

import itertools

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from autotransfer.backbones import HEAD, Backbone, BlockLayout
from autotransfer.finetune import (
    L2SP,
    TrialConfig,
    describe_groups,
    make_optimizer,
    make_scheduler,
    param_groups,
    warmup_cosine,
)


def tiny(blocks: int = 4) -> Backbone:
    net = nn.Sequential()
    net.add_module("stem", nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)))
    for i in range(1, blocks):
        net.add_module(f"b{i}", nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)))
    net.add_module("pool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    net.add_module("fc", nn.Linear(4, 3))
    layout = BlockLayout(stem=r"^stem\.", blocks=(r"^b(\d+)\.",), head="fc")
    return Backbone(net, name="tiny", layout=layout)


@pytest.mark.parametrize("k", [0, 1, 2, 4])
def test_layer_wise_lr_formula_and_no_decay_on_norms_and_biases(k: int) -> None:
    bb = tiny(4)
    bb.set_freeze_depth(k)
    groups = param_groups(bb, base_lr=0.2, layer_decay=0.5, head_lr_mult=3.0, weight_decay=0.01)
    by_name = {g["name"]: g for g in groups}
    assert by_name["head.decay"]["lr"] == pytest.approx(0.6)
    assert by_name["head.no_decay"]["param_names"] == ["fc.bias"]
    trained_blocks = {g["block"] for g in groups} - {HEAD}
    assert trained_blocks == set(range(4 - k, 4))
    for g in groups:
        if g["block"] != HEAD:
            assert g["lr"] == pytest.approx(0.2 * 0.5 ** (3 - g["block"]))
        for name, p in zip(g["param_names"], g["params"], strict=True):
            assert g["weight_decay"] == (0.01 if p.ndim > 1 else 0.0), name
    assert groups[0]["block"] == HEAD, "head first, then top-down"
    assert [g["block"] for g in groups[2:]] == sorted(
        (g["block"] for g in groups[2:]), reverse=True
    )
    assert sum(d["params"] for d in describe_groups(groups)) == bb.trainable_parameter_count()


def test_l2sp_moves_decay_from_pretrained_weights_to_the_penalty() -> None:
    bb = tiny(3)
    bb.set_freeze_depth(2)
    groups = param_groups(bb, base_lr=0.1, weight_decay=0.05, l2sp=True)
    for g in groups:
        assert g["weight_decay"] == (0.05 if g["name"] == "head.decay" else 0.0)
    reg = L2SP(bb, alpha=2.0)
    assert reg.penalty() is not None and float(reg.penalty().detach()) == 0.0  # type: ignore[arg-type]
    with torch.no_grad():
        bb.model.b2[0].weight.add_(1.0)  # a trainable pretrained weight
        bb.model.fc.weight.add_(5.0)  # the head is not tracked
    n = bb.model.b2[0].weight.numel()
    assert float(reg.penalty().detach()) == pytest.approx(0.5 * 2.0 * n)  # type: ignore[arg-type]
    assert reg.distance() == pytest.approx(n**0.5)


def test_l2sp_pulls_weights_back_during_training() -> None:
    torch.manual_seed(0)
    distances = {}
    for alpha in (0.0, 10.0):
        bb = tiny(3)
        bb.set_freeze_depth(3)
        reg = L2SP(bb, alpha=alpha)
        opt = make_optimizer(param_groups(bb, base_lr=0.05), TrialConfig(backbone="resnet18"))
        gen = torch.Generator().manual_seed(1)
        for _ in range(30):
            x = torch.randn(8, 3, 6, 6, generator=gen)
            y = torch.randint(0, 3, (8,), generator=gen)
            loss = nn.functional.cross_entropy(bb(x), y)
            penalty = reg.penalty()
            opt.zero_grad()
            (loss + penalty if penalty is not None else loss).backward()
            opt.step()
        distances[alpha] = reg.distance()
    assert distances[10.0] < 0.5 * distances[0.0]


def test_warmup_then_cosine() -> None:
    factors = [warmup_cosine(s, 100, 10) for s in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[10:]))
    assert factors[100] == pytest.approx(0.0)
    assert warmup_cosine(0, 10, 0) == pytest.approx(1.0)


def test_scheduler_keeps_layer_wise_ratios() -> None:
    bb = tiny(4)
    bb.set_freeze_depth(4)
    groups = param_groups(bb, base_lr=0.1, layer_decay=0.5, head_lr_mult=4.0)
    opt = make_optimizer(groups, TrialConfig(backbone="resnet18", weight_decay=0.01))
    sched = make_scheduler(opt, total_steps=20, warmup_steps=5)
    initial = [g["initial_lr"] for g in opt.param_groups]
    assert initial[:2] == [pytest.approx(0.4)] * 2  # head: 0.1 × 4
    for _ in range(7):
        opt.step()
        sched.step()
    factor = opt.param_groups[0]["lr"] / initial[0]
    assert 0 < factor < 1
    for g, lr0 in zip(opt.param_groups, initial, strict=True):
        assert g["lr"] == pytest.approx(lr0 * factor)


def test_adamw_and_sgd_nesterov() -> None:
    bb = tiny(2)
    bb.set_freeze_depth(1)
    groups = param_groups(bb, base_lr=0.1)
    sgd = make_optimizer(groups, TrialConfig(backbone="resnet18", optimizer="sgd"))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"]
    groups = param_groups(bb, base_lr=0.1)
    adamw = make_optimizer(groups, TrialConfig(backbone="resnet18", optimizer="adamw"))
    assert isinstance(adamw, torch.optim.AdamW)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"epochs": 3, "lp_ft_epochs": 3, "freeze_depth": 2}, "lp_ft_epochs must be smaller"),
        ({"lp_ft_epochs": 1, "freeze_depth": 0}, "needs freeze_depth > 0"),
        ({"epochs": 2, "warmup_epochs": 3}, "warmup_epochs must not exceed"),
        ({"base_lr": -1.0}, "base_lr"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"learning_rate": 0.1}, "learning_rate"),
    ],
)
def test_invalid_trial_configs_name_the_field(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TrialConfig(**fields)  # type: ignore[arg-type]
