"""Losses on C class scores: multiclass SVM hinge, squared hinge, softmax cross-entropy."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lregloss.losses.base import Loss
from lregloss.tasks import TaskKind
from lregloss.validation import check_positive, check_probability


class ClassScoresLoss(Loss):
    """A loss on (N, C) class scores f with int targets y in 0..C-1; predicts argmax_j f_j."""

    def class_scores(self, outputs: Tensor) -> Tensor:
        """(N, C) scores whose ranking is the prediction (used by top-k metrics)."""
        return outputs

    def predict(self, outputs: Tensor) -> Tensor:
        """Class index argmax_j f_j, shape (N,)."""
        return self.class_scores(outputs).argmax(dim=-1)


def multiclass_margins(scores: Tensor, target: Tensor, margin: float) -> Tensor:
    """max(0, f_j - f_y + margin) for every j, shape (N, C).

    The j = y entry is exactly ``margin`` (f_y - f_y = 0) and carries no gradient, so
    sum_{j != y} = sum_j - margin: no scatter needed.
    """
    true_scores = scores.gather(1, target.unsqueeze(1))
    return (scores - true_scores + margin).clamp_min(0)


class MulticlassHinge(ClassScoresLoss):
    """Multiclass SVM (Weston-Watkins) hinge loss.

    loss = mean_i sum_{j != y_i} max(0, f_ij - f_iy_i + margin)

    Sum over classes, mean over the batch; no 1/C factor, unlike torch.nn.MultiMarginLoss
    (which equals this loss / C).

    Args:
        margin: the required gap Delta between the true score and every other score, > 0.
    """

    tasks = frozenset({TaskKind.MULTICLASS, TaskKind.ORDINAL})

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__()
        self.margin = check_positive("margin", margin)

    def forward(self, outputs: Tensor, target: Tensor) -> Tensor:
        margins = multiclass_margins(outputs, target, self.margin)
        return margins.sum(dim=1).mean() - self.margin

    def extra_repr(self) -> str:
        return f"margin={self.margin}"


class MulticlassSquaredHinge(MulticlassHinge):
    """Squared multiclass SVM hinge loss (L2-SVM).

    loss = mean_i sum_{j != y_i} max(0, f_ij - f_iy_i + margin)^2

    Sum over classes, mean over the batch; no 1/C factor, unlike
    torch.nn.MultiMarginLoss(p=2).
    """

    def forward(self, outputs: Tensor, target: Tensor) -> Tensor:
        margins = multiclass_margins(outputs, target, self.margin)
        return margins.square().sum(dim=1).mean() - self.margin**2


class SoftmaxCrossEntropy(ClassScoresLoss):
    """Softmax cross-entropy.

    loss = mean_i -sum_j q_ij log softmax(f_i)_j,  q_i = (1 - s) onehot(y_i) + s / C

    With s = 0 (the default) this is -log(exp(f_y) / sum_j exp(f_j)), mean over the batch,
    exactly ``F.cross_entropy``.

    Args:
        label_smoothing: s in [0, 1), the mass spread uniformly over the C classes.
    """

    tasks = frozenset({TaskKind.MULTICLASS, TaskKind.ORDINAL})

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = check_probability("label_smoothing", label_smoothing)

    def forward(self, outputs: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(outputs, target, label_smoothing=self.label_smoothing)

    def predict_proba(self, outputs: Tensor) -> Tensor:
        """softmax(f), shape (N, C)."""
        return outputs.softmax(dim=-1)

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}"
