"""Training throughput: samples (words, images, documents) per second of training, per epoch."""

from __future__ import annotations

import time
from typing import Any

import torch

from lregloss.lightning import pl


class TrainingThroughput(pl.Callback):
    """Logs ``train/<unit>_per_s`` at each training epoch's end: the epoch's samples / its training seconds.

    ``run_per_second`` gives the same over every epoch of the run (``lregloss-train`` writes it
    to ``results.json``).

    Samples are counted from each batch's target (its first dimension, read from the shape:
    no device sync); the clock stops during validation, so only training steps (forward,
    backward, optimizer, data loading, Lightning's own work) count. On CUDA the device is
    synchronised once, at the epoch's end, so the last steps' kernels are counted. Unlike
    Lightning's ``ThroughputMonitor``, which synchronises the device after every step, this
    adds no work to the hot path.

    Args:
        unit: what a sample is, for the tag: ``words`` logs ``train/words_per_s``.
    """

    def __init__(self, unit: str = "samples") -> None:
        super().__init__()
        if not unit.isidentifier():
            raise ValueError(f"unit must be a single word such as words or images, got {unit!r}")
        self.unit = unit
        self.samples = 0
        self.seconds = 0.0
        self.run_samples = 0
        self.run_seconds = 0.0
        self._started: float | None = None

    @property
    def per_second(self) -> float:
        """Samples per training second of the last finished (or the running) epoch."""
        return self.samples / self.seconds if self.seconds else float("nan")

    @property
    def run_per_second(self) -> float:
        """Samples per training second over every finished epoch of the run."""
        return self.run_samples / self.run_seconds if self.run_seconds else float("nan")

    def _resume_clock(self) -> None:
        self._started = time.perf_counter()

    def _stop_clock(self, trainer: pl.Trainer) -> None:
        if self._started is not None:
            if trainer.strategy.root_device.type == "cuda":
                torch.cuda.synchronize(trainer.strategy.root_device)
            self.seconds += time.perf_counter() - self._started
            self._started = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.samples, self.seconds = 0, 0.0
        self._resume_clock()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.samples += len(batch[-1])

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.training:
            self._stop_clock(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.training and not trainer.sanity_checking:
            self._resume_clock()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop_clock(trainer)
        self.run_samples += self.samples
        self.run_seconds += self.seconds
        if self.seconds:
            pl_module.log(f"train/{self.unit}_per_s", self.per_second)
