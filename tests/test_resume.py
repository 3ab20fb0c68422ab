"""resume=<run dir>: a run killed in mid-epoch and resumed ends exactly as an unbroken run."""

import os
import random
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from torch.utils.data import TensorDataset

from lregloss.callbacks.random_state import capture_random_state, restore_random_state
from lregloss.data.resumable import EpochShuffle, ResumableLoader
from lregloss.app.error_reporting import ConfigError
from lregloss.app.resume import apply_overrides, rebase_paths, resumed_config

from conftest import ROOT

STEPS_PER_EPOCH = 15  # 240 training reviews of the tiny CSV in batches of 16
EVERY = 4  # last.ckpt every 4 steps, and after each validation
KILLS = {  # where a run is killed -> the step of the last.ckpt it leaves
    "mid_epoch": (22, 20),  # epoch 1, batch 7; saved after batch 5 (every 4 steps)
    "epoch_start": (16, 15),  # epoch 1, batch 1, before its save; saved after epoch 0's validation
}
RUN = [
    "data.batch_size=16",
    "data.min_count=1",
    "model.dropout=0.25",  # draws from the global generator every step
    "reg=l1",
    "reg.mode=proximal",
    "trainer.max_epochs=2",
    "trainer.accelerator=cpu",
    "trainer.deterministic=true",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "trainer.log_every_n_steps=1",
    "callbacks.reg_monitor.every_n_steps=1",
    f"callbacks.last_checkpoint.every_n_train_steps={EVERY}",
    "~callbacks.rich_progress_bar",
    "+callbacks.kill._target_=interrupt.KillAtStep",  # tests/interrupt.py; acts only when told to
]


def start(*overrides, kill_at=None):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONPATH": str(ROOT / "tests")}
    env.pop("LREGLOSS_TEST_KILL_AT_STEP", None)
    if kill_at is not None:
        env["LREGLOSS_TEST_KILL_AT_STEP"] = str(kill_at)
    command = [sys.executable, "scripts/train.py", *overrides]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def history(run_dir) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def hparams(run_dir) -> dict:
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    values = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    return {key: value.string_value or value.number_value for key, value in values.items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_reviews_csv):
    """An unbroken run and the same run killed at two places (all at once), then the killed ones resumed."""
    root = tmp_path_factory.mktemp("resume")
    common = [f"data.path={tiny_reviews_csv}", *RUN]
    started = {"unbroken": start(f"hydra.run.dir={root / 'unbroken'}", *common)}
    for name, (step, _) in KILLS.items():
        started[name] = start(f"hydra.run.dir={root / name}", *common, kill_at=step)
    outputs = {name: process.communicate(timeout=600)[0] for name, process in started.items()}
    assert started["unbroken"].returncode == 0, outputs["unbroken"][-3000:]
    at_kill = {}
    for name in KILLS:
        assert started[name].returncode == -signal.SIGKILL, outputs[name][-3000:]
        at_kill[name] = torch.load(root / name / "checkpoints" / "last.ckpt", weights_only=True)
    resumed = {name: start(f"resume={root / name}") for name in KILLS}
    for name, process in resumed.items():
        outputs[f"{name} resumed"] = process.communicate(timeout=600)[0]
        assert process.returncode == 0, outputs[f"{name} resumed"][-3000:]
    return root, at_kill, outputs


def test_the_kills_came_after_a_mid_epoch_and_an_end_of_epoch_checkpoint(runs):
    _, at_kill, _ = runs
    for name, (_, saved_at) in KILLS.items():
        assert at_kill[name]["global_step"] == saved_at, name
    mid_epoch = at_kill["mid_epoch"]["loops"]["fit_loop"]
    assert mid_epoch["state_dict"]["combined_loader"] == [{"seed": 0, "epoch": 1, "batches": 20 - STEPS_PER_EPOCH}]
    assert mid_epoch["epoch_loop.batch_progress"]["is_last_batch"] is False


@pytest.mark.parametrize("kill", KILLS)
def test_resumed_run_ends_with_the_weights_and_state_of_an_unbroken_run(runs, kill):
    root, _, outputs = runs
    expected = torch.load(root / "unbroken" / "checkpoints" / "last.ckpt", weights_only=True)
    actual = torch.load(root / kill / "checkpoints" / "last.ckpt", weights_only=True)
    assert (actual["epoch"], actual["global_step"]) == (expected["epoch"], expected["global_step"]) == (1, 30)
    for name, weight in expected["state_dict"].items():
        assert torch.equal(actual["state_dict"][name], weight), name
    expected_optimizer, actual_optimizer = expected["optimizer_states"][0], actual["optimizer_states"][0]
    assert actual_optimizer["param_groups"] == expected_optimizer["param_groups"]
    for index, state in expected_optimizer["state"].items():
        for key, value in state.items():
            assert torch.equal(actual_optimizer["state"][index][key], value), (index, key)
    assert actual["lr_schedulers"] == expected["lr_schedulers"]
    early_stopping = next(key for key in expected["callbacks"] if key.startswith("EarlyStopping"))
    assert actual["callbacks"][early_stopping] == expected["callbacks"][early_stopping]
    assert "resuming from a checkpoint that ended before the epoch ended" not in outputs[f"{kill} resumed"]


