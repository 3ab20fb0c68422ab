"""Temperature scaling: fitted on held-out outputs, applied to the test metrics, kept in the checkpoint."""

from functools import partial

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lregloss.calibration import fit_temperature, mean_nll
from lregloss.callbacks import TemperatureScaling
from lregloss.callbacks.temperature_scaling import TEMPERATURE_KEY
from lregloss.lightning import pl
from lregloss.losses import HierarchicalSoftmax, MulticlassHinge, OrdinalLogistic, SoftmaxCrossEntropy
from lregloss.models import MLP
from lregloss.module import RegularizedLossModule
from lregloss.tasks import Task


def hierarchical_softmax() -> HierarchicalSoftmax:
    """8 features, 6 classes, node vectors drawn at random (they start at zero: a uniform distribution)."""
    loss = HierarchicalSoftmax(8, 6).double()
    with torch.no_grad():
        loss.weight.normal_(generator=torch.Generator().manual_seed(5))
    return loss


def overconfident(loss, outputs, factor=3.0, seed=0):
    """Targets drawn from ``loss``'s distribution at ``outputs``; returned with the outputs ``factor`` times as sure."""
    generator = torch.Generator().manual_seed(seed)
    target = torch.multinomial(loss.predict_proba(outputs), 1, generator=generator).squeeze(1)
    return outputs * factor, target


@pytest.mark.parametrize(
    "loss,width,kept",
    [
        (SoftmaxCrossEntropy(), 5, "mode"),  # one T keeps the ranking of the scores
        (OrdinalLogistic("likelihood"), 4, "median"),  # and the side of 1/2 of each sigma(z_k / T)
        (OrdinalLogistic("corn"), 4, None),  # products of sigmoids, as a tree's, may change their levels
        (hierarchical_softmax(), 8, None),
    ],
    ids=["softmax", "cumulative link", "corn", "hsoftmax"],
)
def test_temperature_scaling_lowers_the_nll_of_a_miscalibrated_fixture(loss, width, kept):
    outputs = torch.randn(3000, width, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sure, target = overconfident(loss, outputs)
    temperature = fit_temperature(loss, sure, target)
    assert temperature > 1.5  # the fixture is too sure: T softens it
    assert mean_nll(loss, sure, target, temperature) < mean_nll(loss, sure, target) - 0.05
    if kept is not None:
        levels = loss.predict_proba(sure).shape[1]
        assert torch.equal(loss.predict_level(sure, levels, kept, temperature), loss.predict_level(sure, levels, kept))


def test_the_fitted_temperature_undoes_a_known_scaling_of_softmax_scores():
    scores = torch.randn(20000, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2
    sure, target = overconfident(SoftmaxCrossEntropy(), scores, factor=2.5)
    assert fit_temperature(SoftmaxCrossEntropy(), sure, target) == pytest.approx(2.5, rel=0.05)


def test_scaled_distributions_still_sum_to_one():
    outputs = torch.randn(7, 4, dtype=torch.float64)
    for loss in (SoftmaxCrossEntropy(), OrdinalLogistic("binary"), OrdinalLogistic("likelihood"), OrdinalLogistic("corn")):
        torch.testing.assert_close(loss.predict_proba(outputs, 0.3).sum(dim=1), torch.ones(7, dtype=torch.float64))


def test_a_loss_without_a_distribution_cannot_be_scaled():
    with pytest.raises(ValueError, match="temperature scaling needs a distribution, which MulticlassHinge"):
        fit_temperature(MulticlassHinge(), torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))


class Ratings(pl.LightningDataModule):
    """Ratings from 8 features with a learnable signal, split 600 / 300 / 300."""

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        x = torch.randn(1200, 8, generator=generator)
        score = x[:, 0] * 2 + x[:, 1] + 0.7 * torch.randn(1200, generator=generator)
        y = torch.bucketize(score, torch.tensor([-2.0, -0.7, 0.7, 2.0]))
        self.parts = {"train": (x[:600], y[:600]), "val": (x[600:900], y[600:900]), "test": (x[900:], y[900:])}

    def loader(self, part, shuffle=False):
        return DataLoader(TensorDataset(*self.parts[part]), batch_size=100, shuffle=shuffle)

    def train_dataloader(self):
        return self.loader("train", shuffle=True)

    def val_dataloader(self):
        return self.loader("val")

    def test_dataloader(self):
        return self.loader("test")


def test_the_callback_applies_the_validation_temperature_to_the_test_metrics_and_keeps_it(tmp_path):
    torch.manual_seed(0)
    task = Task("ordinal", 5)
    loss = SoftmaxCrossEntropy()
    module = RegularizedLossModule(MLP(8, 5, hidden_sizes=(64,)), loss, task, partial(torch.optim.Adam, lr=0.05))
    data = Ratings()
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, filename="best")
    trainer = pl.Trainer(
        max_epochs=60, logger=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[checkpoint, TemperatureScaling()], default_root_dir=tmp_path,
    )  # fmt: skip  # 60 epochs of Adam on 600 samples: overfitted, so too sure on new ones
    trainer.fit(module, datamodule=data)
    [result] = trainer.test(module, datamodule=data, ckpt_path=checkpoint.best_model_path, verbose=False)
    temperature = result["test/temperature"]
    assert temperature > 1.0 and module.temperature == pytest.approx(temperature)
    assert result["test/nll"] < result["test/uncalibrated/nll"]
    assert result["test/ece"] < result["test/uncalibrated/ece"]
    stored = torch.load(checkpoint.best_model_path, weights_only=True)
    assert stored[TEMPERATURE_KEY] == pytest.approx(temperature)
    fresh = RegularizedLossModule(MLP(8, 5, hidden_sizes=(64,)), loss, task, partial(torch.optim.Adam, lr=0.05))
    fresh.on_load_checkpoint(stored)
    assert fresh.temperature == pytest.approx(temperature)
    x, _ = data.parts["test"]
    expected = loss.predict_proba(module.model(x), temperature)
    rebuilt_proba = module.predict_step([x], 0)["proba"]
    torch.testing.assert_close(rebuilt_proba, expected)


def test_without_a_datamodule_the_callback_says_how_to_give_one():
    task = Task("ordinal", 5)
    module = RegularizedLossModule(MLP(8, 5), SoftmaxCrossEntropy(), task, partial(torch.optim.SGD, lr=0.1))
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[TemperatureScaling()])
    with pytest.raises(ValueError, match=r"reads the validation split from the datamodule; test with trainer.test\(module, datamodule"):
        trainer.test(module, dataloaders=Ratings().test_dataloader(), verbose=False)
