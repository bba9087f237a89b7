"""Loading a user's state-dict file safely and explaining every mismatch by name."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from autotransfer.errors import WeightsError

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
_PREFIXES = ("module.", "model.")


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:  # common checkpoint layouts: {"state_dict": {...}, "epoch": 3}
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise WeightsError(
            f"{path} does not hold a state dict (a mapping of parameter names to tensors). "
            f"Save one with `torch.save(model.state_dict(), '{path.name}')`."
        )
    state = dict(obj)
    for prefix in _PREFIXES:  # DataParallel / wrapper modules prefix every key
        if state and all(k.startswith(prefix) for k in state):
            state = {k.removeprefix(prefix): v for k, v in state.items()}
    return state


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict with ``weights_only=True``: a user's file is never unpickled freely."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"Weights file not found: {path}. Pass an existing .pth/.pt state-dict file, "
            f"'DEFAULT' for the pretrained weights, or 'none' for random init."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise WeightsError(
            f"Cannot read {path} as a weights-only state dict ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). Arbitrary pickles are refused; "
            f"save the weights with `torch.save(model.state_dict(), '{path.name}')`."
        ) from exc
    return _unwrap(obj, path)


def _names(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" … and {len(keys) - limit} more" if len(keys) > limit else "")


def load_state_dict_file(model: nn.Module, path: str | Path, *, variant: str, head: str) -> None:
    """Load ``path`` into ``model``; the original classifier ``head`` may be absent or differ.

    Every other missing, unexpected or wrongly shaped key is an error that names the keys,
    since silently keeping random weights in a "pretrained" backbone wastes a whole search.
    """
    path = Path(path)
    state = read_state_dict(path)
    expected = model.state_dict()
    in_head = lambda k: k == head or k.startswith(head + ".")  # noqa: E731
    ignorable = lambda k: in_head(k) or k.endswith("num_batches_tracked")  # noqa: E731
    missing = [k for k in expected if k not in state and not ignorable(k)]
    unexpected = [k for k in state if k not in expected and not ignorable(k)]
    shapes = [
        f"{k} {tuple(state[k].shape)} ≠ {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and not in_head(k) and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_names(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches (file ≠ model): {_names(shapes)}")
    if problems:
        raise WeightsError(
            f"{path} does not fit {variant}: " + "; ".join(problems) + ". Check that the file "
            f"was saved from {variant} (torch.save(model.state_dict(), ...)), not another "
            f"architecture or a wrapper with renamed modules."
        )
    loadable = {k: v for k, v in state.items() if k in expected and expected[k].shape == v.shape}
    model.load_state_dict(loadable, strict=False)
