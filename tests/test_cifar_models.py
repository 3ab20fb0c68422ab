"""The CIFAR networks: shapes, dropout, test-time flip averaging, memory layout, argument checks."""

from functools import partial

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from lregloss.callbacks import WhiteningInit
from lregloss.losses import SoftmaxCrossEntropy
from lregloss.models.cifar import AirbenchNet, ResNet18, mean_over_flips, patch_whitening
from lregloss.module import RegularizedLossModule
from lregloss.regularizers import L2
from lregloss.tasks import Task

NETS = [
    lambda **kw: AirbenchNet(3, 10, widths=(4, 8, 8), stem_width=4, **kw),
    lambda **kw: ResNet18(3, 10, **kw),
]


@pytest.fixture
def images():
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("make", NETS)
def test_outputs_one_row_per_image(make, images):
    assert make()(images).shape == (4, 10)


def test_airbench_net_scales_its_logits_and_has_no_output_bias(images):
    torch.manual_seed(0)
    unscaled = AirbenchNet(3, 10, widths=(4, 8, 8), output_scale=1.0).eval()
    torch.manual_seed(0)
    scaled = AirbenchNet(3, 10, widths=(4, 8, 8), output_scale=0.25).eval()
    torch.testing.assert_close(scaled(images), 0.25 * unscaled(images))
    assert unscaled.output.bias is None


def test_resnet18_has_the_cifar_stem():
    net = ResNet18(3, 10)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, torch.nn.Identity)
    assert sum(p.numel() for p in net.parameters()) == 11_173_962  # He et al.'s CIFAR ResNet-18 size


@pytest.mark.parametrize("make", NETS)
def test_dropout_acts_in_training_only(make, images):
    net = make(dropout=0.5)
    net.eval()
    torch.testing.assert_close(net(images), net(images))
    net.train()
    net.apply(lambda m: m.eval() if isinstance(m, torch.nn.BatchNorm2d) else None)  # isolate dropout
    assert not torch.allclose(net(images), net(images))


@pytest.mark.parametrize("make", NETS)
def test_flip_averaging_is_the_mean_of_both_views_in_evaluation_only(make, images):
    torch.manual_seed(0)
    plain = make().eval()
    torch.manual_seed(0)
    averaged = make(eval_flip_average=True).eval()
    expected = (plain(images) + plain(images.flip(-1))) / 2
    torch.testing.assert_close(averaged(images), expected)
    torch.testing.assert_close(mean_over_flips(plain, images), expected)
    averaged.train()
    plain.train()
    torch.testing.assert_close(averaged(images), plain(images))  # training sees one view


@pytest.mark.parametrize("make", NETS)
@pytest.mark.parametrize("channels_last", [True, False])
def test_convolution_weights_follow_the_asked_layout(make, channels_last):
    net = make(channels_last=channels_last)
    convs = [m.weight for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) == channels_last or w.shape[-1] == 1 for w in convs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"widths": (8, 8)}, "widths must list 3"),
        ({"widths": (8, 0, 8)}, "widths must be an integer >= 1"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"output_scale": 0}, "output_scale must be"),
        ({"stem_width": 2.5}, "stem_width must be an integer"),
    ],
)
def test_airbench_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AirbenchNet(3, 10, **kwargs)


def test_resnet_arguments_are_checked():
    with pytest.raises(ValueError, match="num_outputs must be"):
        ResNet18(3, 0)
    with pytest.raises(ValueError, match="dropout must be in"):
        ResNet18(3, 10, dropout=-0.1)


def correlated_images(count: int = 64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    images = torch.randn(count, 3, 32, 32, generator=generator) * torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1)
    images[:, 1] += 0.8 * images[:, 0]  # correlated channels, as colours are
    return images


def patch_covariance(outputs: torch.Tensor) -> torch.Tensor:
    flat = outputs.double().permute(0, 2, 3, 1).reshape(-1, outputs.shape[1])
    return flat.T @ flat / len(flat)


def test_patch_whitening_filters_give_unit_uncorrelated_outputs_and_their_negatives():
    images = correlated_images()
    filters = patch_whitening(images, size=2, eps=1e-9)
    assert filters.shape == (24, 3, 2, 2)
    torch.testing.assert_close(filters[12:], -filters[:12])
    covariance = patch_covariance(torch.nn.functional.conv2d(images.double(), filters[:12].double()))
    torch.testing.assert_close(covariance, torch.eye(12, dtype=torch.float64), rtol=0, atol=1e-4)


