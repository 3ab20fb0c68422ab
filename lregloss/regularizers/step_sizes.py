"""How far each optimizer moves a weight per unit of gradient: the scale a proximal step must share.

A proximal L1 step after an optimizer step soft-thresholds each weight by ``eta * strength``.
Its fixed points are those of the L1-penalised loss (data gradient ``g = -strength * sign(x)``
where ``x != 0``, ``abs(g) <= strength`` where ``x = 0``) exactly when ``eta`` is the distance
the optimizer moves that entry per unit of a steady gradient ``g``:

    SGD        lr                                          (no momentum)
               lr * (1 - dampening) / (1 - momentum)       (momentum: the buffer tends to g (1 - d) / (1 - mu))
               lr * (1 + momentum (1 - dampening) / (1 - momentum))   (Nesterov: g + mu * buffer)
    Adam(W)    lr / (sqrt(v_hat) + eps),  v_hat = v / (1 - beta2^t)   (its running max with amsgrad)
    RMSprop    lr / ((sqrt(v) + eps) * (1 - momentum))    (not ``centered``: see `check_proximal_support`)
    Adagrad    lr / (1 + (t - 1) * lr_decay) / (sqrt(sum g^2) + eps)

A plain ``lr`` with momentum 0.9 would penalise ten times too little (the weight settles where
``g = -strength / 10``). For the adaptive optimizers an entry whose second moment is still 0
has taken no step: its ``eta`` is 0, so it keeps its value until its first gradient (``lr / eps``
would zero it at once). Any other optimizer, or ``maximize=True``, has no rule here and is
refused by `check_proximal_support`, as is centred RMSprop.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.optim import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop

from lregloss.code_paths import takes_accelerator_path

StepSize = Callable[[Optimizer, dict, Tensor], "Tensor | float"]


class UnsupportedOptimizerError(ValueError):
    """A proximal step was asked of an optimizer whose step size it cannot match."""


def sgd_step_size(optimizer: Optimizer, group: dict, param: Tensor) -> float | Tensor:
    """SGD's distance per unit of steady gradient, a scalar for the whole param group."""
    momentum, dampening = group.get("momentum", 0.0), group.get("dampening", 0.0)
    if not momentum:
        return group["lr"]
    buffer_gain = (1 - dampening) / (1 - momentum)
    return group["lr"] * ((1 + momentum * buffer_gain) if group.get("nesterov") else buffer_gain)


def step_count(step: Tensor | float, dtype: torch.dtype = torch.float64) -> Tensor | float:
    """An optimizer state's ``step`` as the optimizer itself reads it.

    A float where it is held on the CPU (read there in double precision, with no device sync:
    ``1 - beta2^t`` loses five digits in float32); the tensor itself where it lives on the
    device (fused and capturable optimizers), which avoids a host sync; the tensor too inside
    `lregloss.code_paths.accelerator_code_paths`, which counts a step as a GPU runs it. A
    tensor comes in ``dtype`` (the parameters' own, as the fused optimizers compute in it: a
    float32 step count would lose float64 parameters' digits).
    """
    if isinstance(step, Tensor) and takes_accelerator_path(step):
        return step.to(dtype)
    return float(step)


def _per_entry(step: Tensor, second_moment: Tensor) -> Tensor:
    """``step`` where the entry has seen a gradient (second moment > 0), else 0."""
    return step.mul_(second_moment > 0)


def adam_step_size(optimizer: Optimizer, group: dict, param: Tensor) -> float | Tensor:
    """``lr / (sqrt(v_hat) + eps)`` per entry (0 before its first gradient); 0 before the first step."""
    state = optimizer.state.get(param, {})
    second_moment = state.get("max_exp_avg_sq" if group.get("amsgrad") else "exp_avg_sq")
    if second_moment is None:
        return 0.0
    bias_correction = 1 - group["betas"][1] ** step_count(state["step"], second_moment.dtype)
    denominator = (second_moment / bias_correction).sqrt_().add_(group["eps"])
    return _per_entry(torch.div(group["lr"], denominator), second_moment)


def rmsprop_step_size(optimizer: Optimizer, group: dict, param: Tensor) -> float | Tensor:
    """``lr / ((sqrt(v) + eps)(1 - momentum))`` per entry."""
    state = optimizer.state.get(param, {})
    square_avg = state.get("square_avg")
    if square_avg is None:
        return 0.0
    denominator = square_avg.sqrt().add_(group["eps"]).mul_(1 - group["momentum"])
    return _per_entry(torch.div(group["lr"], denominator), square_avg)


def adagrad_step_size(optimizer: Optimizer, group: dict, param: Tensor) -> float | Tensor:
    """``lr / (1 + (t - 1) lr_decay) / (sqrt(sum) + eps)`` per entry, 0 where no gradient has been summed."""
    state = optimizer.state.get(param, {})
    if "sum" not in state:
        return 0.0
    decayed_lr = group["lr"] / (1 + (step_count(state["step"], state["sum"].dtype) - 1) * group["lr_decay"])
    denominator = state["sum"].sqrt().add_(group["eps"])
    return torch.div(decayed_lr, denominator).mul_(state["sum"] > group["initial_accumulator_value"])


# AdamW subclasses Adam in current torch; both are listed for the releases where it does not.
STEP_SIZES: dict[type[Optimizer], StepSize] = {
    SGD: sgd_step_size,
    Adam: adam_step_size,
    AdamW: adam_step_size,
    RMSprop: rmsprop_step_size,
    Adagrad: adagrad_step_size,
}


def step_size_rule(optimizer: Optimizer) -> StepSize | None:
    """The rule for ``optimizer``'s class or its nearest listed base class, else None."""
    return next((STEP_SIZES[cls] for cls in type(optimizer).__mro__ if cls in STEP_SIZES), None)


def check_proximal_support(optimizer: Optimizer, what: str = "proximal L1") -> None:
    """Raise an `UnsupportedOptimizerError` unless a proximal step can follow ``optimizer``'s steps.

    Raises:
        UnsupportedOptimizerError: no rule for its class, centred RMSprop, or ``maximize=True``;
            the message lists the supported optimizers and the alternative.
    """
    supported = ", ".join(sorted({cls.__name__ for cls in STEP_SIZES}))
    if step_size_rule(optimizer) is None:
        raise UnsupportedOptimizerError(
            f"{what} has no step-size rule for {type(optimizer).__name__}, so its threshold would not match the "
            f"optimizer's steps; use one of {supported}, or mode='gradient' (reg.mode=gradient), which works with "
            "any optimizer"
        )
    if isinstance(optimizer, RMSprop) and any(group.get("centered") for group in optimizer.param_groups):
        raise UnsupportedOptimizerError(
            f"{what} cannot follow RMSprop(centered=True): it divides by the gradient's variance, which vanishes "
            "at the L1-penalised optimum (the gradient there is steady at -strength * sign(x)); use centered=False, "
            "or mode='gradient'"
        )
    if any(group.get("maximize") for group in optimizer.param_groups):
        raise UnsupportedOptimizerError(
            f"{what} shrinks weights towards 0 after a descent step; {type(optimizer).__name__}(maximize=True) "
            "ascends: minimise the negated objective instead, or use mode='gradient'"
        )


def step_size(optimizer: Optimizer, group: dict, param: Tensor) -> float | Tensor:
    """The distance ``optimizer`` moved ``param`` per unit of steady gradient in its last step (see the module)."""
    rule = step_size_rule(optimizer)
    if rule is None:
        check_proximal_support(optimizer)
    return rule(optimizer, group, param)
