"""What a backbone costs to run once trained: parameters, multiply-adds, latency per image."""

from __future__ import annotations

import functools
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from autotransfer.backbones._backbone import Backbone

_LATENCY_RUNS = 5
_lock = threading.Lock()


@dataclass(frozen=True)
class InferenceCost:
    """One image through the whole network (eval mode, batch 1) on ``device``.

    ``macs`` is torch's FLOP counter's count halved (a multiply-add is two FLOPs);
    ``latency_ms`` the median of a few timed forward passes after a warm-up one.
    """

    parameters: int
    macs: int
    latency_ms: float
    input_size: int
    device: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"{self.parameters / 1e6:.1f} M parameters, {self.macs / 1e6:.0f} M MACs, "
            f"{self.latency_ms:.1f} ms an image on {self.device}"
        )


def measure_inference(backbone: Backbone, input_size: int, device: torch.device) -> InferenceCost:
    """Count and time ``backbone`` (restored to its mode afterwards; no RNG is touched)."""
    was_training = backbone.training
    backbone.eval()
    x = torch.zeros(1, 3, input_size, input_size, device=device)
    try:
        with _lock, torch.no_grad(), torch.random.fork_rng(devices=[]):
            counter = FlopCounterMode(display=False)
            with counter:
                backbone(x)
            backbone(x)  # warm-up
            times = []
            for _ in range(_LATENCY_RUNS):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                backbone(x)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                times.append(time.perf_counter() - start)
    finally:
        backbone.train(was_training)
    return InferenceCost(
        parameters=sum(p.numel() for p in backbone.parameters()),
        macs=int(counter.get_total_flops()) // 2,
        latency_ms=round(1000 * statistics.median(times), 3),
        input_size=input_size,
        device=str(device),
    )


@functools.lru_cache(maxsize=16)
def inference_cost(name: str, num_classes: int, input_size: int, device: str) -> InferenceCost:
    """:func:`measure_inference` of ``name`` with a ``num_classes`` head, once per process and
    arguments: every trial of one backbone and input size costs the same to run, whatever its
    weights (it is built without loading any)."""
    from autotransfer.backbones._registry import create_backbone

    net = create_backbone(name, num_classes=num_classes, weights="none", input_size=input_size)
    target = torch.device(device)
    return measure_inference(net.to(target), input_size, target)
