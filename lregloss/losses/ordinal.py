"""Ordinal regression for K ordered levels: K - 1 threshold outputs, three objectives to fit them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lregloss.losses.base import Loss, full_precision
from lregloss.tasks import Task, TaskKind

# objective -> what it fits (the README's loss table gives the formulas)
OBJECTIVES = {
    "binary": "extended binary (CORAL-style): a logistic loss per threshold on 1[y >= k]",
    "likelihood": "cumulative link (proportional odds): -log P(y), P(y = k) = sigma(z_k) - sigma(z_{k+1})",
    "corn": "CORN (Shi et al. 2021): conditional logistic losses of 1[y >= k] on the samples with y >= k - 1",
}


def cumulative_logits(outputs: Tensor) -> Tensor:
    """Map K-1 free outputs o to ordered cumulative logits z_1 >= z_2 >= ... >= z_{K-1}.

    z_1 = o_1,  z_k = z_{k-1} - softplus(o_k)

    z_k is the logit of P(y >= k); keeping the z ordered keeps every level's probability
    P(y = k) = P(y >= k) - P(y >= k+1) non-negative (no crossing thresholds).
    """
    steps = torch.cat([outputs[:, :1], -F.softplus(outputs[:, 1:])], dim=1)
    return steps.cumsum(dim=1)


def cumulative_link_log_likelihood(outputs: Tensor, target: Tensor) -> Tensor:
    """log P(y_i) per sample under the cumulative-link model, P(y >= k) = sigma(z_k), (N,).

    With z = ``cumulative_logits(outputs)`` and z_{k+1} = z_k - softplus(o_{k+1}):
    P(y = 0) = sigma(-z_1), P(y = K-1) = sigma(z_{K-1}), and in between
    sigma(z_k) - sigma(z_{k+1}) = sigma(z_k) sigma(-z_{k+1}) (1 - exp(z_{k+1} - z_k)), where
    1 - exp(-softplus(o_{k+1})) = sigma(o_{k+1}): each factor a log-sigmoid, so no
    difference of probabilities is ever taken (stable for any outputs).
    """
    logits = cumulative_logits(outputs)
    edge = torch.zeros_like(logits[:, :1])
    at_least = torch.cat([edge, F.logsigmoid(logits)], dim=1)  # log sigma(z_k) at level k >= 1
    below_next = torch.cat([F.logsigmoid(-logits), edge], dim=1)  # log sigma(-z_{k+1}) at level k <= K-2
    gap = torch.cat([edge, F.logsigmoid(outputs[:, 1:]), edge], dim=1)  # log sigma(o_{k+1}) at 1 <= k <= K-2
    per_level = at_least + below_next + gap  # log P(y = k), (N, K)
    return per_level.gather(1, target.unsqueeze(1)).squeeze(1)


def level_probabilities(at_least: Tensor) -> Tensor:
    """P(y = k) = P(y >= k) - P(y >= k+1) for k = 0..K-1, (N, K), from P(y >= k) for k = 1..K-1, (N, K-1).

    P(y >= 0) = 1 and P(y >= K) = 0; rows sum to 1, and no entry is negative where ``at_least``
    is non-increasing in k.
    """
    ones = torch.ones_like(at_least[:, :1])
    zeros = torch.zeros_like(at_least[:, :1])
    return torch.cat([ones, at_least], dim=1) - torch.cat([at_least, zeros], dim=1)


def _at_least_cumulative(outputs: Tensor, temperature: float) -> Tensor:
    return (cumulative_logits(outputs) / temperature).sigmoid()


def _at_least_corn(outputs: Tensor, temperature: float) -> Tensor:
    return (outputs / temperature).sigmoid().cumprod(dim=1)


class OrdinalLogistic(Loss):
    """Ordinal loss over K ordered levels from K - 1 threshold outputs, by ``objective``.

    With t_ik = 1[y_i >= k], k = 1..K-1, and BCE(z, t) = -[t log sigma(z) + (1 - t) log sigma(-z)]:

    - ``binary`` (extended binary, as CORAL): mean_i sum_k BCE(z_ik, t_ik), z =
      ``cumulative_logits(outputs)`` (ordered); a sum of threshold losses, not the
      likelihood of the distribution below.
    - ``likelihood`` (cumulative link, proportional odds): mean_i -log P(y_i), P(y = k) =
      sigma(z_k) - sigma(z_{k+1}) with sigma(z_0) = 1, sigma(z_K) = 0
      (`cumulative_link_log_likelihood`).
    - ``corn`` (Shi et al. 2021, as coral-pytorch's ``corn_loss``): sum over k and the samples
      with y_i >= k - 1 of BCE(o_ik, t_ik), over the number of such (sample, k) pairs;
      sigma(o_k) = P(y >= k | y >= k - 1), so P(y >= k) = prod_{j <= k} sigma(o_j).

    ``predict_proba`` is the distribution each fits: P(y = k) = P(y >= k) - P(y >= k+1), with
    P(y >= k) = sigma(z_k) (binary, likelihood) or the CORN product; ``predict`` the median
    level, the number of k with P(y >= k) > 1/2. Targets are level indices 0..K-1.
    """

    tasks = frozenset({TaskKind.ORDINAL})
    own_level_rule = "median"

    def __init__(self, objective: str = "binary") -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        self.objective = objective

    def extra_repr(self) -> str:
        return f"objective={self.objective}"

    def num_outputs(self, task: Task) -> int:
        return task.size - 1

    def forward(self, outputs: Tensor, target: Tensor) -> Tensor:
        outputs = full_precision(outputs)
        if self.objective == "likelihood":
            return -cumulative_link_log_likelihood(outputs, target).mean()
        levels = torch.arange(1, outputs.shape[1] + 1, device=target.device)
        passed = (target.unsqueeze(1) >= levels).to(outputs.dtype)
        if self.objective == "binary":
            per_threshold = F.binary_cross_entropy_with_logits(cumulative_logits(outputs), passed, reduction="none")
            return per_threshold.sum(dim=1).mean()
        asked = (target.unsqueeze(1) >= levels - 1).to(outputs.dtype)  # task k sees the samples with y >= k - 1
        per_threshold = F.binary_cross_entropy_with_logits(outputs, passed, reduction="none")
        return (per_threshold * asked).sum() / asked.sum()

    def at_least(self, outputs: Tensor, temperature: float = 1.0) -> Tensor:
        """P(y >= k) for k = 1..K-1, shape (N, K-1), non-increasing in k; logits (z, or CORN's o) divided by T."""
        return (_at_least_corn if self.objective == "corn" else _at_least_cumulative)(outputs, temperature)

    def predict(self, outputs: Tensor) -> Tensor:
        """The median level in 0..K-1, shape (N,): the number of k with P(y >= k) > 1/2."""
        return (self.at_least(outputs) > 0.5).sum(dim=1)

    def predict_proba(self, outputs: Tensor, temperature: float = 1.0) -> Tensor:
        """P(y = k) for k = 0..K-1, shape (N, K); rows sum to 1. One T for every threshold: a T per
        threshold could cross the cumulative ones (sigma(z_1 / T_1) < sigma(z_2 / T_2))."""
        return level_probabilities(self.at_least(outputs, temperature))
