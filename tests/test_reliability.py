"""Bad input fails early in one line; divergence stops the run and keeps the last good checkpoint;
checkpoints are written atomically and read with weights_only=True; failed sweep jobs keep the rest."""

import json
import logging
import math
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from hydra.errors import MissingConfigException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict
from pytorch_lightning.callbacks import Callback

from lregloss import code_paths
from lregloss.callbacks import LastCheckpoint
from lregloss.app.checkpointing import SafeCheckpointIO, atomic_save, load_checkpoint, plain
from lregloss.data import files
from lregloss.data.checks import BatchError, check_batch, check_first_batches
from lregloss.app.error_reporting import ConfigError
from lregloss.module import DivergenceError
from lregloss.losses import SoftmaxCrossEntropy
from lregloss.models import MLP
from lregloss.module import RegularizedLossModule
from lregloss.regularizers import L2
from lregloss.tasks import Task
from lregloss.app import train as train_module
from lregloss.app.train import run

from conftest import ROOT, TensorDataModule, write_reviews_csv

SMALL = [
    "data.batch_size=16",
    "data.min_count=1",
    "trainer.max_epochs=1",
    "trainer.accelerator=cpu",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "trainer.log_every_n_steps=1",
    "~callbacks.rich_progress_bar",
]


@pytest.fixture
def failing_run(compose_config, tiny_reviews_csv, tmp_path, caplog, capfd, monkeypatch):
    """Run the job in-process on small data; return (exit status, the one logged error line)."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def _run(*overrides: str, output_dir=None, data=None):
        data_path = f"data.path={tiny_reviews_csv}"
        cfg = compose_config(data_path, *SMALL, *overrides, output_dir=output_dir or tmp_path / "run")
        if data is not None:
            with open_dict(cfg):
                cfg.data = OmegaConf.create(data)
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="lregloss.app.train"), pytest.raises(SystemExit) as exit:
            run(cfg)
        errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
        assert len(errors) == 1, errors
        assert "\n" not in errors[0]
        printed = capfd.readouterr()
        assert "Traceback" not in printed.out + printed.err
        return exit.value.code, errors[0]

    return _run


# --- Bad input: one line naming the key, the value and what is allowed; exit status 2 ---------

@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["reg=l2", "reg.strength=-1"], "reg.strength must be a finite number >= 0, got -1.0"),
        (["reg=l1", "reg.strength=nan"], "reg.strength must be a finite number >= 0, got nan"),
        (["reg=maxnorm", "reg.strength=inf"], "reg.strength must be a finite number >= 0, got inf"),
        (["reg=elastic", "reg.l2_strength=-inf"], "reg.l2_strength must be a finite number >= 0, got -inf"),
        (["reg=l1", "reg.mode=proximall"], "reg.mode must be one of gradient, proximal; got 'proximall'"),
        (["reg=elastic", "reg.mode=soft"], "reg.mode must be one of gradient, proximal; got 'soft'"),
        (["loss=hinge", "loss.margin=0"], "loss.margin must be a finite number > 0, got 0.0"),
        (["loss=squared_hinge", "loss.margin=-1"], "loss.margin must be a finite number > 0, got -1.0"),
        (["callbacks.max_norm.max_norm=0"], "callbacks.max_norm.max_norm must be a finite number > 0, got 0.0"),
        (["model.dropout=1.0"], "model.dropout must be in [0, 1), got 1.0"),
        (["model.dropout=-0.1"], "model.dropout must be in [0, 1), got -0.1"),
        (["optimizer.lr=0"], "optimizer.lr must be a finite number > 0, got 0.0"),
        (["optimizer=sgd", "optimizer.lr=-0.1"], "optimizer.lr must be a finite number > 0, got -0.1"),
        (["optimizer.lr=inf"], "optimizer.lr must be a finite number > 0, got inf"),
        (["loss=attr_hinge"], "does not fit a ordinal task (it fits: multilabel); losses that fit: "),
        (["loss.label_smoothing=1.5"], "loss.label_smoothing must be in [0, 1), got 1.5"),
        (
            ["optimizer._target_=torch.optim.Adamax", "~optimizer.fused", "reg=l1", "reg.mode=proximal"],
            "proximal L1 has no step-size rule for Adamax, so its threshold would not match the optimizer's steps; "
            "use one of Adagrad, Adam, AdamW, RMSprop, SGD, or mode='gradient' (reg.mode=gradient)",
        ),
    ],
)
def test_a_bad_config_value_fails_in_one_line_naming_its_key(failing_run, overrides, expected):
    status, message = failing_run(*overrides)
    assert status == 2
    assert expected in message


def test_missing_data_file_says_where_it_looked_and_how_to_fix_it(failing_run, tmp_path):
    status, message = failing_run(f"data.path={tmp_path}/nowhere/reviews.csv")
    assert status == 2
    missing = tmp_path / "nowhere" / "reviews.csv"
    assert f"data.path '{missing}' is not a file (looked at {missing})" in message
    assert "path=null for the shipped data" in message


def test_bad_rating_names_file_and_row(failing_run, tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text(",Title,Review Text,Rating\n0,t,fine,5\n1,t,bad,7\n")
    status, message = failing_run(f"data.path={path}")
    assert status == 2
    assert f"{path}, row 2: Rating '7' is not one of the levels 1, 2, 3, 4, 5" in message


def test_csv_without_the_required_columns(failing_run, tmp_path):
    path = tmp_path / "columns.csv"
    path.write_text(",Title,Text,Stars\n0,t,fine,5\n")
    status, message = failing_run(f"data.path={path}")
    assert status == 2
    assert f"data.target: {path} has no column 'Rating'; its columns are '', 'Title', 'Text', 'Stars'" in message


def test_a_split_that_ends_up_empty(failing_run, tmp_path):
    path = write_reviews_csv(tmp_path / "few.csv", rows=4)  # 10% of 4 rows rounds to 0
    status, message = failing_run(f"data.path={path}")
    assert status == 2
    assert f"data: the val split of {path} is empty (4 rows, val_fraction=0.1, test_fraction=0.1)" in message
    assert "give more rows or other fractions" in message


def test_shipped_data_with_a_wrong_checksum(failing_run, monkeypatch):
    monkeypatch.setitem(files.SHIPPED_SHA256, "womens_clothing_reviews.csv.gz", "0" * 64)
    status, message = failing_run("data.path=null")
    assert status == 2
    assert "womens_clothing_reviews.csv.gz has sha256" in message and "expected " + "0" * 64 in message
    assert "Reinstall lregloss" in message


def test_an_output_folder_that_cannot_be_written(failing_run, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    status, message = failing_run(output_dir=blocker / "run")
    assert status == 2
    assert f"paths.output_dir={blocker}/run: {blocker} is a file, not a folder" in message


def test_resume_of_a_folder_that_is_no_run(failing_run, tmp_path):
    status, message = failing_run(f"resume={tmp_path}")
    assert status == 2
    assert f"resume={tmp_path}: no config.yaml there" in message


def test_debug_or_hydra_full_error_raise_with_the_traceback(compose_config, tiny_reviews_csv, tmp_path, monkeypatch):
    cfg = compose_config(f"data.path={tiny_reviews_csv}", *SMALL, "loss=hinge", "loss.margin=0", output_dir=tmp_path)
    with open_dict(cfg):
        cfg.debug = True
    with pytest.raises(ConfigError, match="loss.margin"):
        run(cfg)
    cfg.debug = False
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ConfigError, match="loss.margin"):
        run(cfg)


GROUPS = ["data", "model", "loss", "reg", "optimizer", "scheduler", "callbacks", "trainer", "logger"]


@pytest.mark.parametrize("group", GROUPS)
def test_an_unknown_choice_in_any_group_lists_the_available_ones(compose_config, group):
    with pytest.raises(MissingConfigException) as error:
        compose_config(f"{group}=no_such_choice")
    assert f"Available options in '{group}'" in str(error.value)


# --- The first batches of any data module are checked against its task -----------------------

class CorruptedData(TensorDataModule):
    """One batch of a task's synthetic data with one target or input made invalid."""

    def __init__(self, kind: str, size: int, corruption: str):
        super().__init__(Task(kind, size), samples=32, batch_size=32)
        inputs, target = self.dataset.tensors
        if corruption == "too_large":
            target[5] = size
        elif corruption == "negative":
            target[5] = -1
        elif corruption == "attribute":
            target[5, 1] = 2
        elif corruption == "nan_input":
            inputs[5, 3] = math.nan
        elif corruption == "inf_target":
            target[5, 0] = math.inf


