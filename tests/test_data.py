"""Dataset sources, profiling, splits and preprocessing on real (small) data; no downloads."""

from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys
import traceback
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.model_selection import train_test_split

from autotransfer.data import (
    FASHION_MNIST_CLASSES,
    BatchTransform,
    DatasetError,
    FileImages,
    SyntheticSpec,
    TensorImages,
    TransferDataset,
    generate_synthetic,
    load_dataset,
    make_loaders,
    read_idx,
    stratified_subset,
)
from autotransfer.data._fashion_mnist import DEBIAN_DIR, find_fashion_mnist
from autotransfer.errors import UserInputError

# --------------------------------------------------------------------------- helpers


def _write_image(path: Path, size: tuple[int, int] = (12, 10), mode: str = "RGB", seed: int = 0):
    """Write a real image file; ``size`` is (height, width)."""
    rng = np.random.default_rng(seed)
    h, w = size
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "L":
        img = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L")
    elif mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    else:
        rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
        img = rgb if mode == "RGB" else rgb.convert(mode)
    img.save(path)
    return path


def _flat_folder(root: Path, per_class: int = 5, classes: tuple[str, ...] = ("cat", "dog", "fox")):
    for k, name in enumerate(classes):
        for i in range(per_class):
            _write_image(root / name / f"{i:03d}.png", (10 + i, 12 + k), seed=10 * k + i)
    return root


def _nearest_class_mean_accuracy(ds: TransferDataset) -> float:
    assert isinstance(ds.train, TensorImages) and isinstance(ds.val, TensorImages)
    x_train = ds.train.images.flatten(1).float()
    x_val = ds.val.images.flatten(1).float()
    means = torch.stack([x_train[ds.train.labels == k].mean(0) for k in range(len(ds.class_names))])
    predicted = torch.cdist(x_val, means).argmin(1)
    return (predicted == ds.val.labels).float().mean().item()


def _tensor_dataset(images: torch.Tensor, labels: list[int]) -> TransferDataset:
    return TransferDataset(
        name="t",
        train=TensorImages(images, labels),
        val=TensorImages(images[:2], labels[:2]),
        class_names=("a", "b"),
    )


# --------------------------------------------------------------------------- digits


def test_digits_has_the_documented_stratified_split() -> None:
    from sklearn.datasets import load_digits

    ds = load_dataset("digits", seed=0)
    assert (len(ds.train), len(ds.val)) == (1437, 360)
    assert ds.class_names == tuple("0123456789")
    assert ds.channels == 1
    image, label = ds.train[0]
    assert image.dtype == torch.uint8 and image.shape == (1, 8, 8) and isinstance(label, int)
    # Same split as calling scikit-learn directly, and 0..16 mapped onto 0..255.
    y = load_digits().target
    _, y_val = train_test_split(y, test_size=0.2, stratify=y, random_state=0)
    assert Counter(ds.val.labels.tolist()) == Counter(y_val.tolist())
    total = Counter(y.tolist())
    for k, n in Counter(ds.val.labels.tolist()).items():
        assert abs(n - 0.2 * total[k]) <= 1
    assert isinstance(ds.train, TensorImages) and int(ds.train.images.max()) == 255


def test_max_train_and_max_val_draw_stratified_subsets() -> None:
    ds = load_dataset("digits", max_train=100, max_val=50, seed=3)
    assert Counter(ds.train.labels.tolist()) == {k: 10 for k in range(10)}
    assert Counter(ds.val.labels.tolist()) == {k: 5 for k in range(10)}
    again = load_dataset("digits", max_train=100, max_val=50, seed=3)
    assert again.fingerprint == ds.fingerprint
    assert load_dataset("digits", max_train=100, seed=4).fingerprint != ds.fingerprint


def test_stratified_subset_keeps_every_class_and_refuses_too_small() -> None:
    labels = np.array([0] * 50 + [1] * 3 + [2] * 1)
    picked = stratified_subset(labels, 6, seed=0)
    assert len(picked) == 6 and set(labels[picked]) == {0, 1, 2}
    with pytest.raises(DatasetError, match="max_train=2 is smaller than the 3 classes"):
        stratified_subset(labels, 2, seed=0, what="max_train")


