"""The contract every loss keeps: compute the loss, say which tasks it fits, decode outputs."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from lregloss.tasks import Task, TaskKind


class LossTaskMismatchError(ValueError):
    """A loss was paired with a task it cannot learn (e.g. attr_hinge on star ratings)."""


# How ordered levels are decoded (`Loss.predict_level`); all but auto need a distribution.
LEVEL_RULES = ("auto", "mode", "median", "expected")


class Loss(nn.Module):
    """Base of every lregloss loss (timm's contract: ``forward(outputs, target) -> Tensor``).

    Every loss returns the batch mean as a 0-dim tensor: per sample it sums over classes,
    attributes or output dimensions, then it averages over the batch. Besides the loss, a
    subclass declares which task kinds it fits (``tasks``), how many outputs the model must
    produce for a task (``num_outputs``) and how outputs become predictions (``predict``,
    ``predict_proba``, ``predict_level``), so that every loss is measured on the same metrics.
    """

    tasks: ClassVar[frozenset[TaskKind]] = frozenset()
    own_level_rule: ClassVar[str] = "mode"  # what level_decoding=auto (``predict``) decodes, for the log

    def num_outputs(self, task: Task) -> int:
        """Width of the model's last layer for ``task``."""
        return task.size

    def predict(self, outputs: Tensor) -> Tensor:
        """Decode outputs into the target's space (class index, attribute decisions, value)."""
        raise NotImplementedError

    def predict_proba(self, outputs: Tensor, temperature: float = 1.0) -> Tensor | None:
        """Probabilities over classes, levels or attributes where the loss defines them, else None.

        ``temperature`` T divides the logits the distribution is made of (class scores, tree
        node logits, cumulative logits) before it is formed: T > 1 softens it, T < 1
        sharpens it (`fit_temperature`). For softmax the ranking of the scores stays, hence the
        mode; for cumulative thresholds the side of 1/2 each P(y >= k) = sigma(z_k / T) is on,
        hence the median; products of sigmoids (a tree's classes, CORN's levels) may reorder.
        """
        return None

    def top_k(self, outputs: Tensor, k: int) -> Tensor:
        """The ``k`` most probable (highest-scored) classes of each sample, best first, (N, k) long.

        Ranked by the loss's ``class_scores``; losses with a cheaper exact ranking (a tree's
        beam search) override it.
        """
        return self.class_scores(outputs).topk(k, dim=1).indices

    def target_log_prob(self, outputs: Tensor, target: Tensor) -> Tensor:
        """log p(y_i | x_i) per sample, (N,): the held-out log-likelihood of losses with a distribution.

        From ``predict_proba`` (clamped at the dtype's smallest normal number); losses that
        can form it without the whole distribution override it.
        """
        proba = self.predict_proba(outputs)
        if proba is None:
            raise TypeError(f"{type(self).__name__} gives no distribution, so no log-likelihood")
        return proba.gather(1, target.unsqueeze(1)).squeeze(1).clamp_min(torch.finfo(proba.dtype).tiny).log()

    @property
    def gives_distribution(self) -> bool:
        """True where ``predict_proba`` returns a distribution (softmax, hsoftmax, ordinal, ...)."""
        return type(self).predict_proba is not Loss.predict_proba

    def predict_level(self, outputs: Tensor, num_levels: int, rule: str = "auto", temperature: float = 1.0) -> Tensor:
        """Decode outputs into one of ``num_levels`` ordered levels (long, 0..K-1) by ``rule`` (`LEVEL_RULES`).

        ``auto`` is the loss's own ``predict`` (the mode of softmax-like distributions and of
        scores, the median for ordinal thresholds, the rounded value for regression); the
        others need a distribution p over the levels: ``mode`` argmax_k p_k, ``median`` the
        smallest k with p_0 + ... + p_k >= 1/2, ``expected`` round(sum_k k p_k), p at
        ``temperature`` (see `predict_proba`).

        Raises:
            ValueError: an unknown rule, or one that needs a distribution for a loss without one.
        """
        check_level_rule(rule, self)
        if rule == "auto":
            prediction = self.predict(outputs)
        else:
            proba = self.predict_proba(outputs, temperature)
            if rule == "mode":
                prediction = proba.argmax(dim=1)
            elif rule == "median":
                prediction = (proba.cumsum(dim=1) < 0.5).sum(dim=1)
            else:
                prediction = proba @ torch.arange(num_levels, dtype=proba.dtype, device=proba.device)
        if prediction.is_floating_point():
            prediction = prediction.round()
        return prediction.clamp(0, num_levels - 1).long()

    @classmethod
    def check_task(cls, task: Task, alternatives: dict[str, type[Loss]] | None = None) -> None:
        """Fail early, naming the losses that fit, when this loss cannot learn ``task``.

        Args:
            task: the data's task description.
            alternatives: name -> loss class to suggest from (e.g. the ``loss`` config group);
                defaults to every lregloss loss class.

        Raises:
            LossTaskMismatchError: ``task.kind`` is not in ``tasks``.
        """
        if task.kind in cls.tasks:
            return
        candidates = alternatives if alternatives is not None else loss_classes()
        fitting = sorted(name for name, candidate in candidates.items() if task.kind in candidate.tasks)
        raise LossTaskMismatchError(
            f"loss {cls.__name__} does not fit a {task.kind.value} task "
            f"(it fits: {', '.join(sorted(k.value for k in cls.tasks))}); "
            f"losses that fit: {', '.join(fitting) or 'none'}"
        )


class OutputLayerLoss(Loss):
    """A loss that owns the output layer over C classes (hierarchical, adaptive softmax): the model
    hands it features h of width ``in_features``, and it forms the class scores itself."""

    in_features: int
    num_classes: int

    def num_outputs(self, task: Task) -> int:
        """D: the model outputs features, the class scores are computed here.

        Raises:
            LossTaskMismatchError: the task's number of classes differs from num_classes.
        """
        check_num_classes(self, task)
        return self.in_features

    def _check_features(self, outputs: Tensor) -> None:
        if outputs.ndim != 2 or outputs.shape[1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__} expects features of shape (N, in_features={self.in_features}), got "
                f"{tuple(outputs.shape)}; the model's last layer must output in_features values"
            )


