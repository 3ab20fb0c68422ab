"""Penalty on the largest weight magnitude (the soft counterpart of a max-norm constraint)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from lregloss.code_paths import takes_accelerator_path
from lregloss.regularizers.base import Regularizer, grads_of, zero_penalty
from lregloss.validation import check_non_negative


def largest_magnitude(params: Sequence[Tensor]) -> Tensor:
    """``max(abs(x))`` over all of ``params``; call it under ``no_grad`` (the logged value, the gradient's mask).

    On accelerators (`lregloss.code_paths`) one multi-tensor infinity norm; on the CPU, where
    ``torch._foreach_norm(params, ord=inf)`` is about ten times slower, one min-max pass per tensor.
    """
    if takes_accelerator_path(params[0]):
        return torch.stack(torch._foreach_norm(params, ord=math.inf)).amax()
    extremes = torch.stack([torch.stack(torch.aminmax(param.detach())) for param in params])
    return extremes.abs().amax()


def at_maximum(params: Sequence[Tensor], largest: Tensor) -> list[Tensor]:
    """Float masks, 1 where ``abs(x)`` equals ``largest``, else 0 (bool masks are slow on the CPU).

    On accelerators as multi-tensor ops: ``abs(x) - largest`` is 0 exactly where they are equal
    and negative elsewhere, so its sign plus 1 is the mask.
    """
    masks = torch._foreach_abs(params)
    if takes_accelerator_path(params[0]):
        torch._foreach_add_(masks, largest, alpha=-1)  # the Tensor overload: a plain sub_ would read largest on the host
        torch._foreach_sign_(masks)
        torch._foreach_add_(masks, 1)
        return masks
    for mask in masks:
        mask.eq_(largest)
    return masks


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
        at_max = at_maximum(span, largest_magnitude(span))
        # how often the maximum is reached: the masks' sums
        sums = torch._foreach_norm(at_max, ord=1) if takes_accelerator_path(span[0]) else [mask.sum() for mask in at_max]
        ties = torch.stack(sums).sum()
        if among is not None:
            position = {id(param): index for index, param in enumerate(span)}
            at_max = [at_max[position[id(param)]] for param in params]
        torch._foreach_mul_(at_max, torch._foreach_sign(params))
        factor = self.strength / ties if scale is None else scale * self.strength / ties
        torch._foreach_mul_(at_max, factor)  # a tensor factor: no host sync
        torch._foreach_add_(grads_of(params), at_max)
