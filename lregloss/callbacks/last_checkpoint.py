"""``checkpoints/last.ckpt``: the latest state of a run, which ``resume=<run dir>`` continues from."""

from __future__ import annotations

from pathlib import Path
from time import monotonic

from lregloss.lightning import pl

LAST = "last.ckpt"


def flush_loggers(trainer: pl.Trainer) -> None:
    """Write what the trainer's loggers hold in memory to their files (TensorBoard queues events)."""
    for logger in trainer.loggers:
        flush = getattr(logger.experiment, "flush", None)
        if callable(flush):
            flush()


ACCELERATOR_INTERVAL_S = 60.0  # the default time between mid-epoch saves off the CPU


class LastCheckpoint(pl.callbacks.Checkpoint):
    """Write ``<dirpath>/last.ckpt`` every ``every_n_train_steps`` optimizer steps (or about every
    ``train_time_interval`` seconds), after each validation, and at the end.

    One file, overwritten in place, through Lightning's public ``trainer.save_checkpoint`` (so
    the Trainer's checkpoint plugin writes it: atomically and never with non-finite weights,
    see `lregloss.app.checkpointing`). Saving in mid-epoch is what lets a killed run lose at most
    ``every_n_train_steps`` steps; saving again after validation records early stopping's and
    the best checkpoint's state for that epoch (Lightning runs `Checkpoint` callbacks after
    the others). Nothing is saved when training fails, so a diverged run keeps its last good
    file; nothing outside fitting, in the sanity check or in a ``fast_dev_run``.

    Time-based saving is for fast steps: on a GPU 100 steps may take a second, and a full
    checkpoint every second would cost more than the training. With ``train_time_interval``
    the first mid-epoch save comes after ``every_n_train_steps`` steps, and at every save the
    interval becomes the number of steps that took ``train_time_interval`` seconds since the
    last one (rank 0's measure, broadcast then: under DDP every rank saves at the same step,
    with one collective per save, not one per step as reading a clock at every step would
    need). ``"auto"`` is `ACCELERATOR_INTERVAL_S` seconds off the CPU and step counting on it.

    The loggers are flushed before each save and again before the next batch (Lightning logs a
    batch's metrics after its ``on_train_batch_end``), so every metric up to the checkpoint is
    on disk when a kill comes: a resumed run then neither misses nor repeats a logged step.

    Args:
        dirpath: the run's checkpoint folder.
        every_n_train_steps: optimizer steps between saves, >= 1 (the start of a time-based run).
        train_time_interval: seconds between mid-epoch saves (> 0), ``"auto"``, or None for
            step counting alone.

    Raises:
        ValueError: ``every_n_train_steps`` is not an integer >= 1, or ``train_time_interval``
            is not None, ``"auto"`` or a number > 0.
    """

    def __init__(
        self, dirpath: str, every_n_train_steps: int = 100, train_time_interval: float | str | None = None
    ) -> None:
        if int(every_n_train_steps) != every_n_train_steps or every_n_train_steps < 1:
            raise ValueError(f"every_n_train_steps must be an integer >= 1, got {every_n_train_steps}")
        if train_time_interval not in (None, "auto"):
            if isinstance(train_time_interval, str) or not train_time_interval > 0:
                raise ValueError(f"train_time_interval must be a number of seconds > 0, 'auto' or None, got {train_time_interval!r}")
        self.path = Path(dirpath) / LAST
        self.every_n_train_steps = int(every_n_train_steps)
        self.train_time_interval = train_time_interval
        self._seconds: float | None = None  # the interval in force, once fitting starts
        self._clock: tuple[float, int] = (0.0, 0)  # (time, step) the steps are timed from
        self._saved_step: int | None = None
        self._flush_before_next_batch = False

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        interval = self.train_time_interval
        if interval == "auto":
            on_cpu = isinstance(trainer.accelerator, pl.accelerators.CPUAccelerator)
            interval = None if on_cpu else ACCELERATOR_INTERVAL_S
        self._seconds = interval
        self._clock = (monotonic(), trainer.global_step)

    def _retime(self, trainer: pl.Trainer) -> None:
        """``every_n_train_steps`` from the steps since the clock started and the seconds they took (rank 0's)."""
        started, first_step = self._clock
        now, steps = monotonic(), trainer.global_step - first_step
        if steps > 0:
            per_step = (now - started) / steps
            self.every_n_train_steps = int(trainer.strategy.broadcast(max(1, round(self._seconds / per_step)), src=0))
        self._clock = (now, trainer.global_step)

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
        if self._seconds is None:
            due = step % self.every_n_train_steps == 0
        else:
            due = step - self._clock[1] >= self.every_n_train_steps
        if due and step != self._saved_step:
            self._save(trainer)
            if self._seconds is not None:
                self._retime(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._saved_step != trainer.global_step:
            self._save(trainer)
