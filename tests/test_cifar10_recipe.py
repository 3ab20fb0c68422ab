"""The CIFAR-10 recipes end to end through the real entry point, on a small folder in the official format."""

import json

import pytest
import torch

from lregloss.data.cifar10_files import FOLDER_NAME, CIFAR10Arrays, write_cifar10

from test_train import run_entry_point, scalars, sweep_jobs

CIFAR_LOSSES = ["hinge", "squared_hinge", "softmax", "hsoftmax"]
SMALL = [
    "data.download=false",
    "data.val_size=20",
    "data.batch_size=16",
    "data.eval_batch_size=32",
    "model.widths=[4,8,8]",
    "trainer.check_val_every_n_epoch=1",
]


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    generator = torch.Generator().manual_seed(0)

    def draw(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator), torch.arange(count) % 10

    names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    write_cifar10(root / FOLDER_NAME, CIFAR10Arrays(*draw(100), *draw(40), names))
    return root


@pytest.fixture(scope="module")
def sweep(cifar_root, tmp_path_factory):
    """experiment=cifar10_cpu with every loss that fits CIFAR-10, max-norm and L1 on."""
    return sweep_jobs(
        tmp_path_factory.mktemp("logs"), "experiment=cifar10_cpu", f"data.root={cifar_root}", *SMALL,
        f"loss={','.join(CIFAR_LOSSES)}", "reg=l1", "callbacks.max_norm.max_norm=3",
    )  # fmt: skip


def test_every_cifar_loss_trains_validates_and_tests(sweep):
    assert len(sweep) == len(CIFAR_LOSSES)
    for job, loss in zip(sweep, CIFAR_LOSSES):
        tags = scalars(job)
        assert {"train/data_loss", "train/reg_loss", "val/acc", "val/acc_top5", "test/acc"} <= set(tags), (loss, sorted(tags))
        assert min(tags["train/reg_loss"]) > 0
        results = json.loads((job / "results.json").read_text())
        assert 0 <= results["test/acc"] <= 1, loss
        config = (job / "config.yaml").read_text()
        assert "lregloss.models.cifar.AirbenchNet" in config and "eval_flip_average: true" in config


@pytest.mark.parametrize("experiment", ["cifar10_cpu", "cifar10"])
def test_cifar_experiments_pick_the_airbench_net_and_fitting_losses(compose_config, experiment):
    cfg = compose_config(f"experiment={experiment}")
    assert cfg.data._target_.endswith("CIFAR10DataModule")
    assert cfg.model._target_.endswith("AirbenchNet") and cfg.loss._target_.endswith("SoftmaxCrossEntropy")
    assert cfg.trainer.max_epochs % cfg.trainer.check_val_every_n_epoch == 0  # the last epoch is validated


def test_a_loss_that_does_not_fit_images_is_refused_with_the_ones_that_do(cifar_root, tmp_path):
    result = run_entry_point(tmp_path, "experiment=cifar10_cpu", f"data.root={cifar_root}", *SMALL, "loss=attr_hinge")
    assert result.returncode == 2
    message = result.stdout + result.stderr
    for loss in CIFAR_LOSSES:
        assert loss in message
    assert "Traceback" not in message


def test_missing_data_offline_says_where_it_looked(tmp_path):
    result = run_entry_point(tmp_path, "experiment=cifar10_cpu", f"data.root={tmp_path / 'nowhere'}", *SMALL)
    assert result.returncode == 2
    message = result.stdout + result.stderr
    assert str(tmp_path / "nowhere" / FOLDER_NAME) in message and "Traceback" not in message