# --------------------------------------------------------------------------- loaders


def test_loaders_yield_uint8_batches_at_input_size() -> None:
    ds = load_dataset("digits")
    train, val = make_loaders(ds, input_size=32, batch_size=64, seed=0)
    images, labels = next(iter(train))
    assert images.shape == (64, 1, 32, 32) and images.dtype == torch.uint8
    assert labels.shape == (64,) and labels.dtype == torch.int64
    val_labels = torch.cat([y for _, y in val])
    assert torch.equal(val_labels, ds.val.labels)  # validation keeps the split's order
    assert sum(len(y) for _, y in train) == len(ds.train)
    dropped, _ = make_loaders(ds, input_size=32, batch_size=64, seed=0, drop_last=True)
    assert all(len(y) == 64 for _, y in dropped)


def test_train_order_follows_the_seed() -> None:
    ds = load_dataset("digits")

    def order(seed: int, epochs: int = 2) -> list[torch.Tensor]:
        train, _ = make_loaders(ds, input_size=8, batch_size=100, seed=seed)
        return [torch.cat([y for _, y in train]) for _ in range(epochs)]

    first, again, other = order(0), order(0), order(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])
    assert not torch.equal(first[0], first[1])  # each epoch reshuffles


def test_tensor_split_is_resized_once_and_cached() -> None:
    ds = load_dataset("digits")
    assert isinstance(ds.train, TensorImages)
    resized = ds.train.resized(16)
    assert resized.shape == (len(ds.train), 1, 16, 16) and ds.train.resized(16) is resized
    # Antialiased bilinear resize of a constant image stays constant.
    flat = TensorImages(torch.full((2, 3, 40, 30), 77, dtype=torch.uint8), [0, 1])
    assert torch.all(flat.resized(13) == 77)


def test_file_loaders_resize_every_image(tmp_path: Path) -> None:
    ds = load_dataset(_flat_folder(tmp_path / "animals"))
    train, val = make_loaders(ds, input_size=32, batch_size=4, seed=0)
    for images, labels in [*train, *val]:
        assert images.shape[1:] == (3, 32, 32) and images.dtype == torch.uint8
        assert labels.dtype == torch.int64


@pytest.mark.parametrize("num_workers", [0, 1])
def test_file_damaged_after_load_raises_dataset_error_naming_it(
    tmp_path: Path, num_workers: int
) -> None:
    ds = load_dataset(_flat_folder(tmp_path / "animals"))
    assert isinstance(ds.train, FileImages)
    victim = ds.train.paths[0]
    victim.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    _, val = make_loaders(ds, input_size=16, batch_size=64, seed=0)
    train, _ = make_loaders(ds, input_size=16, batch_size=64, seed=0, num_workers=num_workers)
    with pytest.raises(DatasetError, match="cannot decode image") as caught:
        list(train)
    assert str(victim) in str(caught.value)
    # torch's re-raise leaves a reference cycle through the traceback that keeps the worker
    # alive until a garbage-collection pass, which then waits 5 s for it; free it now.
    traceback.clear_frames(caught.tb)
    list(val)  # the other split is untouched


# --------------------------------------------------------------------------- BatchTransform


def test_batch_transform_output_and_normalisation() -> None:
    transform = BatchTransform([0.5, 0.25, 0.0], [0.5, 0.25, 2.0])
    gray = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 1, 5, 5)
    out = transform(gray.contiguous(), train=False)
    assert out.shape == (2, 3, 5, 5) and out.dtype == torch.float32
    # Black and white pixels through each channel's (x - mean) / std.
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([-1.0, -1.0, 0.0]))
    assert torch.allclose(out[1, :, 0, 0], torch.tensor([1.0, 3.0, 0.5]))
    identity = BatchTransform([0.0] * 3, [1.0] * 3)
    rgb = torch.randint(0, 256, (4, 3, 9, 9), dtype=torch.uint8)
    assert torch.allclose(identity(rgb, train=False), rgb.float() / 255)
    assert identity(rgb, train=False).min() >= 0.0 and identity(rgb, train=False).max() <= 1.0
    with pytest.raises(ValueError, match="uint8 batches"):
        identity(rgb.float(), train=False)


