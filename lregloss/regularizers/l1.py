"""L1 penalty, by subgradient or by proximal soft-thresholding."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lregloss.regularizers.base import Regularizer, add_l1_l2_gradient_, grads_of, zero_penalty
from lregloss.validation import check_choice, check_non_negative

L1_MODES = ("gradient", "proximal")


def adam_step_scale(optimizer: torch.optim.Optimizer, group: dict, param: Tensor) -> Tensor | None:
    """1 / (sqrt(v_hat) + eps) per entry where ``param`` has Adam's second moment, else None.

    Adam and AdamW (and the other optimizers keeping ``exp_avg_sq``) move each entry by
    ``lr * m_hat / (sqrt(v_hat) + eps)``, v_hat = ``exp_avg_sq / (1 - beta2^t)`` (its running
    maximum with ``amsgrad``): a step of ``lr`` in the metric ``diag(sqrt(v_hat) + eps)``.
    """
    state = optimizer.state.get(param, {})
    second_moment = state.get("max_exp_avg_sq") if group.get("amsgrad") else state.get("exp_avg_sq")
    if second_moment is None or "betas" not in group or "eps" not in group:
        return None
    bias_correction = 1 - group["betas"][1] ** float(state["step"])
    return (second_moment / bias_correction).sqrt_().add_(group["eps"]).reciprocal_()


@torch.no_grad()
def soft_threshold_(optimizer: torch.optim.Optimizer, params: Sequence[Tensor], strength: float) -> None:
    """Proximal step of ``strength * sum(abs(x))``: ``x <- sign(x) * max(abs(x) - t, 0)``.

    For an SGD step, ``t = lr * strength``, with the ``lr`` of the optimizer param group
    holding each parameter: torch's ``softshrink`` with ``lambd = t``, written into each
    parameter in place (one pass over the weights, where the same map as ``x - clamp(x, -t, t)``
    with ``torch._foreach_*`` ops takes three and a temporary copy, about five times slower on
    CPU). After an Adam step (a parameter with ``exp_avg_sq`` in the optimizer's state), each
    entry gets the threshold of the step it took, ``t = lr * strength / (sqrt(v_hat) + eps)``
    (see `adam_step_scale`): the proximal step in Adam's diagonal metric, whose fixed points
    are those of the L1-penalised loss (mean gradient = -strength * sign(x) where x != 0).
    A single ``lr * strength`` for all entries would instead keep every weight whose
    normalised step ``m_hat / sqrt(v_hat)`` exceeds ``strength``, rare n-grams' weights above
    all. An entry that has had no gradient yet (v = 0) gets ``lr * strength / eps`` and
    becomes 0 at once. Parameters the optimizer does not hold are left alone.

    Args:
        optimizer: the optimizer that has just stepped.
        params: the penalised parameters.
        strength: the L1 strength.
    """
    wanted = {id(param) for param in params}
    for group in optimizer.param_groups:
        threshold = float(group["lr"]) * strength
        if threshold == 0:
            continue
        for param in group["params"]:
            if id(param) not in wanted:
                continue
            scale = adam_step_scale(optimizer, group, param)
            if scale is None:
                torch.ops.aten.softshrink.out(param, threshold, out=param)
            else:
                shrunk = param.abs().sub_(scale.mul_(threshold)).clamp_(min=0)
                param.copy_(shrunk.copysign_(param))


class L1(Regularizer):
    """L1 penalty: ``loss = l1 * sum(abs(x))``.

    ``mode="gradient"`` adds the subgradient ``l1 * sign(x)`` (0 at x = 0) to the gradient, so
    weights hover around zero without reaching it. ``mode="proximal"`` adds nothing to the
    gradient and instead soft-thresholds after each optimizer step,
    ``x <- sign(x) * max(abs(x) - lr * l1, 0)``, which gives exact zeros (proximal gradient
    descent, ISTA, for SGD; after an Adam step each entry's threshold is divided by Adam's
    ``sqrt(v_hat) + eps``, see `soft_threshold_`). The penalty value is the same in both modes.

    Args:
        strength: ``l1`` above, >= 0.
        mode: ``gradient`` or ``proximal``.
        include: see ``Regularizer``.
        exclude: see ``Regularizer``.

    Raises:
        ValueError: ``strength`` is negative, NaN or infinite, or ``mode`` is unknown.
    """

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

    @torch.no_grad()
    def add_gradient_(self, params: Sequence[Tensor]) -> None:
        """``grad += strength * sign(x)`` in gradient mode; nothing in proximal mode."""
        if not params or self.mode == "proximal":
            return
        add_l1_l2_gradient_(grads_of(params), params, self.strength, 0.0)

    def after_optimizer_step(self, optimizer: torch.optim.Optimizer, params: Sequence[Tensor]) -> None:
        """Soft-threshold ``params`` by ``lr * strength`` in proximal mode; nothing in gradient mode."""
        if self.mode == "proximal":
            soft_threshold_(optimizer, params, self.strength)