@pytest.mark.parametrize(
    "kind, size, corruption, expected",
    [
        ("multiclass", 3, "too_large", "class index 3 is outside 0..2 for a multiclass task with 3 classes"),
        ("multiclass", 3, "negative", "class index -1 is outside 0..2"),
        ("ordinal", 5, "too_large", "level 5 is outside 0..4 for a ordinal task with 5 levels"),
        (
            "multilabel", 4, "attribute",
            "column 1: attribute target 2 breaks the rule that attribute targets are all in {0, 1} or all in "
            "{-1, +1} (values seen: [0, 1, 2])",
        ),
        ("multiclass", 3, "nan_input", "feature 3: the input is nan; inputs must be finite"),
        ("regression", 2, "inf_target", "column 0: regression target inf is not finite"),
    ],
)
def test_first_batch_guard_names_loader_sample_and_range(kind, size, corruption, expected):
    with pytest.raises(BatchError) as error:
        check_first_batches(CorruptedData(kind, size, corruption), Task(kind, size))
    assert str(error.value).startswith("first batch of train_dataloader, sample ")
    assert expected in str(error.value)


def test_first_batch_guard_accepts_valid_targets_and_leaves_the_random_state_alone():
    for kind in ("multiclass", "ordinal", "multilabel", "regression"):
        data = TensorDataModule(Task(kind, 3))
        state = torch.get_rng_state()
        check_first_batches(data, data.task)
        assert torch.equal(state, torch.get_rng_state())
    signs = torch.tensor([[1, -1], [-1, -1]])
    check_batch((torch.zeros(2, 3), signs), Task("multilabel", 2), "batch")
    with pytest.raises(BatchError, match="must be \\(inputs, target\\) pairs"):
        check_batch(torch.zeros(2, 3), Task("multiclass", 2), "batch")


