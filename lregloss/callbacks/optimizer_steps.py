"""What callbacks that change training need of the optimizers: who steps which parameter, and when a step happened."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from torch import Tensor
from torch.optim import Optimizer

from lregloss.lightning import pl

SHARDED_STRATEGIES = (
    pl.strategies.FSDPStrategy,
    pl.strategies.DeepSpeedStrategy,
    pl.strategies.ModelParallelStrategy,
)


class SteppedParameters:
    """Of some chosen parameters, those an optimizer steps: held by one of its param groups and trainable.

    The param groups are read again whenever their sizes change (Lightning's ``BaseFinetuning``
    adds a group as it unfreezes layers), and parameters with ``requires_grad=False`` are left
    out at every call, so a layer frozen during training stops being acted on and one unfrozen
    later starts.

    Args:
        chosen: the parameters a regularizer or constraint selected, frozen ones included.
    """

    def __init__(self, chosen: Sequence[Tensor]) -> None:
        self._chosen = {id(param) for param in chosen}
        self._held: dict[int, tuple[tuple[int, ...], list[Tensor]]] = {}

    def __bool__(self) -> bool:
        return bool(self._chosen)

    def of(self, optimizer: Optimizer, trainable_only: bool = True) -> list[Tensor]:
        """The chosen parameters ``optimizer`` steps now (holds, frozen ones included, with ``trainable_only=False``)."""
        sizes = tuple(len(group["params"]) for group in optimizer.param_groups)
        held = self._held.get(id(optimizer))
        if held is None or held[0] != sizes:
            params = [p for group in optimizer.param_groups for p in group["params"] if id(p) in self._chosen]
            held = self._held[id(optimizer)] = (sizes, params)
        return [param for param in held[1] if param.requires_grad or not trainable_only]

    def of_all(self, optimizers: Iterable[Optimizer]) -> list[Tensor]:
        """The chosen parameters any of ``optimizers`` steps now, each once."""
        found: dict[int, Tensor] = {}
        for optimizer in optimizers:
            found.update((id(param), param) for param in self.of(optimizer))
        return list(found.values())


class AfterOptimizerSteps:
    """Call ``action(optimizer)`` after every step an optimizer really takes, through torch's step post-hooks.

    A step that AMP's GradScaler skips for inf gradients never calls ``optimizer.step`` (except
    for fused optimizers, which it asks to skip inside their step: see
    `lregloss.private_names.skipped_step_flag`), and under manual optimization the hook fires
    exactly when the module calls ``step``, so the action follows the steps that happened and
    no others.
    """

    def __init__(self) -> None:
        self._handles: list = []

    def attach(self, optimizers: Iterable[Optimizer], action: Callable[[Optimizer], None]) -> None:
        """Hook ``action`` onto each of ``optimizers`` (replacing earlier hooks of this object)."""
        self.detach()
        self._handles = [
            optimizer.register_step_post_hook(lambda optimizer, args, kwargs: action(optimizer))
            for optimizer in optimizers
        ]

    def detach(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def check_unsharded(trainer: pl.Trainer, callback: str) -> None:
    """Refuse a strategy that flattens and shards the parameters (FSDP, DeepSpeed, model parallel).

    There the optimizer steps flat shards, not the module's weights: a selection by name and
    shape (weights of dimension >= 2) finds none of them, per-unit norms and a global maximum
    span ranks, and the penalty would silently not apply.

    Raises:
        ValueError: naming the strategy and what works instead.
    """
    if isinstance(trainer.strategy, SHARDED_STRATEGIES):
        raise ValueError(
            f"{callback} does not support {type(trainer.strategy).__name__}: it shards and flattens the parameters, "
            "so the weights a regularizer selects and the units max-norm caps are not what the optimizer steps; "
            "train with strategy='ddp' (every rank holds whole weights), or use the optimizer's own weight_decay"
        )
