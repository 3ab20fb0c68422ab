"""Task metrics from torchmetrics, computed on each loss's decoded predictions.

Every loss is measured on the same numbers: outputs are decoded by the loss itself
(``predict``, ``predict_level``, ``predict_proba``) and only then compared to targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError, Metric
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassCalibrationError,
    MulticlassConfusionMatrix,
    MultilabelExactMatch,
    MultilabelF1Score,
    MultilabelHammingDistance,
)

from lregloss.losses import Loss
from lregloss.tasks import Task, TaskKind


def ranked_probability_score(proba: Tensor, target: Tensor) -> Tensor:
    """RPS_i = 1/(K-1) sum_{k=0}^{K-2} (F_ik - 1[y_i <= k])^2, F_i the predicted CDF over the K levels; (N,).

    A proper scoring rule for ordered levels: 0 for a sure right answer, and mass on a level
    near the true one costs less than mass far from it.
    """
    levels = proba.shape[1]
    cdf = proba.cumsum(dim=1)[:, :-1]
    observed = (target.unsqueeze(1) <= torch.arange(levels - 1, device=target.device)).to(proba.dtype)
    return (cdf - observed).square().sum(dim=1) / (levels - 1)


def negative_log_likelihood(proba: Tensor, target: Tensor) -> Tensor:
    """-log p_{y_i} per sample, (N,); p clamped at the dtype's smallest normal number (float32: at most 87.3)."""
    chosen = proba.gather(1, target.unsqueeze(1)).squeeze(1)
    return -chosen.clamp_min(torch.finfo(proba.dtype).tiny).log()


RELIABILITY_BINS = 15  # as val/ece and test/ece (MulticlassCalibrationError, n_bins=15)


@dataclass  # not frozen: torchmetrics maps over what compute returns
class Reliability:
    """Per confidence bin: mean confidence, accuracy and sample count (bins without samples dropped); ECE."""

    confidence: list[float]
    accuracy: list[float]
    count: list[int]
    ece: float


def confidence_bins(confidence: Tensor, bins: int = RELIABILITY_BINS) -> Tensor:
    """The bin of each confidence among ``bins`` equal bins of [0, 1] (long, (N,)); a confidence of exactly 1 in the last."""
    edges = torch.linspace(0, 1, bins + 1, dtype=confidence.dtype, device=confidence.device)[1:-1]
    return torch.bucketize(confidence, edges, right=True)


