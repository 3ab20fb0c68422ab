"""The contract every loss keeps: compute the loss, say which tasks it fits, decode outputs."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from lregloss.tasks import Task, TaskKind


class LossTaskMismatchError(ValueError):
    """A loss was paired with a task it cannot learn (e.g. attr_hinge on star ratings)."""


class Loss(nn.Module):
    """Base of every lregloss loss (timm's contract: ``forward(outputs, target) -> Tensor``).

    Every loss returns the batch mean as a 0-dim tensor: per sample it sums over classes,
    attributes or output dimensions, then it averages over the batch. Besides the loss, a
    subclass declares which task kinds it fits (``tasks``), how many outputs the model must
    produce for a task (``num_outputs``) and how outputs become predictions (``predict``,
    ``predict_proba``, ``predict_level``), so that every loss is measured on the same metrics.
    """

    tasks: ClassVar[frozenset[TaskKind]] = frozenset()

    def num_outputs(self, task: Task) -> int:
        """Width of the model's last layer for ``task``."""
        return task.size

    def predict(self, outputs: Tensor) -> Tensor:
        """Decode outputs into the target's space (class index, attribute decisions, value)."""
        raise NotImplementedError

    def predict_proba(self, outputs: Tensor) -> Tensor | None:
        """Probabilities over classes, levels or attributes where the loss defines them, else None."""
        return None

    @property
    def gives_distribution(self) -> bool:
        """True where ``predict_proba`` returns a distribution (softmax, hsoftmax, ordinal, ...)."""
        return type(self).predict_proba is not Loss.predict_proba

    def predict_level(self, outputs: Tensor, num_levels: int, rule: str = "argmax") -> Tensor:
        """Decode outputs into one of ``num_levels`` ordered levels (long, 0..K-1).

        Args:
            outputs: the model's outputs.
            num_levels: K, the number of ordered levels.
            rule: ``argmax`` decodes with ``predict`` (rounding and clipping real values);
                ``expected`` rounds the expected level sum_k k p_k, for losses that give a
                distribution.

        Raises:
            ValueError: unknown rule, or ``expected`` for a loss without a distribution.
        """
        if rule == "argmax":
            prediction = self.predict(outputs)
        elif rule == "expected":
            proba = self.predict_proba(outputs)
            if proba is None:
                raise ValueError(f"{type(self).__name__} gives no distribution; use rule='argmax'")
            prediction = proba @ torch.arange(num_levels, dtype=proba.dtype, device=proba.device)
        else:
            raise ValueError(f"Unknown level decoding rule {rule!r}; use 'argmax' or 'expected'")
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
