"""One trial's configuration: every knob of a fine-tuning run, validated at the boundary."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autotransfer.finetune._imbalance import Weighting
from autotransfer.finetune._metrics import Metric


class TrialConfig(BaseModel):
    """What one fine-tuning trial trains: backbone, depth, optimisation and regularisation.

    Learning rates: block ``i`` counted from the top (0 = top block) trains at
    ``base_lr * layer_decay**i``; the head at ``base_lr * head_lr_mult``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backbone: str = Field("efficientnet_lite0", description="registered name")
    weights: str = Field(
        "DEFAULT", description="DEFAULT, none, a torchvision weight name, or a state-dict file"
    )
    freeze_depth: int = Field(0, ge=0, description="top k blocks trainable; 0 = head only")
    freeze_bn_stats: bool = Field(False, description="also fix BatchNorm stats in trained blocks")
    bn_momentum: float | None = Field(
        0.1, gt=0, le=1, description="BatchNorm running-stat momentum; None keeps the model's"
    )
    base_lr: float = Field(0.01, gt=0, le=10, description="base learning rate (top block)")
    layer_decay: float = Field(1.0, gt=0, le=1, description="LR factor per block downwards")
    head_lr_mult: float = Field(
        1.0, gt=0, le=1000, description="the head's LR as a multiple of the base LR"
    )
    optimizer: Literal["sgd", "adamw"] = Field("sgd", description="sgd (with momentum) or adamw")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    nesterov: bool = Field(True, description="SGD with Nesterov momentum (when momentum > 0)")
    weight_decay: float = Field(1e-4, ge=0, le=1, description="weight decay")
    epochs: int = Field(6, ge=1, le=1000, description="training epochs")
    warmup_epochs: float = Field(0.0, ge=0, description="linear LR warmup, in epochs")
    batch_size: int = Field(64, ge=1, le=65536, description="images per step")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout before the head")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="cross-entropy label smoothing")
    l2sp: float = Field(0.0, ge=0, description="L2-SP strength: pull towards pretrained weights")
    lp_ft_epochs: int = Field(0, ge=0, description="first epochs train the head only (LP-FT)")
    warm_start: bool = Field(
        False,
        description="start the head from a linear probe on the frozen top features (fitted "
        "once, shared by every trial on the same data) instead of random weights",
    )
    class_weighting: Weighting = Field(
        "none",
        description="weight the loss by class: inverse (every class counts equally), "
        "sqrt_inverse (halfway), none",
    )
    balanced_sampler: bool = Field(
        False, description="draw training images so that every class is seen equally often"
    )
    metric: Metric = Field(
        "accuracy", description="the validation metric that picks the best epoch"
    )
    augment: bool = Field(False, description="random shifts and flips of training images")
    input_size: int = Field(
        224, ge=8, le=4096, description="images are resized to this square side"
    )
    seed: int = Field(0, description="random seed: head initialisation, batch order, augmentation")
    device: str = Field("auto", description="auto, cpu, cuda[:N] or mps")
    amp: bool = Field(True, description="mixed precision on a GPU")
    num_workers: int = Field(0, ge=0, le=64, description="DataLoader worker processes")

    @model_validator(mode="after")
    def _consistent(self) -> TrialConfig:
        if self.warmup_epochs > self.epochs:
            raise ValueError(
                f"warmup_epochs must not exceed epochs ({self.epochs}), but got "
                f"warmup_epochs={self.warmup_epochs}."
            )
        if self.lp_ft_epochs and self.lp_ft_epochs >= self.epochs:
            raise ValueError(
                f"lp_ft_epochs must be smaller than epochs ({self.epochs}) so fine-tuning "
                f"gets at least one epoch, but got lp_ft_epochs={self.lp_ft_epochs}."
            )
        if self.lp_ft_epochs and self.freeze_depth == 0:
            raise ValueError(
                "lp_ft_epochs > 0 needs freeze_depth > 0: with freeze_depth=0 the whole run is "
                "already a linear probe. Set lp_ft_epochs=0 or a positive freeze_depth."
            )
        return self