def test_first_batch_guard_runs_before_training(failing_run):
    data = {
        "_target_": "test_reliability.CorruptedData",
        "kind": "multiclass",
        "size": 3,
        "corruption": "too_large",
    }
    status, message = failing_run("model=mlp", data=data)
    assert status == 2
    assert message.startswith("data: first batch of train_dataloader, sample ")
    assert "class index 3 is outside 0..2" in message


def test_a_sweep_job_that_crashes_records_its_traceback_and_lets_the_sweep_go_on(compose_config, tmp_path, monkeypatch):
    class Sweeping:  # what HydraConfig says inside a multirun job
        @staticmethod
        def initialized():
            return True

        @staticmethod
        def get():
            return SimpleNamespace(mode=RunMode.MULTIRUN, overrides=SimpleNamespace(task=[]))

    def crash(cfg):
        raise RuntimeError("a defect")

    monkeypatch.setattr(train_module, "HydraConfig", Sweeping)
    monkeypatch.setattr(train_module, "train", crash)
    assert math.isnan(run(compose_config(output_dir=tmp_path)))
    recorded = (tmp_path / "error.txt").read_text()
    assert recorded.startswith("a defect\nTraceback (most recent call last):")
    assert 'raise RuntimeError("a defect")' in recorded


# --- Divergence -------------------------------------------------------------------------------

