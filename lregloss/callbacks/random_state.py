"""Save the random number generators with each checkpoint and restore them on resume."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from lregloss.lightning import pl


def capture_random_state() -> dict[str, Any]:
    """The state of Python's, NumPy's and torch's (CPU and CUDA) global generators.

    Only tensors, ints, strings, tuples and lists, so that ``torch.load(weights_only=True)``
    reads it back: NumPy's key array is stored as a tensor.
    """
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached_gaussian)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_random_state(state: dict[str, Any]) -> None:
    """Set the global generators to a state taken by `capture_random_state`."""
    random.setstate(state["python"])
    kind, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class RandomStateCheckpoint(pl.Callback):
    """Make a resumed run draw the same random numbers (dropout masks, augmentations) as an unbroken one.

    The state is taken when a checkpoint is written and set back at ``on_train_start`` of the
    resumed run: after Lightning has restored everything else and built the data loaders,
    immediately before the first resumed batch, so that nothing in between draws from the
    restored generators. Lightning's checkpoints do not hold generator states themselves.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return capture_random_state()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending is not None:
            restore_random_state(self._pending)
            self._pending = None
