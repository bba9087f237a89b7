"""Loading a user's state-dict file safely and explaining every mismatch by name."""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from autotransfer.errors import WeightsError

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
_PREFIXES = ("module.", "model.")
# torch names the first object it refused; only a dotted name is taken from its message
_REFUSED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([A-Za-z_][\w.]{0,200})")


def _printable(text: object) -> str:
    """``text`` with control characters (terminal escapes, newlines) written as escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _unreadable(path: Path, exc: BaseException) -> WeightsError:
    """Our own account of a failed weights-only load. torch's message is not passed on: it
    advises retrying with ``weights_only=False`` (which would run code from the file) and
    may carry terminal escape codes."""
    shown = _printable(path)
    save = (
        f"Save the weights alone, from the model that trained them: "
        f"`torch.save(model.state_dict(), '{_printable(path.name)}')`."
    )
    if isinstance(exc, pickle.UnpicklingError):
        found = _REFUSED_GLOBAL.search(str(exc))
        what = f" (such as {found.group(1)})" if found else ""
        return WeightsError(
            f"{shown} holds Python objects other than tensors{what}, which are not loaded: "
            f"unpickling them could run code from the file. {save}"
        )
    return WeightsError(
        f"{shown} is not a readable PyTorch weights file (it is empty, truncated, or in "
        f"another format: {type(exc).__name__}). {save}"
    )


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
            f"{_printable(path)} does not hold a state dict (a mapping of parameter names to "
            f"tensors). Save one with `torch.save(model.state_dict(), "
            f"'{_printable(path.name)}')`."
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
            f"Weights file not found: {_printable(path)}. Pass an existing .pth/.pt state-dict "
            f"file, 'DEFAULT' for the pretrained weights, or 'none' for random init."
        )
    try:
        with warnings.catch_warnings():
            # "Detected pickle protocol N …": torch's aside, answered by the error below
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise _unreadable(path, exc) from None
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
            f"{_printable(path)} does not fit {variant}: {'; '.join(problems)}. Check that the "
            f"file was saved from {variant} (torch.save(model.state_dict(), ...)), not another "
            f"architecture or a wrapper with renamed modules."
        )
    loadable = {k: v for k, v in state.items() if k in expected and expected[k].shape == v.shape}
    model.load_state_dict(loadable, strict=False)
