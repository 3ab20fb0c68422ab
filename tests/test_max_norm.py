"""Max-norm projection on hand-written weights, and the callback in a real Lightning run."""

import contextlib
import math
from pathlib import Path

import hydra
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lregloss.callbacks import MaxNormConstraint, project_max_norm_
from lregloss.code_paths import accelerator_code_paths

CONF = Path(__file__).resolve().parents[1] / "conf"
CODE_PATHS = pytest.mark.parametrize("code_path", [contextlib.nullcontext, accelerator_code_paths], ids=["cpu", "accelerator"])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@CODE_PATHS
def test_rows_above_the_cap_are_rescaled_and_the_others_left_alone(dtype, code_path):
    weight = torch.tensor(
        [
            [3.0, 4.0],  # norm 5 -> 2
            [0.6, 0.8],  # norm 1, kept
            [0.0, 0.0],  # norm 0, kept
            [-6.0, 8.0],  # norm 10 -> 2
            [1.2, -1.6],  # norm exactly 2, kept
        ],
        dtype=dtype,
    )
    before = weight.clone()
    with code_path():
        project_max_norm_([weight], max_norm=2.0)
    expected = torch.tensor([[1.2, 1.6], [0.6, 0.8], [0.0, 0.0], [-1.2, 1.6], [1.2, -1.6]], dtype=dtype)
    torch.testing.assert_close(weight, expected, rtol=0, atol=1e-6)
    for row in (1, 2, 4):
        assert torch.equal(weight[row], before[row])  # bit-identical
    for row in (0, 3):
        assert weight[row].norm().item() == pytest.approx(2.0, abs=1e-6)


@CODE_PATHS
def test_conv_filters_are_units_along_dim_zero(code_path):
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(6, 3, 3, 3, dtype=torch.float64, generator=generator)
    weight[::2] *= 10  # filters 0, 2, 4 far above the cap, 1, 3, 5 scaled below it
    weight[1::2] *= 0.05
    before = weight.clone()
    norms = before.flatten(1).norm(dim=1)
    cap = 1.5
    assert (norms[::2] > cap).all() and (norms[1::2] < cap).all()
    with code_path():
        project_max_norm_([weight], cap)
    for unit in range(6):
        if norms[unit] > cap:
            torch.testing.assert_close(weight[unit], before[unit] * cap / norms[unit], rtol=0, atol=1e-6)
            assert weight[unit].norm().item() == pytest.approx(cap, abs=1e-6)
        else:
            assert torch.equal(weight[unit], before[unit])


@CODE_PATHS
def test_channels_last_conv_weight_projects_in_place(code_path):
    generator = torch.Generator().manual_seed(1)
    weight = (torch.randn(4, 3, 2, 2, generator=generator) * 5).to(memory_format=torch.channels_last)
    with code_path():
        project_max_norm_([weight], 1.0)
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert (weight.flatten(1).norm(dim=1) <= 1.0 + 1e-6).all()


@CODE_PATHS
def test_included_bias_is_clipped_elementwise(code_path):
    bias = torch.tensor([3.0, -0.5, -2.0])
    with code_path():
        project_max_norm_([bias], 1.0)
    torch.testing.assert_close(bias, torch.tensor([1.0, -0.5, -1.0]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("max_norm", [0.0, -1.0, math.nan, math.inf])
def test_invalid_max_norm_raises(max_norm):
    with pytest.raises(ValueError, match=r"^max_norm\b"):
        MaxNormConstraint(max_norm)


def test_single_string_pattern_raises():
    with pytest.raises(ValueError, match=r"^include\b"):
        MaxNormConstraint(3.0, include="*.weight")


class TinyClassifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))

    def training_step(self, batch, batch_idx):
        inputs, labels = batch
        return F.cross_entropy(self.net(inputs), labels)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1.0)  # large, so unconstrained norms grow


def unit_norms(model: nn.Module) -> torch.Tensor:
    return torch.cat([m.weight.detach().norm(dim=1) for m in model.modules() if isinstance(m, nn.Linear)])


def fit_tiny(callback: MaxNormConstraint, cap: float, accumulate: int = 1) -> TinyClassifier:
    torch.manual_seed(0)
    model = TinyClassifier()
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(8)  # start outside the ball so the test fails without the projection
    assert (unit_norms(model) > cap).any()
    data = TensorDataset(torch.randn(32, 6), torch.randint(0, 3, (32,)))
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=4,
        accumulate_grad_batches=accumulate,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(data, batch_size=4))
    assert trainer.global_step == 4
    return model


@pytest.mark.parametrize("accumulate", [1, 2])
def test_callback_keeps_every_unit_norm_under_the_cap_during_training(accumulate):
    cap = 0.5
    model = fit_tiny(MaxNormConstraint(cap), cap, accumulate)
    assert (unit_norms(model) <= cap + 1e-6).all()
    assert (model.net[0].bias.detach().abs() > cap).any()  # biases are not constrained by default


def test_callback_with_no_max_norm_is_off():
    cap = 0.5
    model = fit_tiny(MaxNormConstraint(None), cap)
    assert (unit_norms(model) > cap).any()


@pytest.mark.parametrize(("override", "expected"), [([], None), (["max_norm.max_norm=3"], 3.0)])
def test_callback_config_instantiates(override, expected):
    config = OmegaConf.merge(
        OmegaConf.load(CONF / "pluggable" / "callbacks" / "max_norm.yaml"), OmegaConf.from_dotlist(override)
    )
    callback = hydra.utils.instantiate(config.max_norm)
    assert isinstance(callback, MaxNormConstraint) and callback.max_norm == expected