class ReliabilityBins(Metric):
    """The reliability diagram of predicted distributions: top-label confidence against accuracy, bin by bin.

    The confidence max_k p_k falls in one of ``bins`` equal bins of [0, 1] (a confidence of
    exactly 1 in the last); ``compute`` gives each bin's mean confidence, accuracy and count,
    and ECE = sum_b (n_b / N) |accuracy_b - mean confidence_b| (torchmetrics'
    ``MulticlassCalibrationError(norm="l1")``, which gives a confidence of 1 a bin of its own).
    Bin sums in float64; under DDP they are summed over the ranks.
    """

    full_state_update = False

    def __init__(self, bins: int = RELIABILITY_BINS) -> None:
        super().__init__()
        self.bins = bins
        for name in ("count", "confidence", "correct"):
            self.add_state(name, torch.zeros(bins, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, proba: Tensor, target: Tensor) -> None:
        confidence, predicted = proba.detach().max(dim=1)
        confidence = confidence.double()
        which = confidence_bins(confidence, self.bins)
        self.count.index_add_(0, which, torch.ones_like(confidence))
        self.confidence.index_add_(0, which, confidence)
        self.correct.index_add_(0, which, (predicted == target).double())

    def compute(self) -> Reliability:
        count = self.count.clamp_min(1)
        confidence, accuracy = self.confidence / count, self.correct / count
        ece = float(((self.count / self.count.sum().clamp_min(1)) * (accuracy - confidence).abs()).sum())
        kept = self.count > 0
        return Reliability(confidence[kept].tolist(), accuracy[kept].tolist(), self.count[kept].long().tolist(), ece)


class TaskMetrics(nn.Module):
    """Metrics of one task for one stage; ``update`` per batch, ``compute`` per epoch."""

    def __init__(self, task: Task, loss: Loss) -> None:
        super().__init__()
        self.task = task
        self.loss = [loss]  # a list keeps the loss out of this module's children and state_dict
        self.metrics = nn.ModuleDict()
        self.confusion: MulticlassConfusionMatrix | None = None
        self.reliability = nn.ModuleDict()  # ReliabilityBins of the distribution as reported ("predicted"), at T = 1

    def update(self, outputs: Tensor, target: Tensor, temperature: float = 1.0) -> None:
        """Add a batch; ``temperature`` divides the logits of the distributions the metrics read."""
        raise NotImplementedError

    def track_uncalibrated(self) -> None:
        """Also report the distribution's metrics at temperature 1 (as ``uncalibrated/<name>``), where there are some."""

    def compute(self) -> dict[str, Tensor]:
        """Scalar metric values by name (vector metrics split into one entry per name)."""
        values = {}
        for name, metric in self.metrics.items():
            value = metric.compute()
            if value.ndim == 0:
                values[name] = value
            else:
                names = self.task.names or [str(i) for i in range(len(value))]
                values.update({f"{name}/{label}": v for label, v in zip(names, value)})
        return values

    def reset(self) -> None:
        for metric in [*self.metrics.values(), *self.reliability.values()]:
            metric.reset()
        if self.confusion is not None:
            self.confusion.reset()


class MulticlassMetrics(TaskMetrics):
    """acc (top-1), acc_top5 (where C > 5) and a confusion matrix."""

    def __init__(self, task: Task, loss: Loss) -> None:
        super().__init__(task, loss)
        self.metrics["acc"] = MulticlassAccuracy(task.size, average="micro")
        if task.size > 5:
            self.metrics["acc_top5"] = MulticlassAccuracy(task.size, top_k=5, average="micro")
        self.confusion = MulticlassConfusionMatrix(task.size)

    def update(self, outputs: Tensor, target: Tensor, temperature: float = 1.0) -> None:
        scores = self.loss[0].class_scores(outputs)
        for metric in self.metrics.values():
            metric.update(scores, target)
        self.confusion.update(scores.argmax(dim=-1), target)


LARGE_VOCABULARY = 1024  # classes from which `VocabularyMetrics` replace `MulticlassMetrics`


def is_large_vocabulary(task: Task) -> bool:
    """Classes too many for C-wide metrics and outputs: a multiclass task of `LARGE_VOCABULARY` or more."""
    return task.kind is TaskKind.MULTICLASS and task.size >= LARGE_VOCABULARY


class VocabularyMetrics(TaskMetrics):
    """Metrics of a large vocabulary (a language model's words): acc (top-1), acc_top5, and where
    the loss gives a distribution ll (mean log-likelihood log p(y | x) of the true class) and
    perplexity exp(-ll).

    Ranked by the loss's ``top_k`` (a tree's beam search needs no C-wide distribution) and
    scored by its ``target_log_prob``; no confusion matrix, which would hold C x C counts.
    Temperature does not apply (no calibration is fitted for words).
    """

    def __init__(self, task: Task, loss: Loss) -> None:
        super().__init__(task, loss)
        self.metrics["acc"] = MeanMetric()
        self.metrics["acc_top5"] = MeanMetric()
        if loss.gives_distribution:
            self.metrics["ll"] = MeanMetric()

    def update(self, outputs: Tensor, target: Tensor, temperature: float = 1.0) -> None:
        loss = self.loss[0]
        hits = loss.top_k(outputs, 5) == target.unsqueeze(1)
        self.metrics["acc"].update(hits[:, 0].float())
        self.metrics["acc_top5"].update(hits.any(dim=1).float())
        if "ll" in self.metrics:
            self.metrics["ll"].update(loss.target_log_prob(outputs, target).float())

    def compute(self) -> dict[str, Tensor]:
        values = super().compute()
        if "ll" in values:
            values["perplexity"] = torch.exp(-values["ll"])
        return values


class OrdinalMetrics(TaskMetrics):
    """Decoded levels: mae, rmse, acc (exact), acc_within1; where the loss gives a distribution
    also ece (15 bins), rps (`ranked_probability_score`) and nll (`negative_log_likelihood`).

    Args:
        level_decoding: a rule of `LEVEL_RULES` (see `Loss.predict_level`).
    """

    def __init__(self, task: Task, loss: Loss, level_decoding: str = "auto") -> None:
        super().__init__(task, loss)
        self.level_decoding = level_decoding
        self.metrics["mae"] = MeanAbsoluteError()
        self.metrics["rmse"] = MeanSquaredError(squared=False)
        self.metrics["acc"] = MulticlassAccuracy(task.size, average="micro")
        self.metrics["acc_within1"] = MeanMetric()
        if loss.gives_distribution:
            self.metrics["ece"] = MulticlassCalibrationError(task.size, n_bins=15, norm="l1")
            self.metrics["rps"] = MeanMetric()
            self.metrics["nll"] = MeanMetric()
            self.reliability["predicted"] = ReliabilityBins()
        self.confusion = MulticlassConfusionMatrix(task.size)

    def update(self, outputs: Tensor, target: Tensor, temperature: float = 1.0) -> None:
        loss = self.loss[0]
        levels = loss.predict_level(outputs, self.task.size, self.level_decoding, temperature)
        self.metrics["mae"].update(levels.float(), target.float())
        self.metrics["rmse"].update(levels.float(), target.float())
        self.metrics["acc"].update(levels, target)
        self.metrics["acc_within1"].update(((levels - target).abs() <= 1).float())
        if "ece" in self.metrics:
            self._update_distribution("", loss.predict_proba(outputs, temperature), target)
        if "uncalibrated/ece" in self.metrics:
            self._update_distribution("uncalibrated/", loss.predict_proba(outputs), target)
        self.confusion.update(levels, target)

    def _update_distribution(self, prefix: str, proba: Tensor, target: Tensor) -> None:
        self.reliability["uncalibrated" if prefix else "predicted"].update(proba, target)
        self.metrics[f"{prefix}ece"].update(proba, target)
        self.metrics[f"{prefix}rps"].update(ranked_probability_score(proba, target))
        self.metrics[f"{prefix}nll"].update(negative_log_likelihood(proba, target))

    def track_uncalibrated(self) -> None:
        if "ece" in self.metrics and "uncalibrated/ece" not in self.metrics:
            device = self.metrics["ece"].device
            self.metrics["uncalibrated/ece"] = MulticlassCalibrationError(self.task.size, n_bins=15, norm="l1").to(device)
            self.metrics["uncalibrated/rps"] = MeanMetric().to(device)
            self.metrics["uncalibrated/nll"] = MeanMetric().to(device)
            self.reliability["uncalibrated"] = ReliabilityBins().to(device)


class MultilabelMetrics(TaskMetrics):
    """hamming (fraction of wrong attribute decisions), subset_acc, f1_micro, f1_macro, f1/<attribute>."""

    def __init__(self, task: Task, loss: Loss) -> None:
        super().__init__(task, loss)
        size = task.size
        self.metrics["hamming"] = MultilabelHammingDistance(size, average="micro")
        self.metrics["subset_acc"] = MultilabelExactMatch(size)
        self.metrics["f1_micro"] = MultilabelF1Score(size, average="micro")
        self.metrics["f1_macro"] = MultilabelF1Score(size, average="macro")
        self.metrics["f1"] = MultilabelF1Score(size, average=None)

    def update(self, outputs: Tensor, target: Tensor, temperature: float = 1.0) -> None:
        decisions = self.loss[0].predict(outputs)
        present = (target > 0).long()  # accepts {0,1} and {-1,+1} codings
        for metric in self.metrics.values():
            metric.update(decisions, present)


class RegressionMetrics(TaskMetrics):
    """mae and rmse over all target values."""

    def __init__(self, task: Task, loss: Loss) -> None:
        super().__init__(task, loss)
        self.metrics["mae"] = MeanAbsoluteError()
        self.metrics["rmse"] = MeanSquaredError(squared=False)

    def update(self, outputs: Tensor, target: Tensor, temperature: float = 1.0) -> None:
        prediction = self.loss[0].predict(outputs).reshape(target.shape)
        for metric in self.metrics.values():
            metric.update(prediction.float(), target.float())


def task_metrics(task: Task, loss: Loss, level_decoding: str = "auto") -> TaskMetrics:
    """The metrics of ``task``, decoding outputs with ``loss``."""
    if task.kind is TaskKind.ORDINAL:
        return OrdinalMetrics(task, loss, level_decoding)
    if is_large_vocabulary(task):
        return VocabularyMetrics(task, loss)
    kinds = {
        TaskKind.MULTICLASS: MulticlassMetrics,
        TaskKind.MULTILABEL: MultilabelMetrics,
        TaskKind.REGRESSION: RegressionMetrics,
    }
    return kinds[task.kind](task, loss)
