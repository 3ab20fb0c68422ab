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

import torch

from benchmarks.report import run_standalone
from lregloss.benchmarking.device import synchronizer
from lregloss.benchmarking.output_layers import (
    BATCH,
    FEATURES,
    TINY_BATCH,
    TINY_FEATURES,
    OutputLayers,
    evaluation_variants,
    training_variants,
    zipf_labels,
)
from lregloss.benchmarking.timing import Table, Timing, time_variants

CLASS_COUNTS = (100, 300, 1_000, 10_000, 100_000)
TINY_CLASS_COUNTS = (10, 40)
TARGET_CLASSES, TARGET = 100_000, 0.05  # hsoftmax <= 0.05x of full softmax at C = 1e5


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