def test_divergence_stops_at_the_step_names_values_and_keeps_the_last_good_checkpoint(failing_run, tmp_path):
    status, message = failing_run(
        "optimizer.lr=1e38", "reg=l2", "callbacks.last_checkpoint.every_n_train_steps=1", output_dir=tmp_path / "run"
    )
    assert status == 3
    assert message.startswith("training diverged at step 1 (epoch 0): train/data_loss=nan, train/reg_loss=inf; ")
    cause = r"; the learning rate \(now \d\.\d+e\+37\) or the reg strength \(0.0005\) is likely too high;"
    assert re.search(cause, message)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert f"the last good checkpoint is kept: {last}" in message
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["global_step"] == 1
    assert all(torch.isfinite(value).all() for value in checkpoint["state_dict"].values())
    assert not (tmp_path / "run" / "error.txt").exists()  # only sweep jobs record their error in a file


@pytest.mark.parametrize(
    "interval, accelerator_paths",
    [("null", False), ("1", False), ("3", False), ("null", True)],
    ids=["auto on cpu", "every step", "every 3 steps", "auto on accelerators (the logged steps)"],
)
def test_divergence_exits_3_and_keeps_the_last_good_checkpoint_at_every_check_interval(
    failing_run, tmp_path, monkeypatch, interval, accelerator_paths
):
    if accelerator_paths:
        monkeypatch.setattr(code_paths, "_forced", True)
    status, message = failing_run(
        "optimizer.lr=1e38", "reg=l2", "callbacks.last_checkpoint.every_n_train_steps=1", "trainer.log_every_n_steps=4",
        f"divergence_check_interval={interval}", output_dir=tmp_path / "run",
    )  # fmt: skip
    assert status == 3
    assert message.startswith("training diverged")  # by the check, or by the checkpoint plugin refusing NaN weights
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert f"the last good checkpoint is kept: {last}" in message
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["global_step"] == 1  # the state after the last finite step, never a later one
    assert all(torch.isfinite(value).all() for value in checkpoint["state_dict"].values())


class NonFiniteLossFrom(SoftmaxCrossEntropy):
    """Softmax cross-entropy, made NaN from a given training step on."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step, self.calls = step, 0

    def forward(self, outputs, target):
        loss = super().forward(outputs, target)
        if self.training:
            self.calls += 1
            if self.calls > self.step:
                return loss * math.nan
        return loss


@pytest.mark.parametrize("interval, message", [
    (None, "training diverged at step 4 (epoch 0): train/data_loss=nan"),
    (3, "training diverged at a step from 3 to 5 (epoch 0): train/data_loss=nan"),
    (100, "training diverged at a step from 0 to 5 (epoch 0): a non-finite loss"),  # found at the epoch's end
])  # fmt: skip
def test_an_interval_check_names_the_steps_it_covers(interval, message):
    data = TensorDataModule(Task("multiclass", 3), samples=96, batch_size=16)  # 6 steps
    module = RegularizedLossModule(
        MLP(data.input_size, 3, hidden_sizes=[]), NonFiniteLossFrom(step=4), data.task,
        lambda params: torch.optim.SGD(params, lr=0.1), divergence_check_interval=interval,
    )  # fmt: skip
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, log_every_n_steps=50)  # fmt: skip
    with pytest.raises(DivergenceError) as raised:
        trainer.fit(module, datamodule=data)
    assert str(raised.value).startswith(message), str(raised.value)


@pytest.mark.parametrize("interval", [0, -2, 1.5, "3"])
def test_a_bad_divergence_check_interval_names_itself(interval):
    with pytest.raises(ValueError, match="divergence_check_interval must be an integer >= 1 or None"):
        RegularizedLossModule(MLP(4, 3, hidden_sizes=[]), SoftmaxCrossEntropy(), Task("multiclass", 3),
                              lambda params: torch.optim.SGD(params, lr=0.1), divergence_check_interval=interval)  # fmt: skip


class PoisonWeights(Callback):
    """Make a weight infinite after a given step while the loss stays finite (a bias nothing reads)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            with torch.no_grad():
                pl_module.model.layers[-1].bias[0] = math.inf


