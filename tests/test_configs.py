"""Every config in conf/ composes with the main config and instantiates."""

import inspect
from functools import partial

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lregloss.losses import Loss
from lregloss.regularizers import Regularizer
from lregloss.app.train import instantiate_entries, task_sized_arguments
from lregloss.tasks import Task

from conftest import CONF


def options(group: str) -> list[str]:
    """The choices of a group in conf/ and in conf/pluggable/ (loss, reg, callbacks/max_norm)."""
    return sorted(path.stem for root in (CONF, CONF / "pluggable") for path in (root / group).glob("*.yaml"))


@pytest.mark.parametrize("choice", options("loss"))
def test_loss_configs(compose_config, choice):
    config = compose_config(f"loss={choice}").loss
    sized = task_sized_arguments(config, Task("multiclass", 5, class_counts=(9, 1, 4, 4, 2)))  # as at run time
    assert isinstance(instantiate(config, **sized), Loss)


@pytest.mark.parametrize("choice", options("reg"))
def test_reg_configs(compose_config, choice):
    reg = instantiate(compose_config(f"reg={choice}").reg)
    assert isinstance(reg, Regularizer)
    assert torch.isfinite(reg(torch.nn.Linear(3, 2)))


@pytest.mark.parametrize("choice", options("model"))
def test_model_configs(compose_config, choice):
    model = instantiate(compose_config(f"model={choice}").model)
    assert isinstance(model, partial)
    assert isinstance(model(input_size=12, num_outputs=5), torch.nn.Module)


@pytest.mark.parametrize("choice", options("optimizer"))
@pytest.mark.parametrize("scheduler", options("scheduler"))
def test_optimizer_and_scheduler_configs(compose_config, choice, scheduler):
    cfg = compose_config(f"optimizer={choice}", f"scheduler={scheduler}")
    optimizer = instantiate(cfg.optimizer)([torch.nn.Parameter(torch.zeros(2))])
    assert isinstance(optimizer, torch.optim.Optimizer)
    if cfg.scheduler:
        factory = instantiate(cfg.scheduler)
        accepted = inspect.signature(factory).parameters  # the run's length, as the module hands it over
        assert factory(optimizer, **{key: 10 for key in ("total_steps", "total_iters") if key in accepted}) is not None


@pytest.mark.parametrize("choice", options("data"))
def test_data_configs(compose_config, choice):
    config = compose_config(f"data={choice}").data
    for key in OmegaConf.missing_keys(config):  # ???: data.path= etc., given on the command line
        config[key.removeprefix("data.")] = f"{key}.csv"
    datamodule = instantiate(config)
    assert hasattr(datamodule, "setup")


@pytest.mark.parametrize("group", ["callbacks", "logger"])
def test_callback_and_logger_configs(compose_config, tmp_path, group):
    for choice in options(group):
        cfg = compose_config(f"{group}={choice}", "monitor.metric=val/acc", "monitor.mode=max", output_dir=tmp_path)
        entries = instantiate_entries(cfg[group])  # monitor: auto is resolved from the task at run time
        assert all(entry is not None for entry in entries)


@pytest.mark.parametrize("choice", options("trainer"))
def test_trainer_configs(compose_config, tmp_path, choice):
    cfg = compose_config(f"trainer={choice}", "trainer.accelerator=cpu", output_dir=tmp_path)
    trainer = instantiate(cfg.trainer, logger=False)
    assert trainer.max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize("choice", options("experiment"))
def test_experiment_configs(compose_config, choice):
    cfg = compose_config(f"experiment={choice}")
    OmegaConf.resolve(cfg)
    sized = task_sized_arguments(cfg.loss, Task("multiclass", 5, class_counts=(9, 1, 4, 4, 2)))  # as at run time
    assert isinstance(instantiate(cfg.loss, _partial_=True)(**sized), Loss)
    assert hasattr(instantiate(cfg.data), "setup")
