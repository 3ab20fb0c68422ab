"""The CIFAR-10 recipe's training and evaluation speed, in images/s, against a plain PyTorch loop.

All variants train the network of ``experiment=cifar10_cpu`` (`AirbenchNet`, widths
32/64/128, channels-last) with SGD (nesterov, momentum 0.85, lr 0.4) on the same batches of
``CIFAR10DataModule`` (batch 256, translate 2 + flip on whole batches, normalised):

- a plain PyTorch loop: the data module's loader and ``model_inputs``, ``F.cross_entropy``,
  ``zero_grad``, ``backward``, ``step``; the compact script the recipe must keep up with;
- ``RegularizedLossModule`` through a ``Trainer`` (softmax, no regularizer, logger and
  progress bar off);
- the same as the recipe runs it: L2 (5e-4), TensorBoard logger, Rich progress bar, learning
  rate and regularization monitors, ``last.ckpt`` every 100 steps.

Each Lightning fit runs ``EPOCHS_PER_FIT`` epochs of ``BATCHES`` batches; the first epoch of
every fit (and of the loop) is dropped. Evaluation: the module's ``trainer.validate`` against
an ``inference_mode`` loop over the same validation batches (single view, no flip
averaging). The data is the real CIFAR-10 where `find_cifar10` finds it, else random images
written in the official format to a temporary folder (same speed: the pixels do not matter).

    python -m benchmarks.cifar_epoch [--tiny]
"""

from __future__ import annotations

import contextlib
import itertools
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import LearningRateMonitor, RichProgressBar
from pytorch_lightning.loggers import TensorBoardLogger

from lregloss.benchmarking.device import synchronizer
from benchmarks.module_epoch import EpochTimer, after_first, quiet_lightning
from benchmarks.report import run_standalone
from lregloss.benchmarking.timing import Measured, Table, time_variants
from lregloss.callbacks import LastCheckpoint, RegularizationMonitor
from lregloss.data.cifar10 import CIFAR10DataModule
from lregloss.data.cifar10_files import FOLDER_NAME, CIFAR10Arrays, default_root, missing_files, write_cifar10
from lregloss.losses import SoftmaxCrossEntropy
from lregloss.models.cifar import AirbenchNet
from lregloss.module import RegularizedLossModule
from lregloss.regularizers import L2, NoRegularizer

SHARED_COPY = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
BATCH = 256
BATCHES = 30  # training batches per epoch: 7,680 images, ~5 s on 2 cores
GPU_BATCHES = 150  # ~2 s on one GPU
EPOCHS_PER_FIT = 2
VAL_SIZE = 5000  # the recipe's validation split
WIDTHS = (32, 64, 128)  # experiment=cifar10_cpu
GPU_WIDTHS = (64, 256, 256)  # airbench94's width, in bf16 as experiment=cifar10 trains (which uses 128/384/384)
OPTIMIZER = partial(torch.optim.SGD, lr=0.4, momentum=0.85, nesterov=True)
TARGET = 1.05  # the recipe trains within 5% of the plain loop's time


def find_cifar10() -> Path | None:
    """A root holding ``cifar-10-batches-py``: the default data folder, or the shared copy."""
    for root in (default_root(), SHARED_COPY):
        if not missing_files(root / FOLDER_NAME):
            return root
    return None