@pytest.mark.parametrize("kill", KILLS)
def test_resumed_history_has_no_gap_and_no_duplicate(runs, kill):
    root, _, _ = runs
    expected, actual = history(root / "unbroken"), history(root / kill)
    assert set(actual) == set(expected)
    for tag, points in expected.items():
        if tag != "hp/wall_time_s":
            assert actual[tag] == points, tag
    assert [step for step, _ in actual["train/data_loss"]] == list(range(30))
    assert hparams(root / kill) == hparams(root / "unbroken")  # the first run's choices, not the resume command's
    assert hparams(root / kill)["reg"] == "l1"


def test_resume_keeps_the_first_runs_hydra_files(runs):
    root, _, _ = runs
    overrides = OmegaConf.load(root / "mid_epoch" / ".hydra" / "overrides.yaml")
    assert "model.dropout=0.25" in overrides
    [resumed] = (root / "mid_epoch" / ".hydra").glob("resumed_*")
    assert any(item.startswith("resume=") for item in OmegaConf.load(resumed / "overrides.yaml"))


# --- the parts, one by one --------------------------------------------------------------------

def test_loader_resumes_after_the_batches_it_had_served():
    dataset = TensorDataset(torch.arange(20))
    loader = ResumableLoader(dataset, EpochShuffle(20, seed=5, batch_size=3), batch_size=None)
    loader.sampler.set_epoch(2)
    full = [batch[0].tolist() for batch in loader]
    iterator = iter(loader)
    served = [next(iterator)[0].tolist() for _ in range(4)]
    state = loader.state_dict()
    assert state == {"seed": 5, "epoch": 2, "batches": 4} and served == full[:4]

    again = ResumableLoader(dataset, EpochShuffle(20, seed=99, batch_size=3), batch_size=None)
    again.load_state_dict(state)
    assert len(again) == len(full)  # Lightning counts the skipped batches as done
    assert [batch[0].tolist() for batch in again] == full[4:]
    assert [batch[0].tolist() for batch in again] == full  # the next pass is whole again


def test_loader_state_from_an_epochs_end_starts_the_next_epoch_whole():
    dataset = TensorDataset(torch.arange(12))
    loader = ResumableLoader(dataset, EpochShuffle(12, seed=1), batch_size=4)
    loader.load_state_dict({"seed": 1, "epoch": 0, "batches": 3})
    loader.sampler.set_epoch(1)  # Lightning moves on to the next epoch before the first batch
    batches = [batch[0] for batch in loader]
    assert len(batches) == 3 and sorted(torch.cat(batches).tolist()) == list(range(12))


def test_loader_skips_without_loading_and_with_workers():
    class Counting(TensorDataset):
        loaded = 0

        def __getitem__(self, index):
            Counting.loaded += 1
            return super().__getitem__(index)

    order = EpochShuffle(10, seed=0).order().tolist()
    loader = ResumableLoader(Counting(torch.arange(10)), EpochShuffle(10, seed=0), batch_size=2)
    loader.load_state_dict({"seed": 0, "epoch": 0, "batches": 3})
    assert torch.cat([batch[0] for batch in loader]).tolist() == order[6:]
    assert Counting.loaded == 4  # only the samples of the two batches left
    workers = ResumableLoader(TensorDataset(torch.arange(10)), EpochShuffle(10, seed=0), batch_size=2, num_workers=1)
    workers.load_state_dict({"seed": 0, "epoch": 0, "batches": 3})
    assert torch.cat([batch[0] for batch in workers]).tolist() == order[6:]


def test_random_state_survives_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.randn()  # leaves a cached Gaussian in NumPy's state
    torch.save({"state": capture_random_state()}, tmp_path / "rng.ckpt")
    expected = (torch.rand(3), np.random.rand(3).tolist(), random.random())
    restore_random_state(torch.load(tmp_path / "rng.ckpt", weights_only=True)["state"])
    actual = (torch.rand(3), np.random.rand(3).tolist(), random.random())
    assert torch.equal(actual[0], expected[0]) and actual[1:] == expected[1:]


def test_overrides_given_with_resume_apply_to_the_saved_config():
    saved = OmegaConf.create({"trainer": {"max_epochs": 2}, "callbacks": {"kill": {"x": 1}}, "resume": None})
    composed = OmegaConf.create({"trainer": {"max_epochs": 9, "limit": 3}, "callbacks": {}})
    overrides = ["resume=/runs/a", "trainer.max_epochs=9", "+trainer.limit=3", "~callbacks.kill", "~callbacks.absent"]
    apply_overrides(saved, composed, overrides)
    assert OmegaConf.to_container(saved) == {"trainer": {"max_epochs": 9, "limit": 3}, "callbacks": {}, "resume": None}
    with pytest.raises(ConfigError, match="resume= continues a run with its own config; loss=hinge picks another loss"):
        apply_overrides(saved, composed, ["loss=hinge"], is_group=lambda key: key == "loss")


def test_a_moved_run_folder_is_rebased():
    saved = {"paths": {"output_dir": "/old/run"}, "ckpt": "/old/run/checkpoints", "other": "/old/runner", "n": 1}
    assert rebase_paths(saved, "/old/run", "/new/place") == {
        "paths": {"output_dir": "/new/place"}, "ckpt": "/new/place/checkpoints", "other": "/old/runner", "n": 1
    }


def test_resume_of_a_run_without_a_checkpoint_says_so(tmp_path):
    (tmp_path / "config.yaml").write_text("paths:\n  output_dir: " + str(tmp_path) + "\n")
    cfg = OmegaConf.create({"resume": str(tmp_path), "paths": {"output_dir": str(tmp_path)}})
    expected = r"the run saved no checkpoint to continue from \(looked for .*checkpoints/last.ckpt\)"
    with pytest.raises(ConfigError, match=expected):
        resumed_config(cfg)
