"""Penalty on the largest weight magnitude (the soft counterpart of a max-norm constraint)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lregloss.regularizers.base import Regularizer, grads_of, zero_penalty
from lregloss.validation import check_non_negative


def largest_magnitude(params: Sequence[Tensor]) -> Tensor:
    """``max(abs(x))`` over all of ``params``, detached, in one min-max pass per tensor.

    (On CPU, ``torch._foreach_norm(params, ord=inf)`` is about ten times slower than this.)
    """
    extremes = torch.stack([torch.stack(torch.aminmax(param.detach())) for param in params])
    return extremes.abs().amax()


class MaxNormPenalty(Regularizer):
    """L-infinity penalty: ``loss = strength * max(abs(x))``, one max over all selected weights.

    Only the weights that reach the maximum get a gradient, ``strength * sign(x) / k`` for
    each of the ``k`` tied ones, as ``torch.amax`` shares it. For a hard bound on each unit's
    incoming weight norm, use the ``MaxNormConstraint`` callback instead.

    Args:
        strength: ``strength`` above, >= 0.
        include: see ``Regularizer``.
        exclude: see ``Regularizer``.

    Raises:
        ValueError: ``strength`` is negative, NaN or infinite.
    """

    name = "maxnorm"
    separable = False

    def __init__(
        self, strength: float, include: Sequence[str] | None = None, exclude: Sequence[str] = ()
    ) -> None:
        super().__init__(include, exclude)
        self.strength = check_non_negative("strength", strength)

    def penalty(self, params: Sequence[Tensor]) -> Tensor:
        """``strength * max(abs(x))`` over all of ``params``."""
        if not params:
            return zero_penalty()
        if torch.is_grad_enabled() and any(param.requires_grad for param in params):
            # One amax over every weight, so ties across parameters share the gradient evenly
            # (a max of per-parameter maxes would split it per parameter first).
            return self.strength * torch.cat([param.reshape(-1) for param in params]).abs().amax()
        return self.strength * largest_magnitude(params)  # the logged value: no copy of the weights

    @torch.no_grad()
    def add_gradient_(
        self, params: Sequence[Tensor], scale: Tensor | None = None, among: Sequence[Tensor] | None = None
    ) -> None:
        """``grad += scale * strength * sign(x) / k`` where ``abs(x)`` is the maximum, reached ``k`` times.

        ``among``: the parameters the maximum is taken over, ``params`` among them (by default
        ``params`` alone): an optimizer stepping part of the selection gets its part of the
        gradient of the penalty over the whole selection.
        """
        if not params:
            return
        params = list(params)
        span = params if among is None else list(among)
        largest = largest_magnitude(span)
        at_max = torch._foreach_abs(span)
        for mask in at_max:  # float masks, 1 where abs(x) is the maximum: bool ones are slow on CPU
            mask.eq_(largest)
        ties = torch.stack([mask.sum() for mask in at_max]).sum()
        if among is not None:
            position = {id(param): index for index, param in enumerate(span)}
            at_max = [at_max[position[id(param)]] for param in params]
        torch._foreach_mul_(at_max, torch._foreach_sign(params))
        factor = self.strength / ties if scale is None else scale * self.strength / ties
        torch._foreach_mul_(at_max, factor)  # a tensor factor: no host sync
        torch._foreach_add_(grads_of(params), at_max)
