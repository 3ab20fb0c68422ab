"""Where a benchmark runs: ``--device cpu`` (the default) or ``--device cuda``."""

from __future__ import annotations

from collections.abc import Callable

import torch

from lregloss.benchmarking.timing import no_synchronize


def synchronizer(device: torch.device) -> Callable[[], None]:
    """A function that waits for ``device``'s queued kernels; GPU calls return before their work is done."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return no_synchronize
