"""Checkpoint files a run can trust: written atomically, never with non-finite weights, read safely.

Lightning's own writer (``TorchCheckpointIO``) writes through an fsspec transaction whose
temporary file lies in the system temp folder; where that is another file system (tmpfs),
the final move is a copy, and a kill during it leaves a truncated ``last.ckpt``. Here the
temporary file lies next to the target and ``os.replace`` swaps it in, which a kill cannot
interrupt half way.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from omegaconf import Container, OmegaConf
from torch import Tensor

from lregloss.callbacks.last_checkpoint import LAST
from lregloss.app.error_reporting import ConfigError, one_line
from lregloss.module import DivergenceError

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"


def last_checkpoint(run_dir: str | Path) -> Path:
    """``<run_dir>/checkpoints/last.ckpt``, where ``resume=<run_dir>`` continues from."""
    return Path(run_dir) / CHECKPOINT_DIR / LAST


def plain(value: Any) -> Any:
    """``value`` with OmegaConf containers and dict subclasses made plain dicts and lists.

    ``torch.load(weights_only=True)`` refuses any class outside its allow-list, and
    ``DictConfig`` or Lightning's ``AttributeDict`` are outside it: a checkpoint holding one
    (hyperparameters saved from a Hydra config, typically) could then be read only by
    unpickling arbitrary code. ``OrderedDict`` (state dicts) is allowed and kept.
    """
    if isinstance(value, Container):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, dict):
        kind = OrderedDict if isinstance(value, OrderedDict) else dict
        return kind((key, plain(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(plain(item) for item in value)
    return value


def _float_tensors(value: Any, name: str) -> Iterator[tuple[str, Tensor]]:
    if isinstance(value, Tensor):
        if value.is_floating_point():
            yield name, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _float_tensors(item, f"{name}.{key}" if name else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _float_tensors(item, f"{name}[{index}]")


def first_non_finite(checkpoint: dict[str, Any]) -> str | None:
    """Name of the first weight or optimizer-state tensor holding NaN or inf, else None.

    One min-max pass per tensor (NaN and inf both reach the min or the max) and one check of
    all the extremes: about a sixth of the time of ``isfinite(tensor).all()`` on CPU.
    """
    trained = {key: checkpoint.get(key, {}) for key in ("state_dict", "optimizer_states")}
    named = [(name, tensor) for name, tensor in _float_tensors(trained, "") if tensor.numel()]
    if not named:
        return None
    extremes = torch.stack([torch.stack(torch.aminmax(tensor.detach())).float().cpu() for _, tensor in named])
    finite = torch.isfinite(extremes).all(dim=1)
    if bool(finite.all()):
        return None
    return named[int((~finite).nonzero()[0])][0]


def atomic_save(checkpoint: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` to ``<path>.tmp`` beside ``path``, flush it to disk, then rename it over ``path``.

    A kill at any moment leaves ``path`` either as it was or complete; at worst a stale
    ``.tmp`` file stays behind, to be overwritten by the next save.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        torch.save(checkpoint, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint reader and writer, made safe against kills, divergence and pickles.

    Saving: OmegaConf containers become plain containers (see `plain`); a checkpoint whose
    weights or optimizer state hold NaN or inf is refused with a `DivergenceError`, so it never
    replaces the last good one; local files are written with `atomic_save`.

    Loading: ``torch.load(weights_only=True)`` unless a caller asks otherwise explicitly, so no
    checkpoint runs code while it is read; a file that needs more is refused in one line.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        bad = first_non_finite(checkpoint)
        if bad is not None:
            raise DivergenceError(
                f"training diverged: {bad} holds NaN or inf at step {checkpoint.get('global_step')}, so {path} was "
                "not written; lower the learning rate (optimizer.lr) or the regularizer strength"
            )
        checkpoint = plain(checkpoint)
        for key in [key for key in checkpoint if key.endswith("hparams_type")]:
            del checkpoint[key]  # a class; without it Lightning restores hyperparameters as a dict
        if "://" not in str(path) or str(path).startswith("file://"):
            atomic_save(checkpoint, str(path).removeprefix("file://"))
        else:
            super().save_checkpoint(checkpoint, path)

    def load_checkpoint(
        self,
        path,
        map_location: Callable | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        return load_checkpoint(path, map_location, weights_only=True if weights_only is None else weights_only)


def checkpoint_step(path: str | Path) -> int:
    """The ``global_step`` (optimizer steps taken) a checkpoint was written at, read without loading the tensors."""
    return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"])


def load_checkpoint(path, map_location: Any = "cpu", weights_only: bool = True) -> dict[str, Any]:
    """Read a checkpoint, by default with ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ConfigError: the file holds objects that ``weights_only`` loading refuses; the
            message names the file and the first such object.
    """
    try:
        return TorchCheckpointIO().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as error:
        detail = next((line for line in str(error).splitlines() if "GLOBAL" in line or "global" in line), str(error))
        raise ConfigError(
            f"{path} holds objects that lregloss does not unpickle (it loads with torch.load(weights_only=True)): "
            f"{one_line(detail)[:300]}; re-save it with plain containers (dict, list) or, only if you trust the "
            "file, allow the class with torch.serialization.add_safe_globals"
        ) from error
