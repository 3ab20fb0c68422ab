"""Which code path a tensor takes: the accelerator's (fused ops, no host reads) or a CPU shortcut.

A few lregloss kernels have two forms: one for accelerators, where a kernel launch and a read
of a device value on the host (a sync) cost more than arithmetic, and one for the CPU, where
they cost little and a data-dependent shortcut saves memory traffic (max-norm rescales only
the capped rows; L1 adds its gradient block by block; the divergence check reads the loss
every step). ``accelerator_code_paths()`` makes CPU tensors take the accelerator forms, so
that the CPU machines can count and test what a step does on a GPU (``python -m benchmarks
--only step_costs``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

_forced = False


def takes_accelerator_path(tensor: torch.Tensor) -> bool:
    """True where ``tensor`` lives off the CPU, or inside `accelerator_code_paths`."""
    return _forced or tensor.device.type != "cpu"


@contextlib.contextmanager
def accelerator_code_paths() -> Iterator[None]:
    """Within the block, CPU tensors take the code paths of accelerator tensors (see the module)."""
    global _forced
    before, _forced = _forced, True
    try:
        yield
    finally:
        _forced = before
