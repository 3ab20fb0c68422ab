"""The output layers the hsoftmax benchmark and study compare: full softmax, adaptive softmax, hierarchical softmax.

Training variants run forward + backward from features h (N, D) that require grad, with the
parameters' gradients set to None before every call (as ``optimizer.zero_grad()`` leaves
them); evaluation variants give the full (N, C) log-probabilities without autograd.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lregloss.losses import HierarchicalSoftmax

FEATURES, BATCH = 256, 1024
TINY_FEATURES, TINY_BATCH = 8, 16


def zipf_labels(num_classes: int, size: int, generator: torch.Generator) -> Tensor:
    """Labels with p(c) proportional to 1 / (c + 1): class 0 the most frequent."""
    weights = 1.0 / torch.arange(1, num_classes + 1, dtype=torch.float64)
    return torch.multinomial(weights, size, replacement=True, generator=generator)


def adaptive_cutoffs(num_classes: int) -> list[int]:
    cutoffs = sorted({max(1, round(num_classes * share)) for share in (0.02, 0.1, 0.5)})
    return [cutoff for cutoff in cutoffs if cutoff < num_classes]


class OutputLayers(nn.Module):
    """The output layers compared, all on the same features."""

    def __init__(self, features: int, num_classes: int, label_counts: Tensor, generator: torch.Generator) -> None:
        super().__init__()
        self.full = nn.Linear(features, num_classes)
        self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(features, num_classes, adaptive_cutoffs(num_classes))
        self.hsoftmax = HierarchicalSoftmax(features, num_classes)
        self.huffman = HierarchicalSoftmax(features, num_classes, class_counts=label_counts.tolist())
        with torch.no_grad():  # trained-looking node vectors instead of the zero start
            for tree in (self.hsoftmax, self.huffman):
                tree.weight.normal_(0, features**-0.5, generator=generator)


def training_variants(layers: OutputLayers, h: Tensor, labels: dict[str, Tensor]) -> dict[str, Callable[[], None]]:
    def step(loss_of: Callable[[Tensor], Tensor], y: Tensor) -> Callable[[], None]:
        def run() -> None:
            h.grad = None
            layers.zero_grad(set_to_none=True)
            loss_of(y).backward()

        return run

    variants = {}
    for name, y in labels.items():
        variants[f"full softmax, {name}"] = step(lambda y: F.cross_entropy(layers.full(h), y), y)
        variants[f"adaptive softmax, {name}"] = step(lambda y: layers.adaptive(h, y).loss, y)
        variants[f"hsoftmax, {name}"] = step(lambda y: layers.hsoftmax(h, y), y)
    variants["hsoftmax Huffman, zipf"] = step(lambda y: layers.huffman(h, y), labels["zipf"])
    return variants


def evaluation_variants(layers: OutputLayers, h: Tensor) -> dict[str, Callable[[], None]]:
    def no_grad(fn: Callable[[], Tensor]) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                fn()

        return run

    features = h.detach()
    return {
        "full log_softmax": no_grad(lambda: F.log_softmax(layers.full(features), dim=-1)),
        "adaptive log_prob": no_grad(lambda: layers.adaptive.log_prob(features)),
        "hsoftmax log_prob": no_grad(lambda: layers.hsoftmax.log_prob(features)),
    }
