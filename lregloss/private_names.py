"""Every private name of torch, Lightning and Hydra that lregloss relies on, in this one module.

Where no public API does the job, lregloss reaches the private name through this module:
each accessor here, and each check of a private method that lregloss overrides, raises a
`PrivateNameError` naming the name, the installed version and the tested ones when a release
removes or renames it, instead of silently doing nothing (``lregloss.app.distributed`` and
``lregloss.data.resumable`` check the methods they override where they override them; this
module imports neither Hydra nor Lightning, as the regularizers need torch alone).
``pyproject.toml`` bounds pytorch-lightning and hydra-core to the tested releases.

| private name | of | used by, for | why no public API |
|---|---|---|---|
| ``Trainer._logger_connector.should_update_logs`` | Lightning | `is_logging_step`: penalties are computed only on the steps Lightning logs | Lightning's rule (``log_every_n_steps``, batches that stepped, ``should_stop``) is not exposed |
| ``_FitLoop._load_combined_loader_states`` | Lightning | `load_pending_loader_states`: a resumed run hands its loaders their saved position | Lightning 2.6 skips it when ``configure_optimizers`` reads ``estimated_stepping_batches`` |
| ``GradScaler._per_optimizer_states`` | torch | `gradients_are_scaled`: are an optimizer's gradients still multiplied by the loss scale? | GradScaler keeps the stage private |
| ``GradScaler._get_scale_async`` | torch | `loss_scale`: the loss scale as a tensor, without a host sync | ``get_scale()`` reads it on the host |
| ``optimizer.found_inf`` (set by ``GradScaler.step``) | torch | `skipped_step_flag`: a fused optimizer's step that GradScaler turned into a no-op | the protocol between GradScaler and ``_step_supports_amp_scaling`` optimizers |
| ``DataLoader._index_sampler`` | torch | ``lregloss.data.resumable``: a resumed epoch skips the batches already trained on | samplers see no per-iterator state |
| ``DDPStrategy._configure_launcher``, ``_SubprocessScriptLauncher`` (``_call_children_scripts``, ``_check_can_spawn_children``), ``_ChildProcessObserver._run``, ``_set_num_threads_if_needed`` | Lightning | ``lregloss.app.distributed``: DDP ranks that run one Hydra job, not a whole sweep | Lightning's launcher re-runs ``sys.argv`` |
| ``hydra._internal.utils.get_args_parser`` | Hydra | ``lregloss.app.distributed``: parse the flags a rank keeps | Hydra exposes no parser |
| ``torch._foreach_*`` | torch | regularizers: one kernel per term over all tensors | the ops torch.optim itself uses; no public multi-tensor API |
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import torch
from torch import Tensor
from torch.amp.grad_scaler import OptState

TESTED = "pytorch-lightning 2.6, torch 2.14, hydra-core 1.3"

__all__ = [
    "PrivateNameError",
    "gradients_are_scaled",
    "is_logging_step",
    "load_pending_loader_states",
    "loss_scale",
    "require",
    "skipped_step_flag",
]


class PrivateNameError(RuntimeError):
    """A private name lregloss relies on is missing from the installed torch, Lightning or Hydra."""


def _versions() -> str:
    found = []
    for distribution in ("pytorch-lightning", "torch", "hydra-core"):
        try:
            found.append(f"{distribution} {importlib.metadata.version(distribution)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return ", ".join(found)


def require(owner: Any, *names: str) -> None:
    """Raise a `PrivateNameError` unless ``owner`` (a class or object) has every one of ``names``.

    Called at import time for the private methods lregloss overrides: an override of a method
    that a release renamed would otherwise never run.
    """
    missing = [name for name in names if not hasattr(owner, name)]
    if missing:
        owner_name = getattr(owner, "__qualname__", type(owner).__qualname__)
        raise PrivateNameError(
            f"lregloss relies on {owner_name}.{', '.join(missing)}, which the installed release lacks "
            f"({_versions()}); lregloss is tested with {TESTED}: install those (pip install 'pytorch-lightning>=2.6,<2.7')"
        )


require(torch.amp.GradScaler, "_get_scale_async")


def is_logging_step(trainer) -> bool:
    """True on the training steps whose ``self.log(on_step=True)`` values Lightning writes to the loggers.

    False on every step with ``log_every_n_steps=0``.
    """
    connector = trainer._logger_connector
    require(connector, "should_update_logs")
    return connector.should_update_logs


def load_pending_loader_states(trainer) -> None:
    """Hand the training loaders the position a resumed checkpoint saved for them (nothing when none is pending)."""
    require(trainer.fit_loop, "_load_combined_loader_states")
    trainer.fit_loop._load_combined_loader_states()


def gradients_are_scaled(scaler: torch.amp.GradScaler | None, optimizer: torch.optim.Optimizer) -> bool:
    """True where ``optimizer``'s gradients are still multiplied by ``scaler``'s loss scale.

    That is the case between backward and the optimizer step for optimizers that unscale in
    their own step (``_step_supports_amp_scaling``: fused Adam, AdamW, SGD), which Lightning
    does not unscale before ``on_before_optimizer_step``.
    """
    if scaler is None or not scaler.is_enabled():
        return False
    require(scaler, "_per_optimizer_states")
    state = scaler._per_optimizer_states.get(id(optimizer))
    return state is None or state["stage"] is not OptState.UNSCALED


def loss_scale(scaler: torch.amp.GradScaler) -> Tensor:
    """The current loss scale as a 0-dim float32 tensor on the scaler's device, read without a host sync."""
    return scaler._get_scale_async().reshape(())


def skipped_step_flag(optimizer: torch.optim.Optimizer) -> Tensor | None:
    """Inside a fused optimizer's step called by GradScaler: 1.0 where the step is skipped (inf gradients), else 0.0.

    GradScaler does not skip the call of an optimizer that unscales in its own step; it passes
    ``found_inf`` and the kernel leaves the weights alone. None outside such a step.
    """
    flag = getattr(optimizer, "found_inf", None)
    return None if flag is None else flag.reshape(())
