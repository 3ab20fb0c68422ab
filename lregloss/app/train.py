"""Build a run from a composed Hydra config, fit it, test it, and record what it reached; ``lregloss-train``.

``main`` is the command line, installed as ``lregloss-train`` (and ``python -m lregloss``,
``scripts/train.py``): it composes ``train.yaml`` from the configs the package carries
(``pkg://lregloss.conf``) and writes runs below ``./logs`` of the current directory.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import Logger, TensorBoardLogger

from lregloss import lightning
from lregloss.app.checkpointing import checkpoint_step, last_checkpoint
from lregloss.app.distributed import distributed_job, is_global_zero
from lregloss.app.error_reporting import USER_ERRORS, ConfigError, config_key, innermost, one_line
from lregloss.app.hydra_callbacks import ERROR_FILE
from lregloss.app.resume import resumed_config
from lregloss.callbacks import TemperatureScaling, TrainingThroughput
from lregloss.data.checks import check_first_batches
from lregloss.losses import Loss
from lregloss.module import DivergenceError, RegularizedLossModule
from lregloss.tasks import Task, TaskKind
from lregloss.validation import check_positive, writable_folder_problem

log = logging.getLogger(__name__)
warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # Lightning's own use of a torch deprecation

GROUPS = ("data", "model", "loss", "reg", "optimizer", "scheduler")
# Exit statuses of a single run: a config, data or output-folder problem; a diverged training.
EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3


def config_group_targets(group: str) -> dict[str, type]:
    """Choice name -> ``_target_`` class of every option of a config group (empty outside Hydra).

    The options include those of the search path the main config adds (``conf/pluggable``);
    each is composed once, so this is for error messages, not for every run.
    """
    if not HydraConfig.initialized():
        return {}
    config_name = HydraConfig.get().job.config_name
    targets = {}
    for option in GlobalHydra.instance().config_loader().get_group_options(group, config_name=config_name):
        target = compose(config_name=config_name, overrides=[f"{group}={option}"])[group].get("_target_")
        if target:
            targets[option] = get_class(target)
    return targets


def check_loss_fits(loss_config: DictConfig, task: Task) -> None:
    """Fail before building anything when the chosen loss cannot learn the data's task.

    Raises:
        LossTaskMismatchError: listing the ``loss=`` choices that fit.
    """
    loss_class: type[Loss] = get_class(loss_config._target_)
    if task.kind not in loss_class.tasks:
        loss_class.check_task(task, config_group_targets("loss") or None)


def instantiate_entries(config: DictConfig | None, group: str = "", **extra: Any) -> list[Any]:
    """Instantiate each named entry of a dict-of-configs group (callbacks, loggers).

    A bad argument raises a ConfigError naming ``<group>.<entry>.<argument>``.
    """
    if not config:
        return []
    entries = []
    for name, entry in config.items():
        if entry is not None and "_target_" in entry:
            with config_key(f"{group}.{name}" if group else str(name), entry):
                entries.append(instantiate(entry, **extra))
    return entries


def instantiate_loggers(config: DictConfig | None, purge_step: int | None = None) -> list[Logger]:
    """The loggers of the ``logger`` group; TensorBoard ones hide events from ``purge_step`` on.

    A resumed run replays the steps after its checkpoint; TensorBoard's ``purge_step`` drops
    the killed run's events for those steps, so the history has neither gap nor duplicate.
    """
    loggers = []
    for name, entry in (config or {}).items():
        if entry is None or "_target_" not in entry:
            continue
        extra = {}
        if purge_step is not None and issubclass(get_class(entry._target_), TensorBoardLogger):
            extra["purge_step"] = purge_step
        with config_key(f"logger.{name}", entry):
            loggers.append(instantiate(entry, **extra))
    return loggers


def check_optimizer(config: DictConfig, parameters: list[torch.nn.Parameter]) -> None:
    """Build the optimizer once, so that a bad argument fails before training, and require ``lr`` > 0.

    torch itself accepts ``lr=0`` (and an infinite one), which trains nothing.
    """
    with config_key("optimizer", config):
        if config.get("lr") is not None:
            check_positive("lr", config.lr)
        instantiate(config)(parameters)


def task_sized_arguments(loss_config: DictConfig, task: Task) -> dict[str, Any]:
    """The arguments a loss config leaves to the data: ``num_classes: null`` and ``class_counts: data``.

    ``num_classes`` becomes the task's number of classes; ``class_counts: data`` the training
    split's label counts, from which hierarchical softmax builds its Huffman tree.

    Raises:
        ConfigError: the data module gives no class counts for its task.
    """
    arguments: dict[str, Any] = {}
    if "num_classes" in loss_config and loss_config.num_classes is None:
        arguments["num_classes"] = task.size
    if loss_config.get("class_counts") != "data":
        return arguments
    if task.class_counts is None:
        raise ConfigError(
            "loss.class_counts=data: this data module gives no training label counts; "
            "pass the counts as a list (loss.class_counts=[...]) or null for a balanced tree"
        )
    return {**arguments, "class_counts": list(task.class_counts)}


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's


def build_module(cfg: DictConfig, task: Task, input_size: int) -> RegularizedLossModule:
    """The LightningModule of ``cfg`` for a data set with ``task`` and ``input_size``.

    Raises:
        LossTaskMismatchError: the loss does not fit ``task``; the message lists those that do.
        ConfigError: a config value out of range; the message names its key (``loss.margin``).
    """
    check_loss_fits(cfg.loss, task)
    with config_key("loss", cfg.loss):
        loss_arguments = task_sized_arguments(cfg.loss, task)
        # Called with the task's arguments rather than handing them to instantiate, which would wrap
        # every one of C class counts in an OmegaConf node (seconds for a 13,642-word vocabulary).
        loss = instantiate(cfg.loss, _partial_=True)(**loss_arguments)
    with config_key("model", cfg.model):
        model = instantiate(cfg.model)(input_size=input_size, num_outputs=loss.num_outputs(task))
    if cfg.get("compile"):
        mode = "default" if cfg.compile is True else str(cfg.compile)
        if mode not in COMPILE_MODES:
            raise ConfigError(f"compile={cfg.compile} is not a torch.compile mode; use one of {', '.join(COMPILE_MODES)}, or null")
        model.compile(mode=mode)  # in place: the state dict keeps its keys, checkpoints load into eager models
    check_optimizer(cfg.optimizer, [*model.parameters(), *loss.parameters()])
    scheduler = None
    if cfg.get("scheduler"):
        with config_key("scheduler", cfg.scheduler):
            scheduler = instantiate(cfg.scheduler)
    with config_key("reg", cfg.reg):
        regularizer = instantiate(cfg.reg)
    module = RegularizedLossModule(
        model=model,
        loss=loss,
        task=task,
        optimizer=instantiate(cfg.optimizer),
        scheduler=scheduler,
        regularizers={"reg": regularizer},
        level_decoding=cfg.level_decoding,
        recipe=module_recipe(cfg, task, input_size, loss_arguments),
        divergence_check_interval=cfg.get("divergence_check_interval"),
    )
    if task.kind is TaskKind.ORDINAL:
        rule = str(cfg.level_decoding)
        own = f" ({type(loss).__name__}'s own: {loss.own_level_rule})" if rule == "auto" else ""
        log.info("levels decoded by level_decoding=%s%s", rule, own)
    return module


def module_recipe(cfg: DictConfig, task: Task, input_size: int, loss_arguments: dict[str, Any]) -> dict[str, Any]:
    """The plain configs `RegularizedLossModule.from_recipe` rebuilds the module from (saved in its checkpoints)."""

    def plain(node: DictConfig) -> dict[str, Any]:
        return OmegaConf.to_container(node, resolve=True)

    return {
        "model": plain(cfg.model),
        "loss": {**plain(cfg.loss), **loss_arguments},
        "optimizer": plain(cfg.optimizer),
        "scheduler": plain(cfg.scheduler) if cfg.get("scheduler") else None,
        "regularizers": {"reg": plain(cfg.reg)},
        "task": {
            "kind": task.kind.value,
            "size": task.size,
            "names": None if task.names is None else list(task.names),
            "class_counts": None if task.class_counts is None else [int(count) for count in task.class_counts],
        },
        "input_size": int(input_size),
        "level_decoding": str(cfg.level_decoding),
    }


def group_choices(cfg: DictConfig) -> dict[str, str]:
    """The option picked in each config group: this job's, or for a resumed run its first run's."""
    if cfg.get("resume"):
        first_run = Path(str(cfg.resume), ".hydra", "hydra.yaml")
        if first_run.is_file():
            return dict(OmegaConf.load(first_run).hydra.runtime.choices)
    return dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}


def hyperparameters(cfg: DictConfig) -> dict[str, Any]:
    """The knobs a comparison varies, flat and TensorBoard-safe (None becomes 'none')."""
    choices = group_choices(cfg)
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
    HPARAMS table), checkpoints, and ``results.json``; under DDP (``trainer=ddp``) every rank
    runs this function and rank 0 alone writes them. With ``cfg.resume`` set to a run folder,
    fitting continues from that run's ``checkpoints/last.ckpt`` (``cfg`` is then the config
    to continue with, see `lregloss.app.resume.resumed_config`).

    Everything that can be checked before training is, in this order: the output folder,
    the data (the data module's own checks, then its first batches against its task), every
    config value, the optimizer.

    Raises:
        ConfigError: a config value, the data or the output folder is unusable; the message
            names the key, the file or the folder, and the fix.
        LossTaskMismatchError: the loss does not fit the data's task.
        DivergenceError: the loss, a penalty or the weights became NaN or inf.
    """
    started = time.perf_counter()
    if lightning.PACKAGE != "pytorch_lightning":
        raise ConfigError(
            f"lregloss-train runs on pytorch_lightning, but lregloss is bound to {lightning.PACKAGE} "
            f"({lightning.ENVIRONMENT_VARIABLE}); unset {lightning.ENVIRONMENT_VARIABLE} to run the command line"
        )
    output_dir = Path(cfg.paths.output_dir)
    problem = writable_folder_problem(output_dir)
    if problem:
        raise ConfigError(f"paths.output_dir={output_dir}: {problem}; pass paths.log_dir=<a writable folder>")
    checkpoint = None
    if cfg.get("resume"):
        checkpoint = last_checkpoint(cfg.resume)
        if not checkpoint.is_file():
            raise ConfigError(
                f"resume={cfg.resume}: no checkpoint to continue from (looked for {checkpoint.resolve()})"
            )
    output_dir.mkdir(parents=True, exist_ok=True)
    if is_global_zero():  # under DDP the other ranks run in the same folder and write nothing into it
        (output_dir / ERROR_FILE).unlink(missing_ok=True)  # a resumed job's earlier failure is over
        (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)

    with config_key("data", cfg.data):
        datamodule = instantiate(cfg.data)
        datamodule.prepare_data()
        datamodule.setup("fit")
        check_first_batches(datamodule, datamodule.task)
    if resolve_monitor(cfg, datamodule.task) and is_global_zero():
        (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    module = build_module(cfg, datamodule.task, datamodule.input_size)
    purge_step = checkpoint_step(checkpoint) if checkpoint else None
    loggers: list[Logger] = instantiate_loggers(cfg.get("logger"), purge_step)
    callbacks = instantiate_entries(cfg.get("callbacks"), "callbacks")
    if cfg.get("temperature_scaling"):
        callbacks.append(TemperatureScaling())
    with config_key("trainer", cfg.trainer):
        trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    with distributed_job(trainer):  # under DDP: every rank runs this block; metrics come synchronised
        trainer.fit(module, datamodule=datamodule, ckpt_path=checkpoint)
        throughput = {
            f"train/{c.unit}_per_s": c.run_per_second for c in trainer.callbacks if isinstance(c, TrainingThroughput) and c.run_seconds
        }
        best = next((c.best_model_path for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)), "")
        best = best or None  # None: evaluate the weights as they are
        results = trainer.validate(module, datamodule=datamodule, ckpt_path=best, verbose=False)
        if cfg.get("test"):
            results += trainer.test(module, datamodule=datamodule, ckpt_path=best)
        metrics = final_metrics(results) | throughput
        metrics["wall_time_s"] = time.perf_counter() - started
        metrics["epochs"] = trainer.current_epoch
        for logger in loggers:  # Lightning's loggers write on rank 0 only
            logger.log_hyperparams(hyperparameters(cfg), {f"hp/{key}": value for key, value in metrics.items()})
            logger.finalize("success")
        if trainer.is_global_zero:
            (output_dir / "results.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    log.info("final metrics: %s", ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())))
    return metrics


AUTO = "auto"
TASK_MONITORS = {  # monitor.metric=auto: the validation metric of each task kind, and its direction
    TaskKind.MULTICLASS: ("val/acc", "max"),
    TaskKind.ORDINAL: ("val/acc", "max"),
    TaskKind.MULTILABEL: ("val/hamming", "min"),
    TaskKind.REGRESSION: ("val/rmse", "min"),
}
LOWER_IS_BETTER = ("loss", "mae", "rmse", "hamming", "ece", "rps", "nll", "perplexity")  # monitor.mode=auto: min for these, max otherwise


def resolve_monitor(cfg: DictConfig, task: Task) -> bool:
    """Fill ``monitor.metric`` and ``monitor.mode`` where they are ``auto``; True where one was.

    ``metric=auto`` takes the task's metric (``TASK_MONITORS``: val/acc for classes and
    levels, val/hamming for attributes, val/rmse for real values); ``mode=auto`` minimises a
    metric whose last name part is a loss or an error (``LOWER_IS_BETTER``), maximises others.
    """
    metric, mode = cfg.monitor.metric, cfg.monitor.mode
    if metric == AUTO:
        metric, task_mode = TASK_MONITORS[task.kind]
        mode = task_mode if mode == AUTO else mode
    elif mode == AUTO:
        mode = "min" if metric.rsplit("/", 1)[-1] in LOWER_IS_BETTER else "max"
    changed = (metric, mode) != (cfg.monitor.metric, cfg.monitor.mode)
    cfg.monitor.metric, cfg.monitor.mode = metric, mode
    return changed


def monitored_value(cfg: DictConfig, metrics: dict[str, float]) -> float:
    """The recipe's validation metric, returned to Hydra sweepers (NaN where missing)."""
    return metrics.get(cfg.monitor.metric, math.nan)


def failure_message(cfg: DictConfig, error: BaseException) -> str:
    """One line on a failed job: the error's own message, plus where the last good checkpoint is."""
    message = one_line(str(innermost(error))) or type(error).__name__
    if isinstance(error, DivergenceError):
        checkpoint = last_checkpoint(cfg.paths.output_dir)
        if checkpoint.is_file():
            message = f"{message}; the last good checkpoint is kept: {checkpoint}"
        else:
            message = f"{message}; no checkpoint was written"
    return message


def record_failure(cfg: DictConfig, message: str, details: str = "") -> None:
    """Write a failed sweep job's ``error.txt`` (the one-line message, then any traceback), if it can."""
    try:
        Path(cfg.paths.output_dir, ERROR_FILE).write_text(message + "\n" + details)
    except OSError:
        pass  # the folder itself may be what failed; the message is logged anyway


def is_config_group(key: str) -> bool:
    """True where ``key`` names a config group of the running Hydra app (``loss``, ``reg``, ...), search path included."""
    if not HydraConfig.initialized():
        return False
    loader = GlobalHydra.instance().config_loader()
    return bool(loader.get_group_options(key.replace(".", "/"), config_name=HydraConfig.get().job.config_name))


def run(cfg: DictConfig) -> float:
    """The command-line job: train and return the recipe's metric; report failures in one line.

    A single run exits with status 2 for bad input (config, data, output folder) and 3 for a
    diverged training, after one log line that names the problem and the fix. In a multirun
    a failing job, whatever the error, writes that line (and any traceback) to its
    ``error.txt`` and returns NaN, so the sweep goes on; ``FailedJobsReport`` makes the sweep
    exit non-zero at its end. ``debug=true`` or ``HYDRA_FULL_ERROR=1`` raise instead, with
    the full traceback.
    """
    hydra_config = HydraConfig.get() if HydraConfig.initialized() else None
    multirun = hydra_config is not None and hydra_config.mode == RunMode.MULTIRUN
    show_traceback = bool(cfg.get("debug")) or os.environ.get("HYDRA_FULL_ERROR") == "1"
    try:
        if cfg.get("resume"):
            if multirun:
                raise ConfigError("resume= continues one run; run it without --multirun")
            overrides = list(hydra_config.overrides.task) if hydra_config is not None else []
            cfg = resumed_config(cfg, overrides, is_config_group)
        metrics = train(cfg)
    except (*USER_ERRORS, DivergenceError) as error:
        if show_traceback:
            raise
        message = failure_message(cfg, error)
        log.error("%s (debug=true or HYDRA_FULL_ERROR=1 show the traceback)", message)
        if multirun:
            record_failure(cfg, message)
            return math.nan
        sys.exit(EXIT_DIVERGED if isinstance(error, DivergenceError) else EXIT_USER_ERROR)
    except Exception as error:
        if not multirun or show_traceback:
            raise
        message = failure_message(cfg, error)
        record_failure(cfg, message, traceback.format_exc())
        log.error("job failed: %s (traceback in %s)", message, Path(cfg.paths.output_dir, ERROR_FILE))
        return math.nan
    return monitored_value(cfg, metrics)


CONFIG_PACKAGE = "pkg://lregloss.conf"


@hydra.main(version_base="1.3", config_path=CONFIG_PACKAGE, config_name="train")
def _hydra_main(cfg: DictConfig) -> float:
    return run(cfg)


def main() -> None:
    """Train one configuration, or sweep many with -m: ``lregloss-train loss=hinge reg=l1``.

    Continue a killed run from its checkpoints/last.ckpt, with its own config (overrides given
    with it apply on top, e.g. trainer.max_epochs=20 where the LR schedule allows):
    ``lregloss-train resume=logs/runs/<date_time>``. ``--help`` lists the config groups.

    Exit status: 0 done; 1 a sweep in which some jobs failed (the others' results are kept);
    2 bad input (config value, data, output folder), named in one line; 3 training diverged.
    debug=true (or HYDRA_FULL_ERROR=1) shows the full traceback instead of the one line.
    """
    _hydra_main()


if __name__ == "__main__":
    print(
        "lregloss.app.train is the library behind the command line, not the command itself: run "
        "lregloss-train [group=choice ...] (or python -m lregloss ...); lregloss-train --help lists the groups",
        file=sys.stderr,
    )
    sys.exit(EXIT_USER_ERROR)
