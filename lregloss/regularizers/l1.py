"""L1 penalty, by subgradient or by proximal soft-thresholding."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lregloss.code_paths import takes_accelerator_path
from lregloss.private_names import skipped_step_flag
from lregloss.regularizers.base import Regularizer, add_l1_l2_gradient_, grads_of, zero_penalty
from lregloss.regularizers.step_sizes import check_proximal_support, step_size, step_sizes
from lregloss.validation import check_choice, check_non_negative

L1_MODES = ("gradient", "proximal")


@torch.no_grad()
def soft_threshold_(optimizer: torch.optim.Optimizer, params: Sequence[Tensor], strength: float) -> None:
    """Proximal step of ``strength * sum(abs(x))`` after ``optimizer`` stepped: ``x <- sign(x) max(abs(x) - t, 0)``.

    ``t = eta * strength``, with ``eta`` the distance the optimizer moves each entry per unit
    of a steady gradient (`lregloss.regularizers.step_sizes`: ``lr`` for plain SGD, ``lr / (1 -
    momentum)`` with momentum, ``lr / (sqrt(v_hat) + eps)`` per entry for Adam, ...), so that
    the fixed points are those of the L1-penalised loss. On the CPU, per parameter: a scalar
    ``t`` is torch's ``softshrink`` written into the parameter in place (one pass over the
    weights), a per-entry one takes ``abs``, ``sub``, ``clamp`` and ``copysign``. On
    accelerators (`lregloss.code_paths`), for a whole param group at once: the step sizes by
    the group rules, then ``x -= clamp(x, -t, t)`` (the same values), about fifteen
    multi-tensor ops whatever the number of parameters and no host sync. Inside a fused
    optimizer's step that GradScaler skips (inf gradients), ``t`` is 0. Parameters the
    optimizer does not hold are left alone.

    Args:
        optimizer: the optimizer that has just stepped.
        params: the penalised parameters.
        strength: the L1 strength.

    Raises:
        UnsupportedOptimizerError: no step-size rule for the optimizer (see `check_proximal_support`).
    """
    if strength == 0:
        return
    wanted = {id(param) for param in params}
    skipped = skipped_step_flag(optimizer)
    kept = 1.0 if skipped is None else 1 - skipped  # 0 in a skipped step: no threshold
    for group in optimizer.param_groups:
        chosen = [param for param in group["params"] if id(param) in wanted]
        if not chosen:
            continue
        if takes_accelerator_path(chosen[0]):
            _shrink_group_(*step_sizes(optimizer, group, chosen), strength * kept)
            continue
        for param in chosen:
            threshold = step_size(optimizer, group, param) * strength * kept
            if isinstance(threshold, float):
                torch.ops.aten.softshrink.out(param, threshold, out=param)
            else:
                shrunk = param.abs().sub_(threshold).clamp_(min=0)
                param.copy_(shrunk.copysign_(param))


def _shrink_group_(params: list[Tensor], sizes: float | list[Tensor], factor: float | Tensor) -> None:
    """``x -= clamp(x, -t, t)`` for every parameter, ``t`` = step size x ``factor``: soft thresholding, multi-tensor."""
    if not params:
        return
    if isinstance(sizes, float) and isinstance(factor, float):
        threshold = sizes * factor
        clamped = torch._foreach_clamp_max(params, threshold)
        torch._foreach_clamp_min_(clamped, -threshold)
    elif isinstance(sizes, float):  # a 0-dim tensor threshold, as lists: a scalar clamp would read it on the host
        threshold = sizes * factor
        clamped = torch._foreach_minimum(params, [threshold] * len(params))
        torch._foreach_maximum_(clamped, [-threshold] * len(params))
    else:
        torch._foreach_mul_(sizes, factor)
        clamped = torch._foreach_minimum(params, sizes)
        torch._foreach_maximum_(clamped, torch._foreach_neg(sizes))
    torch._foreach_sub_(params, clamped)


class L1(Regularizer):
    """L1 penalty: ``loss = l1 * sum(abs(x))``.

    ``mode="gradient"`` adds the subgradient ``l1 * sign(x)`` (0 at x = 0) to the gradient, so
    weights hover around zero without reaching it. ``mode="proximal"`` adds nothing to the
    gradient and instead soft-thresholds after each optimizer step,
    ``x <- sign(x) * max(abs(x) - eta * l1, 0)``, which gives exact zeros (proximal gradient
    descent, ISTA, for plain SGD with ``eta = lr``). ``eta`` is the optimizer's own step per
    unit of gradient, so that the fixed points are the L1-penalised loss's whatever the
    optimizer: ``lr / (1 - momentum)`` for SGD with momentum, ``lr / (sqrt(v_hat) + eps)`` per
    entry for Adam and AdamW, and so on (see `lregloss.regularizers.step_sizes`; other optimizers
    are refused when fitting starts). The penalty value is the same in both modes.

    Args:
        strength: ``l1`` above, >= 0.
        mode: ``gradient`` or ``proximal``.
        include: see ``Regularizer``.
        exclude: see ``Regularizer``.

    Raises:
        ValueError: ``strength`` is negative, NaN or infinite, or ``mode`` is unknown.
    """

    name = "l1"

    def __init__(
        self,
        strength: float,
        mode: str = "gradient",
        include: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
    ) -> None:
        super().__init__(include, exclude)
        self.strength = check_non_negative("strength", strength)
        self.mode = check_choice("mode", mode, L1_MODES)

    def penalty(self, params: Sequence[Tensor]) -> Tensor:
        """``strength * sum(abs(x))`` over ``params``."""
        if not params:
            return zero_penalty()
        norms = torch._foreach_norm(list(params), ord=1)
        return self.strength * torch.stack(norms).sum()

    @property
    def acts_after_step(self) -> bool:
        """True in proximal mode."""
        return self.mode == "proximal" and self.strength > 0

    @torch.no_grad()
    def add_gradient_(self, params: Sequence[Tensor], scale: Tensor | None = None) -> None:
        """``grad += scale * strength * sign(x)`` in gradient mode; nothing in proximal mode."""
        if not params or self.mode == "proximal":
            return
        add_l1_l2_gradient_(grads_of(params), params, self.strength, 0.0, scale)

    def check_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """In proximal mode, refuse an optimizer without a step-size rule (see `check_proximal_support`)."""
        if self.acts_after_step:
            check_proximal_support(optimizer)

    def after_optimizer_step(self, optimizer: torch.optim.Optimizer, params: Sequence[Tensor]) -> None:
        """Soft-threshold ``params`` by ``eta * strength`` in proximal mode; nothing in gradient mode."""
        if self.acts_after_step:
            soft_threshold_(optimizer, params, self.strength)
