"""lregloss under either Lightning: the unified ``lightning`` (``lightning.pytorch``) and the standalone ``pytorch_lightning``."""

import json
import os
import subprocess
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import ROOT


@pytest.mark.parametrize("package", ["lightning", "pytorch_lightning"])
def test_a_users_project_gets_real_modules_callbacks_and_histograms_of_its_own_lightning(package, tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "LREGLOSS_LIGHTNING"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "lightning_user.py"), package, str(tmp_path)],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["bound_to"] == package
    assert found["callbacks_are_callbacks"] and found["module_is_lightning_module"]
    assert found["module_steps"] == 2
    assert found["zero_share"] > 0 and found["largest_row_norm"] <= 0.5 + 1e-6
    assert "train/reg_loss" in found["logged"] and "train/reg_loss/l1" in found["logged"]
    events = EventAccumulator(found["log_dir"], size_guidance={"histograms": 0})
    events.Reload()
    assert "weights/net.0.weight" in events.Tags()["histograms"]  # RegularizationMonitor's, through that package's logger


def test_the_choice_can_be_forced_and_a_wrong_name_is_refused(tmp_path):
    code = "import pytorch_lightning, lregloss.lightning as l; print(l.PACKAGE)"
    forced = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "LREGLOSS_LIGHTNING": "lightning"})  # fmt: skip
    assert forced.stdout.strip() == "lightning", forced.stderr[-2000:]
    wrong = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**os.environ, "LREGLOSS_LIGHTNING": "lightning2"})  # fmt: skip
    assert "LREGLOSS_LIGHTNING='lightning2': use one of lightning, pytorch_lightning" in wrong.stderr
