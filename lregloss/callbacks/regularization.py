"""Regularization for any LightningModule: penalties added to the gradients, proximal steps after real steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torch.optim import Optimizer

from lregloss.lightning import pl
from lregloss.callbacks.optimizer_steps import AfterOptimizerSteps, SteppedParameters, check_unsharded
from lregloss.private_names import gradients_are_scaled, is_logging_step, loss_scale
from lregloss.regularizers import Regularizer
from lregloss.sparse_gradients import check_no_sparse_selection


def named_regularizers(regularizers: Regularizer | Sequence[Regularizer] | Mapping[str, Regularizer]) -> dict[str, Regularizer]:
    """``regularizers`` by name: a mapping as given; one or a list named by each class's ``name`` (``l1``, ``l1_2``).

    Raises:
        TypeError: an entry is not a `Regularizer`.
        ValueError: there is none.
    """
    if isinstance(regularizers, Regularizer):
        regularizers = [regularizers]
    if isinstance(regularizers, Mapping):
        named = {str(name): reg for name, reg in regularizers.items()}
    else:
        named = {}
        for reg in regularizers:
            name, copy = getattr(reg, "name", "reg"), 2
            while name in named:
                name, copy = f"{reg.name}_{copy}", copy + 1
            named[name] = reg
    for name, reg in named.items():
        if not isinstance(reg, Regularizer):
            raise TypeError(
                f"regularizers[{name!r}] is a {type(reg).__name__}, not an lregloss Regularizer (L1, L2, ElasticNet, "
                "MaxNormPenalty); for the max-norm constraint use the MaxNormConstraint callback"
            )
    if not named:
        raise ValueError("regularizers is empty; give at least one, e.g. Regularization(L2(5e-4))")
    return named


class Regularization(pl.Callback):
    """Train any LightningModule on its own loss plus lregloss penalties, exactly as if they were in the loss.

    training loss = the module's loss + sum_r penalty_r(parameters r selects)

    ``Trainer(callbacks=[Regularization(L1(1e-5, mode="proximal"))])``, or several at once:
    ``Regularization({"l1": L1(1e-5), "l2": L2(5e-4)})`` (a list is named after each class's
    config: ``l1``, ``l2``, ``elastic``, ``maxnorm``).

    - Selection: when fitting starts (after the strategy has moved and wrapped the model),
      each regularizer selects its parameters by its own rule (weights of dimension >= 2, or
      ``include``/``exclude`` patterns); of those, each optimizer acts on the ones its param
      groups hold. Frozen parameters (``requires_grad=False``) are skipped at every step, and
      the groups are read again when they change (``BaseFinetuning`` unfreezing).
    - Gradient penalties (L2, L1 and elastic in gradient mode, the max-norm penalty) add their
      gradient to ``.grad`` in ``on_before_optimizer_step``: once per optimizer step, after
      the last accumulated backward, DDP's all-reduce and AMP's unscaling, before gradient
      clipping, so clipping sees the whole gradient. Where the gradients still carry the loss
      scale at that point (optimizers that unscale in their own step, such as fused AdamW
      under ``16-mixed``), the added gradient is multiplied by the scale too: every precision
      gives the update of the penalty in the loss. Under manual optimization the same hook
      runs in each ``optimizer.step()`` of the module, for that optimizer's parameters.
    - Proximal steps (L1 and elastic in proximal mode) run in a torch step post-hook, after
      each step an optimizer really took: never after one that GradScaler skipped, exactly as
      often as a manual ``step()`` is called. Their threshold follows each optimizer's own
      step size (`lregloss.regularizers.step_sizes`); an optimizer without a rule is refused
      when fitting starts.
    - Logging: on the steps Lightning logs (``log_every_n_steps``; none with 0), before the
      step, on the weights the batch's forward used: ``train/reg_loss`` (the sum) and, with
      several regularizers, ``train/reg_loss/<name>``. No host sync on other steps.

    Sharding strategies (FSDP, DeepSpeed, model parallel) are refused in ``setup``: their
    optimizers step flat shards, not the selected weights.

    Args:
        regularizers: one `Regularizer`, a list of them, or a mapping name -> regularizer.

    Raises:
        TypeError: an entry is not a `Regularizer`.
        ValueError: no regularizer; at ``setup``, a sharding strategy; at fit start, an
            optimizer a proximal step cannot follow (`UnsupportedOptimizerError`).
    """

    def __init__(self, regularizers: Regularizer | Sequence[Regularizer] | Mapping[str, Regularizer]) -> None:
        self.regularizers = named_regularizers(regularizers)
        self._stepped: dict[str, SteppedParameters] = {}
        self._proximal_hooks = AfterOptimizerSteps()
        self._optimizers: list[Optimizer] = []
        self._selecting: list[str] = []  # the regularizers that selected any parameter
        self.logged_penalty: Tensor | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            check_unsharded(trainer, type(self).__name__)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._optimizers = list(trainer.optimizers)
        self._stepped = {
            name: SteppedParameters(reg.select(pl_module, trainable_only=False)) for name, reg in self.regularizers.items()
        }
        self._selecting = [name for name, stepped in self._stepped.items() if stepped]
        for name in self._selecting:
            check_no_sparse_selection(name, self.regularizers[name].select(pl_module, trainable_only=False), pl_module)
        for name, reg in self.regularizers.items():
            for optimizer in self._optimizers:
                if self._stepped[name].of(optimizer, trainable_only=False):
                    reg.check_optimizer(optimizer)
        if any(reg.acts_after_step for reg in self.regularizers.values()):
            self._proximal_hooks.attach(self._optimizers, self._after_step)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._proximal_hooks.detach()

    def penalties(self) -> dict[str, Tensor]:
        """Each regularizer's penalty (strength included) over the parameters the optimizers step now."""
        with torch.no_grad():
            return {
                name: self.regularizers[name].penalty(stepped.of_all(self._optimizers))
                for name, stepped in self._stepped.items()
            }

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        self.logged_penalty = None
        if not self._selecting or not is_logging_step(trainer):
            return
        if not any(self._stepped[name].of_all(self._optimizers) for name in self._selecting):
            return
        penalties = self.penalties()
        self.logged_penalty = torch.stack(list(penalties.values())).sum()
        pl_module.log("train/reg_loss", self.logged_penalty)
        if len(penalties) > 1:
            pl_module.log_dict({f"train/reg_loss/{name}": value for name, value in penalties.items()})

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer) -> None:
        if not self._selecting:
            return
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        scale = loss_scale(scaler) if gradients_are_scaled(scaler, optimizer) else None
        for name in self._selecting:
            reg, stepped = self.regularizers[name], self._stepped[name]
            params = stepped.of(optimizer)
            if not params:
                continue
            if reg.separable or len(self._optimizers) == 1:
                reg.add_gradient_(params, scale)
            else:  # its part of the gradient of a penalty over every optimizer's parameters
                reg.add_gradient_(params, scale, among=stepped.of_all(self._optimizers))

    def _after_step(self, optimizer: Optimizer) -> None:
        for name, reg in self.regularizers.items():
            if reg.acts_after_step:
                params = self._stepped[name].of(optimizer)
                if params:
                    reg.after_optimizer_step(optimizer, params)
