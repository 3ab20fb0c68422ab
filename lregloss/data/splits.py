"""Train / validation / test splits of the rows of a data set, deterministic for a seed."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def stratified_split(levels: Tensor, fractions: Sequence[float], seed: int) -> list[Tensor]:
    """Split row indices into len(fractions) + 1 disjoint parts, stratified by level.

    Within each level the rows are shuffled by a ``torch.Generator`` seeded with ``seed``;
    part k takes round(fractions[k] * n_level) of them, the last part the rest. Each part
    is returned sorted.
    """
    generator = torch.Generator().manual_seed(seed)
    parts: list[list[Tensor]] = [[] for _ in range(len(fractions) + 1)]
    for level in levels.unique(sorted=True):
        rows = (levels == level).nonzero().squeeze(1)
        rows = rows[torch.randperm(len(rows), generator=generator)]
        start = 0
        for k, fraction in enumerate(fractions):
            size = round(fraction * len(rows))
            parts[k].append(rows[start : start + size])
            start += size
        parts[-1].append(rows[start:])
    return [torch.cat(part).sort().values for part in parts]


def shuffled_split(size: int, fractions: Sequence[float], seed: int) -> list[Tensor]:
    """Split the rows 0..size-1 into len(fractions) + 1 disjoint parts at random, not stratified.

    The rows are ordered by ``randperm(size)`` from ``torch.Generator().manual_seed(seed)``;
    part k takes round(fractions[k] * size) of them, the last part the rest. Each part is
    returned sorted. For targets without classes to stratify by (real values, attribute sets).
    """
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    parts, start = [], 0
    for fraction in fractions:
        cut = round(fraction * size)
        parts.append(order[start : start + cut])
        start += cut
    parts.append(order[start:])
    return [part.sort().values for part in parts]
