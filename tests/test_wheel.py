"""The wheel, installed outside the source tree: its files, and its commands run from another directory.

The wheel is built from a copy of the package's sources and installed with ``--no-deps`` into
a fresh virtual environment that sees the dependencies of the test environment (a ``.pth``
line naming its site-packages) but neither the checkout nor its editable install.
"""

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT

SOURCES = ("pyproject.toml", "README.md", "lregloss", "conf")
TINY_RUN = [
    "+trainer.max_steps=3",
    "trainer.max_epochs=1",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "~callbacks.rich_progress_bar",
]


def run(command: list, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the wheel's path, the fresh environment's bin folder, a working directory outside the checkout)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "dist", source], root)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (root / "dist").glob("lregloss-*.whl")

    env = root / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", env], check=True)
    env_python = env / "bin" / "python"
    env_site = Path(
        subprocess.run(
            [env_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )
    (env_site / "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = run([sys.executable, "-m", "pip", "--python", env_python, "install", "--no-deps", "-q", wheel], root)
    assert install.returncode == 0, install.stderr[-3000:]
    work = root / "elsewhere"
    work.mkdir()
    return wheel, env / "bin", work


def test_the_wheel_holds_lregloss_alone_with_every_module_and_config(installed):
    wheel, _, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"lregloss", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    modules = {str(path.relative_to(ROOT)) for path in (ROOT / "lregloss").rglob("*.py")}
    configs = {"lregloss/conf/" + str(path.relative_to(ROOT / "conf")) for path in (ROOT / "conf").rglob("*.yaml")}
    assert modules | configs <= set(names)
    assert "lregloss/conf/__init__.py" in names
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    for command in ("lregloss-train = lregloss.app.train:main", "lregloss-report = lregloss.reporting.cli:main",
                    "lregloss-predict = lregloss.app.predict:main"):  # fmt: skip
        assert command in text


def test_the_commands_work_from_another_directory(installed):
    _, bin_dir, work = installed
    where = run([bin_dir / "python", "-c", "import lregloss; print(lregloss.__file__)"], work)
    assert where.stdout.startswith(str(bin_dir.parent)), where.stdout + where.stderr  # the wheel's, not the checkout's

    help_text = run([bin_dir / "python", "-m", "lregloss", "--help"], work)
    assert help_text.returncode == 0, help_text.stderr[-3000:]
    assert "loss: adaptive_softmax, attr_hinge, attr_logistic, coral_corn, hinge" in help_text.stdout and "reg: elastic, l1, l2, maxnorm, none" in help_text.stdout

    trained = run([bin_dir / "lregloss-train", "loss=hinge", "reg=l1", *TINY_RUN], work)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    (run_dir,) = (work / "logs" / "runs").iterdir()  # runs go to ./logs of the current directory
    assert json.loads((run_dir / "results.json").read_text())["val/acc"] > 0
    assert (run_dir / "checkpoints" / "last.ckpt").exists()

    report = run([bin_dir / "lregloss-report", work / "logs" / "runs"], work)
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    assert (work / "logs" / "runs" / "report" / "report.md").exists()

    (work / "new.csv").write_text('Title,Review Text\nLove it,"Soft, fits well!"\n,too small\n')
    predicted = run([bin_dir / "lregloss-predict", run_dir, "new.csv"], work)
    assert predicted.returncode == 0, predicted.stdout[-3000:] + predicted.stderr[-3000:]
    header, *rows = (work / "new.predictions.csv").read_text().splitlines()
    assert header == "row,prediction" and len(rows) == 2  # hinge gives no distribution

    imported = run([bin_dir / "python", "-m", "lregloss.app.train"], work)
    assert imported.returncode == 2
    assert "run lregloss-train" in imported.stderr


def test_an_app_of_ones_own_composes_loss_and_reg_from_the_installed_package(installed):
    _, bin_dir, work = installed
    app = work / "own_app"
    shutil.copytree(ROOT / "examples" / "own_app", app, ignore=shutil.ignore_patterns("__pycache__"))
    trained = run([bin_dir / "python", app / "train.py", "loss=hinge", "reg=l1", "reg.mode=proximal",
                   "callbacks.max_norm.max_norm=3", "trainer.max_epochs=2"], work)  # fmt: skip
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    assert float(trained.stdout.rsplit("val/acc=", 1)[1]) > 0.5

    composed = run([bin_dir / "python", app / "train.py", "--cfg", "job", "loss=hsoftmax", "+model=mlp"], work)
    assert composed.returncode == 0, composed.stderr[-3000:]
    assert "_target_: lregloss.losses.hierarchical.HierarchicalSoftmax" in composed.stdout
    assert "model: mlp" in composed.stdout  # a plain value: lregloss's model group is not on the app's path
