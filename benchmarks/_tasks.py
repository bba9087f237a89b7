"""The benchmark tasks of ../shared/BENCHMARKS.md: ``digits``, ``fmnist-1k``, ``fmnist-20k``."""

from __future__ import annotations

from dataclasses import dataclass

from autotransfer.data import TransferDataset, load_dataset


@dataclass(frozen=True)
class Task:
    name: str
    dataset: str
    max_train: int | None
    max_val: int | None
    oracle_epochs: int
    # the documented subset of Lite0 depths on the large task (BENCHMARKS.md allows one);
    # k = 15 of its example set is left out to fit a 2-core machine, k = 17 covers that end
    oracle_depths: tuple[int, ...] | None = None

    def load(self) -> TransferDataset:
        return load_dataset(self.dataset, seed=0, max_train=self.max_train, max_val=self.max_val)


TASKS = {
    "digits": Task("digits", "digits", None, None, oracle_epochs=6),
    "fmnist-1k": Task("fmnist-1k", "fashion-mnist", 1000, 2000, oracle_epochs=6),
    "fmnist-20k": Task(
        "fmnist-20k",
        "fashion-mnist",
        20000,
        2000,
        oracle_epochs=3,
        oracle_depths=(0, 1, 2, 4, 7, 11, 17),
    ),
}
BACKBONE = "efficientnet_lite0"
INPUT_SIZE = 32
ORACLE_LRS = (0.003, 0.01, 0.03, 0.1)
