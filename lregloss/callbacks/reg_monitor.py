"""Watch what regularization does to the weights: norms, largest unit norm, exact zeros."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lregloss.lightning import pl
from lregloss.regularizers.selection import select_parameters


@torch.no_grad()
def weight_statistics(named_weights: Sequence[tuple[str, Tensor]]) -> dict[str, float]:
    """Per-weight and overall statistics, tagged for TensorBoard.

    For each weight W (rows = units' incoming weight vectors, dim 0):
    ``weights/<name>/norm`` = ||W||_2, ``weights/<name>/max_unit_norm`` = max_i ||W_i||_2,
    ``weights/<name>/zero_fraction`` = share of entries exactly 0; and over all of them
    ``weights/zero_fraction`` and ``weights/max_unit_norm``.
    """
    stats: dict[str, float] = {}
    zeros = total = 0
    largest = 0.0
    for name, weight in named_weights:
        unit_norm = weight.flatten(1).norm(dim=1).max().item()
        weight_zeros = int((weight == 0).sum())
        stats[f"weights/{name}/norm"] = weight.norm().item()
        stats[f"weights/{name}/max_unit_norm"] = unit_norm
        stats[f"weights/{name}/zero_fraction"] = weight_zeros / weight.numel()
        zeros += weight_zeros
        total += weight.numel()
        largest = max(largest, unit_norm)
    if total:
        stats["weights/zero_fraction"] = zeros / total
        stats["weights/max_unit_norm"] = largest
    return stats


class RegularizationMonitor(pl.Callback):
    """Log weight statistics (see `weight_statistics`) and histograms every N optimizer steps.

    Watches the weights a regularizer selects by default (dimension >= 2, no biases or
    normalisation parameters), plus those named by ``include``.

    Args:
        every_n_steps: how often to log, in optimizer steps (>= 1).
        histograms: also write weight histograms to TensorBoard loggers.
        include: glob patterns of parameter names to watch instead of the default rule.
    """

    def __init__(self, every_n_steps: int = 50, histograms: bool = True, include: Sequence[str] | None = None) -> None:
        if int(every_n_steps) != every_n_steps or every_n_steps < 1:
            raise ValueError(f"every_n_steps must be an integer >= 1, got {every_n_steps}")
        self.every_n_steps = int(every_n_steps)
        self.histograms = histograms
        self.include = include
        self._watched: list[tuple[str, nn.Parameter]] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        chosen = {id(p) for p in select_parameters(pl_module, self.include)}
        self._watched = [(name, p) for name, p in pl_module.named_parameters() if id(p) in chosen]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # A resumed run starts at its checkpoint's step, whose statistics the killed run logged
        # and TensorBoard's purge_step then dropped: log them again from the restored weights.
        if trainer.global_step > 0:
            self._log(trainer)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        self._log(trainer)

    def _log(self, trainer: pl.Trainer) -> None:
        step = trainer.global_step
        if step % self.every_n_steps or not trainer.loggers or not trainer.is_global_zero:
            return
        stats = weight_statistics(self._watched)
        for logger in trainer.loggers:
            logger.log_metrics(stats, step=step)
            if self.histograms and isinstance(logger, pl.loggers.TensorBoardLogger):
                for name, weight in self._watched:
                    logger.experiment.add_histogram(f"weights/{name}", weight, step)
