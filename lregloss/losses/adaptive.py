"""Adaptive softmax: a head over the frequent classes and clusters of rare ones (Grave et al. 2017)."""

from __future__ import annotations

import bisect
import itertools
import operator
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lregloss.losses.base import OutputLayerLoss, full_precision
from lregloss.tasks import TaskKind
from lregloss.validation import check_counts, check_integer, check_positive

# Shares of the training labels that the head, then the head and the first tail cluster,
# cover when the cutoffs are chosen from the counts: Grave et al.'s heads hold the few
# thousand words that make up ~80% of a text, and a last cluster of the rare words making up
# the final 5% keeps its large vocabulary in the cheapest projection.
CUTOFF_SHARES = (0.8, 0.95)


def coverage_cutoffs(class_counts: Sequence[float], shares: Sequence[float] = CUTOFF_SHARES) -> list[int]:
    """Cutoffs in frequency-rank order: the fewest most frequent classes that cover each share of the counts.

    cutoff_j = min {k : (q_(1) + ... + q_(k)) / (q_(1) + ... + q_(C)) >= share_j}, q_(r) the
    r-th largest count, clipped into 1..C-1; a cutoff no larger than the one before it is
    dropped, so the result is increasing and never empty (C = 2 gives [1]).

    Args:
        class_counts: C >= 2 non-negative counts, in any order, with a positive sum.
        shares: increasing fractions in (0, 1].

    Returns:
        Increasing cutoffs, each in (0, C).
    """
    ranked = sorted(class_counts, reverse=True)
    covered = list(itertools.accumulate(ranked))
    cutoffs: list[int] = []
    for share in shares:
        cutoff = min(max(bisect.bisect_left(covered, share * covered[-1]) + 1, 1), len(ranked) - 1)
        if not cutoffs or cutoff > cutoffs[-1]:
            cutoffs.append(cutoff)
    return cutoffs


def zipf_counts(num_classes: int) -> list[float]:
    """Zipf's law over the class indices: count_c = 1 / (c + 1), class 0 the most frequent."""
    return [1.0 / (rank + 1) for rank in range(num_classes)]


