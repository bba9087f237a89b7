"""Resizing uint8 images, and the batched float transform that feeds a backbone."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.transforms.v2 import functional as TF

from autotransfer.data._errors import DatasetError

# Bounds the float scratch memory of antialiased resizing of a whole split.
_RESIZE_CHUNK_PIXELS = 1 << 26


def resize_uint8(images: Tensor, size: int) -> Tensor:
    """Resize uint8 ``[C, H, W]`` or ``[N, C, H, W]`` to ``size × size`` (bilinear, antialiased).

    A batch is processed in chunks so that a large split never needs one huge intermediate;
    images already at the target size are returned as they are.
    """
    if size < 1:
        raise DatasetError(f"input_size must be a positive number of pixels, got {size}.")
    if images.shape[-2:] == (size, size):
        return images
    if images.ndim == 3:
        return TF.resize(images, [size, size], antialias=True)
    per_image = max(1, images[0].numel() + images.shape[1] * size * size) if len(images) else 1
    chunk = max(1, _RESIZE_CHUNK_PIXELS // per_image)
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=images.dtype)
    for start in range(0, images.shape[0], chunk):
        out[start : start + chunk] = TF.resize(
            images[start : start + chunk], [size, size], antialias=True
        )
    return out


def _per_channel(values: Sequence[float], name: str) -> Tensor:
    tensor = torch.as_tensor([float(v) for v in values], dtype=torch.float32)
    if tensor.numel() == 1:
        tensor = tensor.repeat(3)
    if tensor.numel() != 3:
        raise ValueError(f"{name} needs 1 or 3 values (one per RGB channel), got {list(values)}.")
    return tensor.view(1, 3, 1, 1)


class BatchTransform(nn.Module):
    """uint8 image batches → normalised float32 ``[B, 3, S, S]`` for a backbone.

    Steps, all on the batch's device: scale to [0, 1]; repeat grayscale to 3 channels
    (ImageNet backbones expect RGB); when ``augment`` and ``train`` are both true, a random
    translation per sample (reflection-pad by ``crop_padding × S`` and crop back to ``S``)
    and, if ``hflip``, a random horizontal flip per sample; then ``(x - mean) / std``.
    The evaluation path (``train=False``) never augments, so it is deterministic.

    Randomness comes only from ``generator`` (default RNG when ``None``), so the same
    generator state gives the same augmented batch.

    >>> t = BatchTransform([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    >>> t(torch.full((2, 1, 4, 4), 255, dtype=torch.uint8), train=False).shape
    torch.Size([2, 3, 4, 4])
    """

    mean: Tensor
    std: Tensor

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        augment: bool = False,
        hflip: bool = True,
        crop_padding: float = 0.125,
    ) -> None:
        super().__init__()
        std_tensor = _per_channel(std, "std")
        if bool((std_tensor <= 0).any()):
            raise ValueError(f"std must be positive in every channel, got {list(std)}.")
        if not 0.0 <= crop_padding < 1.0:
            raise ValueError(
                f"crop_padding is a fraction of the image side in [0, 1), got {crop_padding}."
            )
        self.register_buffer("mean", _per_channel(mean, "mean"), persistent=False)
        self.register_buffer("std", std_tensor, persistent=False)
        self.augment = augment
        self.hflip = hflip
        self.crop_padding = crop_padding

    def forward(
        self, x: Tensor, *, train: bool, generator: torch.Generator | None = None
    ) -> Tensor:
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(
                f"BatchTransform takes uint8 batches [B, 1 or 3, H, W], got {x.dtype} "
                f"{tuple(x.shape)}; pass the batches make_loaders yields."
            )
        out = x.to(torch.float32).div_(255.0)
        if out.shape[1] == 1:
            out = out.expand(-1, 3, -1, -1)
        if self.augment and train:
            out = self._translate_and_flip(out, generator)
        mean = self.mean.to(out.device)
        std = self.std.to(out.device)
        return (out - mean) / std

    def _translate_and_flip(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        batch, channels, height, width = x.shape
        # Reflection padding must stay smaller than the side it reflects.
        pad = min(round(self.crop_padding * min(height, width)), height - 1, width - 1)
        draw_device = generator.device if generator is not None else x.device
        dy = torch.randint(0, 2 * pad + 1, (batch,), generator=generator, device=draw_device)
        dx = torch.randint(0, 2 * pad + 1, (batch,), generator=generator, device=draw_device)
        if self.hflip:
            flip = torch.rand(batch, generator=generator, device=draw_device) < 0.5
        else:
            flip = torch.zeros(batch, dtype=torch.bool, device=draw_device)
        dy, dx, flip = dy.to(x.device), dx.to(x.device), flip.to(x.device)
        if pad > 0:
            x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        # One gather per axis crops every sample at its own offset; a flip is the same
        # crop with the column indices read backwards.
        rows = dy[:, None] + torch.arange(height, device=x.device)
        cols_fwd = torch.arange(width, device=x.device)
        cols = dx[:, None] + torch.where(flip[:, None], cols_fwd.flip(0), cols_fwd)
        x = x.gather(2, rows[:, None, :, None].expand(batch, channels, height, x.shape[3]))
        return x.gather(3, cols[:, None, None, :].expand(batch, channels, height, width))
