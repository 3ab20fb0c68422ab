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
        return step if step.dtype == dtype else step.to(dtype)
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


# The same rules for all of a param group's parameters at once, as multi-tensor ops with no
# per-tensor loop (the accelerator path, `lregloss.code_paths`): each returns the parameters
# that have taken a step (the others have eta 0 and keep their values) and their step sizes,
# one float for the group or a tensor per parameter.
GroupStepSizes = Callable[[Optimizer, dict, list[Tensor]], "tuple[list[Tensor], float | list[Tensor]]"]


def sgd_step_sizes(optimizer: Optimizer, group: dict, params: list[Tensor]) -> tuple[list[Tensor], float]:
    """`sgd_step_size`, one float for the whole group."""
    return params, sgd_step_size(optimizer, group, params[0])


def _stepped(optimizer: Optimizer, params: list[Tensor], key: str) -> tuple[list[Tensor], list[dict]]:
    stepped = [param for param in params if key in optimizer.state.get(param, {})]
    return stepped, [optimizer.state[param] for param in stepped]


def _masked_reciprocal_(denominators: list[Tensor], numerator: float | list, gate: list[Tensor]) -> list[Tensor]:
    """``numerator / denominators`` in place, 0 where ``gate`` is 0 (``gate`` >= 0)."""
    torch._foreach_reciprocal_(denominators)
    torch._foreach_mul_(denominators, numerator)
    torch._foreach_mul_(denominators, torch._foreach_sign(gate))
    return denominators


def adam_step_sizes(optimizer: Optimizer, group: dict, params: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
    """`adam_step_size` of every parameter that has taken a step."""
    key = "max_exp_avg_sq" if group.get("amsgrad") else "exp_avg_sq"
    stepped, states = _stepped(optimizer, params, key)
    if not stepped:
        return [], []
    second_moments = [state[key] for state in states]
    counts = [step_count(state["step"], second_moments[0].dtype) for state in states]
    if isinstance(counts[0], Tensor):
        corrections = torch._foreach_pow(group["betas"][1], counts)  # beta2^t, then 1 - beta2^t
        torch._foreach_neg_(corrections)
        torch._foreach_add_(corrections, 1)
    else:
        corrections = [1 - group["betas"][1] ** count for count in counts]
    sizes = torch._foreach_div(second_moments, corrections)
    torch._foreach_sqrt_(sizes)
    torch._foreach_add_(sizes, group["eps"])
    return stepped, _masked_reciprocal_(sizes, group["lr"], second_moments)


def rmsprop_step_sizes(optimizer: Optimizer, group: dict, params: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
    """`rmsprop_step_size` of every parameter that has taken a step."""
    stepped, states = _stepped(optimizer, params, "square_avg")
    if not stepped:
        return [], []
    square_avgs = [state["square_avg"] for state in states]
    sizes = torch._foreach_sqrt(square_avgs)
    torch._foreach_add_(sizes, group["eps"])
    return stepped, _masked_reciprocal_(sizes, group["lr"] / (1 - group["momentum"]), square_avgs)


def adagrad_step_sizes(optimizer: Optimizer, group: dict, params: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
    """`adagrad_step_size` of every parameter that has summed a gradient."""
    stepped, states = _stepped(optimizer, params, "sum")
    if not stepped:
        return [], []
    sums = [state["sum"] for state in states]
    counts = [step_count(state["step"], sums[0].dtype) for state in states] if group["lr_decay"] else []
    if not counts:
        decayed = group["lr"]
    elif isinstance(counts[0], Tensor):  # lr / (1 + (t - 1) lr_decay), per parameter
        decayed = torch._foreach_sub(counts, 1)
        torch._foreach_mul_(decayed, group["lr_decay"])
        torch._foreach_add_(decayed, 1)
        torch._foreach_reciprocal_(decayed)
        torch._foreach_mul_(decayed, group["lr"])
    else:
        decayed = [group["lr"] / (1 + (count - 1) * group["lr_decay"]) for count in counts]
    sizes = torch._foreach_sqrt(sums)
    torch._foreach_add_(sizes, group["eps"])
    return stepped, _masked_reciprocal_(sizes, decayed, torch._foreach_sub(sums, group["initial_accumulator_value"]))


# AdamW subclasses Adam in current torch; both are listed for the releases where it does not.
STEP_SIZES: dict[type[Optimizer], tuple[StepSize, GroupStepSizes]] = {
    SGD: (sgd_step_size, sgd_step_sizes),
    Adam: (adam_step_size, adam_step_sizes),
    AdamW: (adam_step_size, adam_step_sizes),
    RMSprop: (rmsprop_step_size, rmsprop_step_sizes),
    Adagrad: (adagrad_step_size, adagrad_step_sizes),
}


def step_size_rules(optimizer: Optimizer) -> tuple[StepSize, GroupStepSizes] | None:
    """The rules (per parameter, per group) for ``optimizer``'s class or its nearest listed base class, else None."""
    return next((STEP_SIZES[cls] for cls in type(optimizer).__mro__ if cls in STEP_SIZES), None)


def check_proximal_support(optimizer: Optimizer, what: str = "proximal L1") -> None:
    """Raise an `UnsupportedOptimizerError` unless a proximal step can follow ``optimizer``'s steps.

    Raises:
        UnsupportedOptimizerError: no rule for its class, centred RMSprop, or ``maximize=True``;
            the message lists the supported optimizers and the alternative.
    """
    supported = ", ".join(sorted({cls.__name__ for cls in STEP_SIZES}))
    if step_size_rules(optimizer) is None:
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


def _rules(optimizer: Optimizer) -> tuple[StepSize, GroupStepSizes]:
    rules = step_size_rules(optimizer)
    if rules is None:
        check_proximal_support(optimizer)
    return rules


def step_size(optimizer: Optimizer, group: dict, param: Tensor) -> float | Tensor:
    """The distance ``optimizer`` moved ``param`` per unit of steady gradient in its last step (see the module)."""
    return _rules(optimizer)[0](optimizer, group, param)


def step_sizes(optimizer: Optimizer, group: dict, params: list[Tensor]) -> tuple[list[Tensor], float | list[Tensor]]:
    """`step_size` of all ``params`` of ``group`` at once, with multi-tensor ops (see `GroupStepSizes`)."""
    return _rules(optimizer)[1](optimizer, group, params)