def test_batch_transform_repeats_grayscale_to_three_channels() -> None:
    x = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    out = BatchTransform([0.0], [1.0])(x, train=False)
    assert out.shape == (3, 3, 8, 8)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])


def test_eval_path_is_deterministic_and_never_augments() -> None:
    x = torch.randint(0, 256, (16, 3, 12, 12), dtype=torch.uint8)
    plain = BatchTransform([0.5] * 3, [0.5] * 3)
    augmenting = BatchTransform([0.5] * 3, [0.5] * 3, augment=True)
    expected = plain(x, train=False)
    assert torch.equal(augmenting(x, train=False), expected)
    assert torch.equal(augmenting(x, train=False, generator=torch.Generator()), expected)
    assert torch.equal(plain(x, train=True), expected)  # augment=False: train is plain too


def test_augmentation_changes_batches_reproducibly() -> None:
    x = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8)
    t = BatchTransform([0.5] * 3, [0.5] * 3, augment=True)

    def run(seed: int) -> torch.Tensor:
        return t(x, train=True, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))
    assert not torch.equal(run(0), t(x, train=False))
    assert run(0).shape == (32, 3, 16, 16)


def test_flip_only_augmentation_flips_whole_samples() -> None:
    x = torch.randint(0, 256, (64, 3, 6, 6), dtype=torch.uint8)
    t = BatchTransform([0.0] * 3, [1.0] * 3, augment=True, crop_padding=0.0)
    out = t(x, train=True, generator=torch.Generator().manual_seed(0))
    ref = x.float() / 255
    same = (out == ref).flatten(1).all(1)
    flipped = (out == ref.flip(3)).flatten(1).all(1)
    assert bool((same | flipped).all()) and 10 < int(flipped.sum()) < 54


def test_translation_moves_content_within_the_padding() -> None:
    x = torch.zeros((8, 1, 16, 16), dtype=torch.uint8)
    x[:, :, 8, 8] = 255
    t = BatchTransform([0.0], [1.0], augment=True, hflip=False, crop_padding=0.125)
    out = t(x, train=True, generator=torch.Generator().manual_seed(1))
    for sample in out[:, 0]:
        ((row, col),) = (sample == 1.0).nonzero().tolist()
        assert abs(row - 8) <= 2 and abs(col - 8) <= 2


# --------------------------------------------------------------------------- image folders


def test_flat_folder_is_split_stratified(tmp_path: Path) -> None:
    ds = load_dataset(_flat_folder(tmp_path / "animals", per_class=5), val_fraction=0.4, seed=1)
    assert ds.name == "animals" and ds.class_names == ("cat", "dog", "fox")
    assert Counter(ds.train.labels.tolist()) == {0: 3, 1: 3, 2: 3}
    assert Counter(ds.val.labels.tolist()) == {0: 2, 1: 2, 2: 2}
    assert isinstance(ds.train, FileImages) and ds.channels == 3
    train_paths = set(ds.train.paths)
    assert isinstance(ds.val, FileImages) and train_paths.isdisjoint(ds.val.paths)
    image, label = ds.val[0]
    assert image.dtype == torch.uint8 and image.shape[0] == 3
    assert ds.val.paths[0].parent.name == ds.class_names[label]


