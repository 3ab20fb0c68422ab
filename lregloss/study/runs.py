"""Training runs of a study: composed from conf/ and trained in-process, as scripts/train.py would; read back."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from lregloss.app.checkpointing import load_checkpoint
from lregloss.module import RegularizedLossModule
from lregloss.reporting.jobs import Job, load_job
from lregloss.app.train import build_module, train

# Every study run: no progress bar (the study prints one line per run), Lightning's notices to the run's log.
QUIET = ("~callbacks.rich_progress_bar", "+trainer.enable_progress_bar=false")
LOG_FILE = "train.log"
LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric")


def compose_config(conf_dir: Path, overrides: Sequence[str], output_dir: Path) -> DictConfig:
    """``conf/train.yaml`` with ``overrides``, as the entry point composes it, writing into ``output_dir``."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir.resolve()), version_base="1.3"):
            return compose(config_name="train", overrides=[*overrides, *QUIET, f"paths.output_dir={output_dir}"])
    finally:
        GlobalHydra.instance().clear()


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send what a run prints (Lightning's result tables, warnings, notices) to ``path`` instead of the console."""
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    with open(path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        for logger in loggers:
            logger.setLevel(logging.WARNING)  # their handlers hold the real stderr, which redirecting misses
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def train_run(conf_dir: Path, overrides: Sequence[str], folder: Path) -> Job:
    """Train ``overrides`` into ``folder`` with `lregloss.app.train.train` and read back what the run wrote.

    Raises:
        RuntimeError: the run wrote no results.json; the message points at its log.
    """
    folder.mkdir(parents=True, exist_ok=True)
    cfg = compose_config(conf_dir, overrides, folder)
    with output_to(folder / LOG_FILE):
        train(cfg)
    job = load_job(folder, folder.name)
    if job.results is None:
        raise RuntimeError(f"run {folder} wrote no results.json; see {folder / LOG_FILE}")
    return job


def best_checkpoint(folder: Path) -> Path:
    """The checkpoint of the best validation epoch (``model_checkpoint`` keeps exactly one).

    Raises:
        FileNotFoundError: the run kept none.
    """
    found = sorted((folder / "checkpoints").glob("epoch*.ckpt"))
    if not found:
        raise FileNotFoundError(f"no best checkpoint (checkpoints/epoch*.ckpt) in {folder}")
    return found[-1]


def set_up_data(job: Job):
    """The run's data module, built from its config and set up (every split)."""
    datamodule = instantiate(job.config.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def trained_module(job: Job, datamodule) -> RegularizedLossModule:
    """The run's module, built from its config for ``datamodule`` (set up), with its best checkpoint's weights
    and, where the run fitted one, its temperature (``module.scale``)."""
    module: RegularizedLossModule = build_module(job.config, datamodule.task, datamodule.input_size)
    checkpoint = load_checkpoint(best_checkpoint(job.folder))
    module.load_state_dict(checkpoint["state_dict"])
    module.on_load_checkpoint(checkpoint)
    return module.eval()


def best_weights(job: Job, name: str) -> torch.Tensor:
    """The parameter ``name`` (``model.table.weight``) of the run's best checkpoint."""
    return load_checkpoint(best_checkpoint(job.folder))["state_dict"][name]
