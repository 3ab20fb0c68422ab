"""Reliability of predicted distributions: confidence against accuracy, bin by bin."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

BINS = 15  # as the logged val/ece and test/ece (torchmetrics MulticlassCalibrationError, n_bins=15)


@dataclass(frozen=True)
class Reliability:
    """Per confidence bin: mean confidence, accuracy and sample count (bins without samples dropped); ECE."""

    confidence: list[float]
    accuracy: list[float]
    count: list[int]
    ece: float


def reliability(proba: Tensor, target: Tensor, bins: int = BINS) -> Reliability:
    """Bin the top-label confidence max_k p_k into ``bins`` equal bins of [0, 1] and compare it with accuracy.

    ECE = sum_b (n_b / N) |accuracy_b - mean confidence_b|, the top-label calibration error of
    torchmetrics' ``MulticlassCalibrationError(norm="l1")`` (which gives a confidence of exactly
    1 a bin of its own; here it joins the last bin).

    Args:
        proba: (N, K) predicted distributions.
        target: (N,) true classes.
        bins: number of equal-width confidence bins.
    """
    confidence, predicted = proba.max(dim=1)
    correct = (predicted == target).double()
    which = torch.bucketize(confidence.double(), torch.linspace(0, 1, bins + 1, dtype=torch.float64)[1:-1], right=True)
    count = torch.bincount(which, minlength=bins)
    sums = torch.zeros(bins, dtype=torch.float64)
    mean_confidence = sums.index_add(0, which, confidence.double()) / count.clamp_min(1)
    accuracy = sums.index_add(0, which, correct) / count.clamp_min(1)
    ece = float(((count / len(target)) * (accuracy - mean_confidence).abs()).sum())
    kept = count > 0
    return Reliability(mean_confidence[kept].tolist(), accuracy[kept].tolist(), count[kept].tolist(), ece)
