"""An epoch of ``RegularizedLossModule`` against a bare LightningModule and a plain loop.

All three train the same MLP with softmax cross-entropy and plain SGD on the same
in-memory synthetic data, through the same ``DataLoader`` (shuffled, batch 256):

- ``RegularizedLossModule``: ``SoftmaxCrossEntropy``, ``NoRegularizer`` (what
  ``reg=none`` builds), logging ``train/data_loss`` every step and the penalty on logging
  steps, as in training;
- a bare LightningModule: ``F.cross_entropy`` in ``training_step``, nothing logged;
- the bare LightningModule with ``Regularization(L2(5e-4))`` (a user's own module with the
  callback), against the bare one with the same penalty added to its loss (autograd);
- a plain PyTorch loop: ``zero_grad``, forward, backward, ``step``.

The Lightning variants run under ``Trainer(logger=False, enable_checkpointing=False,
enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=10)`` without
validation; each fit runs ``EPOCHS_PER_FIT`` epochs and a callback times each, so building
the Trainer stays out of the measurement. The first epoch of each fit is dropped (it
includes Lightning's set-up hooks); a sample is the mean of the others.

Two nets: the issue's MLP (3072-1024-1024-10), where compute dominates, and a small one
(64-256-10), where per-step framework overhead shows.

    python -m benchmarks.module_epoch [--tiny]
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import time
import warnings
from collections.abc import Callable
from functools import partial

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from lregloss.benchmarking.device import synchronizer
from benchmarks.report import run_standalone
from lregloss.benchmarking.timing import Measured, Table, no_synchronize, time_variants
from lregloss.callbacks import Regularization
from lregloss.losses import SoftmaxCrossEntropy
from lregloss.models import MLP
from lregloss.module import RegularizedLossModule
from lregloss.regularizers import L2, NoRegularizer, Regularizer
from lregloss.tasks import Task

BATCH = 256
LR = 0.01
EPOCHS_PER_FIT = 3
LOG_EVERY_N_STEPS = 10  # as conf/trainer/default.yaml: the module computes penalties on these steps
TARGET = 1.05  # RegularizedLossModule <= 1.05x of the bare LightningModule
L2_STRENGTH = 5e-4


class BareModule(pl.LightningModule):
    """The least a LightningModule needs: a net, cross-entropy, an optimizer (and, for the reference, a penalty in the loss)."""

    def __init__(self, model: nn.Module, penalty: Regularizer | None = None) -> None:
        super().__init__()
        self.model = model
        self.penalty = [] if penalty is None else [penalty]  # a list: not a submodule

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        inputs, target = batch
        loss = F.cross_entropy(self.model(inputs), target)
        return loss + self.penalty[0](self) if self.penalty else loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=LR)


class EpochTimer(pl.Callback):
    """Wall time of each training epoch, up to the end of its last kernel (``synchronize``)."""

    def __init__(self, synchronize: Callable[[], None] = no_synchronize) -> None:
        self.seconds: list[float] = []
        self._start = 0.0
        self._synchronize = synchronize

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._synchronize()
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._synchronize()
        self.seconds.append(time.perf_counter() - self._start)


@contextlib.contextmanager
def quiet_lightning():
    """Lightning's per-fit banners and its few-workers warning, silenced for the duration."""
    loggers = [logging.getLogger(name) for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def after_first(seconds: list[float]) -> Measured:
    return Measured(statistics.mean(seconds[1:]) if len(seconds) > 1 else seconds[0])


def make_mlp(sizes: tuple[int, ...]) -> nn.Module:
    torch.manual_seed(0)
    return MLP(sizes[0], sizes[-1], hidden_sizes=sizes[1:-1])


def lightning_fit(make_module, loader: DataLoader, epochs: int, device: torch.device, make_callbacks=list):
    def run() -> Measured:
        timer = EpochTimer(synchronizer(device))
        trainer = pl.Trainer(
            accelerator=device.type, devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, callbacks=[*make_callbacks(), timer],
            num_sanity_val_steps=0, limit_val_batches=0,
            log_every_n_steps=LOG_EVERY_N_STEPS,
        )  # fmt: skip
        trainer.fit(make_module(), train_dataloaders=loader)
        return after_first(timer.seconds)

    return run


def plain_loop(sizes: tuple[int, ...], loader: DataLoader, epochs: int, device: torch.device):
    def run() -> Measured:
        model = make_mlp(sizes).to(device)
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=LR)
        synchronize = synchronizer(device)
        seconds = []
        for _ in range(epochs):
            synchronize()
            start = time.perf_counter()
            for inputs, target in loader:
                inputs, target = inputs.to(device), target.to(device)
                optimizer.zero_grad()
                F.cross_entropy(model(inputs), target).backward()
                optimizer.step()
            synchronize()
            seconds.append(time.perf_counter() - start)
        return after_first(seconds)

    return run


