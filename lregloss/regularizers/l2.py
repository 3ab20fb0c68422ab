"""Squared L2 penalty (weight decay folded into the gradient)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lregloss.regularizers.base import Regularizer, grads_of, zero_penalty
from lregloss.validation import check_non_negative


class L2(Regularizer):
    """Squared L2 penalty: ``loss = l2 / 2 * sum(x ** 2)``.

    The gradient is ``l2 * x``, so with plain SGD this is exactly ``weight_decay=l2``
    (coupled weight decay; with Adam it is not AdamW's decoupled decay).

    Args:
        strength: ``l2`` above, >= 0.
        include: see ``Regularizer``.
        exclude: see ``Regularizer``.

    Raises:
        ValueError: ``strength`` is negative, NaN or infinite.
    """

    name = "l2"

    def __init__(
        self, strength: float, include: Sequence[str] | None = None, exclude: Sequence[str] = ()
    ) -> None:
        super().__init__(include, exclude)
        self.strength = check_non_negative("strength", strength)

    def penalty(self, params: Sequence[Tensor]) -> Tensor:
        """``strength / 2 * sum(x ** 2)`` over ``params``."""
        if not params:
            return zero_penalty()
        norms = torch._foreach_norm(list(params))
        return self.strength / 2 * torch.stack(norms).square().sum()

    @torch.no_grad()
    def add_gradient_(self, params: Sequence[Tensor], scale: Tensor | None = None) -> None:
        """``grad += scale * strength * x``."""
        if not params:
            return
        if scale is None:
            torch._foreach_add_(grads_of(params), list(params), alpha=self.strength)
        else:
            torch._foreach_add_(grads_of(params), torch._foreach_mul(list(params), scale * self.strength))
