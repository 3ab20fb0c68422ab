"""The CIFAR networks: shapes, dropout, test-time flip averaging, memory layout, argument checks."""

import pytest
import torch

from lregloss.models.cifar import AirbenchNet, ResNet18, mean_over_flips

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