def epoch_table(
    sizes: tuple[int, ...],
    samples: int,
    epochs: int,
    repeats: int,
    batch: int = BATCH,
    target_ratio: float | None = TARGET,
    device: torch.device = torch.device("cpu"),
) -> Table:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(samples, sizes[0], generator=generator)
    labels = torch.randint(0, sizes[-1], (samples,), generator=generator)
    loader = DataLoader(TensorDataset(inputs, labels), batch_size=batch, shuffle=True)
    task = Task("multiclass", sizes[-1])

    def regularized() -> RegularizedLossModule:
        return RegularizedLossModule(
            make_mlp(sizes), SoftmaxCrossEntropy(), task, partial(torch.optim.SGD, lr=LR),
            regularizers={"reg": NoRegularizer()},
        )  # fmt: skip

    with quiet_lightning():
        timings = time_variants(
            {
                "bare LightningModule": lightning_fit(lambda: BareModule(make_mlp(sizes)), loader, epochs, device),
                "RegularizedLossModule": lightning_fit(regularized, loader, epochs, device),
                "bare LightningModule + Regularization(L2)": lightning_fit(
                    lambda: BareModule(make_mlp(sizes)), loader, epochs, device, lambda: [Regularization(L2(L2_STRENGTH))]
                ),
                "bare LightningModule, L2 in its loss": lightning_fit(
                    lambda: BareModule(make_mlp(sizes), L2(L2_STRENGTH)), loader, epochs, device
                ),
                "plain PyTorch loop": plain_loop(sizes, loader, epochs, device),
            },
            repeats=repeats,
            warmup=1,
        )
    steps = len(loader)
    table = Table(
        f"One training epoch, MLP {'-'.join(map(str, sizes))}",
        f"{samples} samples, batch {batch} ({steps} steps), SGD lr {LR}, softmax cross-entropy, no "
        f"regularizer, progress bar and logger off, no validation; a sample is the mean epoch of a "
        f"{epochs}-epoch fit after its first; {repeats} rounds.",
        unit="s" if timings["plain PyTorch loop"].median > 1 else "ms",
    )
    bare = timings["bare LightningModule"]
    table.add("RegularizedLossModule", timings["RegularizedLossModule"], bare, target_ratio)
    callback = timings["bare LightningModule + Regularization(L2)"]
    table.add("bare LightningModule + Regularization(L2)", callback, bare)
    table.add("bare LightningModule + Regularization(L2), against L2 in its loss", callback,
              timings["bare LightningModule, L2 in its loss"])  # fmt: skip
    table.add("plain PyTorch loop", timings["plain PyTorch loop"], bare)
    loop = timings["plain PyTorch loop"]
    table.add("RegularizedLossModule, against the loop", timings["RegularizedLossModule"], loop)
    per_step = (timings["RegularizedLossModule"].median - bare.median) / steps
    table.notes.append(
        f"RegularizedLossModule minus bare LightningModule: {per_step * 1e3:+.3f} ms per step (medians)."
    )
    return table


def run(tiny: bool = False, device: torch.device = torch.device("cpu")) -> list[Table]:
    """The issue's MLP and a small one (``tiny``: toy sizes, 2 epochs, 2 rounds)."""
    if tiny:
        return [epoch_table((16, 8, 4), samples=4 * 32, epochs=2, repeats=2, batch=32, target_ratio=None, device=device)]
    return [
        epoch_table((3072, 1024, 1024, 10), samples=32 * BATCH, epochs=EPOCHS_PER_FIT, repeats=5, device=device),
        epoch_table((64, 256, 10), samples=64 * BATCH, epochs=EPOCHS_PER_FIT, repeats=8, device=device),
    ]


if __name__ == "__main__":
    run_standalone(run, __doc__)
