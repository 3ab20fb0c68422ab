"""The baseline without regularization."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from lregloss.regularizers.base import Regularizer, zero_penalty


class NoRegularizer(Regularizer):
    """No penalty: ``loss = 0``. Selects nothing, so the training loop does no extra work."""

    name = "none"

    def __init__(self) -> None:
        super().__init__()

    def select(self, module: nn.Module, trainable_only: bool = True) -> list[nn.Parameter]:
        """No parameters."""
        return []

    def penalty(self, params: Sequence[Tensor]) -> Tensor:
        """Always 0."""
        return zero_penalty()

    def add_gradient_(self, params: Sequence[Tensor], scale: Tensor | None = None) -> None:
        """Adds nothing."""
