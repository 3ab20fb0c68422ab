"""The one LightningModule: a backbone, a loss, and the penalties of a `Regularization` callback."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from lregloss.callbacks.regularization import Regularization
from lregloss.callbacks.temperature_scaling import TEMPERATURE_KEY
from lregloss.code_paths import takes_accelerator_path
from lregloss.lightning import pl
from lregloss.losses import Loss
from lregloss.losses.base import check_level_rule
from lregloss.metrics import is_large_vocabulary, task_metrics
from lregloss.private_names import is_logging_step, load_pending_loader_states
from lregloss.regularizers import Regularizer
from lregloss.sparse_gradients import check_sparse_optimizer
from lregloss.tasks import Task, TaskKind

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
RECIPE_KEY = "lregloss_recipe"  # the checkpoint entry load_from_checkpoint rebuilds the module from


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss, penalty or weights.

    The message names the step, the loss and penalty values and the likely cause.
    """


class FinitenessWatch:
    """Whether every value handed to ``add`` since the last read was finite, kept on the device.

    ``add`` is two small ops and no host read (``isfinite``, then a logical and into the flag);
    ``read_and_reset`` reads the flag once.
    """

    def __init__(self) -> None:
        self.flag: Tensor | None = None
        self.steps = 0  # values added since the last read
        self.first_step = self.last_step = 0  # the optimizer steps of the first and the last of them

    def add(self, value: Tensor, step: int) -> None:
        """Fold in ``value``'s finiteness; ``step`` is the optimizer step it belongs to."""
        finite = torch.isfinite(value)  # a bool tensor: outside autograd, no detach needed
        if self.flag is None:
            self.flag, self.first_step = finite, step
        else:
            self.flag.logical_and_(finite)
        self.last_step = step
        self.steps += 1

    def read_and_reset(self) -> tuple[tuple[int, int], bool]:
        """((the steps of the first and the last value since the last read), whether every value since was finite)."""
        finite = True if self.flag is None else bool(self.flag)
        self.flag, self.steps = None, 0
        return (self.first_step, self.last_step), finite


