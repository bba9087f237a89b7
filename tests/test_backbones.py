"""The backbone registry on real architectures (random init, small inputs, no downloads)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from autotransfer.backbones import (
    HEAD,
    Backbone,
    create_backbone,
    families,
    get_family,
    list_backbones,
    num_blocks,
)
from autotransfer.errors import ConfigError, UnknownBackboneError
from autotransfer.finetune import make_optimizer, param_groups
from autotransfer.finetune._config import TrialConfig

# One representative per family, with its block count derived by hand from the architecture:
# stem + residual/MBConv/encoder blocks (+ downsampling layers for ConvNeXt and Swin); the
# final 1×1 conv / norm joins the top block.
REPRESENTATIVES = {
    "resnet": ("resnet18", 1 + 2 + 2 + 2 + 2, 32),
    "resnext": ("resnext50_32x4d", 1 + 3 + 4 + 6 + 3, 32),
    "wide_resnet": ("wide_resnet50_2", 1 + 3 + 4 + 6 + 3, 32),
    "mobilenet_v2": ("mobilenet_v2", 1 + 17, 32),
    "mobilenet_v3": ("mobilenet_v3_small", 1 + 11, 32),
    "efficientnet": ("efficientnet_b0", 1 + 1 + 2 + 2 + 3 + 3 + 4 + 1, 32),
    "efficientnet_v2": ("efficientnet_v2_s", 1 + 2 + 4 + 4 + 6 + 9 + 15, 32),
    "convnext": ("convnext_tiny", 1 + 3 + 1 + 3 + 1 + 9 + 1 + 3, 32),
    "regnet": ("regnet_y_400mf", 1 + 1 + 3 + 6 + 6, 32),
    "vit": ("vit_b_16", 1 + 12, 32),
    "swin": ("swin_t", 1 + 2 + 1 + 2 + 1 + 6 + 1 + 2, 32),
    "efficientnet_lite": ("efficientnet_lite0", 1 + 16, 32),
}


def test_every_family_has_a_representative() -> None:
    assert {f.name for f in families()} == set(REPRESENTATIVES)


@pytest.fixture(scope="module", params=sorted(REPRESENTATIVES))
def built(request: pytest.FixtureRequest) -> tuple[Backbone, int, int]:
    name, expected_blocks, size = REPRESENTATIVES[request.param]
    torch.manual_seed(0)
    backbone = create_backbone(name, num_classes=5, weights="none", input_size=size, dropout=0.1)
    return backbone, expected_blocks, size


def test_block_count(built: tuple[Backbone, int, int]) -> None:
    backbone, expected, _ = built
    assert backbone.num_blocks == expected
    assert num_blocks(backbone.name) == expected


def test_blocks_follow_network_order_and_head_is_new(built: tuple[Backbone, int, int]) -> None:
    backbone, _, _ = built
    order = [backbone.block_of[n] for n, _ in backbone.model.named_parameters()]
    body = [b for b in order if b != HEAD]
    assert body[0] == 0 and body == sorted(body), "blocks must run stem → top in module order"
    assert set(body) == set(range(backbone.num_blocks)), "every block owns parameters"
    head = [n for n, _ in backbone.block_parameters(HEAD)]
    head_shapes = sorted(tuple(p.shape) for _, p in backbone.block_parameters(HEAD))
    assert len(head) == 2 and head_shapes[0] == (5,), f"head must be only the new linear: {head}"


def test_trainable_parameters_are_exactly_top_k_blocks_plus_head(
    built: tuple[Backbone, int, int],
) -> None:
    backbone, _, _ = built
    n = backbone.num_blocks
    for k in range(n + 1):
        backbone.set_freeze_depth(k)
        trainable = {name for name, p in backbone.model.named_parameters() if p.requires_grad}
        expected = {
            name for name, block in backbone.block_of.items() if block == HEAD or block >= n - k
        }
        assert trainable == expected, f"k={k}"
        groups = param_groups(backbone, base_lr=0.1, layer_decay=0.5, head_lr_mult=10.0)
        optimizer = make_optimizer(groups, TrialConfig(backbone=backbone.name))
        held = {id(p) for g in optimizer.param_groups for p in g["params"]}
        frozen = {id(p) for p in backbone.parameters() if not p.requires_grad}
        assert not held & frozen, f"k={k}: the optimizer holds frozen parameters"
        assert len(held) == sum(1 for p in backbone.parameters() if p.requires_grad)
        for g in optimizer.param_groups:
            if g["block"] == HEAD:
                assert g["lr"] == pytest.approx(0.1 * 10.0)
            else:
                assert g["lr"] == pytest.approx(0.1 * 0.5 ** (n - 1 - g["block"]))
            for pname, p in zip(g["param_names"], g["params"], strict=True):
                decays = p.ndim > 1 and not backbone.layout.is_no_weight_decay(pname)
                assert (g["weight_decay"] > 0) == decays or g["weight_decay"] == 0


def _norm_stats(backbone: Backbone) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    return {
        name: (m.running_mean.clone(), m.running_var.clone())
        for name, m in backbone.model.named_modules()
        if isinstance(m, _BatchNorm) and m.running_mean is not None
    }


def test_training_step_keeps_frozen_blocks_and_their_batchnorm_statistics(
    built: tuple[Backbone, int, int],
) -> None:
    backbone, _, size = built
    n = backbone.num_blocks
    for k in sorted({0, n // 2, n - 1}):
        backbone.set_freeze_depth(k)
        backbone.train()
        before_params = {name: p.detach().clone() for name, p in backbone.model.named_parameters()}
        before_stats = _norm_stats(backbone)
        groups = param_groups(backbone, base_lr=0.05)
        optimizer = make_optimizer(groups, TrialConfig(backbone=backbone.name))
        x = torch.randn(4, 3, size, size)
        y = torch.tensor([0, 1, 2, 3])
        loss = torch.nn.functional.cross_entropy(backbone(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = n - k
        after_stats = _norm_stats(backbone)
        frozen_norms = set(backbone.frozen_norm_names())
        for name, (mean, var) in before_stats.items():
            block = backbone._norm_block[name]
            if block < first:
                assert name in frozen_norms
                assert torch.equal(mean, after_stats[name][0]), f"k={k}: {name} mean moved"
                assert torch.equal(var, after_stats[name][1]), f"k={k}: {name} var moved"
        changed_trainable = False
        for name, p in backbone.model.named_parameters():
            block = backbone.block_of[name]
            if block != HEAD and block < first:
                assert torch.equal(before_params[name], p.detach()), f"k={k}: {name} moved"
            elif not torch.equal(before_params[name], p.detach()):
                changed_trainable = True
        assert changed_trainable, f"k={k}: no trainable parameter moved"


def test_freeze_bn_stats_in_trainable_blocks() -> None:
    backbone = create_backbone("resnet18", num_classes=3, weights="none", input_size=32)
    backbone.set_freeze_depth(backbone.num_blocks, freeze_bn_stats=True)
    backbone.train()
    before = _norm_stats(backbone)
    backbone(torch.randn(4, 3, 32, 32))
    after = _norm_stats(backbone)
    assert all(torch.equal(before[n][0], after[n][0]) for n in before)
    assert backbone.model.layer4[1].bn2.weight.requires_grad  # affine still trains


@pytest.mark.parametrize("name", list_backbones())
def test_every_variant_splits_into_blocks(name: str) -> None:
    """All registered names, built without allocating weights where the builder allows it."""
    n = num_blocks(name)
    family = get_family(name)
    assert n >= 9, f"{name}: {n} blocks is too coarse to choose a depth"
    assert family.layout(name).head


def test_unknown_backbone_lists_close_names() -> None:
    with pytest.raises(UnknownBackboneError, match="resnet18") as info:
        create_backbone("resnet-18", num_classes=3, weights="none")
    assert "autotransfer backbones" in str(info.value)


def test_freeze_depth_out_of_range_states_the_valid_range() -> None:
    backbone = create_backbone("efficientnet_lite0", num_classes=3, weights="none", input_size=32)
    for bad in (-1, 18, 100):
        with pytest.raises(ConfigError, match=r"0\.\.17 for efficientnet_lite0.*k=" + str(bad)):
            backbone.set_freeze_depth(bad)


def test_input_size_must_fit_the_patch_size() -> None:
    with pytest.raises(ConfigError, match="multiple of 16"):
        create_backbone("vit_b_16", num_classes=3, weights="none", input_size=40)
    with pytest.raises(ConfigError, match="at least 32"):
        create_backbone("resnet18", num_classes=3, weights="none", input_size=16)


def test_vit_position_embeddings_follow_the_input_size() -> None:
    backbone = create_backbone("vit_b_16", num_classes=3, weights="none", input_size=64)
    assert backbone.model.encoder.pos_embedding.shape[1] == 1 + (64 // 16) ** 2
    assert backbone(torch.randn(2, 3, 64, 64)).shape == (2, 3)


def test_new_head_has_dropout_and_superseded_dropouts_are_gone() -> None:
    backbone = create_backbone(
        "mobilenet_v3_small", num_classes=4, weights="none", input_size=32, dropout=0.3
    )
    dropouts = [m.p for m in backbone.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts == [0.3]
    assert math.isclose(backbone.model.classifier[3][0].p, 0.3)
