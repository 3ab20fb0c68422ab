"""The real entry point, end to end on CPU, read back the way a user reads it: TensorBoard and files."""

import json
import logging
import os
import subprocess
import sys

import pytest
import pytorch_lightning as pl
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lregloss.app.train import build_module, run, train
from lregloss.app.error_reporting import ConfigError
from lregloss.losses.trees import huffman_tree
from lregloss.module import RegularizedLossModule
from lregloss.tasks import Task

from conftest import ROOT, TensorDataModule

REVIEW_LOSSES = ["hinge", "squared_hinge", "softmax", "hsoftmax", "l2", "l1", "ordinal"]
TINY = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=3",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "trainer.log_every_n_steps=1",
    "callbacks.reg_monitor.every_n_steps=1",
    "~callbacks.rich_progress_bar",
]


def run_entry_point(log_dir, *overrides: str, multirun: bool = False, tiny: bool = True) -> subprocess.CompletedProcess:
    """``scripts/train.py`` in a subprocess, logging under ``log_dir``; ``tiny`` adds the few-batch overrides."""
    flags = ["--multirun"] if multirun else []
    command = [sys.executable, "scripts/train.py", *flags, f"paths.log_dir={log_dir}", *(TINY if tiny else []), *overrides]
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)


def sweep_jobs(log_dir, *overrides: str, tiny: bool = True) -> list:
    """Run one multirun that must succeed and return its job folders in job order."""
    result = run_entry_point(log_dir, *overrides, multirun=True, tiny=tiny)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [sweep_dir] = (log_dir / "multiruns").iterdir()
    return sorted((path for path in sweep_dir.iterdir() if path.name.isdigit()), key=lambda path: int(path.name))