def test_train_val_folder_layout(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for split, n in (("train", 4), ("val", 2)):
        for name in ("b_bird", "a_ant"):
            for i in range(n):
                _write_image(root / split / name / f"{i}.JPG", mode="L", seed=i)
    (root / "train" / "a_ant" / ".DS_Store").write_bytes(b"junk")
    (root / "train" / "a_ant" / "notes.txt").write_text("not an image")
    _write_image(root / "train" / "a_ant" / ".hidden.png")
    ds = load_dataset(root)
    assert ds.class_names == ("a_ant", "b_bird")
    assert (len(ds.train), len(ds.val)) == (8, 4)
    assert ds.channels == 1 and ds.train[0][0].shape == (1, 12, 10)


def test_image_modes_are_normalised(tmp_path: Path) -> None:
    root = tmp_path / "modes"
    for i, mode in enumerate(("RGBA", "P", "CMYK", "L", "I;16", "LA")):
        _write_image(root / "x" / f"{i}.{'jpg' if mode == 'CMYK' else 'png'}", mode=mode, seed=i)
        _write_image(root / "y" / f"{i}.png", mode="RGB", seed=10 + i)
    ds = load_dataset(root, val_fraction=0.5)
    assert ds.channels == 3  # mixing grayscale and colour gives 3 channels
    for i in range(len(ds.train)):
        assert ds.train[i][0].shape == (3, 12, 10)
    # A palette image decodes to its palette colours; 16-bit grayscale is scaled, not clipped.
    source = FileImages(
        [(_write_image(tmp_path / "p.png", mode="P"), 0), (tmp_path / "g.png", 0)], channels=3
    )
    Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)).save(tmp_path / "g.png")
    palette = np.array(Image.open(tmp_path / "p.png").convert("RGB"))
    assert torch.equal(source[0][0], torch.from_numpy(palette).permute(2, 0, 1))
    assert torch.all(source[1][0] == 255)
    gray_only = tmp_path / "gray"
    for i in range(2):
        _write_image(gray_only / "a" / f"{i}.png", mode="L")
        _write_image(gray_only / "b" / f"{i}.png", mode="I;16")
    assert load_dataset(gray_only, val_fraction=0.5).channels == 1


def test_file_images_detect_channels_from_headers(tmp_path: Path) -> None:
    gray = [(_write_image(tmp_path / f"g{i}.png", mode="L"), i % 2) for i in range(2)]
    source = FileImages(gray)
    assert source.channels == 1 and source[0][0].shape == (1, 12, 10)
    assert source.image_sizes().tolist() == [[12, 10], [12, 10]]
    mixed = FileImages([*gray, (_write_image(tmp_path / "c.png"), 0)])
    assert mixed.channels == 3 and mixed[0][0].shape == (3, 12, 10)
    assert torch.equal(mixed[0][0][0], mixed[0][0][2])  # grayscale expanded, not recoloured


