"""Regression losses on real-valued outputs: squared error (L2) and absolute error (L1)."""

from __future__ import annotations

from torch import Tensor

from lregloss.losses.base import Loss, match_shapes
from lregloss.tasks import Task, TaskKind


class RegressionLoss(Loss):
    """A loss on real outputs f of the target's shape, (N,) or (N, K); predicts f itself.

    On an ordinal task (star ratings) the model gives one value per sample, the level index
    0..K-1 is the target, and ``predict_level`` rounds and clips the value.
    """

    own_level_rule = "rounded value"

    def num_outputs(self, task: Task) -> int:
        return 1 if task.kind is TaskKind.ORDINAL else task.size

    def predict(self, outputs: Tensor) -> Tensor:
        """The outputs; an (N, 1) column is returned as (N,)."""
        return outputs.squeeze(-1) if outputs.ndim == 2 and outputs.shape[1] == 1 else outputs

    def forward(self, outputs: Tensor, target: Tensor) -> Tensor:
        outputs, target = match_shapes(outputs, target)
        cost = self.residual_cost(outputs - target)
        return cost.reshape(cost.shape[0], -1).sum(dim=1).mean()

    def residual_cost(self, residual: Tensor) -> Tensor:
        """Elementwise cost of the residual f - y."""
        raise NotImplementedError


class SquaredError(RegressionLoss):
    """Regression L2 loss: the squared L2 norm of the residual.

    loss = mean_i sum_k (f_ik - y_ik)^2

    Sum over output dimensions, mean over the batch (for 1-D targets this is
    ``F.mse_loss``). Gradient 2 (f - y) per sample.
    """

    tasks = frozenset({TaskKind.REGRESSION, TaskKind.ORDINAL})

    def residual_cost(self, residual: Tensor) -> Tensor:
        return residual.square()


class AbsoluteError(RegressionLoss):
    """Regression L1 loss: the L1 norm of the residual.

    loss = mean_i sum_k |f_ik - y_ik|

    Sum over output dimensions, mean over the batch. Gradient sign(f - y) per sample (0
    where f = y), so every residual pulls with the same force, whatever its size.
    """

    tasks = frozenset({TaskKind.REGRESSION, TaskKind.ORDINAL})

    def residual_cost(self, residual: Tensor) -> Tensor:
        return residual.abs()