def test_non_finite_weights_are_never_written_over_the_last_good_checkpoint(tmp_path):
    data = TensorDataModule(Task("multiclass", 3))
    module = RegularizedLossModule(
        model=MLP(data.input_size, 3, hidden_sizes=[]),
        loss=SoftmaxCrossEntropy(),
        task=data.task,
        optimizer=lambda params: torch.optim.SGD(params, lr=0.1),
        regularizers={"reg": L2(1e-4)},
    )
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[PoisonWeights(step=3), LastCheckpoint(str(tmp_path), every_n_train_steps=1)],
        plugins=[SafeCheckpointIO()],
    )
    refused = r"model.layers.1.bias holds NaN or inf at step 3, so .*last.ckpt was not written"
    with pytest.raises(DivergenceError, match=refused):
        trainer.fit(module, datamodule=data)
    kept = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert kept["global_step"] == 2
    assert all(torch.isfinite(value).all() for value in kept["state_dict"].values())


# --- Checkpoint files ---------------------------------------------------------------------------

def kill_a_writer(path, big) -> bool:
    """Fork a process that saves checkpoints to ``path`` in a loop, SIGKILL it as a write begins.

    Returns whether the kill came while a write was under way (its temporary file was left).
    """
    child = os.fork()
    if child == 0:
        try:
            for step in range(1, 1000):
                atomic_save({"step": step, "weights": big}, path)
        finally:
            os._exit(0)
    temporary = path.with_name(path.name + ".tmp")
    deadline = time.monotonic() + 30
    while not (temporary.exists() and temporary.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.001)
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    return temporary.exists()


def test_a_kill_while_writing_never_leaves_a_corrupt_checkpoint(tmp_path):
    path = tmp_path / "last.ckpt"
    atomic_save({"step": 0, "weights": torch.zeros(10)}, path)
    big = torch.arange(16_000_000, dtype=torch.float32)  # 64 MB: a write lasts long enough to be caught in it
    during_a_write = 0
    for _ in range(3):
        during_a_write += kill_a_writer(path, big)
        checkpoint = torch.load(path, weights_only=True)  # complete: the first one or a whole new one
        assert checkpoint["step"] == 0 or torch.equal(checkpoint["weights"], big)
    assert during_a_write, "no kill came during a write"


def test_the_trainer_config_uses_the_safe_checkpoint_io(compose_config, tmp_path):
    cfg = compose_config("trainer.accelerator=cpu", output_dir=tmp_path)
    trainer = instantiate(cfg.trainer, logger=False)
    assert isinstance(trainer.strategy.checkpoint_io, SafeCheckpointIO)


class HyperModule(pl.LightningModule):
    """A module that saves its hyperparameters the way a Hydra user might: a DictConfig."""

    def __init__(self, config):
        super().__init__()
        self.save_hyperparameters(config)
        self.layer = torch.nn.Linear(2, 1)


def saved_with(io, module, path):
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, plugins=[io], max_epochs=0)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    return path


def test_dictconfig_hyperparameters_fail_weights_only_unless_saved_plain(tmp_path):
    config = OmegaConf.create({"width": 2, "tags": ["a", "b"]})
    unsafe = saved_with(pl.plugins.TorchCheckpointIO(), HyperModule(config), tmp_path / "unsafe.ckpt")
    with pytest.raises(pickle.UnpicklingError):
        torch.load(unsafe, weights_only=True)
    with pytest.raises(ConfigError, match=r"unsafe.ckpt holds objects that lregloss does not unpickle .*DictConfig"):
        SafeCheckpointIO().load_checkpoint(unsafe)  # what resume and evaluation read through

    safe = saved_with(SafeCheckpointIO(), HyperModule(config), tmp_path / "safe.ckpt")
    assert torch.load(safe, weights_only=True)["hyper_parameters"] == {"width": 2, "tags": ["a", "b"]}
    restored = HyperModule.load_from_checkpoint(safe, weights_only=True)
    assert restored.hparams == {"width": 2, "tags": ["a", "b"]}
    assert load_checkpoint(safe)["hyper_parameters"]["tags"] == ["a", "b"]