class AdaptiveSoftmax(OutputLayerLoss):
    """Adaptive softmax (Grave et al. 2017), torch's ``nn.AdaptiveLogSoftmaxWithLoss``, in lregloss's class order.

    Classes are ranked by decreasing training frequency, r(y) the rank of class y, and split by
    the cutoffs k_0 < k_1 < ... < k_{m-1} (with k_m = C) into a head of the k_0 most frequent
    classes and m tail clusters T_i = ranks k_{i-1} .. k_i - 1. The head scores its k_0 classes
    and one entry per cluster, z = W_0 h (+ b); cluster i scores its classes through a
    projection of width d_i = floor(D / div_value^i), u_i = W_i P_i h:

        p(y | h) = softmax(z / T)_{r(y)}                                         r(y) < k_0
        p(y | h) = softmax(z / T)_{k_0 + i - 1} softmax(u_i / T)_{r(y) - k_{i-1}}   r(y) in T_i

    loss = mean_i -log p(y_i | h_i) (temperature T = 1), mean over the batch.

    The model outputs features h (N, D) and this module owns the output layer. Training
    forms only each sample's own terms: O(D (k_0 + m)) for a head class, plus
    O(d_i (D + |T_i|)) for a class of cluster i, instead of O(D C).

    Frequency order: with ``class_counts`` the classes are ranked by decreasing count, ties
    by class index; without, the class index order is taken as the frequency order (class 0
    the most frequent). The ranking lives in non-persistent buffers (rebuilt from the
    arguments); every method takes and returns classes in their original index order. As
    hierarchical softmax, it also fits ordinal tasks: a distribution over the levels.

    Cutoffs: with ``cutoffs=None`` the head covers 80% of the training labels and the head
    and first cluster 95% (`coverage_cutoffs`, `CUTOFF_SHARES`); without counts, or with
    counts that sum to 0, the counts are assumed to follow Zipf's law in the index order
    (`zipf_counts`), which at C = 10,000 gives [1412, 6130]. A chosen cluster whose
    projection would be 0 wide (D < div_value^i) joins the cluster before it.

    Args:
        in_features: D, the width of the features h, >= 1.
        num_classes: C, the number of classes, >= 2.
        class_counts: optional C non-negative training frequencies.
        cutoffs: increasing integers in (0, C), in frequency-rank order; None: from the counts.
        div_value: > 0, each cluster's projection is div_value times narrower than the last.
        head_bias: learn a bias b for the head's logits.

    Raises:
        ValueError: an argument out of range, or a cluster projection of width 0 (named).
    """

    tasks = frozenset({TaskKind.MULTICLASS, TaskKind.ORDINAL})

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        class_counts: Sequence[float] | None = None,
        cutoffs: Sequence[int] | None = None,
        div_value: float = 4.0,
        head_bias: bool = False,
    ) -> None:
        super().__init__()
        self.in_features = check_integer("in_features", in_features, 1)
        self.num_classes = check_integer("num_classes", num_classes, 2)
        counts = None if class_counts is None else check_counts("class_counts", class_counts)
        if counts is not None and len(counts) != self.num_classes:
            raise ValueError(f"class_counts must hold num_classes={self.num_classes} entries, got {len(counts)}")
        self.div_value = check_positive("div_value", div_value)
        self.order_source = "index" if counts is None or sum(counts) == 0 else "class_counts"
        if self.order_source == "index":
            counts = zipf_counts(self.num_classes)
        if cutoffs is None:
            chosen = coverage_cutoffs(counts)
            fitting = [i for i in range(1, len(chosen) + 1) if self.in_features // self.div_value**i >= 1]
            self.cutoffs = chosen[: max(len(fitting), 1)]  # a cluster that would be 0 wide joins the one before
        else:
            self.cutoffs = self._check_cutoffs(cutoffs)
        for cluster in range(1, len(self.cutoffs) + 1):
            if self.in_features // self.div_value**cluster < 1:
                raise ValueError(
                    f"div_value={self.div_value:g} leaves tail cluster {cluster} of {len(self.cutoffs)} a "
                    f"projection of width floor({self.in_features} / {self.div_value:g}^{cluster}) = 0; lower "
                    "div_value, raise in_features or give fewer cutoffs"
                )
        order = torch.tensor(sorted(range(self.num_classes), key=lambda c: (-counts[c], c)))
        rank = torch.empty_like(order).scatter_(0, order, torch.arange(self.num_classes))
        # Derived from the arguments, so rebuilt rather than saved in checkpoints.
        self.register_buffer("order", order, persistent=False)  # the class at each frequency rank
        self.register_buffer("rank", rank, persistent=False)  # the frequency rank of each class
        self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(
            self.in_features, self.num_classes, self.cutoffs, div_value=self.div_value, head_bias=bool(head_bias)
        )

    def forward(self, outputs: Tensor, target: Tensor) -> Tensor:
        """-log p(y | h), mean over the batch (torch's ``.loss``); outputs are h (N, D)."""
        return -self.target_log_prob(outputs, target).mean()

    def target_log_prob(self, outputs: Tensor, target: Tensor) -> Tensor:
        """log p(y_i | h_i) per sample, (N,): torch's ``.output``, which forms only each sample's own cluster."""
        self._check_features(outputs)
        # Autocast off and h in the weights' dtype: under autocast torch's module would mix the
        # dtypes of its per-sample buffer and its log-softmaxes (an error on CUDA, bf16 sums on CPU).
        with torch.autocast(outputs.device.type, enabled=False):
            return self.adaptive(outputs.to(self.adaptive.head.weight.dtype), self.rank.index_select(0, target)).output

    def log_prob(self, outputs: Tensor, temperature: float | Tensor = 1.0) -> Tensor:
        """log p(c | h) for every class c in index order, (N, C), the head's and clusters' logits divided by T.

        At T = 1 this is torch's ``log_prob`` with its columns un-permuted; it is formed here
        from the module's head and tail layers because torch's takes no temperature. The
        log-softmaxes run in at least float32.
        """
        self._check_features(outputs)
        with torch.autocast(outputs.device.type, enabled=False):
            features = outputs.to(self.adaptive.head.weight.dtype)
            head = (full_precision(self.adaptive.head(features)) / temperature).log_softmax(dim=1)
            shortlist = self.cutoffs[0]
            pieces = [head[:, :shortlist]]
            for cluster, layers in enumerate(self.adaptive.tail):
                tail = (full_precision(layers(features)) / temperature).log_softmax(dim=1)
                pieces.append(tail + head[:, shortlist + cluster].unsqueeze(1))
        return torch.cat(pieces, dim=1).index_select(1, self.rank)

    def class_scores(self, outputs: Tensor) -> Tensor:
        """(N, C) scores whose ranking is the prediction (log p(c | h), for top-k metrics)."""
        return self.log_prob(outputs)

    def predict(self, outputs: Tensor) -> Tensor:
        """Class index argmax_c p(c | h), shape (N,), long: torch's ``predict``, which forms tails only where needed."""
        self._check_features(outputs)
        with torch.autocast(outputs.device.type, enabled=False):
            return self.order.index_select(0, self.adaptive.predict(outputs.to(self.adaptive.head.weight.dtype)))

    def predict_proba(self, outputs: Tensor, temperature: float | Tensor = 1.0) -> Tensor:
        """p(c | h) with the head's and clusters' logits divided by T, shape (N, C)."""
        return self.log_prob(outputs, temperature).exp()

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, num_classes={self.num_classes}, cutoffs={self.cutoffs}, "
            f"div_value={self.div_value:g}, head_bias={self.adaptive.head_bias}, order={self.order_source}"
        )

    def _check_cutoffs(self, cutoffs: Sequence[int]) -> list[int]:
        try:  # integers only: operator.index refuses 2.5 and "2", as bools are refused
            values = [operator.index(value) for value in cutoffs if not isinstance(value, bool)]
            integral = len(values) == len(cutoffs)
        except TypeError:
            values, integral = [], False
        if (
            not integral
            or not values
            or values != sorted(set(values))
            or not 0 < values[0] <= values[-1] < self.num_classes
        ):
            raise ValueError(
                f"cutoffs must be a non-empty list of increasing integers in (0, num_classes={self.num_classes}), "
                f"got {cutoffs!r}; or null to choose them from class_counts"
            )
        return values
