"""Ordinal losses of other libraries on lregloss's `Loss` contract: the peers of ``loss=ordinal``.

``pip install 'lregloss[ordinal-peers]'`` installs the libraries; each loss imports its
library when it is built and says how to install it where it is missing.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import torch
from torch import Tensor

from lregloss.losses.base import Loss, check_num_classes, full_precision
from lregloss.losses.ordinal import OrdinalLogistic, level_probabilities
from lregloss.tasks import Task, TaskKind

EXTRA = "ordinal-peers"  # the optional dependencies in pyproject.toml


def import_peer(module: str, distribution: str, loss: str) -> ModuleType:
    """``module`` of the peer library ``distribution``, imported for ``loss``.

    Raises:
        ImportError: the library is not installed; the message gives the pip command.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{loss} runs {distribution}, which is not installed: pip install 'lregloss[{EXTRA}]'"
        ) from error


class CoralCorn(OrdinalLogistic):
    """coral-pytorch's CORN loss (``coral_pytorch.losses.corn_loss``, Shi et al. 2021) on K - 1 outputs.

    The objective of ``OrdinalLogistic("corn")``, computed by coral-pytorch: with
    sigma(o_k) = P(y >= k | y >= k - 1) and BCE the binary cross-entropy,

        loss = sum_{k, i: y_i >= k - 1} BCE(o_ik, 1[y_i >= k]) / #{(k, i): y_i >= k - 1}

    ``predict`` is coral-pytorch's ``corn_label_from_logits`` (the median level, the number of k
    with P(y >= k) = prod_{j <= k} sigma(o_j) > 1/2); ``predict_proba`` the distribution of
    those P(y >= k), as for ``OrdinalLogistic("corn")``.

    Raises:
        ImportError: coral-pytorch is not installed.
    """

    def __init__(self) -> None:
        super().__init__("corn")
        self._losses = import_peer("coral_pytorch.losses", "coral-pytorch", type(self).__name__)
        self._dataset = import_peer("coral_pytorch.dataset", "coral-pytorch", type(self).__name__)

    def extra_repr(self) -> str:
        return ""

    def forward(self, outputs: Tensor, target: Tensor) -> Tensor:
        outputs = full_precision(outputs)
        return self._losses.corn_loss(outputs, target, num_classes=outputs.shape[1] + 1)

    def predict(self, outputs: Tensor) -> Tensor:
        return self._dataset.corn_label_from_logits(outputs)


class SpacecutterCumulativeLink(Loss):
    """spacecutter's cumulative link (proportional odds) model: one output f per sample, K - 1 cutpoints.

    The cutpoints c_0 <= ... <= c_{K-2} are parameters of the loss (spacecutter's
    ``LogisticCumulativeLink``, started at j - (K - 1)/2), shared by every sample:

        P(y <= j) = sigma(c_j - f),  P(y = k) = P(y <= k) - P(y <= k - 1)
        loss = mean_i -log clamp(P(y_i), 1e-15, 1 - 1e-15)   (spacecutter's ``CumulativeLinkLoss``)

    spacecutter keeps the cutpoints ascending with its ``AscensionCallback``, which clamps each
    to at most the next after every optimizer step; the same clamp runs here at the start of
    every training forward, so each training step sees the cutpoints it would. ``predict`` is the
    median level, the number of k with P(y >= k) > 1/2; ``predict_proba`` divides the logits
    f - c_j by the temperature. Targets are level indices 0..K-1.

    Args:
        num_classes: K, the number of levels, >= 3 (spacecutter's own bound).

    Raises:
        ImportError: spacecutter is not installed.
        ValueError: ``num_classes`` below 3.
    """

    tasks = frozenset({TaskKind.ORDINAL})
    own_level_rule = "median"

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        if int(num_classes) != num_classes or num_classes < 3:
            raise ValueError(f"num_classes must be an integer >= 3 (spacecutter's bound), got {num_classes}")
        models = import_peer("spacecutter.models", "spacecutter", type(self).__name__)
        losses = import_peer("spacecutter.losses", "spacecutter", type(self).__name__)
        self.num_classes = int(num_classes)
        self.link = models.LogisticCumulativeLink(self.num_classes)
        self.likelihood = losses.CumulativeLinkLoss()

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}"

    def num_outputs(self, task: Task) -> int:
        """One score per sample; the cutpoints are the loss's.

        Raises:
            LossTaskMismatchError: the task's number of levels differs from num_classes.
        """
        check_num_classes(self, task)
        return 1

    @torch.no_grad()
    def _ascend(self) -> None:
        """spacecutter's ``AscensionCallback.clip`` (margin 0, min -1e6): c_j clamped to [-1e6, c_{j+1}] for j < K - 2.

        Its loop takes j in ascending order, so each c_{j+1} is still unclamped when c_j is
        clamped to it: one vectorised clamp of every j against the old values is the same.
        """
        cutpoints = self.link.cutpoints
        cutpoints[:-1] = torch.minimum(cutpoints[:-1].clamp_min(-1.0e6), cutpoints[1:])

    def forward(self, outputs: Tensor, target: Tensor) -> Tensor:
        if self.training:
            self._ascend()
        return self.likelihood(self.link(full_precision(outputs)), target.unsqueeze(1))

    def at_least(self, outputs: Tensor, temperature: float = 1.0) -> Tensor:
        """P(y >= k) = sigma((f - c_{k-1}) / T) for k = 1..K-1, shape (N, K-1)."""
        return ((full_precision(outputs) - self.link.cutpoints) / temperature).sigmoid()

    def predict(self, outputs: Tensor) -> Tensor:
        """The median level in 0..K-1, shape (N,)."""
        return (self.at_least(outputs) > 0.5).sum(dim=1)

    def predict_proba(self, outputs: Tensor, temperature: float = 1.0) -> Tensor:
        """P(y = k) for k = 0..K-1, shape (N, K); at T = 1 spacecutter's ``LogisticCumulativeLink`` output."""
        return level_probabilities(self.at_least(outputs, temperature))

