"""Hierarchical softmax against full softmax and ``nn.AdaptiveLogSoftmaxWithLoss``.

Training: forward + backward from features h (N, D) that require grad, through each
output layer, with its parameters' gradients set to None before every call (as
``optimizer.zero_grad()`` leaves them), so every variant also pays for allocating its
gradients. Full softmax is ``nn.Linear(D, C)`` + ``F.cross_entropy``; hsoftmax is
``HierarchicalSoftmax`` on a balanced tree with exactly C leaves (and, for Zipf labels, the
Huffman tree of the label frequencies); the adaptive softmax uses cutoffs at 2%, 10% and
50% of C, classes ranked by frequency as it assumes.

Evaluation: the full (N, C) log-probabilities without autograd, ``log_softmax`` of the
logits against ``HierarchicalSoftmax.log_prob`` and the adaptive softmax's ``log_prob``.

    python -m benchmarks.hsoftmax [--tiny]
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.device import synchronizer
from benchmarks.report import run_standalone
from benchmarks.timing import Table, Timing, time_variants
from lregloss.losses import HierarchicalSoftmax

CLASS_COUNTS = (100, 300, 1_000, 10_000, 100_000)
TINY_CLASS_COUNTS = (10, 40)
FEATURES, BATCH = 256, 1024
TINY_FEATURES, TINY_BATCH = 8, 16
TARGET_CLASSES, TARGET = 100_000, 0.05  # hsoftmax <= 0.05x of full softmax at C = 1e5


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


def run_one(
    num_classes: int, features: int, batch: int, repeats: int, tiny: bool, device: torch.device
) -> dict[str, Timing]:
    generator = torch.Generator().manual_seed(num_classes)
    labels = {
        "uniform": torch.randint(0, num_classes, (batch,), generator=generator).to(device),
        "zipf": zipf_labels(num_classes, batch, generator).to(device),
    }
    # Huffman tree from the label distribution itself (expected counts of the Zipf law).
    counts = 1.0 / torch.arange(1, num_classes + 1, dtype=torch.float64)
    layers = OutputLayers(features, num_classes, counts, generator).to(device)
    h = torch.randn(batch, features, generator=generator).to(device).requires_grad_(True)
    variants = training_variants(layers, h, labels) | evaluation_variants(layers, h)
    big = num_classes >= 10_000 and not tiny and device.type == "cpu"
    return time_variants(
        variants, repeats=repeats, warmup=1, min_sample_s=0.0 if big else 0.02, synchronize=synchronizer(device)
    )


def run(tiny: bool = False, device: torch.device = torch.device("cpu")) -> list[Table]:
    """A training table and an evaluation table, one block of rows per C."""
    features, batch = (TINY_FEATURES, TINY_BATCH) if tiny else (FEATURES, BATCH)
    training = Table(
        "Output layers, training (forward + backward)",
        f"D = {features}, batch {batch}; uniform labels and Zipf labels (p(c) ~ 1/(c+1)); "
        "hsoftmax: balanced tree with exactly C leaves unless marked Huffman; adaptive cutoffs at "
        "2%, 10%, 50% of C; parameter gradients set to None before each call.",
    )
    evaluation = Table(
        "Output layers, evaluation: all C log-probabilities, no autograd",
        f"D = {features}, batch {batch}; the (N, C) log-probability matrix each layer gives.",
    )
    crossover = None
    for num_classes in TINY_CLASS_COUNTS if tiny else CLASS_COUNTS:
        repeats = 2 if tiny else (4 if num_classes >= 100_000 else 10)
        timings = run_one(num_classes, features, batch, repeats, tiny, device)
        target = TARGET if num_classes == TARGET_CLASSES and not tiny else None
        for labels in ("uniform", "zipf"):
            baseline = timings[f"full softmax, {labels}"]
            training.add(f"C={num_classes}: hsoftmax, {labels}", timings[f"hsoftmax, {labels}"], baseline, target)
            training.add(f"C={num_classes}: adaptive softmax, {labels}", timings[f"adaptive softmax, {labels}"],
                         baseline)  # fmt: skip
        training.add(f"C={num_classes}: hsoftmax Huffman, zipf", timings["hsoftmax Huffman, zipf"],
                     timings["full softmax, zipf"])  # fmt: skip
        faster = training.row(f"C={num_classes}: hsoftmax, uniform").paired_ratio < 1
        if faster and crossover is None:
            crossover = num_classes
        elif not faster:
            crossover = None
        for name in ("hsoftmax log_prob", "adaptive log_prob"):
            evaluation.add(f"C={num_classes}: {name}", timings[name], timings["full log_softmax"])
    training.notes.append(
        "Crossover: hsoftmax (balanced, uniform labels) is faster than full softmax from C = "
        f"{crossover} on, among the C measured." if crossover else
        "Crossover: hsoftmax (balanced, uniform labels) is not faster than full softmax at every C "
        "from some C on, among the C measured."
    )  # fmt: skip
    return [training, evaluation]


if __name__ == "__main__":
    run_standalone(run, __doc__)