def test_exif_rotation_is_applied_to_size_and_pixels(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.new("RGB", (20, 10), "red").save(path, exif=exif)  # stored 10 high, 20 wide
    source = FileImages([(path, 0)])
    assert source.image_sizes().tolist() == [[20, 10]]
    assert source[0][0].shape == (3, 20, 10)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"no such directory: .*nope; pass a folder with one"):
        load_dataset(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no such directory"):
        load_dataset(str(tmp_path / "nope"))


def test_folder_without_class_subfolders(tmp_path: Path) -> None:
    _write_image(tmp_path / "loose" / "a.png")
    with pytest.raises(DatasetError, match="has no class subfolders"):
        load_dataset(tmp_path / "loose")


def test_empty_class_folder_is_named(tmp_path: Path) -> None:
    root = _flat_folder(tmp_path / "ds")
    (root / "empty").mkdir()
    (root / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetError, match=r"class folder .*empty has no images; put at least"):
        load_dataset(root)


def test_single_class_is_refused(tmp_path: Path) -> None:
    root = _flat_folder(tmp_path / "ds", classes=("only",))
    with pytest.raises(DatasetError, match=r"single class folder .'only'.*at least 2 classes"):
        load_dataset(root)


def test_class_too_small_to_split(tmp_path: Path) -> None:
    root = _flat_folder(tmp_path / "ds")
    _write_image(root / "lonely" / "0.png")
    with pytest.raises(DatasetError, match=r"fewer than 2 images.*'lonely' \(1\)"):
        load_dataset(root)


def test_train_val_class_sets_must_match(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for split, classes in (("train", ("a", "b", "c")), ("val", ("a", "b"))):
        for name in classes:
            _write_image(root / split / name / "0.png")
    with pytest.raises(DatasetError, match=r"missing in val/: \['c'\]"):
        load_dataset(root)
    _write_image(tmp_path / "half" / "train" / "a" / "0.png")
    with pytest.raises(DatasetError, match="has train/ but no val/"):
        load_dataset(tmp_path / "half")


def _folder_with_corrupt_files(root: Path) -> tuple[Path, Path]:
    _flat_folder(root, per_class=4)
    garbage = root / "cat" / "garbage.png"
    garbage.write_bytes(b"this is not an image at all")
    valid = _write_image(root / "dog" / "cut.png", (32, 32))
    truncated = valid.with_name("truncated.png")
    truncated.write_bytes(valid.read_bytes()[:-30])
    valid.unlink()
    return garbage, truncated


def test_corrupt_images_are_skipped_and_listed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    garbage, truncated = _folder_with_corrupt_files(tmp_path / "ds")
    with caplog.at_level(logging.WARNING, logger="autotransfer.data"):
        ds = load_dataset(tmp_path / "ds", on_corrupt="skip")
    assert set(ds.skipped_files) == {garbage, truncated}
    assert ds.profile().skipped_files == 2
    assert len(ds.train) + len(ds.val) == 12
    assert "skipping 2 unreadable" in caplog.text and str(garbage) in caplog.text


def test_corrupt_images_raise_in_error_mode(tmp_path: Path) -> None:
    garbage, truncated = _folder_with_corrupt_files(tmp_path / "ds")
    with pytest.raises(DatasetError, match="2 unreadable image file") as caught:
        load_dataset(tmp_path / "ds", on_corrupt="error")
    assert str(garbage) in str(caught.value) and str(truncated) in str(caught.value)
    assert "on_corrupt='skip'" in str(caught.value)


# --------------------------------------------------------------------------- .npz files


def test_npz_given_split_and_layouts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "set.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (6, 3, 9, 7), dtype=np.uint8),  # [N, C, H, W]
        y_train=np.array([0, 1, 2, 0, 1, 2]),
        x_val=rng.random((3, 9, 7, 3)),  # [N, H, W, C] floats in [0, 1]
        y_val=np.array([[0], [1], [2]]),
        class_names=np.array(["r", "g", "b"]),
    )
    ds = load_dataset(path)
    assert ds.name == "set" and ds.class_names == ("r", "g", "b")
    assert ds.train[0][0].shape == (3, 9, 7) and ds.val[0][0].shape == (3, 9, 7)
    assert ds.val[0][0].dtype == torch.uint8 and ds.val.labels.tolist() == [0, 1, 2]


def test_npz_single_array_pair_is_split_and_grayscale_kept(tmp_path: Path) -> None:
    path = tmp_path / "gray.npz"
    np.savez(path, x=np.zeros((20, 5, 5), dtype=np.uint8), y=np.arange(20) % 2)
    ds = load_dataset(path, val_fraction=0.25)
    assert (len(ds.train), len(ds.val), ds.channels) == (15, 5, 1)
    assert ds.class_names == ("0", "1")


def test_npz_with_four_channels_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rgba.npz"
    x = np.zeros((4, 32, 32, 4), dtype=np.uint8)
    np.savez(path, x_train=x, y_train=[0, 1, 0, 1], x_val=x, y_val=[0, 1, 0, 1])
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    assert str(caught.value) == (
        "x_train has 4 channels (shape (4, 32, 32, 4)); images must have 1 (grayscale) or 3 "
        "(RGB) channels: drop the alpha channel or convert to RGB."
    )


def test_npz_labels_must_be_class_indices(tmp_path: Path) -> None:
    x = np.zeros((4, 4, 4), dtype=np.uint8)
    path = tmp_path / "bad.npz"
    np.savez(path, x=x, y=[0, 1, 7, 1], class_names=np.array(["a", "b"]))
    with pytest.raises(DatasetError, match="label 7 is out of range for 2 class_names"):
        load_dataset(path)
    np.savez(path, x=x, y=[0, 1, -1, 1])
    with pytest.raises(DatasetError, match="contains the label -1"):
        load_dataset(path)
    np.savez(path, x=x, y=[0.0, 1.5, 1.0, 0.0])
    with pytest.raises(DatasetError, match=r"non-integer label 1.5;"):
        load_dataset(path)
    np.savez(path, x=x, y=[0, 3, 0, 3])
    with pytest.raises(DatasetError, match=r"largest label 3 .* classes \[1, 2\]"):
        load_dataset(path)


def test_npz_other_bad_inputs(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, x=np.full((4, 4, 4), 2.0), y=[0, 1, 0, 1])
    with pytest.raises(DatasetError, match=r"values in \[2, 2\]; float images must be in \[0, 1\]"):
        load_dataset(path)
    np.savez(path, images=np.zeros((4, 4, 4)), labels=[0, 1, 0, 1])
    with pytest.raises(DatasetError, match=r"has arrays \['images', 'labels'\]; expected x_train"):
        load_dataset(path)
    np.savez(path, x=np.zeros((4, 4, 4), np.uint8), y=np.array([0, 1, 0, {}], dtype=object))
    with pytest.raises(DatasetError, match="cannot be loaded without unpickling"):
        load_dataset(path)
    path.write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match=r"cannot read .*bad.npz as a .npz archive"):
        load_dataset(path)
    with pytest.raises(DatasetError, match=r"no such file: .*missing.npz"):
        load_dataset(tmp_path / "missing.npz")


