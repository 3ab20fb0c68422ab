"""Losses on C class scores: multiclass SVM hinge, squared hinge, softmax cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lregloss.code_paths import takes_accelerator_path
from lregloss.losses.base import Loss, full_precision
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
    """max(0, f_j - f_y + margin) for every j != y, and 0 at j = y: shape (N, C)."""
    target = target.unsqueeze(1)
    violations = torch.sub(scores, scores.gather(1, target) - margin).clamp_min_(0)
    return violations.scatter_(1, target, 0)


SUM = 2  # torch's reduction enum (none 0, mean 1, sum 2), as aten::multi_margin_loss takes it


class _MulticlassHingeFunction(torch.autograd.Function):
    """mean_i sum_{j != y_i} max(0, f_ij - f_iy_i + margin)^power for power 1 or 2.

    On the CPU written out rather than left to autograd: the loss and its gradient each take a
    few passes over the (N, C) scores (autograd's version of the same expression takes about
    twice as many, with an (N, C) temporary each), which keeps it at 0.26x the time of torch's
    ``nn.MultiMarginLoss`` at large N x C. On accelerators (`lregloss.code_paths`) torch's
    fused kernel computes the same thing in one pass each way, the loss being C times its
    summed ``multi_margin_loss`` (which divides by C) over N. The gradient is

        d/df_ij = power * max(0, f_ij - f_iy_i + margin)^(power - 1) / N   for j != y_i
        d/df_iy_i = -sum_{j != y_i} d/df_ij

    with max(0, .)^0 read as 1 where positive, 0 elsewhere (the subgradient 0 at the kink).
    Where a graph of the gradient is asked for (``create_graph=True``: gradient penalties,
    Hessian-vector products), the backward computes the same expression from the saved scores
    with differentiable ops, so it can be differentiated again.
    """

    @staticmethod
    def forward(ctx, scores: Tensor, target: Tensor, margin: float, power: int) -> Tensor:
        ctx.margin, ctx.power, ctx.fused = margin, power, takes_accelerator_path(scores)
        if ctx.fused:
            ctx.save_for_backward(scores, target)
            summed = torch.ops.aten.multi_margin_loss(scores, target, power, margin, None, SUM)
            return summed * (scores.shape[1] / scores.shape[0])
        violations = multiclass_margins(scores, target, margin)
        flat = violations.view(-1)
        total = flat.sum() if power == 1 else torch.dot(flat, flat)
        ctx.save_for_backward(scores, target, violations)
        return total / scores.shape[0]

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None, None, None]:
        scores, target, *kept = ctx.saved_tensors
        if ctx.fused and not torch.is_grad_enabled():
            grad = torch.ops.aten.multi_margin_loss_backward(
                grad_output * (scores.shape[1] / scores.shape[0]), scores, target, ctx.power, ctx.margin, None, SUM
            )
            return grad, None, None, None
        target = target.unsqueeze(1)
        scale = grad_output * (ctx.power / scores.shape[0])
        if torch.is_grad_enabled():  # create_graph: out-of-place ops, violations recomputed from the scores
            violations = multiclass_margins(scores, target.squeeze(1), ctx.margin)
            grad = violations.sign() * scale if ctx.power == 1 else violations * scale
            return grad.scatter(1, target, -grad.sum(dim=1, keepdim=True)), None, None, None
        violations = kept[0]
        grad = violations.sign().mul_(scale) if ctx.power == 1 else violations * scale  # 0 at j = y_i
        return grad.scatter_(1, target, grad.sum(dim=1, keepdim=True).neg_()), None, None, None


class MulticlassHinge(ClassScoresLoss):
    """Multiclass SVM (Weston-Watkins) hinge loss.

    loss = mean_i sum_{j != y_i} max(0, f_ij - f_iy_i + margin)

    Sum over classes, mean over the batch; no 1/C factor, unlike torch.nn.MultiMarginLoss
    (which equals this loss / C).

    Args:
        margin: the required gap Delta between the true score and every other score, > 0.
    """

    tasks = frozenset({TaskKind.MULTICLASS, TaskKind.ORDINAL})
    power = 1

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__()
        self.margin = check_positive("margin", margin)

    def forward(self, outputs: Tensor, target: Tensor) -> Tensor:
        # In float32 for half-precision scores, with autocast off: it would run the dot product
        # of the squared hinge in float16, where a sum of 512 x 1000 violations overflows.
        scores = full_precision(outputs)
        with torch.autocast(scores.device.type, enabled=False):
            return _MulticlassHingeFunction.apply(scores, target, self.margin, self.power)

    def extra_repr(self) -> str:
        return f"margin={self.margin}"


class MulticlassSquaredHinge(MulticlassHinge):
    """Squared multiclass SVM hinge loss (L2-SVM).

    loss = mean_i sum_{j != y_i} max(0, f_ij - f_iy_i + margin)^2

    Sum over classes, mean over the batch; no 1/C factor, unlike
    torch.nn.MultiMarginLoss(p=2).
    """

    power = 2


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
        return F.cross_entropy(full_precision(outputs), target, label_smoothing=self.label_smoothing)

    def predict_proba(self, outputs: Tensor, temperature: float = 1.0) -> Tensor:
        """softmax(f / T), shape (N, C)."""
        return (outputs / temperature).softmax(dim=-1)

    def target_log_prob(self, outputs: Tensor, target: Tensor) -> Tensor:
        """log softmax(f)_{y_i} per sample, (N,)."""
        return -F.cross_entropy(full_precision(outputs), target, reduction="none")

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}"
