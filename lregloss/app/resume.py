"""``resume=<run dir>``: continue a run from its last checkpoint, with the config it started with.

The run folder is found again by ``hydra.run.dir`` (conf/hydra/default.yaml picks ``resume``
when it is set, through the ``lregloss.if_set`` resolver registered here), the config comes
from the run's ``config.yaml``, and overrides given next to ``resume=`` apply on top of it
(``trainer.max_epochs=20`` to train longer, where the schedule allows: a one-cycle schedule
ends at the step count it was built for). Everything else, the weights, optimizer,
scheduler, early stopping, loop counters, random generators and the data order, comes from
``checkpoints/last.ckpt``: a run killed in mid-epoch or early in an epoch, then resumed, ends with the weights and
the logged history of an unbroken run (tests/test_resume.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, ListConfig, OmegaConf

from lregloss.app.checkpointing import last_checkpoint
from lregloss.app.error_reporting import ConfigError

CONFIG_FILE = "config.yaml"  # the resolved config train() writes into every run folder


def if_set(value: Any, then: Any, otherwise: Any) -> Any:
    """``then`` where ``value`` is not None, else ``otherwise`` (the ``lregloss.if_set`` resolver)."""
    return then if value is not None else otherwise


if not OmegaConf.has_resolver("lregloss.if_set"):
    OmegaConf.register_new_resolver("lregloss.if_set", if_set)


def rebase_paths(value: Any, old: str, new: str) -> Any:
    """``value`` with every string that starts with the folder ``old`` moved under ``new``."""
    if isinstance(value, dict):
        return {key: rebase_paths(item, old, new) for key, item in value.items()}
    if isinstance(value, list):
        return [rebase_paths(item, old, new) for item in value]
    if isinstance(value, str) and (value == old or value.startswith(old.rstrip("/") + "/")):
        return new + value[len(old.rstrip("/")) :]
    return value


def apply_overrides(
    saved: DictConfig,
    composed: DictConfig,
    overrides: Sequence[str],
    is_group: Callable[[str], bool] = lambda key: False,
) -> None:
    """Apply command-line ``overrides`` to ``saved``, in place, taking values from ``composed``.

    ``composed`` is the config Hydra built from the same command line, so values come parsed
    and interpolated as Hydra does it. ``resume`` and ``hydra.*`` overrides are skipped;
    ``~key`` deletes the key where it exists.

    Raises:
        ConfigError: an override picks another option of a config group (``loss=hinge``): a
            resumed run keeps its model, loss and data.
    """
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if key == "resume" or key.startswith("hydra.") or override.package:
            continue
        if is_group(key):
            raise ConfigError(
                f"resume= continues a run with its own config; {override.input_line} picks another {key} "
                "option, which its checkpoint cannot hold: start a new run instead"
            )
        if override.is_delete():
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(saved, parent) if parent else saved
            if isinstance(node, DictConfig) and leaf in node:
                del node[leaf]
            continue
        value = OmegaConf.select(composed, key)
        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
        OmegaConf.update(saved, key, value, merge=False, force_add=True)


def resume_problem(run_dir: str | Path) -> str | None:
    """Why ``resume=<run_dir>`` cannot continue (no run config, no checkpoint), or None where it can."""
    saved_file = Path(str(run_dir)) / CONFIG_FILE
    if not saved_file.is_file():
        return (
            f"resume={run_dir}: no {CONFIG_FILE} there (looked for {saved_file.resolve()}); give the folder of a "
            "run that lregloss started, e.g. logs/runs/<date_time> or logs/multiruns/<date_time>/<job number>"
        )
    checkpoint = last_checkpoint(run_dir)
    if not checkpoint.is_file():
        return (
            f"resume={run_dir}: the run saved no checkpoint to continue from (looked for {checkpoint.resolve()}); "
            "start it again without resume="
        )
    return None


def resumed_config(
    cfg: DictConfig, overrides: Sequence[str] = (), is_group: Callable[[str], bool] = lambda key: False
) -> DictConfig:
    """The config to continue ``cfg.resume`` with: its saved config, moved to this job's folder, plus ``overrides``.

    Raises:
        ConfigError: ``cfg.resume`` is not a run folder with a ``config.yaml`` and a
            ``checkpoints/last.ckpt``.
    """
    problem = resume_problem(cfg.resume)
    if problem:
        raise ConfigError(problem)
    saved = OmegaConf.to_container(OmegaConf.load(Path(str(cfg.resume)) / CONFIG_FILE))
    old_dir = saved.get("paths", {}).get("output_dir")
    new_dir = str(cfg.paths.output_dir)
    if old_dir:
        saved = rebase_paths(saved, str(old_dir), new_dir)
    config = OmegaConf.create(saved)
    apply_overrides(config, cfg, overrides, is_group)
    config.resume = str(cfg.resume)
    OmegaConf.set_struct(config, True)
    return config
