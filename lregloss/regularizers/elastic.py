"""Elastic net: an L1 and an L2 penalty on the same parameters."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lregloss.regularizers.base import Regularizer, add_l1_l2_gradient_, grads_of
from lregloss.regularizers.l1 import L1
from lregloss.regularizers.l2 import L2
from lregloss.validation import check_non_negative


class ElasticNet(Regularizer):
    """Elastic net: ``loss = l1 * sum(abs(x)) + l2 / 2 * sum(x ** 2)``.

    Composed of an ``L1`` and an ``L2``; ``mode`` applies to the L1 part (the L2 part always
    acts through the gradient). In scikit-learn's ``ElasticNet`` terms, with a data loss that is
    the mean squared error, ``alpha = (l1 + l2) / 2`` and ``l1_ratio = l1 / (l1 + l2)``.

    Args:
        l1_strength: ``l1`` above, >= 0.
        l2_strength: ``l2`` above, >= 0.
        mode: ``gradient`` or ``proximal``, for the L1 part (see ``L1``).
        include: see ``Regularizer``.
        exclude: see ``Regularizer``.

    Raises:
        ValueError: a strength is negative, NaN or infinite, or ``mode`` is unknown.
    """

    name = "elastic"

    def __init__(
        self,
        l1_strength: float,
        l2_strength: float,
        mode: str = "gradient",
        include: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
    ) -> None:
        super().__init__(include, exclude)
        # Checked here so that the message names this class's argument, not L1's ``strength``.
        self.l1 = L1(check_non_negative("l1_strength", l1_strength), mode)
        self.l2 = L2(check_non_negative("l2_strength", l2_strength))

    def penalty(self, params: Sequence[Tensor]) -> Tensor:
        """The L1 penalty plus the L2 penalty over ``params``."""
        return self.l1.penalty(params) + self.l2.penalty(params)

    @torch.no_grad()
    def add_gradient_(self, params: Sequence[Tensor], scale: Tensor | None = None) -> None:
        """``grad += scale * l2 * x``, plus ``scale * l1 * sign(x)`` in gradient mode (one pass over the weights)."""
        l1 = self.l1.strength if self.l1.mode == "gradient" else 0.0
        add_l1_l2_gradient_(grads_of(params), params, l1, self.l2.strength, scale)

    @property
    def acts_after_step(self) -> bool:
        """True where the L1 part is proximal."""
        return self.l1.acts_after_step

    def check_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """The L1 part's check (see `L1.check_optimizer`)."""
        self.l1.check_optimizer(optimizer)

    def after_optimizer_step(self, optimizer: torch.optim.Optimizer, params: Sequence[Tensor]) -> None:
        """The L1 part's proximal step, in proximal mode."""
        self.l1.after_optimizer_step(optimizer, params)
