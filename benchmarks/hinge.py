"""Multiclass hinge and squared hinge, forward + backward, against ``nn.MultiMarginLoss``.

``nn.MultiMarginLoss(p=1)`` and ``(p=2)`` are torch's fused kernels for the same losses
divided by C, so they are the natural baselines; ``F.cross_entropy`` is printed for scale.
Each call computes the loss on (N, C) scores that require grad and backpropagates it.

    python -m benchmarks.hinge [--tiny]
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lregloss.benchmarking.device import synchronizer
from benchmarks.report import run_standalone
from lregloss.benchmarking.timing import Table, time_variants
from lregloss.losses import MulticlassHinge, MulticlassSquaredHinge

SHAPES = ((512, 10), (4096, 1000))
TINY_SHAPES = ((8, 3), (32, 20))
TARGET_SHAPE = (4096, 1000)  # where the <= 0.8x target applies; other sizes are reported
TARGET = 0.8


def forward_backward(loss: Callable[[Tensor, Tensor], Tensor], scores: Tensor, target: Tensor) -> Callable[[], None]:
    def run() -> None:
        scores.grad = None
        loss(scores, target).backward()

    return run


def run(tiny: bool = False, device: torch.device = torch.device("cpu")) -> list[Table]:
    """One table per (N, C), each loss against the MultiMarginLoss of the same power."""
    tables = []
    for n, c in TINY_SHAPES if tiny else SHAPES:
        generator = torch.Generator().manual_seed(0)
        scores = torch.randn(n, c, generator=generator).to(device).requires_grad_(True)
        target = torch.randint(0, c, (n,), generator=generator).to(device)
        losses = {
            "nn.MultiMarginLoss(p=1)": nn.MultiMarginLoss(p=1),
            "hinge": MulticlassHinge(),
            "nn.MultiMarginLoss(p=2)": nn.MultiMarginLoss(p=2),
            "squared_hinge": MulticlassSquaredHinge(),
            "F.cross_entropy": F.cross_entropy,
        }
        timings = time_variants(
            {name: forward_backward(loss, scores, target) for name, loss in losses.items()},
            repeats=3 if tiny else 25,
            warmup=1 if tiny else 3,
            min_sample_s=0.001 if tiny else 0.02,
            synchronize=synchronizer(device),
        )
        target_ratio = TARGET if (n, c) == TARGET_SHAPE else None
        table = Table(
            f"Multiclass hinge losses, forward + backward, N x C = {n} x {c}",
            "Scores (N, C) float32 requiring grad, uniform labels; calls shorter than 20 ms timed in "
            "groups; baselines are torch's fused MultiMarginLoss of the same power.",
        )
        table.add("hinge", timings["hinge"], timings["nn.MultiMarginLoss(p=1)"], target_ratio)
        table.add("squared_hinge", timings["squared_hinge"], timings["nn.MultiMarginLoss(p=2)"], target_ratio)
        table.add("F.cross_entropy", timings["F.cross_entropy"], timings["nn.MultiMarginLoss(p=1)"])
        table.unit = "ms" if n * c >= 100_000 else "us"
        tables.append(table)
    return tables


if __name__ == "__main__":
    run_standalone(run, __doc__)
