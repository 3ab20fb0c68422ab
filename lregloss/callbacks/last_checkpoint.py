"""``checkpoints/last.ckpt``: the latest state of a run, which ``resume=<run dir>`` continues from."""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint


def flush_loggers(trainer: pl.Trainer) -> None:
    """Write what the trainer's loggers hold in memory to their files (TensorBoard queues events)."""
    for logger in trainer.loggers:
        flush = getattr(logger.experiment, "flush", None)
        if callable(flush):
            flush()


class LastCheckpoint(ModelCheckpoint):
    """Write ``last.ckpt`` every ``every_n_train_steps`` optimizer steps, after each validation, and at the end.

    A ``ModelCheckpoint`` with no monitored metric and no top-k files: only ``last.ckpt``,
    overwritten in place. Saving in mid-epoch is what lets a killed run lose at most
    ``every_n_train_steps`` steps; saving again after validation records early stopping's and
    the best checkpoint's state for that epoch. Nothing is saved when training fails (no
    ``on_exception`` save), so a diverged run keeps its last good file.

    The loggers are flushed before each save and again before the next batch (Lightning logs a
    batch's metrics after its ``on_train_batch_end``), so every metric up to the checkpoint is
    on disk when a kill comes: a resumed run then neither misses nor repeats a logged step.

    (It extends ``ModelCheckpoint`` through its internal ``_save_checkpoint`` and
    ``_save_last_checkpoint``, as of Lightning 2.6; tests/test_resume.py checks the result.)

    Args:
        dirpath: the run's checkpoint folder.
        every_n_train_steps: optimizer steps between saves, >= 1.
    """

    def __init__(self, dirpath: str, every_n_train_steps: int = 100) -> None:
        if int(every_n_train_steps) != every_n_train_steps or every_n_train_steps < 1:
            raise ValueError(f"every_n_train_steps must be an integer >= 1, got {every_n_train_steps}")
        super().__init__(
            dirpath=dirpath,
            monitor=None,
            save_top_k=0,
            save_last=True,
            every_n_train_steps=int(every_n_train_steps),
            enable_version_counter=False,
        )
        self._flush_before_next_batch = False

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        flush_loggers(trainer)
        super()._save_checkpoint(trainer, filepath)
        self._flush_before_next_batch = True

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if self._flush_before_next_batch:
            flush_loggers(trainer)
            self._flush_before_next_batch = False

    def _save_last_now(self, trainer: pl.Trainer) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run or trainer.state.fn != "fit":
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save_last_now(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._last_global_step_saved != trainer.global_step:
            self._save_last_now(trainer)
