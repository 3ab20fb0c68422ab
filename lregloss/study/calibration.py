"""Reliability of predicted distributions for the studies: the binning of `lregloss.metrics.ReliabilityBins`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lregloss.metrics import RELIABILITY_BINS, Reliability, ReliabilityBins, confidence_bins

__all__ = ["Reliability", "calibrated_ece", "reliability"]

FLOOR_DRAWS = 1000  # label draws averaged: the floor's own standard error is under 1% of it


def reliability(proba: Tensor, target: Tensor, bins: int = RELIABILITY_BINS) -> Reliability:
    """The reliability diagram and ECE of (N, K) distributions ``proba`` for true classes ``target`` (`ReliabilityBins`)."""
    diagram = ReliabilityBins(bins)
    diagram.update(proba, target)
    return diagram.compute()


def calibrated_ece(proba: Tensor, draws: int = FLOOR_DRAWS, seed: int = 0, bins: int = RELIABILITY_BINS) -> float:
    """The ECE that a perfectly calibrated model with the distributions ``proba`` would measure on these N samples.

    The mean over ``draws`` draws of the ECE of ``proba`` against labels drawn from ``proba``
    itself: E[ECE] when y ~ p is the truth. ECE sums |accuracy - confidence| over bins of finitely
    many samples, so it is positive even then; about sum_b sqrt(2/pi) sqrt(n_b c_b (1 - c_b)) / N
    for bins of n_b samples at confidence c_b. A measured ECE near this floor is sampling noise.
    The bins are `ReliabilityBins`'; per draw, ECE = sum_b |correct_b - sum of confidences_b| / N.
    """
    proba = proba.double().cpu()
    confidence, predicted = proba.max(dim=1)
    in_bin = F.one_hot(confidence_bins(confidence, bins), bins).double()  # (N, bins)
    drawn = torch.multinomial(proba, draws, replacement=True, generator=torch.Generator().manual_seed(seed))
    correct = (drawn == predicted.unsqueeze(1)).double()  # (N, draws)
    gaps = correct.T @ in_bin - confidence @ in_bin  # (draws, bins)
    return float(gaps.abs().sum(dim=1).mean() / len(proba))