class RegularizedLossModule(pl.LightningModule):
    """Trains ``model`` on ``loss`` plus the penalties of ``regularizers``.

    training loss = data loss + sum_r penalty_r(selected weights of r)

    The penalties are applied by a `lregloss.callbacks.Regularization` callback that the module
    hands the Trainer (``configure_callbacks``), the same one any LightningModule can use: their
    gradients go straight into ``.grad`` after backward (no second autograd pass), proximal steps
    follow each real optimizer step, and penalty values are computed only on logging steps.

    Divergence: the data loss (plus the penalty on the steps that compute it) must be finite,
    else training stops with a `DivergenceError` naming the step, the values and the likely
    cause. Each step adds its finiteness to a flag on the device (no host read); the flag is
    read, and the step stopped before backward, every ``divergence_check_interval`` training
    steps and at the end of each epoch. Every step on the CPU by default, where the read
    costs microseconds, so no non-finite update ever reaches the weights; on accelerators by
    default on the steps Lightning logs, whose logged loss is read from the device anyway, so
    up to ``log_every_n_steps - 1`` non-finite updates may reach the weights before the run
    stops. Either way the checkpoint plugin never writes non-finite weights
    (`lregloss.app.checkpointing.SafeCheckpointIO`), so the last good checkpoint is kept.

    Logged: ``train/data_loss``; where a regularizer selects weights, ``train/reg_loss`` (and
    ``train/reg_loss/<name>`` when there are several) and ``train/loss``; ``val/loss``, and
    the task's metrics under ``val/`` and ``test/`` (see `lregloss.metrics`).

    Args:
        model: the backbone; maps a batch's inputs to ``loss.num_outputs(task)`` outputs.
        loss: the data loss, which also decodes outputs into predictions.
        task: the data's task description.
        optimizer: a partial optimizer taking the parameters (Hydra ``_partial_: true``).
        scheduler: optional partial LR scheduler taking the optimizer (and ``total_steps``
            where its signature has it); stepped after every optimizer step.
        regularizers: penalties by name; none by default.
        level_decoding: how ordinal levels are decoded, a rule of `LEVEL_RULES`: ``auto`` (the
            loss's own: the median for ``OrdinalLogistic``, the mode for softmax-like losses),
            ``mode``, ``median`` or ``expected`` (`Loss.predict_level`).
        recipe: the plain configs the module was built from (see `from_recipe`); saved in
            every checkpoint, so that `load_from_checkpoint` rebuilds the module from it alone.
        divergence_check_interval: training steps between reads of the finiteness flag, >= 1;
            None: every step on the CPU, the logged steps on accelerators (see above).

    Raises:
        ValueError: ``divergence_check_interval`` is not None or an integer >= 1.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: Loss,
        task: Task,
        optimizer: OptimizerFactory,
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        regularizers: Mapping[str, Regularizer] | None = None,
        level_decoding: str = "auto",
        recipe: Mapping[str, Any] | None = None,
        divergence_check_interval: int | None = None,
    ) -> None:
        super().__init__()
        if divergence_check_interval is not None and (
            int(divergence_check_interval) != divergence_check_interval or divergence_check_interval < 1
        ):
            raise ValueError(
                f"divergence_check_interval must be an integer >= 1 or None (auto), got {divergence_check_interval}"
            )
        loss.check_task(task)
        check_level_rule(level_decoding, loss if task.kind is TaskKind.ORDINAL else None)
        self.model = model
        self.loss = loss
        self.task = task
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.regularizers = dict(regularizers or {})
        self.regularization = Regularization(self.regularizers) if self.regularizers else None
        self.level_decoding = level_decoding
        self.recipe = None if recipe is None else dict(recipe)
        self.val_metrics = task_metrics(task, loss, level_decoding)
        self.test_metrics = task_metrics(task, loss, level_decoding)
        self.temperature: float | None = None  # set by TemperatureScaling; None: the distributions as they are
        self.divergence_check_interval = divergence_check_interval
        self._finite = FinitenessWatch()

    @classmethod
    def from_recipe(cls, recipe: Mapping[str, Any]) -> RegularizedLossModule:
        """The module a recipe describes: plain configs (``_target_``) of its parts and its task.

        Keys: ``model`` (a partial taking ``input_size`` and ``num_outputs``), ``loss``,
        ``optimizer`` (a partial taking the parameters), ``scheduler`` (a partial, or None),
        ``regularizers`` (name -> config), ``task`` (`Task`'s fields), ``input_size``,
        ``level_decoding``. ``lregloss-train`` writes one into every checkpoint.
        """
        from hydra.utils import instantiate  # the configs' _target_s; Hydra only where a recipe is read

        task = Task(**recipe["task"])
        loss = instantiate(recipe["loss"])
        model = instantiate(recipe["model"])(input_size=recipe["input_size"], num_outputs=loss.num_outputs(task))
        scheduler = recipe.get("scheduler")
        return cls(
            model,
            loss,
            task,
            optimizer=instantiate(recipe["optimizer"]),
            scheduler=None if scheduler is None else instantiate(scheduler),
            regularizers={name: instantiate(config) for name, config in recipe["regularizers"].items()},
            # "argmax", before the rules were named, was each loss's own rule: "auto"
            level_decoding="auto" if recipe["level_decoding"] == "argmax" else recipe["level_decoding"],
            recipe=recipe,
        )

    @classmethod
    def load_from_checkpoint(
        cls, checkpoint_path: str | Path, map_location=None, strict: bool = True
    ) -> RegularizedLossModule:
        """The trained module of a checkpoint, rebuilt from the checkpoint alone (read with ``weights_only=True``), in eval mode.

        ``map_location`` as for ``torch.load`` (default: the CPU); ``strict`` as for
        ``load_state_dict``.

        Raises:
            ValueError: the checkpoint holds no recipe (written by another module, or before
                lregloss saved one).
        """
        checkpoint = torch.load(checkpoint_path, map_location=map_location or "cpu", weights_only=True)
        return cls.from_checkpoint(checkpoint, str(checkpoint_path), strict)

    @classmethod
    def from_checkpoint(
        cls, checkpoint: Mapping[str, Any], source: str = "the checkpoint", strict: bool = True
    ) -> RegularizedLossModule:
        """`load_from_checkpoint` for a checkpoint already loaded (``source`` names it in the error), in eval mode."""
        recipe = checkpoint.get(RECIPE_KEY)
        if recipe is None:
            raise ValueError(
                f"{source} holds no {RECIPE_KEY}: it was not written by lregloss-train (or by a release "
                "before it saved one); build the module from its config and load_state_dict the weights"
            )
        module = cls.from_recipe(recipe)
        module.load_state_dict(checkpoint["state_dict"], strict=strict)
        module.on_load_checkpoint(checkpoint)
        return module.eval()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.recipe is not None:
            checkpoint[RECIPE_KEY] = self.recipe
        if self.temperature is not None:
            checkpoint[TEMPERATURE_KEY] = self.temperature

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The fitted temperature, where the checkpoint holds one (`TemperatureScaling`)."""
        self.temperature = checkpoint.get(TEMPERATURE_KEY)

    @property
    def scale(self) -> float:
        """The temperature the reported distributions are at: the fitted one, else 1."""
        return 1.0 if self.temperature is None else self.temperature

    def configure_callbacks(self) -> list[Regularization]:
        """The module's `Regularization` callback (none without regularizers).

        Raises:
            ValueError: the Trainer has a `Regularization` callback of its own, which Lightning
                would silently replace by this one.
        """
        if self.regularization is None:
            return []
        others = [cb for cb in self.trainer.callbacks if isinstance(cb, Regularization) and cb is not self.regularization]
        if others:
            raise ValueError(
                "the Trainer has a Regularization callback and RegularizedLossModule has regularizers of its own; "
                "give the regularizers to one of them (RegularizedLossModule(regularizers=...) or the callback)"
            )
        return [self.regularization]

    def on_train_start(self) -> None:
        # configure_optimizers reads estimated_stepping_batches, which makes Lightning (2.6)
        # build the training loader before it restores the loop state of a resumed run, and so
        # skip handing the loader its saved position. Hand it over now, before the first batch;
        # the call does nothing when there is no pending state.
        load_pending_loader_states(self.trainer)

    def forward(self, inputs: Tensor) -> Tensor:
        return self.model(inputs)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        inputs, target = batch
        data_loss = self.loss(self.model(inputs), target)
        watched = data_loss
        if is_logging_step(self.trainer):
            # On logging steps only, like the penalties: a self.log call every step made an
            # epoch of a small MLP 1.25x a bare LightningModule's (1.02x without it).
            # Under DDP the data losses are averaged over the ranks (the loss of the global
            # batch); the penalty, of weights that every rank holds alike, is not.
            self.log("train/data_loss", data_loss, prog_bar=True, sync_dist=True)
            penalty = None if self.regularization is None else self.regularization.logged_penalty
            if penalty is not None:
                # The callback logged train/reg_loss before this step, on the same weights, where
                # a regularizer selects any (not for reg=none: each self.log costs ~0.5 ms on CPU).
                watched = data_loss.detach() + penalty
                self.log("train/loss", watched, sync_dist=True)
        self._finite.add(watched, self.global_step)
        if self._divergence_check_due():
            self._check_divergence(data_loss, inputs)
        return data_loss

    def _divergence_check_due(self) -> bool:
        """Whether this training step reads the finiteness flag (see the class's Divergence)."""
        if self.divergence_check_interval is not None:
            return self._finite.steps >= self.divergence_check_interval
        if not takes_accelerator_path(self._finite.flag):
            return True
        return is_logging_step(self.trainer)

    def _check_divergence(self, data_loss: Tensor | None = None, inputs=None) -> None:
        """Read the flag (one host sync) and raise if a step since the last read was not finite.

        Under DDP the ranks decide together (one all-reduce of a flag), so that all of them stop
        at the same step instead of the others waiting for the stopped one in their gradient
        all-reduce.
        """
        steps, finite = self._finite.read_and_reset()
        if self.trainer.strategy.reduce_boolean_decision(finite, all=True):
            return
        if finite:
            raise DivergenceError(
                f"training diverged at step {self.global_step} on another rank; its log, train_rank<k>.log, says how"
            )
        raise DivergenceError(self.divergence_report(data_loss, inputs, steps))

    def on_train_epoch_end(self) -> None:
        if self._finite.steps:
            self._check_divergence()

    @torch.no_grad()
    def divergence_report(self, data_loss: Tensor | None, inputs, steps: tuple[int, int] | None = None) -> str:
        """One line on a non-finite step: the step (or the first and last steps since the last check), the values,
        the likely cause."""
        values = [] if data_loss is None else [f"train/data_loss={data_loss.item():.4g}"]
        penalties = {} if self.regularization is None else self.regularization.penalties()
        if penalties:
            values.append(f"train/reg_loss={sum(p.item() for p in penalties.values()):.4g}")
        if len(penalties) > 1:
            values += [f"train/reg_loss/{name}={value.item():.4g}" for name, value in penalties.items()]
        if isinstance(inputs, Tensor) and inputs.is_floating_point() and not torch.isfinite(inputs).all():
            cause = "this batch's inputs hold NaN or inf; clean the data"
        else:
            knobs = []
            if self._trainer is not None and self.trainer.optimizers:
                knobs.append(f"the learning rate (now {self.trainer.optimizers[0].param_groups[0]['lr']:.3g})")
            knobs += [
                f"the {name} strength ({reg.strength:.3g})"
                for name, reg in self.regularizers.items()
                if isinstance(getattr(reg, "strength", None), float) and reg.strength > 0
            ]
            cause = f"{' or '.join(knobs) or 'the learning rate'} is likely too high"
        epoch = f" (epoch {self.current_epoch})" if self._trainer is not None else ""
        first, last = steps or (self.global_step, self.global_step)
        when = f"at step {last}" if first == last else f"at a step from {first} to {last}"
        return f"training diverged {when}{epoch}: {', '.join(values) or 'a non-finite loss'}; {cause}"

    def predict_step(self, batch, batch_idx: int) -> dict[str, Tensor]:
        """``prediction``: the decoded prediction of each sample (the level, by ``level_decoding``,
        for ordered levels); ``proba``: the predicted distribution, where the loss gives one; for
        a vocabulary of `lregloss.metrics.LARGE_VOCABULARY` classes or more ``top_k``, the 5 most probable classes
        (best first) instead of a C-wide ``proba``."""
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        outputs = self.model(inputs)
        if is_large_vocabulary(self.task):
            top_k = self.loss.top_k(outputs, 5)
            return {"prediction": top_k[:, 0], "top_k": top_k}
        if self.task.kind is TaskKind.ORDINAL:
            prediction = self.loss.predict_level(outputs, self.task.size, self.level_decoding, self.scale)
        else:
            prediction = self.loss.predict(outputs)
        result = {"prediction": prediction}
        if self.loss.gives_distribution:
            result["proba"] = self.loss.predict_proba(outputs, self.scale)
        return result

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_metrics)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_metrics)

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str, metrics) -> None:
        inputs, target = batch
        outputs = self.model(inputs)
        # sync_dist: under DDP, the mean over every rank's samples, the whole split's loss (Lightning
        # all-reduces both the batch-size-weighted sum and the sample count).
        self.log(f"{stage}/loss", self.loss(outputs, target), on_epoch=True, prog_bar=stage == "val", sync_dist=True)
        metrics.update(outputs, target, self.scale if stage == "test" else 1.0)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_metrics, confusion_figure=True)

    def _log_metrics(self, stage: str, metrics, confusion_figure: bool = False) -> None:
        values = metrics.compute()  # torchmetrics gathers every rank's state: the whole split's values
        if stage == "test" and self.temperature is not None:
            values["temperature"] = torch.tensor(self.temperature, device=self.device)
        # Already equal on every rank; sync_dist with max keeps them bit for bit (a mean may round)
        # and tells Lightning they are synchronised.
        self.log_dict({f"{stage}/{name}": value for name, value in values.items()}, sync_dist=True, reduce_fx="max")
        if confusion_figure:
            self._log_figures(stage, metrics)
        metrics.reset()

    def _log_figures(self, stage: str, metrics) -> None:
        """The confusion matrix and, for a distribution, the reliability diagram (IMAGES), on TensorBoard."""
        loggers = [logger for logger in self.loggers if isinstance(logger, pl.loggers.TensorBoardLogger)]
        if not loggers or self.trainer.sanity_checking:
            return
        import matplotlib.pyplot as plt  # here, not at import: only the test stage's figures need it

        figures = {}
        if metrics.confusion is not None:
            figures["confusion_matrix"], _ = metrics.confusion.plot(labels=list(self.task.names) if self.task.names else None)
        if metrics.reliability:
            diagrams = {name: bins.compute() for name, bins in metrics.reliability.items()}
            figures["reliability"] = reliability_figure(diagrams, self.temperature)
        for name, figure in figures.items():
            for logger in loggers:
                logger.experiment.add_figure(f"{stage}/{name}", figure, self.global_step)
            plt.close(figure)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        check_sparse_optimizer(optimizer, self)
        if self.scheduler_factory is None:
            return optimizer
        kwargs = {}
        accepted = inspect.signature(self.scheduler_factory).parameters
        for key in ("total_steps", "total_iters"):  # OneCycleLR's, LinearLR's: the run's optimizer steps
            if key in accepted:
                kwargs[key] = int(self.trainer.estimated_stepping_batches)
        try:
            scheduler = self.scheduler_factory(optimizer, **kwargs)
        except ZeroDivisionError as error:  # OneCycleLR when pct_start * total_steps is exactly 1
            raise ValueError(
                f"scheduler: the learning-rate schedule cannot be laid over {kwargs.get('total_steps', '?')} optimizer "
                "steps; train for more steps (trainer.max_epochs, a smaller data.batch_size) or use scheduler=none"
            ) from error
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def reliability_figure(diagrams: Mapping[str, Any], temperature: float | None):
    """Accuracy against confidence per bin (`Reliability`) of the reported distribution and, if scaled, at T = 1."""
    import matplotlib.pyplot as plt

    labels = {"predicted": "predicted" if temperature is None else f"at T = {temperature:.3g}", "uncalibrated": "T = 1"}
    figure, axes = plt.subplots(figsize=(4.5, 4.2), layout="constrained")
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", label="calibrated")
    for name, diagram in diagrams.items():
        axes.plot(diagram.confidence, diagram.accuracy, marker="o", label=f"{labels[name]} (ECE {diagram.ece:.3f})")
    axes.set(xlabel="confidence (probability of the most probable level)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
    axes.legend()
    return figure