def scalars(run_dir) -> dict[str, list[float]]:
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [event.value for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One multirun over every loss that fits star ratings, with L1 on."""
    return sweep_jobs(tmp_path_factory.mktemp("logs"), f"loss={','.join(REVIEW_LOSSES)}", "reg=l1")


def test_every_review_loss_runs_and_logs_the_documented_tags(sweep):
    assert len(sweep) == len(REVIEW_LOSSES)
    for job in sweep:
        tags = scalars(job)
        expected = {"train/loss", "train/data_loss", "train/reg_loss", "val/loss", "val/acc", "val/mae",
                    "val/rmse", "val/acc_within1", "test/acc", "test/mae", "weights/zero_fraction"}
        assert expected <= set(tags), (job, sorted(tags))
        assert min(tags["train/reg_loss"]) > 0
        assert (job / "checkpoints" / "last.ckpt").exists()
        results = json.loads((job / "results.json").read_text())
        assert 0 <= results["test/acc"] <= 1
        assert "reg:\n  _target_: lregloss.regularizers.L1" in (job / "config.yaml").read_text()


def test_losses_with_a_distribution_report_calibration_and_proper_scores(sweep):
    expected = {str(REVIEW_LOSSES.index(name)) for name in ("softmax", "hsoftmax", "ordinal")}
    for tag in ("val/ece", "val/rps", "val/nll", "test/rps", "test/nll"):
        assert {job.name for job in sweep if tag in scalars(job)} == expected, tag


@pytest.mark.parametrize("objective", ["binary", "likelihood", "corn"])
def test_the_ordinal_objective_and_decoding_rule_are_config_keys_and_the_rule_is_logged(
    compose_config, objective, caplog
):
    cfg = compose_config("loss=ordinal", f"loss.objective={objective}")
    with caplog.at_level("INFO", logger="lregloss.app.train"):
        module = build_module(cfg, Task("ordinal", 5), input_size=50)
    assert module.loss.objective == objective and module.level_decoding == "auto"
    assert "levels decoded by level_decoding=auto (OrdinalLogistic's own: median)" in caplog.text
    module = build_module(compose_config("loss=ordinal", "level_decoding=expected"), Task("ordinal", 5), input_size=50)
    assert module.val_metrics.level_decoding == "expected"


@pytest.mark.parametrize(
    "override,line",
    [
        ("level_decoding=argmax", "level_decoding=argmax is no more: it was each loss's own rule, now level_decoding=auto"),
        ("loss.objective=probit", "loss.objective must be one of binary, likelihood, corn, got 'probit'"),
    ],
)
def test_a_bad_decoding_rule_or_objective_exits_2_with_one_line(
    compose_config, tmp_path, override, line, caplog, capfd, monkeypatch
):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    cfg = compose_config("loss=ordinal", override, *TINY, output_dir=tmp_path)
    with caplog.at_level("ERROR", logger="lregloss.app.train"), pytest.raises(SystemExit) as exit:
        run(cfg)
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert exit.value.code == 2 and len(errors) == 1 and line in errors[0], errors
    assert "Traceback" not in "".join(capfd.readouterr())


def test_hparams_tab_holds_the_choices_and_final_metrics(sweep):
    events = EventAccumulator(str(sweep[0] / "tensorboard"))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    session = content["_hparams_/session_start_info"].decode("latin1")
    for key in ("loss", "reg", "reg.strength", "optimizer.lr", "max_norm"):
        assert key in session
    experiment = content["_hparams_/experiment"].decode("latin1")
    assert "hp/val/acc" in experiment and "hp/test/mae" in experiment
    assert scalars(sweep[0])["hp/test/acc"][0] >= 0


def test_temperature_scaling_is_one_flag_and_reports_before_and_after(compose_config, tmp_path):
    cfg = compose_config("temperature_scaling=true", *TINY, output_dir=tmp_path)
    metrics = train(cfg)
    assert metrics["test/temperature"] > 0
    assert {"test/ece", "test/nll", "test/rps", "test/uncalibrated/ece", "test/uncalibrated/nll"} <= set(metrics)
    [best] = [path for path in (tmp_path / "checkpoints").glob("*.ckpt") if path.name != "last.ckpt"]
    assert torch.load(best, weights_only=True)["lregloss_temperature"] == pytest.approx(metrics["test/temperature"])
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert {"test/reliability", "test/confusion_matrix"} <= set(events.Tags()["images"])


def test_no_regularizer_logs_the_data_loss_alone(compose_config, tmp_path):
    cfg = compose_config("reg=none", *TINY, output_dir=tmp_path)
    train(cfg)
    tags = scalars(tmp_path)
    assert "train/data_loss" in tags
    assert not {"train/reg_loss", "train/loss"} & set(tags)  # they would repeat 0 and train/data_loss


def test_a_loss_that_does_not_fit_exits_non_zero_listing_the_losses_that_fit(tmp_path):
    result = run_entry_point(tmp_path, "loss=attr_hinge")
    output = result.stdout + result.stderr
    assert result.returncode == 2
    assert "losses that fit: adaptive_softmax, coral_corn, hinge, hsoftmax, hsoftmax_huffman, l1, l2, ordinal, softmax, spacecutter, squared_hinge" in output
    assert "Traceback" not in output


def test_an_unknown_choice_lists_the_available_ones(tmp_path):
    result = run_entry_point(tmp_path, "loss=hingee")
    assert result.returncode != 0
    assert "Available options in 'loss'" in result.stderr


@pytest.mark.parametrize("class_counts,tree", [("null", "balanced"), ("data", "huffman")])
def test_hsoftmax_builds_the_huffman_tree_of_the_training_labels_on_request(compose_config, class_counts, tree):
    cfg = compose_config("loss=hsoftmax", f"loss.class_counts={class_counts}")
    counts = (842, 1565, 2871, 5077, 13131)  # the reviews' rating counts: 5 stars is the most frequent
    task = Task("ordinal", 5, class_counts=counts)
    loss = build_module(cfg, task, input_size=50).loss
    assert loss.tree == tree
    if tree == "huffman":
        paths = huffman_tree(counts)
        assert loss.path_lengths.tolist() == [len(path) for path in paths]
        assert loss.path_lengths[4] == 1  # the most frequent class sits next to the root


def test_hsoftmax_class_counts_from_data_that_has_none_names_the_fix(compose_config):
    cfg = compose_config("loss=hsoftmax", "loss.class_counts=data")
    with pytest.raises(ConfigError, match=r"loss.class_counts=data: .* pass the counts as a list"):
        build_module(cfg, Task("multiclass", 5), input_size=50)


def test_resuming_with_another_loss_or_regularizer_is_refused(sweep, tmp_path):
    # loss and reg are groups of the search path (conf/pluggable), not of conf/ itself.
    for override, group in (("loss=softmax", "loss"), ("reg=l2", "reg")):
        result = run_entry_point(tmp_path, f"resume={sweep[0]}", override)
        assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
        assert f"{override} picks another {group} option" in result.stdout + result.stderr


def test_a_runs_checkpoint_rebuilds_its_module_without_the_config(sweep):
    for job in sweep[:2]:  # hinge, squared_hinge on the reviews recipe
        path = job / "checkpoints" / "last.ckpt"
        saved = torch.load(path, weights_only=True)
        loaded = RegularizedLossModule.load_from_checkpoint(path)
        assert type(loaded.loss).__name__ in {"MulticlassHinge", "MulticlassSquaredHinge"}
        assert loaded.task.kind.value == "ordinal" and loaded.task.size == 5
        for name, value in saved["state_dict"].items():
            assert torch.equal(loaded.state_dict()[name], value), name


def compiled_and_eager_weights(compose_config, compile_mode):
    """An MLP trained 8 steps from the same start, with ``compile=<compile_mode>`` and eagerly."""
    weights = []
    data = TensorDataModule(Task("multiclass", 3), samples=128, batch_size=16)
    for overrides in ([f"compile={compile_mode}"], []):
        torch.manual_seed(0)
        module = build_module(compose_config("model=mlp", "optimizer=sgd", *overrides), data.task, data.input_size)
        trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False,
                             enable_model_summary=False, enable_checkpointing=False, limit_val_batches=0)  # fmt: skip
        trainer.fit(module, datamodule=data)
        weights.append({name: value.detach().clone() for name, value in module.state_dict().items()})
    return weights


def test_compiled_training_matches_eager_training_and_keeps_the_state_dict_keys(compose_config):
    compiled, eager = compiled_and_eager_weights(compose_config, "default")
    assert list(compiled) == list(eager)  # compiled in place: checkpoints load into eager models
    for name, value in eager.items():
        torch.testing.assert_close(compiled[name], value, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")
    assert any((value != 0).any() for value in eager.values())


def test_an_unknown_compile_mode_names_the_modes(compose_config):
    with pytest.raises(ConfigError, match="compile=fastest is not a torch.compile mode; use one of default, reduce-overhead"):
        build_module(compose_config("model=mlp", "compile=fastest"), Task("multiclass", 3), input_size=8)