def synthetic_root(folder: Path, images: int) -> Path:
    """Random images of 10 classes in the official format, ``images`` for training and 1,000 for test."""
    generator = torch.Generator().manual_seed(0)

    def draw(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
        return pixels, torch.arange(count) % 10

    names = tuple(f"class {index}" for index in range(10))
    write_cifar10(folder / FOLDER_NAME, CIFAR10Arrays(*draw(images), *draw(1000), names))
    return folder


def make_model(widths: tuple[int, ...]) -> AirbenchNet:
    torch.manual_seed(0)
    return AirbenchNet(3, 10, widths=widths)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on a GPU (the Trainer's ``precision="bf16-mixed"``), float32 on CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def plain_loop(data: CIFAR10DataModule, widths: tuple[int, ...], batches: int, epochs: int, device: torch.device):
    def run() -> Measured:
        model = make_model(widths).to(device)
        optimizer = OPTIMIZER(model.parameters())
        loader = data.train_dataloader()
        synchronize = synchronizer(device)
        seconds = []
        for epoch in range(epochs):
            loader.sampler.set_epoch(epoch)
            synchronize()
            start = time.perf_counter()
            for images, labels in itertools.islice(loader, batches):
                images, labels = images.to(device), labels.to(device)
                with autocast(device):
                    loss = F.cross_entropy(model(data.model_inputs(images, augment=True)), labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            synchronize()
            seconds.append(time.perf_counter() - start)
        return after_first(seconds)

    return run


def trainer_device(device: torch.device) -> dict[str, object]:
    """The Trainer arguments that run on ``device`` as the recipe for it does."""
    if device.type == "cuda":
        return {"accelerator": "gpu", "devices": 1, "precision": "bf16-mixed"}
    return {"accelerator": "cpu", "devices": 1}


def module_fit(
    data: CIFAR10DataModule, widths: tuple[int, ...], batches: int, epochs: int, as_recipe: bool, device: torch.device
):
    def run() -> Measured:
        timer = EpochTimer(synchronizer(device))
        with tempfile.TemporaryDirectory() as folder:
            callbacks: list[pl.Callback] = [timer]
            if as_recipe:
                callbacks += [
                    RichProgressBar(),
                    LearningRateMonitor(logging_interval="step"),
                    RegularizationMonitor(every_n_steps=50),
                    LastCheckpoint(dirpath=folder, every_n_train_steps=100),
                ]
            trainer = pl.Trainer(
                **trainer_device(device), max_epochs=epochs, limit_train_batches=batches, limit_val_batches=0,
                num_sanity_val_steps=0, enable_checkpointing=as_recipe, enable_model_summary=False,
                enable_progress_bar=as_recipe, callbacks=callbacks, log_every_n_steps=20,
                logger=TensorBoardLogger(folder, name="tensorboard") if as_recipe else False,
            )  # fmt: skip
            module = RegularizedLossModule(
                make_model(widths), SoftmaxCrossEntropy(), data.task, OPTIMIZER,
                regularizers={"reg": L2(5e-4) if as_recipe else NoRegularizer()},
            )  # fmt: skip
            trainer.fit(module, datamodule=data)
        return after_first(timer.seconds)

    return run


class EvaluationTimer(pl.Callback):
    """Wall time of the validation epoch, up to the end of its last kernel."""

    def __init__(self, synchronize: Callable[[], None]) -> None:
        self.seconds = 0.0
        self._start = 0.0
        self._synchronize = synchronize

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._synchronize()
        self._start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._synchronize()
        self.seconds = time.perf_counter() - self._start


def module_validate(data: CIFAR10DataModule, widths: tuple[int, ...], device: torch.device):
    module = RegularizedLossModule(make_model(widths), SoftmaxCrossEntropy(), data.task, OPTIMIZER)

    def run() -> Measured:
        timer = EvaluationTimer(synchronizer(device))
        trainer = pl.Trainer(
            **trainer_device(device), logger=False, enable_checkpointing=False, enable_model_summary=False,
            enable_progress_bar=False, callbacks=[timer],
        )  # fmt: skip
        trainer.validate(module, datamodule=data, verbose=False)
        return Measured(timer.seconds)

    return run


def plain_evaluation(data: CIFAR10DataModule, widths: tuple[int, ...], device: torch.device):
    model = make_model(widths).to(device).eval()

    def run() -> None:
        with torch.inference_mode(), autocast(device):
            for images, labels in data.val_dataloader():
                images, labels = images.to(device), labels.to(device)
                model(data.model_inputs(images, augment=False)).argmax(1).eq(labels).sum()

    return run


def cifar_tables(
    root: Path,
    widths: tuple[int, ...],
    batches: int,
    batch: int,
    repeats: int,
    source: str,
    target: float | None = TARGET,
    device: torch.device = torch.device("cpu"),
) -> list[Table]:
    data = CIFAR10DataModule(root=str(root), download=False, batch_size=batch, eval_batch_size=1024, val_size=VAL_SIZE if batches > 4 else 10)
    data.setup("fit")
    with quiet_lightning():
        training = time_variants(
            {
                "plain PyTorch loop": plain_loop(data, widths, batches, EPOCHS_PER_FIT, device),
                "RegularizedLossModule": module_fit(data, widths, batches, EPOCHS_PER_FIT, False, device),
                "RegularizedLossModule, as the recipe": module_fit(data, widths, batches, EPOCHS_PER_FIT, True, device),
            },
            repeats=repeats,
            warmup=0,
        )
        evaluation = time_variants(
            {
                "plain inference loop": plain_evaluation(data, widths, device),
                "trainer.validate": module_validate(data, widths, device),
            },
            repeats=repeats,
            warmup=1,
        )
    images = batches * batch
    val_images = len(data.datasets["val"])
    train_table = Table(
        f"CIFAR-10 training epoch, AirbenchNet {'/'.join(map(str, widths))}",
        f"{source}; {batches} batches of {batch} ({images} images) per epoch, augmentation on whole batches, "
        f"SGD nesterov; a sample is the mean epoch of a {EPOCHS_PER_FIT}-epoch fit after its first; {repeats} rounds.",
        unit="s",
    )
    loop = training["plain PyTorch loop"]
    train_table.add("RegularizedLossModule", training["RegularizedLossModule"], loop, target)
    train_table.add("RegularizedLossModule, as the recipe", training["RegularizedLossModule, as the recipe"], loop, target)
    train_table.notes.append(
        "Training images/s (medians): "
        + ", ".join(f"{name} {images / timing.median:,.0f}" for name, timing in training.items())
        + "."
    )
    eval_table = Table(
        f"CIFAR-10 evaluation, AirbenchNet {'/'.join(map(str, widths))}",
        f"{source}; {val_images} validation images in batches of 1024, one view (no flip averaging); {repeats} rounds.",
        unit="s",
    )
    eval_table.add("trainer.validate", evaluation["trainer.validate"], evaluation["plain inference loop"])
    eval_table.notes.append(
        "Evaluation images/s (medians): "
        + ", ".join(f"{name} {val_images / timing.median:,.0f}" for name, timing in evaluation.items())
        + "."
    )
    return [train_table, eval_table]


def run(tiny: bool = False, device: torch.device = torch.device("cpu")) -> list[Table]:
    """Full: real data where found, 30 batches of 256 (150 on a GPU, with the GPU recipe's net);
    ``tiny``: 2 batches of 16 of a narrow net."""
    with tempfile.TemporaryDirectory() as folder:
        if tiny:
            root = synthetic_root(Path(folder), 200)
            return cifar_tables(root, (4, 8, 8), batches=2, batch=16, repeats=1, source="random images", target=None,
                                device=device)  # fmt: skip
        gpu = device.type == "cuda"
        batches = GPU_BATCHES if gpu else BATCHES
        root = find_cifar10()
        source = f"CIFAR-10 from {root}" if root else "random images in the CIFAR-10 format"
        root = root or synthetic_root(Path(folder), batches * BATCH + VAL_SIZE)
        return cifar_tables(root, GPU_WIDTHS if gpu else WIDTHS, batches, BATCH, repeats=3, source=source, device=device)


if __name__ == "__main__":
    run_standalone(run, __doc__)