# --------------------------------------------------------------------------- references


def test_unknown_reference_lists_the_valid_forms() -> None:
    with pytest.raises(DatasetError, match="unknown dataset 'cifar10'; use one of: 'digits'") as e:
        load_dataset("cifar10")
    assert "synthetic:" in str(e.value) and ".npz" in str(e.value)
    assert isinstance(e.value, UserInputError) and isinstance(e.value, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"val_fraction": 1.0}, "val_fraction must be strictly between 0 and 1"),
        ({"max_train": 0}, "max_train must be a positive number"),
        ({"on_corrupt": "ignore"}, "on_corrupt must be 'skip'"),
    ],
)
def test_load_options_are_validated(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_dataset("digits", **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- profile


def test_profile_of_an_image_folder(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    heights = {"a": [10, 20, 30], "b": [40, 50]}
    for name, hs in heights.items():
        for split in ("train", "val"):
            for i, h in enumerate(hs if split == "train" else hs[:1]):
                _write_image(root / split / name / f"{i}.png", (h, 2 * h + 1), mode="L")
    profile = load_dataset(root).profile()
    assert (profile.num_train, profile.num_val, profile.num_classes) == (5, 2, 2)
    assert profile.train_class_counts == {"a": 3, "b": 2}
    assert profile.val_class_counts == {"a": 1, "b": 1}
    assert profile.samples_per_class_min == 2
    assert profile.min_resolution == (10, 21)
    assert profile.median_resolution == (30, 61)
    assert profile.max_resolution == (50, 101)
    assert profile.channels == 1 and profile.skipped_files == 0
    as_dict = json.loads(json.dumps(profile.to_dict()))
    assert as_dict["class_names"] == ["a", "b"] and as_dict["max_resolution"] == [50, 101]


def test_profile_of_digits() -> None:
    profile = load_dataset("digits").profile()
    assert profile.min_resolution == profile.max_resolution == (8, 8)
    assert sum(profile.train_class_counts.values()) == 1437
    assert profile.name == "digits" and len(profile.fingerprint) == 64


# --------------------------------------------------------------------------- fingerprint


def test_fingerprint_is_stable_across_processes(tmp_path: Path) -> None:
    root = _flat_folder(tmp_path / "ds")
    code = (
        "import sys; from autotransfer.data import load_dataset; "
        "print(load_dataset('digits').fingerprint, load_dataset(sys.argv[1]).fingerprint)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(root)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [load_dataset("digits").fingerprint, load_dataset(root).fingerprint]


def test_fingerprint_changes_with_one_pixel_or_label() -> None:
    images = torch.zeros((4, 1, 3, 3), dtype=torch.uint8)
    base = _tensor_dataset(images, [0, 1, 0, 1])
    assert base.fingerprint == _tensor_dataset(images.clone(), [0, 1, 0, 1]).fingerprint
    changed = images.clone()
    changed[3, 0, 2, 2] = 1
    assert _tensor_dataset(changed, [0, 1, 0, 1]).fingerprint != base.fingerprint
    assert _tensor_dataset(images, [0, 1, 1, 1]).fingerprint != base.fingerprint


def test_file_fingerprint_follows_file_content_and_split(tmp_path: Path) -> None:
    root = _flat_folder(tmp_path / "ds")
    first = load_dataset(root).fingerprint
    assert load_dataset(root).fingerprint == first
    assert load_dataset(root, seed=1).fingerprint != first  # other split
    moved = tmp_path / "elsewhere" / "ds"
    moved.parent.mkdir()
    root.rename(moved)
    assert load_dataset(moved).fingerprint == first  # relative paths: location-independent
    target = moved / "dog" / "002.png"
    pixels = np.asarray(Image.open(target)).copy()
    pixels[0, 0, 0] ^= 1
    Image.fromarray(pixels).save(target)
    assert load_dataset(moved).fingerprint != first


# --------------------------------------------------------------------------- idx / Fashion-MNIST


def _idx_bytes(array: np.ndarray, type_code: int) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("compress", [False, True])
def test_idx_reader_round_trips(tmp_path: Path, compress: bool) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    ints = np.array([1, -2, 70000], dtype=np.int32)
    for name, array, code in (("img", images, 0x08), ("ints", ints, 0x0C)):
        raw = _idx_bytes(array, code)
        path = tmp_path / (name + (".gz" if compress else ""))
        path.write_bytes(gzip.compress(raw) if compress else raw)
        assert np.array_equal(read_idx(path), array) and read_idx(path).dtype == array.dtype


def test_idx_reader_rejects_bad_files(tmp_path: Path) -> None:
    good = _idx_bytes(np.zeros((2, 3), np.uint8), 0x08)
    (tmp_path / "magic").write_bytes(b"\x12\x34" + good[2:])
    with pytest.raises(DatasetError, match="magic is not an idx file: magic number 1234"):
        read_idx(tmp_path / "magic")
    (tmp_path / "short.gz").write_bytes(gzip.compress(good[:-1]))
    with pytest.raises(DatasetError, match=r"short.gz is truncated: header says shape \(2, 3\)"):
        read_idx(tmp_path / "short.gz")
    (tmp_path / "broken.gz").write_bytes(gzip.compress(good)[:-6])
    with pytest.raises(DatasetError, match=r"cannot read idx file .*broken.gz"):
        read_idx(tmp_path / "broken.gz")


def _write_mini_fashion(folder: Path, n_train: int = 20, n_val: int = 10) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_val)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(_idx_bytes(images, 0x08))
        )
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx_bytes(labels, 0x08))


def test_fashion_mnist_from_an_explicit_and_a_torchvision_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_mini_fashion(tmp_path / "explicit")
    ds = load_dataset(f"fashion-mnist:{tmp_path / 'explicit'}")
    assert (len(ds.train), len(ds.val), ds.channels) == (20, 10, 1)
    assert ds.class_names == FASHION_MNIST_CLASSES and ds.train[0][0].shape == (1, 28, 28)
    _write_mini_fashion(tmp_path / "tv" / "FashionMNIST" / "raw", n_train=30)
    monkeypatch.setenv("AUTOTRANSFER_FASHION_MNIST", str(tmp_path / "tv"))
    assert len(load_dataset("fashion-mnist").train) == 30


def test_fashion_mnist_missing_files_say_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        load_dataset(f"fashion-mnist:{tmp_path}")
    message = str(caught.value)
    assert str(tmp_path) in message and str(tmp_path / "FashionMNIST" / "raw") in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "AUTOTRANSFER_FASHION_MNIST" in message


def test_fashion_mnist_malformed_file_is_named(tmp_path: Path) -> None:
    _write_mini_fashion(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x14" + b"1")
    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte is truncated"):
        load_dataset(f"fashion-mnist:{tmp_path}")


def _real_fashion_mnist_present() -> bool:
    try:
        find_fashion_mnist(os.environ.get("AUTOTRANSFER_FASHION_MNIST") or DEBIAN_DIR)
    except DatasetError:
        return False
    return True


@pytest.mark.skipif(
    not _real_fashion_mnist_present(),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_real_fashion_mnist() -> None:
    full = load_dataset("fashion-mnist")
    assert (len(full.train), len(full.val)) == (60000, 10000)
    assert Counter(full.train.labels.tolist()) == {k: 6000 for k in range(10)}
    small = load_dataset("fashion-mnist", max_train=1000, max_val=200, seed=0)
    assert small.profile().train_class_counts == {name: 100 for name in FASHION_MNIST_CLASSES}
    assert Counter(small.val.labels.tolist()) == {k: 20 for k in range(10)}
    assert small.profile().max_resolution == (28, 28) and small.channels == 1
    assert small.fingerprint != full.fingerprint


# --------------------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic_from_the_seed() -> None:
    spec = SyntheticSpec(classes=3, per_class=6, size=16, difficulty=0.5, shift=0.5)
    x0, y0 = generate_synthetic(spec, seed=0)
    x0_again, _ = generate_synthetic(spec, seed=0)
    x1, _ = generate_synthetic(spec, seed=1)
    assert x0.shape == (18, 3, 16, 16) and x0.dtype == np.uint8
    assert np.array_equal(x0, x0_again) and not np.array_equal(x0, x1)
    assert y0.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    ref = "synthetic:classes=3,per_class=10,size=16,channels=1"
    assert load_dataset(ref).fingerprint == load_dataset(ref).fingerprint
    ds = load_dataset(ref)
    assert (len(ds.train), len(ds.val), ds.channels) == (24, 6, 1)
    assert ds.name.startswith("synthetic:classes=3,per_class=10,size=16,channels=1")


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("synthetic:difficulty=1.5", r"synthetic difficulty must be in \[0, 1\], got 1.5"),
        ("synthetic:shift=-0.1", r"synthetic shift must be in \[0, 1\]"),
        ("synthetic:classes=1", r"synthetic classes must be an integer in \[2, 1000\], got 1"),
        ("synthetic:channels=4", "synthetic channels must be 1 or 3, got 4"),
        ("synthetic:size=abc", "synthetic option size='abc' is not a number"),
        ("synthetic:colour=red", "synthetic option 'colour=red' is not key=value with a key"),
    ],
)
def test_synthetic_parameters_are_validated(ref: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_dataset(ref)


def test_synthetic_difficulty_controls_separability() -> None:
    accuracy = {}
    for difficulty in (0.0, 1.0):
        for shift in (0.0, 1.0):
            ds = load_dataset(
                f"synthetic:difficulty={difficulty},shift={shift},classes=5,per_class=60,size=24"
            )
            accuracy[difficulty, shift] = _nearest_class_mean_accuracy(ds)
    assert accuracy[0.0, 0.0] > 0.9 and accuracy[0.0, 1.0] > 0.9
    assert accuracy[1.0, 0.0] < 0.45 and accuracy[1.0, 1.0] < 0.45


def test_synthetic_shift_moves_away_from_smooth_images() -> None:
    def high_frequency_share(shift: float) -> float:
        x, _ = generate_synthetic(SyntheticSpec(size=32, difficulty=0.0, shift=shift), seed=0)
        pixels = x.astype(np.float64) / 255
        dx = np.abs(np.diff(pixels, axis=3)).mean()
        return float(dx / (pixels.std() + 1e-9))

    assert 2 * high_frequency_share(0.0) < high_frequency_share(1.0)
    binary, _ = generate_synthetic(SyntheticSpec(shift=1.0), seed=0)
    assert set(np.unique(binary).tolist()) <= {0, 255}
