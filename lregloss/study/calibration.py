"""Reliability of predicted distributions for the studies: the binning of `lregloss.metrics.ReliabilityBins`."""

from __future__ import annotations

from torch import Tensor

from lregloss.metrics import RELIABILITY_BINS, Reliability, ReliabilityBins

__all__ = ["Reliability", "reliability"]


def reliability(proba: Tensor, target: Tensor, bins: int = RELIABILITY_BINS) -> Reliability:
    """The reliability diagram and ECE of (N, K) distributions ``proba`` for true classes ``target`` (`ReliabilityBins`)."""
    diagram = ReliabilityBins(bins)
    diagram.update(proba, target)
    return diagram.compute()
