"""Build a run from a composed Hydra config, fit it, test it, and record what it reached."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger

from lregloss.losses import Loss
from lregloss.module import RegularizedLossModule
from lregloss.tasks import Task

log = logging.getLogger(__name__)
warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # Lightning's own use of a torch deprecation

GROUPS = ("data", "model", "loss", "reg", "optimizer", "scheduler")
# Errors that mean "the configuration or the data is wrong": reported in one line, no traceback.
USER_ERRORS = (ValueError, FileNotFoundError, InstantiationException)


def config_group_targets(group: str) -> dict[str, type]:
    """Choice name -> ``_target_`` class of every option of a config group (empty outside Hydra)."""
    hydra = GlobalHydra.instance()
    if not hydra.is_initialized():
        return {}
    loader = hydra.config_loader()
    targets = {}
    for option in loader.get_group_options(group):
        result = loader.repository.load_config(f"{group}/{option}")
        target = result.config.get("_target_") if result is not None else None
        if target:
            targets[option] = get_class(target)
    return targets


def check_loss_fits(loss_config: DictConfig, task: Task) -> None:
    """Fail before building anything when the chosen loss cannot learn the data's task.

    Raises:
        LossTaskMismatchError: listing the ``loss=`` choices that fit.
    """
    loss_class: type[Loss] = get_class(loss_config._target_)
    loss_class.check_task(task, config_group_targets("loss") or None)


def instantiate_entries(config: DictConfig | None) -> list[Any]:
    """Instantiate each named entry of a dict-of-configs group (callbacks, loggers)."""
    if not config:
        return []
    return [instantiate(entry) for entry in config.values() if entry is not None and "_target_" in entry]


def build_module(cfg: DictConfig, task: Task, input_size: int) -> RegularizedLossModule:
    """The LightningModule of ``cfg`` for a data set with ``task`` and ``input_size``."""
    check_loss_fits(cfg.loss, task)
    loss = instantiate(cfg.loss)
    model = instantiate(cfg.model)(input_size=input_size, num_outputs=loss.num_outputs(task))
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    return RegularizedLossModule(
        model=model,
        loss=loss,
        task=task,
        optimizer=instantiate(cfg.optimizer),
        scheduler=scheduler,
        regularizers={"reg": instantiate(cfg.reg)},
        level_decoding=cfg.level_decoding,
    )


def hyperparameters(cfg: DictConfig) -> dict[str, Any]:
    """The knobs a comparison varies, flat and TensorBoard-safe (None becomes 'none')."""
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    picked: dict[str, Any] = {group: choices.get(group, cfg[group].get("_target_", "none")) for group in GROUPS}
    picked["seed"] = cfg.seed
    for group in GROUPS:
        for key, value in (cfg.get(group) or {}).items():
            if not key.startswith("_") and (value is None or isinstance(value, (bool, int, float, str))):
                picked[f"{group}.{key}"] = value
    max_norm = OmegaConf.select(cfg, "callbacks.max_norm.max_norm")
    picked["max_norm"] = max_norm
    return {key: "none" if value is None else value for key, value in picked.items()}


def final_metrics(results: list[dict[str, float]]) -> dict[str, float]:
    """Merge Lightning's validate/test result dicts into one flat dict of floats."""
    merged: dict[str, float] = {}
    for result in results:
        merged.update({key: float(value) for key, value in result.items()})
    return merged


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the configured module, evaluate its best checkpoint, and return the final metrics.

    Writes into the job's folder: ``config.yaml`` (resolved), TensorBoard events (with the
    HPARAMS table), checkpoints, and ``results.json``.
    """
    started = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    module = build_module(cfg, datamodule.task, datamodule.input_size)
    loggers: list[Logger] = instantiate_entries(cfg.get("logger"))
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=instantiate_entries(cfg.get("callbacks")), logger=loggers or False)

    trainer.fit(module, datamodule=datamodule)
    checkpoint = "best" if trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path else None
    results = trainer.validate(module, datamodule=datamodule, ckpt_path=checkpoint, verbose=False)
    if cfg.get("test"):
        results += trainer.test(module, datamodule=datamodule, ckpt_path=checkpoint)
    metrics = final_metrics(results)
    metrics["wall_time_s"] = time.perf_counter() - started
    metrics["epochs"] = trainer.current_epoch
    for logger in loggers:
        logger.log_hyperparams(hyperparameters(cfg), {f"hp/{key}": value for key, value in metrics.items()})
        logger.finalize("success")
    (output_dir / "results.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    log.info("final metrics: %s", ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())))
    return metrics


def monitored_value(cfg: DictConfig, metrics: dict[str, float]) -> float:
    """The recipe's validation metric, returned to Hydra sweepers (NaN where missing)."""
    return metrics.get(cfg.monitor.metric, math.nan)


def run(cfg: DictConfig) -> float:
    """The command-line job: train, report a user error in one line and exit 2, return the metric.

    Set ``HYDRA_FULL_ERROR=1`` for the full traceback instead.
    """
    try:
        metrics = train(cfg)
    except USER_ERRORS as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("%s (set HYDRA_FULL_ERROR=1 for the traceback)", error)
        sys.exit(2)
    return monitored_value(cfg, metrics)
