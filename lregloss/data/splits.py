"""Train / validation / test splits of the rows of a data set, deterministic for a seed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


def stratified_sizes(counts: Sequence[int], fractions: Sequence[float]) -> list[list[int]]:
    """How many rows of each class each held-out part takes: sizes[k][c] for fraction k, class c.

    Part k takes floor(fractions[k] * n_c) rows of class c, plus one more from the classes
    with the largest remainders (then the most rows left, then the lowest index) until the
    part holds round(fractions[k] * N) rows, N = sum n_c: the shares of the classes are kept
    as closely as whole rows allow, and a data set of many small classes still gets held-out
    parts of the asked size. A class always keeps at least one row for training.
    """
    left = list(counts)
    sizes = []
    for fraction in fractions:
        exact = [fraction * count for count in counts]
        size = [min(int(value), max(rows - 1, 0)) for value, rows in zip(exact, left)]
        missing = round(fraction * sum(counts)) - sum(size)
        for c in sorted(range(len(counts)), key=lambda c: (size[c] - exact[c], -left[c], c)):
            if missing <= 0:
                break
            if size[c] < left[c] - 1:
                size[c] += 1
                missing -= 1
        left = [rows - taken for rows, taken in zip(left, size)]
        sizes.append(size)
    return sizes


def stratified_split(levels: Tensor, fractions: Sequence[float], seed: int) -> list[Tensor]:
    """Split row indices into len(fractions) + 1 disjoint parts, stratified by level (class).

    Within each level the rows are shuffled by a ``torch.Generator`` seeded with ``seed``;
    part k takes `stratified_sizes` of them (about fractions[k] * n_level), the last part
    the rest. Each part is returned sorted.
    """
    generator = torch.Generator().manual_seed(seed)
    classes, counts = levels.unique(sorted=True, return_counts=True)
    sizes = stratified_sizes(counts.tolist(), fractions)
    parts: list[list[Tensor]] = [[] for _ in range(len(fractions) + 1)]
    for c, level in enumerate(classes):
        rows = (levels == level).nonzero().squeeze(1)
        rows = rows[torch.randperm(len(rows), generator=generator)]
        start = 0
        for k in range(len(fractions)):
            parts[k].append(rows[start : start + sizes[k][c]])
            start += sizes[k][c]
        parts[-1].append(rows[start:])
    return [torch.cat(part).sort().values for part in parts]


def shuffled_split(size: int, fractions: Sequence[float], seed: int) -> list[Tensor]:
    """Split the rows 0..size-1 into len(fractions) + 1 disjoint parts at random, not stratified.

    The rows are ordered by ``randperm(size)`` from ``torch.Generator().manual_seed(seed)``;
    part k takes round(fractions[k] * size) of them, the last part the rest. Each part is
    returned sorted. For targets without classes to stratify by (real values, attribute sets).
    """
    # int32 draws the same permutation as int64, at half the memory; the parts as numpy's flatnonzero.
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed), dtype=torch.int32).numpy()
    part_of = np.empty(size, dtype=np.int8)  # each row's part: no sort of the parts needed
    start = 0
    for part, fraction in enumerate(fractions):
        cut = round(fraction * size)
        part_of[order[start : start + cut]] = part
        start += cut
    part_of[order[start:]] = len(fractions)
    return [torch.from_numpy(np.flatnonzero(part_of == part)) for part in range(len(fractions) + 1)]
