"""The contract every regularizer keeps: select parameters, give the penalty and its gradient."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lregloss.code_paths import takes_accelerator_path
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


# Elements per block in ``add_l1_l2_gradient_``: 1 MiB, so that a block of the weights, of
# the gradient and of the signs, split between threads, stays in each core's L2 cache.
BLOCK_BYTES = 1 << 20


@torch.no_grad()
def add_l1_l2_gradient_(
    grads: Sequence[Tensor], params: Sequence[Tensor], l1: float, l2: float, scale: Tensor | None = None
) -> None:
    """``grad += scale * (l2 * x + l1 * sign(x))`` for each (grad, x) pair, in that order; sign(0) = 0.

    On CPU each tensor is done block by block, the sign of a block going to a small reused
    buffer, so the weights and gradients are read once: over whole tensors, sign(x) would be
    a full-size temporary written and read back, and each term another pass over ``grad``
    (for an MLP's 4M weights, about 1.4x the time of this). On accelerators
    (`lregloss.code_paths`): ``torch._foreach_*`` ops, one kernel launch per term for all tensors.

    Args:
        grads: the gradients to add to, each shaped like its parameter.
        params: the parameters x.
        l1: the strength of the sign term (0 skips it).
        l2: the strength of the linear term (0 skips it).
        scale: a 0-dim tensor multiplying both terms (the AMP loss scale, for gradients that
            are still scaled), or None for 1. It stays a tensor: no host sync.
    """
    if not params or (l1 == 0 and l2 == 0):
        return
    grads, params = list(grads), list(params)
    if scale is not None:
        if l2:
            torch._foreach_add_(grads, torch._foreach_mul(params, scale * l2))
        if l1:
            torch._foreach_add_(grads, torch._foreach_mul(torch._foreach_sign(params), scale * l1))
        return
    if takes_accelerator_path(params[0]):
        if l2:
            torch._foreach_add_(grads, params, alpha=l2)
        if l1:
            torch._foreach_add_(grads, torch._foreach_sign(params), alpha=l1)
        return
    buffers: dict[torch.dtype, Tensor] = {}
    for grad, param in zip(grads, params):
        if not (param.is_contiguous() and grad.is_contiguous()):
            if l2:
                grad.add_(param, alpha=l2)
            if l1:
                grad.add_(param.sign(), alpha=l1)
            continue
        size = max(1, BLOCK_BYTES // param.element_size())
        if l1 and param.dtype not in buffers:
            buffers[param.dtype] = torch.empty(size, dtype=param.dtype)
        flat_param, flat_grad = param.view(-1), grad.view(-1)
        for start in range(0, flat_param.numel(), size):
            block_param, block_grad = flat_param[start : start + size], flat_grad[start : start + size]
            if l2:
                block_grad.add_(block_param, alpha=l2)
            if l1:
                signs = torch.sign(block_param, out=buffers[param.dtype][: block_param.numel()])
                block_grad.add_(signs, alpha=l1)


class Regularizer:
    """Base of every lregloss regularizer: ``reg(module) -> Tensor``, strength included.

    A regularizer selects parameters (``select``), gives the penalty over them (``penalty``,
    differentiable) and, for the training loop, adds the penalty's gradient straight into
    ``.grad`` with fused ``torch._foreach_*`` ops (``add_gradient_``), so the penalty needs no
    second autograd pass and its value is only computed for logging. Penalties applied as a
    proximal step instead act in ``after_optimizer_step`` (``acts_after_step`` is then True),
    and refuse in ``check_optimizer`` an optimizer whose steps they cannot follow. The
    ``lregloss.callbacks.Regularization`` callback drives all of this in any LightningModule.

    Args:
        include: glob patterns on full parameter names; when given, exactly the matching
            parameters are penalised instead of the default weights of dimension >= 2.
        exclude: glob patterns of parameters to leave out.

    Raises:
        ValueError: ``include`` or ``exclude`` is not a list of strings.
    """

    name = "reg"  # the default tag in train/reg_loss/<name>; each regularizer names itself after its config
    # A sum of per-entry terms. One that is not (a maximum over all the selection) takes
    # ``add_gradient_(params, scale, among=selection)`` where an optimizer steps part of it.
    separable = True

    def __init__(self, include: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> None:
        self.include = check_patterns("include", include)
        self.exclude = check_patterns("exclude", exclude)

    def select(self, module: nn.Module, trainable_only: bool = True) -> list[nn.Parameter]:
        """The parameters of ``module`` this regularizer acts on (see ``select_parameters``)."""
        return select_parameters(module, self.include, self.exclude, trainable_only)

    def penalty(self, params: Sequence[Tensor]) -> Tensor:
        """The penalty over ``params`` as a differentiable 0-dim tensor; 0 for no parameters."""
        raise NotImplementedError

    def add_gradient_(self, params: Sequence[Tensor], scale: Tensor | None = None) -> None:
        """Add ``scale * d penalty / d w`` to each parameter's ``.grad`` in place (a missing grad starts at 0).

        ``scale``: a 0-dim tensor (the AMP loss scale, where the gradients still carry it), or
        None for 1.
        """
        raise NotImplementedError

    @property
    def acts_after_step(self) -> bool:
        """True where ``after_optimizer_step`` changes the weights (proximal steps)."""
        return False

    def check_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Raise a ValueError, naming the fix, if this regularizer cannot act with ``optimizer``."""

    def after_optimizer_step(self, optimizer: torch.optim.Optimizer, params: Sequence[Tensor]) -> None:
        """Act on ``params`` once the optimizer has stepped; nothing for gradient penalties."""

    def __call__(self, module: nn.Module) -> Tensor:
        return self.penalty(self.select(module))

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in vars(self).items())
        return f"{type(self).__name__}({fields})"