def test_whiten_sets_and_freezes_the_stem_and_checks_its_width():
    images = correlated_images()
    net = AirbenchNet(3, 10, widths=(4, 8, 8))
    net.whiten_(images)
    torch.testing.assert_close(net.stem[0].weight, patch_whitening(images))
    assert not net.stem[0].weight.requires_grad and net.stem[0].bias.requires_grad
    with pytest.raises(ValueError, match="whitening fills the stem with 24 filters .* stem_width=4; set model.stem_width=24"):
        AirbenchNet(3, 10, widths=(4, 8, 8), stem_width=4).whiten_(images)


class ImageData(pl.LightningDataModule):
    def __init__(self) -> None:
        super().__init__()
        self.images = correlated_images(96)
        self.labels = torch.arange(96) % 10

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.images, self.labels), batch_size=16)


def whitening_fit(data, ckpt_path=None, epochs: int = 1, whitening: bool = True, module=None):
    torch.manual_seed(0)
    module = module or RegularizedLossModule(
        AirbenchNet(3, 10, widths=(4, 8, 8)), SoftmaxCrossEntropy(), Task("multiclass", 10),
        lambda params: torch.optim.SGD(params, lr=0.1), regularizers={"reg": L2(0.01)},
    )  # fmt: skip
    trainer = pl.Trainer(accelerator="cpu", max_epochs=epochs, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, limit_val_batches=0,
                         callbacks=[WhiteningInit(images=40)] if whitening else [])  # fmt: skip
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return module, trainer


def test_the_whitening_callback_initialises_from_the_first_training_images():
    data = ImageData()
    module, _ = whitening_fit(data)
    stem = module.model.stem[0]
    torch.testing.assert_close(stem.weight.detach(), patch_whitening(data.images[:40]))  # frozen: L2 moved nothing
    assert stem.bias.abs().sum() > 0  # the bias trains


def test_a_resumed_run_keeps_its_restored_first_layer(tmp_path):
    data = ImageData()
    module, trainer = whitening_fit(data)
    trainer.save_checkpoint(tmp_path / "epoch0.ckpt")
    checkpoint = torch.load(tmp_path / "epoch0.ckpt", weights_only=True)
    checkpoint["state_dict"]["model.stem.0.weight"] *= 2  # not what whitening computes
    torch.save(checkpoint, tmp_path / "changed.ckpt")
    resumed, _ = whitening_fit(data, ckpt_path=str(tmp_path / "changed.ckpt"), epochs=2)
    stem = resumed.model.stem[0].weight
    torch.testing.assert_close(stem.detach(), 2 * patch_whitening(data.images[:40]))  # restored, then frozen
    assert not stem.requires_grad


class StemOfEachRank(pl.Callback):
    """Each rank writes its stem weights to ``<folder>/stem<k>.pt`` when fitting ends."""

    def __init__(self, folder) -> None:
        self.folder = folder

    def on_fit_end(self, trainer, pl_module) -> None:
        torch.save(pl_module.model.stem[0].weight.detach().clone(), self.folder / f"stem{trainer.global_rank}.pt")


def test_under_ddp_every_rank_starts_from_the_same_frozen_filters(tmp_path):
    data = ImageData()
    torch.manual_seed(0)
    module = RegularizedLossModule(AirbenchNet(3, 10, widths=(4, 8, 8)), SoftmaxCrossEntropy(), Task("multiclass", 10),
                                   partial(torch.optim.SGD, lr=0.1))  # fmt: skip
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", max_steps=2, logger=False,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         limit_val_batches=0, callbacks=[WhiteningInit(images=40), StemOfEachRank(tmp_path)])  # fmt: skip
    trainer.fit(module, datamodule=data)
    stems = [torch.load(tmp_path / f"stem{rank}.pt", weights_only=True) for rank in range(2)]
    assert torch.equal(stems[0], stems[1])
    torch.testing.assert_close(stems[0], patch_whitening(data.images[:40]))  # frozen while the ranks trained
