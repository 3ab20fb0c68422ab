"""Convolutional networks for 32x32 images: airbench's fast net and a CIFAR ResNet-18."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, ResNet

from lregloss.validation import check_positive, check_probability


def mean_over_flips(network: Callable[[Tensor], Tensor], images: Tensor) -> Tensor:
    """(f(x) + f(flip(x))) / 2, with flip the horizontal mirror: test-time augmentation for f."""
    return (network(images) + network(images.flip(-1))) / 2


def _check_width(name: str, value: int) -> int:
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value}")
    return int(value)


class ConvGroup(nn.Sequential):
    """conv3x3 -> max-pool 2 -> BN -> GELU -> conv3x3 -> BN -> GELU (airbench's block).

    Pooling right after the first convolution does the second one at a quarter of the
    pixels, which is most of airbench's speed.
    """

    def __init__(self, width_in: int, width_out: int, batchnorm_momentum: float) -> None:
        super().__init__(
            nn.Conv2d(width_in, width_out, 3, padding=1, bias=False),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(width_out, momentum=batchnorm_momentum),
            nn.GELU(),
            nn.Conv2d(width_out, width_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(width_out, momentum=batchnorm_momentum),
            nn.GELU(),
        )


def patch_whitening(images: Tensor, size: int = 2, eps: float = 5e-4) -> Tensor:
    """The filters that whiten ``size`` x ``size`` patches of ``images`` (B, C, H, W): (2 C size^2, C, size, size).

    With Sigma = E[p p^T] over every patch p (flattened channel, row, column, uncentred, as
    airbench computes it) and Sigma = V diag(lambda) V^T, the filters are the rows of
    diag(lambda + eps)^(-1/2) V^T, largest eigenvalue first, followed by their negatives: a
    convolution with the first half maps patches to (nearly) unit, uncorrelated outputs, and
    the GELU after it sees each direction with both signs (Jordan 2024, airbench).
    """
    channels = images.shape[1]
    patches = images.double().unfold(2, size, 1).unfold(3, size, 1)  # (B, C, H', W', size, size)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, channels * size * size)
    covariance = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
    filters = (eigenvectors.T / (eigenvalues.clamp_min(0) + eps).sqrt().unsqueeze(1)).reshape(-1, channels, size, size)
    return torch.cat([filters, -filters]).to(images.dtype)


class AirbenchNet(nn.Module):
    """The network of airbench (Jordan 2024), its whitening stem included (``whiten_``).

    f(x) = scale * W dropout(maxpool(G3(G2(G1(GELU(conv2x2(x))))))), where each G is a
    `ConvGroup` halving the resolution (31 -> 15 -> 7 -> 3 pixels) and the last max-pool
    takes the whole 3x3 map. The output layer has no bias, and its logits are multiplied by
    ``output_scale`` (airbench's 1/9), which keeps the first steps' softmax near uniform at
    a high learning rate.

    Args:
        input_size: image channels (3 for RGB).
        num_outputs: width of the output layer (set by the loss).
        widths: channels of the three groups (airbench94: 64, 256, 256; 32, 64, 128 is the
            2-core CPU budget: 4x fewer multiply-adds).
        stem_width: channels of the 2x2 stem convolution (airbench: 24).
        dropout: probability p of zeroing a feature before the output layer, in [0, 1);
            inverted dropout, active in training only.
        output_scale: factor on the logits.
        batchnorm_momentum: torch's BatchNorm momentum (weight of the new batch statistics);
            airbench uses 0.4.
        eval_flip_average: in evaluation mode, output the mean over the image and its
            mirror (`mean_over_flips`): +1.2 points of test accuracy after 24 CPU epochs,
            at twice the evaluation cost.
        channels_last: store the convolution weights channels-last (NHWC), the layout
            that oneDNN and cuDNN convolve fastest: 1.6x faster CPU training steps (159 vs
            250 ms at batch 256, widths 32/64/128) when the images come channels-last too.

    The stem's weights can be set from the data and frozen, as airbench does: ``whiten_``
    (which `lregloss.callbacks.WhiteningInit` calls when fitting starts) makes them the
    `patch_whitening` filters of the training images; the stem's bias keeps training.

    Raises:
        ValueError: a width < 1, a number of widths other than 3, ``dropout`` outside
            [0, 1), or ``output_scale`` <= 0.
    """

    def __init__(
        self,
        input_size: int,
        num_outputs: int,
        widths: Sequence[int] = (64, 256, 256),
        stem_width: int = 24,
        dropout: float = 0.0,
        output_scale: float = 1 / 9,
        batchnorm_momentum: float = 0.4,
        eval_flip_average: bool = False,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if len(widths) != 3:
            raise ValueError(f"widths must list 3 group widths, got {list(widths)}")
        stem_width = _check_width("stem_width", stem_width)
        widths = [_check_width("widths", width) for width in widths]
        self.stem = nn.Sequential(
            nn.Conv2d(_check_width("input_size", input_size), stem_width, 2, bias=True), nn.GELU()
        )
        groups = []
        for width_in, width_out in zip([stem_width, *widths[:-1]], widths):
            groups.append(ConvGroup(width_in, width_out, check_probability("batchnorm_momentum", batchnorm_momentum)))
        self.groups = nn.Sequential(*groups)
        self.pool = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(check_probability("dropout", dropout))
        self.output = nn.Linear(widths[-1], _check_width("num_outputs", num_outputs), bias=False)
        self.output_scale = check_positive("output_scale", output_scale)
        self.eval_flip_average = eval_flip_average
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @torch.no_grad()
    def whiten_(self, images: Tensor, eps: float = 5e-4) -> None:
        """Set the stem's weights to the `patch_whitening` filters of ``images`` (model inputs) and freeze them.

        Raises:
            ValueError: the stem has not 2 x channels x 2 x 2 filters (airbench's 24 for RGB).
        """
        stem = self.stem[0]
        filters = patch_whitening(images, stem.kernel_size[0], eps)
        if filters.shape != stem.weight.shape:
            raise ValueError(
                f"whitening fills the stem with {len(filters)} filters (2 x {images.shape[1]} channels x "
                f"{stem.kernel_size[0]} x {stem.kernel_size[1]} pixels), but it has stem_width={stem.out_channels}; "
                f"set model.stem_width={len(filters)}"
            )
        stem.weight.copy_(filters)
        stem.weight.requires_grad_(False)

    def forward(self, images: Tensor) -> Tensor:
        if self.eval_flip_average and not self.training:
            return mean_over_flips(self.logits, images)
        return self.logits(images)

    def logits(self, images: Tensor) -> Tensor:
        """The network's output for ``images`` (B, C, H, W), without test-time augmentation."""
        features = self.pool(self.groups(self.stem(images)))
        return self.output(self.dropout(features)) * self.output_scale


class ResNet18(ResNet):
    """torchvision's ResNet-18 with the CIFAR stem: a 3x3 stride-1 convolution and no max-pool.

    The ImageNet stem (7x7 stride 2, then max-pool) would shrink a 32x32 image to 8x8
    before the first block; with this stem the four stages see 32, 16, 8 and 4 pixels (He
    et al. 2016, section 4.2). Dropout sits between the global average pool and the output
    layer.

    Args:
        input_size: image channels (3 for RGB).
        num_outputs: width of the output layer (set by the loss).
        dropout: probability p of zeroing a feature before the output layer, in [0, 1).
        eval_flip_average: in evaluation mode, output the mean over the image and its mirror.
        channels_last: store the convolution weights channels-last (NHWC).

    Raises:
        ValueError: a size < 1 or ``dropout`` outside [0, 1).
    """

    def __init__(
        self,
        input_size: int,
        num_outputs: int,
        dropout: float = 0.0,
        eval_flip_average: bool = False,
        channels_last: bool = True,
    ) -> None:
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=_check_width("num_outputs", num_outputs))
        self.conv1 = nn.Conv2d(_check_width("input_size", input_size), 64, 3, padding=1, bias=False)
        self.maxpool = nn.Identity()
        self.fc = nn.Sequential(nn.Dropout(check_probability("dropout", dropout)), self.fc)
        self.eval_flip_average = eval_flip_average
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, images: Tensor) -> Tensor:
        if self.eval_flip_average and not self.training:
            return mean_over_flips(super().forward, images)
        return super().forward(images)
