"""Ordinal regression for K ordered levels: a cumulative-link (CORAL-style) loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lregloss.losses.base import Loss, full_precision
from lregloss.tasks import Task, TaskKind


def cumulative_logits(outputs: Tensor) -> Tensor:
    """Map K-1 free outputs o to ordered cumulative logits z_1 >= z_2 >= ... >= z_{K-1}.

    z_1 = o_1,  z_k = z_{k-1} - softplus(o_k)

    z_k is the logit of P(y >= k); keeping the z ordered keeps every level's probability
    P(y = k) = P(y >= k) - P(y >= k+1) non-negative (no crossing thresholds).
    """
    steps = torch.cat([outputs[:, :1], -F.softplus(outputs[:, 1:])], dim=1)
    return steps.cumsum(dim=1)


class OrdinalLogistic(Loss):
    """Cumulative-link ordinal loss over K ordered levels (extended binary, as CORAL).

    loss = mean_i -sum_{k=1}^{K-1} [t_ik log sigmoid(z_ik) + (1 - t_ik) log sigmoid(-z_ik)]
    with t_ik = 1[y_i >= k] and z = ``cumulative_logits(outputs)``.

    The model gives K-1 outputs per sample, one per threshold between adjacent levels;
    sum over thresholds, mean over the batch. Targets are level indices 0..K-1. The
    predicted level is the number of thresholds passed, sum_k 1[z_k > 0].
    """

    tasks = frozenset({TaskKind.ORDINAL})

    def num_outputs(self, task: Task) -> int:
        return task.size - 1

    def forward(self, outputs: Tensor, target: Tensor) -> Tensor:
        logits = cumulative_logits(full_precision(outputs))
        levels = torch.arange(1, logits.shape[1] + 1, device=target.device)
        passed = (target.unsqueeze(1) >= levels).to(logits.dtype)
        per_threshold = F.binary_cross_entropy_with_logits(logits, passed, reduction="none")
        return per_threshold.sum(dim=1).mean()

    def predict(self, outputs: Tensor) -> Tensor:
        """Level index in 0..K-1, shape (N,)."""
        return (cumulative_logits(outputs) > 0).sum(dim=1)

    def predict_proba(self, outputs: Tensor) -> Tensor:
        """P(y = k) for k = 0..K-1, shape (N, K); rows sum to 1."""
        at_least = cumulative_logits(outputs).sigmoid()
        ones = torch.ones_like(at_least[:, :1])
        zeros = torch.zeros_like(at_least[:, :1])
        return torch.cat([ones, at_least], dim=1) - torch.cat([at_least, zeros], dim=1)