def test_plain_keeps_state_dicts_and_unwraps_containers():
    state = torch.nn.Linear(2, 1).state_dict()
    converted = plain({"state_dict": state, "cfg": OmegaConf.create({"a": [1, {"b": 2}]})})
    assert type(converted["state_dict"]) is type(state)
    assert converted["cfg"] == {"a": [1, {"b": 2}]} and type(converted["cfg"]) is dict


# --- Whole processes: exit status, one line, no traceback; a sweep with failing jobs ------------

def start(log_dir, csv, *overrides, multirun=False):
    flags = ["--multirun"] if multirun else []
    command = [sys.executable, "scripts/train.py", *flags, f"paths.log_dir={log_dir}", f"data.path={csv}"]
    command += [*SMALL, *overrides]
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def processes(tmp_path_factory, tiny_reviews_csv):
    """Three entry-point processes, started together (two cores): a sweep, a divergence, a bad folder."""
    root = tmp_path_factory.mktemp("processes")
    blocker = root / "a_file"
    blocker.write_text("")
    started = {
        "sweep": start(root / "sweep", tiny_reviews_csv, "optimizer.lr=0.01,1e38,-1", multirun=True),
        "diverged": start(
            root / "diverged", tiny_reviews_csv, "optimizer.lr=1e38", "callbacks.last_checkpoint.every_n_train_steps=1",
            f"hydra.run.dir={root / 'diverged' / 'run'}",
        ),
        "unwritable": start(blocker / "logs", tiny_reviews_csv),
    }
    finished = {}
    for name, process in started.items():
        out, err = process.communicate(timeout=600)
        finished[name] = (process.returncode, out + err)
    return root, finished


def test_a_sweep_keeps_the_jobs_that_worked_and_exits_non_zero_listing_the_failures(processes):
    root, finished = processes
    status, output = finished["sweep"]
    assert status == 1, output[-3000:]
    assert "Traceback" not in output
    [sweep] = (root / "sweep" / "multiruns").iterdir()
    assert json.loads((sweep / "0" / "results.json").read_text())["val/acc"] >= 0
    assert not (sweep / "0" / "error.txt").exists()
    assert not (sweep / "1" / "results.json").exists() and not (sweep / "2" / "results.json").exists()
    assert (sweep / "1" / "error.txt").read_text().startswith("training diverged at step ")
    assert (sweep / "2" / "error.txt").read_text().startswith("optimizer.lr must be a finite number > 0, got -1.0")
    assert "2 of 3 jobs failed" in output
    assert "job 1 [optimizer.lr=1e+38]: training diverged at step 1 (epoch 0): train/data_loss=nan" in output
    assert "job 2 [optimizer.lr=-1]: optimizer.lr must be a finite number > 0, got -1.0" in output


def test_a_diverged_run_exits_3_in_one_line(processes):
    root, finished = processes
    status, output = finished["diverged"]
    assert status == 3, output[-3000:]
    assert "Traceback" not in output
    [line] = [line for line in output.splitlines() if "training diverged at step" in line]
    assert "is likely too high" in line and "(debug=true or HYDRA_FULL_ERROR=1 show the traceback)" in line
    assert f"the last good checkpoint is kept: {root / 'diverged' / 'run' / 'checkpoints' / 'last.ckpt'}" in line


def test_an_unwritable_log_dir_fails_before_anything_runs(processes):
    root, finished = processes
    status, output = finished["unwritable"]
    assert status == 2, output[-3000:]
    assert "Traceback" not in output
    assert f"Error: cannot write the output folder {root}/a_file/logs/runs/" in output
    assert f"below paths.log_dir={root}/a_file/logs): {root}/a_file is a file, not a folder" in output
    assert "pass paths.log_dir=<a writable folder>" in output
