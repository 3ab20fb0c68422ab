"""scripts/gpu_check.sh: its refusals, and its recipe mode run on CPU with a stand-in nvidia-smi."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT
from test_cifar10_recipe import SMALL, cifar_root  # noqa: F401 (a fixture)

SCRIPT = ROOT / "scripts" / "gpu_check.sh"
CPU = ["trainer.accelerator=cpu", "trainer.precision=32", "trainer.max_epochs=1", "+trainer.limit_train_batches=2"]


def run_script(*arguments, path=None, **env):
    environment = {**os.environ, "PYTHON": sys.executable, **env}
    if path is not None:
        environment["PATH"] = f"{path}{os.pathsep}{environment['PATH']}"
    return subprocess.run(["bash", str(SCRIPT), *arguments], capture_output=True, text=True, env=environment, timeout=600)


def test_without_a_mode_it_prints_its_usage():
    result = run_script()
    assert result.returncode == 2 and "usage:" in result.stderr


@pytest.mark.skipif(any((p and os.access(os.path.join(p, "nvidia-smi"), os.X_OK)) for p in os.environ["PATH"].split(os.pathsep)),
                    reason="this machine has nvidia-smi")  # fmt: skip
def test_without_a_gpu_it_says_so(tmp_path):
    result = run_script("bench", OUT=str(tmp_path))
    assert result.returncode == 2 and "no NVIDIA GPU here" in result.stderr


@pytest.mark.slow  # 45 s: four short recipe runs; the GPU check itself runs it on the device
def test_recipe_mode_runs_the_variants_side_by_side_and_reports_them(cifar_root, tmp_path):  # noqa: F811
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\necho 'Stand-in GPU, 0 MiB, 0'\n")
    (fake / "nvidia-smi").chmod(0o755)
    out, runs = tmp_path / "out", tmp_path / "runs"
    extra = " ".join([*SMALL, *CPU])
    result = run_script("recipe", str(cifar_root), path=fake, OUT=str(out), RUNS=str(runs), EXTRA=extra)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (out / "gpu.txt").read_text().startswith("Stand-in GPU")
    variants = {"seed0", "seed1", "seed2", "whitened"}
    assert {folder.name for folder in runs.iterdir()} == variants
    assert all((runs / name / "results.json").is_file() and (out / f"{name}.log").is_file() for name in variants)
    report = (out / "report" / "report.md").read_text()
    assert "4 jobs, 4 with results" in report and "| seed |" in report and "callbacks.whitening" in report
