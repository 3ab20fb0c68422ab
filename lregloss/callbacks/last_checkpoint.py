"""``checkpoints/last.ckpt``: the latest state of a run, which ``resume=<run dir>`` continues from."""

from __future__ import annotations

from pathlib import Path

from lregloss.lightning import pl

LAST = "last.ckpt"


def flush_loggers(trainer: pl.Trainer) -> None:
    """Write what the trainer's loggers hold in memory to their files (TensorBoard queues events)."""
    for logger in trainer.loggers:
        flush = getattr(logger.experiment, "flush", None)
        if callable(flush):
            flush()


class LastCheckpoint(pl.callbacks.Checkpoint):
    """Write ``<dirpath>/last.ckpt`` every ``every_n_train_steps`` optimizer steps, after each validation, and at the end.

    One file, overwritten in place, through Lightning's public ``trainer.save_checkpoint`` (so
    the Trainer's checkpoint plugin writes it: atomically and never with non-finite weights,
    see `lregloss.app.checkpointing`). Saving in mid-epoch is what lets a killed run lose at most
    ``every_n_train_steps`` steps; saving again after validation records early stopping's and
    the best checkpoint's state for that epoch (Lightning runs `Checkpoint` callbacks after
    the others). Nothing is saved when training fails, so a diverged run keeps its last good
    file; nothing outside fitting, in the sanity check or in a ``fast_dev_run``.

    The loggers are flushed before each save and again before the next batch (Lightning logs a
    batch's metrics after its ``on_train_batch_end``), so every metric up to the checkpoint is
    on disk when a kill comes: a resumed run then neither misses nor repeats a logged step.

    Args:
        dirpath: the run's checkpoint folder.
        every_n_train_steps: optimizer steps between saves, >= 1.
    """

    def __init__(self, dirpath: str, every_n_train_steps: int = 100) -> None:
        if int(every_n_train_steps) != every_n_train_steps or every_n_train_steps < 1:
            raise ValueError(f"every_n_train_steps must be an integer >= 1, got {every_n_train_steps}")
        self.path = Path(dirpath) / LAST
        self.every_n_train_steps = int(every_n_train_steps)
        self._saved_step: int | None = None
        self._flush_before_next_batch = False

    def _save(self, trainer: pl.Trainer) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run or trainer.state.fn != "fit":
            return
        flush_loggers(trainer)
        trainer.save_checkpoint(self.path)
        self._saved_step = trainer.global_step
        self._flush_before_next_batch = True

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if self._flush_before_next_batch:
            flush_loggers(trainer)
            self._flush_before_next_batch = False

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        # Once per optimizer step: under gradient accumulation global_step repeats between steps.
        step = trainer.global_step
        if step % self.every_n_train_steps == 0 and step != self._saved_step:
            self._save(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._saved_step != trainer.global_step:
            self._save(trainer)
