"""The ``autotransfer`` command: a real run and every bad input ending in a clear message."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from autotransfer.cli import app

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_train_on_digits_prints_json() -> None:
    code, output = run(
        "train",
        "--dataset",
        "digits",
        "--max-train",
        "200",
        "--max-val",
        "100",
        "--freeze-depth",
        "1",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--json",
    )
    assert code == 0, output
    payload = json.loads(output[output.index("{") :])
    assert payload["config"]["input_size"] == 32  # 8×8 digits → the smallest multiple of 32
    assert payload["result"]["epochs_run"] == 1
    assert payload["result"]["num_blocks"] == 17


def test_backbones_lists_block_counts() -> None:
    code, output = run("backbones")
    assert code == 0
    assert "efficientnet_lite0" in output and "17" in output


def _folder(root: Path, classes: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--backbone", "resnet-18"], "Did you mean resnet18"),
        (["--freeze-depth", "18"], "integer in 0..17 for efficientnet_lite0"),
        (["--dataset", "/no/such/folder"], "/no/such/folder"),
        (["--weights", "/no/such/weights.pth"], "Weights file not found: /no/such/weights.pth"),
        (["--lr", "-1"], "--base-lr=-1.0"),
        (["--lp-ft-epochs", "9", "--freeze-depth", "2"], "lp_ft_epochs must be smaller"),
    ],
)
def test_bad_flags_end_with_a_named_error(args: list[str], expected: str) -> None:
    code, output = run("train", "--epochs", "1", "--max-train", "50", *args)
    assert code == 2, output
    assert "error:" in output and expected in " ".join(output.split()), output
    assert "Traceback" not in output


# TrialConfig fields that `train` takes in its own way: the input size is optional there
# (suggested from the data's resolution when left out)
TRAIN_HANDLES_ITSELF = {"input_size": "--input-size"}


def test_train_has_a_flag_for_every_trial_config_field() -> None:
    from autotransfer.cli._train import HELPS, train_cmd
    from autotransfer.finetune import TrialConfig

    code, output = run("train", "--help")
    assert code == 0, output
    shown = {token.rstrip(",") for token in output.split()}
    params = inspect.signature(train_cmd).parameters
    for name, field in TrialConfig.model_fields.items():
        flag = TRAIN_HANDLES_ITSELF.get(name, f"--{name.replace('_', '-')}")
        assert name in params and flag in shown, f"train has no {flag} for {name}"
        option = params[name].annotation.__metadata__[0]
        assert option.help, f"{flag} has no help"
        if name not in TRAIN_HANDLES_ITSELF:
            assert option.help == HELPS.get(name, field.description), name
            assert params[name].default == field.default, name
    for kept in ("--lr", "-k", "-d", "-b", "--json", "--threads", "--cache", "--cache-dir"):
        assert kept in shown, kept


@pytest.mark.parametrize("flag", ["--lr", "--base-lr"])
def test_a_bad_trial_value_is_one_line_naming_the_flag(flag: str) -> None:
    code, output = run("train", "--max-train", "50", flag, "-1")
    assert code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --base-lr=-1.0:"), output


def test_zero_bn_momentum_keeps_the_models_own() -> None:
    common = ["train", "--max-train", "60", "--max-val", "30", "--epochs", "1", "--input-size"]
    common += ["32", "--threads", "1", "--no-cache", "--json", "--seed", "3"]
    code, output = run(*common, "--bn-momentum", "0", "-k", "1", "--lr", "0.02")
    assert code == 0, output
    config = json.loads(output[output.index("{") :])["config"]
    assert config["bn_momentum"] is None
    assert (config["base_lr"], config["freeze_depth"], config["seed"]) == (0.02, 1, 3)


def test_empty_class_folder(tmp_path: Path) -> None:
    root = _folder(tmp_path / "data", {"cat": 4, "dog": 4})
    (root / "bird").mkdir()
    code, output = run("train", "--dataset", str(root), "--epochs", "1")
    assert code == 2 and "bird" in output and "no images" in " ".join(output.split())


def test_corrupt_image_fatal_or_skipped(tmp_path: Path) -> None:
    root = _folder(tmp_path / "data", {"cat": 6, "dog": 6})
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    code, output = run("profile", "--dataset", str(root), "--on-corrupt", "error")
    assert code == 2 and "broken.png" in output
    code, output = run("profile", "--dataset", str(root))
    assert code == 0, output
    assert json.loads(output[output.index("{") :])["skipped_files"] == 1


def test_wrong_number_of_channels(tmp_path: Path) -> None:
    path = tmp_path / "four.npz"
    x = np.zeros((20, 16, 16, 4), dtype=np.uint8)
    y = np.arange(20) % 2
    np.savez(path, x=x, y=y)
    code, output = run("train", "--dataset", str(path), "--epochs", "1")
    assert code == 2, output
    flat = " ".join(output.split())
    assert "4 channels" in flat and "1 (grayscale) or 3 (RGB)" in flat


def test_on_corrupt_advice_names_the_flag_not_the_python_field(tmp_path: Path) -> None:
    root = _folder(tmp_path / "data", {"cat": 6, "dog": 6})
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    code, output = run("profile", "--dataset", str(root), "--on-corrupt", "error")
    assert code == 2
    flat = " ".join(output.split())
    assert "--on-corrupt skip" in flat and "on_corrupt=" not in flat, flat


TINY = "synthetic:classes=3,per_class=24,size=16,difficulty=0.2,shift=0.0"
NO_SUCH_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/autotransfer_no_such_db"


@pytest.mark.parametrize("storage", ["notaurl://x", NO_SUCH_PG])
@pytest.mark.parametrize(
    "command",
    [
        ["search", "--dataset", TINY, "--input-size", "32", "--no-recommend", "--threads", "1"],
        ["studies", "list"],
    ],
)
def test_bad_storage_is_one_error_line_and_exit_2(command: list[str], storage: str) -> None:
    code, output = run(*command, "--storage", storage)
    assert code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    "command",
    [
        ["studies", "list"],
        ["studies", "show", "s"],
        ["studies", "delete", "s", "--yes"],
        ["studies", "list", "--json"],
        ["dashboard", "--port", "1"],
    ],
)
def test_read_only_commands_never_create_storage(command: list[str], tmp_path: Path) -> None:
    typo = tmp_path / "typo.db"
    code, output = run(*command, "--storage", f"sqlite:///{typo}")
    assert code == 2 and "No storage at" in output, output
    assert not typo.exists()


def test_train_takes_the_metric_and_the_imbalance_options() -> None:
    common = ["train", "--dataset", "digits", "--max-train", "100", "--max-val", "60"]
    code, output = run(
        *common,
        "--epochs",
        "1",
        "--metric",
        "macro_f1",
        "--class-weighting",
        "sqrt_inverse",
        "--balanced-sampler",
        "--json",
    )
    assert code == 0, output
    payload = json.loads(output[output.index("{") :])  # after the progress lines
    assert payload["config"]["class_weighting"] == "sqrt_inverse"
    assert payload["config"]["balanced_sampler"] is True
    result = payload["result"]
    assert result["metric"] == "macro_f1"
    assert result["best_val_score"] == max(m["val_score"] for m in result["history"])
    assert len(result["class_report"]["recall"]) == 10
    code, output = run(*common, "--epochs", "1", "--metric", "auroc")
    assert code == 2 and "auroc needs two classes" in output and "auroc_ovr" in output


def test_labels_far_beyond_the_images_are_one_line_not_a_memory_error(tmp_path: Path) -> None:
    """Labels {0, 2**40} sized the class list by the largest label: the process died at
    ~23 GB (or printed a MemoryError traceback). Now the labels are checked first."""
    path = tmp_path / "huge_labels.npz"
    np.savez(path, x=np.zeros((16, 8, 8), np.uint8), y=np.array([0, 2**40] * 8))
    for command in ("recommend", "search"):
        code, output = run(command, "--dataset", str(path))
        assert code == 2, output
        assert "labels must be 0..K-1; found 2 distinct values up to 1099511627776" in output
        assert "Traceback" not in output and "MemoryError" not in output
