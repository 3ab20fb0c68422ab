"""Per-attribute losses for multi-label targets: A independent binary decisions per sample."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from lregloss.losses.base import Loss, full_precision
from lregloss.tasks import TaskKind


class AttributeLoss(Loss):
    """A loss on (N, A) attribute scores f; predicts attribute j present where f_j > 0."""

    def predict(self, outputs: Tensor) -> Tensor:
        """Decisions 1[f_j > 0] in {0, 1}, shape (N, A), long."""
        return (outputs > 0).long()


class AttributeHinge(AttributeLoss):
    """Per-attribute binary hinge loss.

    loss = mean_i sum_j max(0, 1 - y_ij f_ij),  y_ij in {+1, -1}

    Sum over attributes, mean over the batch. Targets are accepted as {0, 1} or {-1, +1}:
    any target > 0 counts as +1, any other as -1.
    """

    tasks = frozenset({TaskKind.MULTILABEL})

    def forward(self, outputs: Tensor, target: Tensor) -> Tensor:
        outputs = full_precision(outputs)
        signs = torch.where(target > 0, 1.0, -1.0).to(outputs.dtype)
        return (1 - signs * outputs).clamp_min(0).sum(dim=1).mean()


class AttributeLogistic(AttributeLoss):
    """Per-attribute logistic loss (binary cross-entropy on logits), numerically stable.

    loss = mean_i -sum_j [p_j y_ij log sigmoid(f_ij) + (1 - y_ij) log(1 - sigmoid(f_ij))]

    Sum over attributes, mean over the batch (A times ``BCEWithLogitsLoss()``). The
    gradient is dL/df_ij = sigmoid(f_ij) - y_ij per sample (with p_j = 1).

    Args:
        pos_weight: optional weight p_j of the positive term of each attribute (e.g.
            negatives / positives for rare attributes); None means 1 for all.
    """

    tasks = frozenset({TaskKind.MULTILABEL})

    def __init__(self, pos_weight: Sequence[float] | None = None) -> None:
        super().__init__()
        weight = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float32)
        if weight is not None and (weight.ndim != 1 or not torch.all(weight > 0)):
            raise ValueError(f"pos_weight must be a list of numbers > 0, one per attribute, got {pos_weight}")
        self.register_buffer("pos_weight", weight)

    def forward(self, outputs: Tensor, target: Tensor) -> Tensor:
        outputs = full_precision(outputs)
        pos_weight = None if self.pos_weight is None else self.pos_weight.to(outputs.dtype)
        per_entry = F.binary_cross_entropy_with_logits(
            outputs, target.to(outputs.dtype), pos_weight=pos_weight, reduction="none"
        )
        return per_entry.sum(dim=1).mean()

    def predict_proba(self, outputs: Tensor, temperature: float = 1.0) -> Tensor:
        """sigmoid(f / T), the probability of each attribute, shape (N, A)."""
        return (outputs / temperature).sigmoid()
