"""The contract every regularizer keeps: select parameters, give the penalty and its gradient."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lregloss.regularizers.selection import check_patterns, select_parameters


def zero_penalty() -> Tensor:
    """The penalty over no parameters: a 0-dim float tensor 0."""
    return torch.zeros(())


def grads_of(params: Sequence[Tensor]) -> list[Tensor]:
    """The ``.grad`` of each parameter, giving a zero gradient first to those that have none."""
    for param in params:
        if param.grad is None:
            param.grad = torch.zeros_like(param)
    return [param.grad for param in params]


class Regularizer:
    """Base of every lregloss regularizer: ``reg(module) -> Tensor``, strength included.

    A regularizer selects parameters (``select``), gives the penalty over them (``penalty``,
    differentiable) and, for the training loop, adds the penalty's gradient straight into
    ``.grad`` with fused ``torch._foreach_*`` ops (``add_gradient_``), so the penalty needs no
    second autograd pass and its value is only computed for logging. Penalties applied as a
    proximal step instead act in ``after_optimizer_step``.

    Args:
        include: glob patterns on full parameter names; when given, exactly the matching
            parameters are penalised instead of the default weights of dimension >= 2.
        exclude: glob patterns of parameters to leave out.

    Raises:
        ValueError: ``include`` or ``exclude`` is not a list of strings.
    """

    def __init__(self, include: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> None:
        self.include = check_patterns("include", include)
        self.exclude = check_patterns("exclude", exclude)

    def select(self, module: nn.Module) -> list[nn.Parameter]:
        """The parameters of ``module`` this regularizer acts on (see ``select_parameters``)."""
        return select_parameters(module, self.include, self.exclude)

    def penalty(self, params: Sequence[Tensor]) -> Tensor:
        """The penalty over ``params`` as a differentiable 0-dim tensor; 0 for no parameters."""
        raise NotImplementedError

    def add_gradient_(self, params: Sequence[Tensor]) -> None:
        """Add d penalty / d w to each parameter's ``.grad`` in place (a missing grad starts at 0)."""
        raise NotImplementedError

    def after_optimizer_step(self, optimizer: torch.optim.Optimizer, params: Sequence[Tensor]) -> None:
        """Act on ``params`` once the optimizer has stepped; nothing for gradient penalties."""

    def __call__(self, module: nn.Module) -> Tensor:
        return self.penalty(self.select(module))

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in vars(self).items())
        return f"{type(self).__name__}({fields})"