def check_num_classes(loss: Loss, task: Task) -> None:
    """Raise unless ``task`` has the ``loss.num_classes`` classes or levels the loss was built for.

    Raises:
        LossTaskMismatchError: naming ``loss.num_classes`` and the value to set.
    """
    if task.size != loss.num_classes:
        raise LossTaskMismatchError(
            f"{type(loss).__name__} was built for loss.num_classes={loss.num_classes} but the task has {task.size} "
            f"classes or levels; set loss.num_classes={task.size} (or null: the task's)"
        )


def check_level_rule(rule: str, loss: Loss | None) -> None:
    """Raise unless ``rule`` is a level decoding rule and ``loss`` (if given) can decode by it.

    Raises:
        ValueError: naming ``level_decoding``, the rule and the rules there are.
    """
    if rule == "argmax":
        raise ValueError(
            "level_decoding=argmax is no more: it was each loss's own rule, now level_decoding=auto; "
            "or choose mode, median or expected"
        )
    if rule not in LEVEL_RULES:
        raise ValueError(f"level_decoding={rule} is not a rule; use one of {', '.join(LEVEL_RULES)}")
    if rule != "auto" and loss is not None and not loss.gives_distribution:
        raise ValueError(
            f"level_decoding={rule} needs a distribution over the levels, which {type(loss).__name__} does not "
            "give; use level_decoding=auto"
        )


def loss_classes() -> dict[str, type[Loss]]:
    """Every concrete loss class defined so far, by class name."""
    found: dict[str, type[Loss]] = {}
    pending = list(Loss.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.tasks:
            found[cls.__name__] = cls
    return found


HALF_DTYPES = (torch.float16, torch.bfloat16)


def full_precision(outputs: Tensor) -> Tensor:
    """``outputs`` as float32 where they are float16 or bfloat16, else unchanged.

    Losses sum N x C terms: in half precision such a sum overflows (fp16's largest value is
    65504) or loses its small terms (bf16 keeps 8 bits), so, as torch's own losses under
    autocast, they compute in float32; the gradient flows back in the outputs' dtype.
    """
    return outputs.float() if outputs.dtype in HALF_DTYPES else outputs


def match_shapes(outputs: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Return outputs viewed as the target's shape (N,1 -> N) and the target as float.

    Raises:
        ValueError: the two hold a different number of values.
    """
    if outputs.shape != target.shape:
        if outputs.numel() != target.numel():
            raise ValueError(
                f"outputs of shape {tuple(outputs.shape)} do not match targets of shape "
                f"{tuple(target.shape)}; the model must produce one value per target"
            )
        outputs = outputs.reshape(target.shape)
    outputs = full_precision(outputs)
    return outputs, target.to(outputs.dtype)
