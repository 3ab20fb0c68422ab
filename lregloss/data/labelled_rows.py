"""The labelled rows of a table file: read, rows without a target dropped, targets typed, split."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import Tensor

from lregloss.data.splits import shuffled_split, stratified_split
from lregloss.data.tables import check_columns, missing_mask, read_table, table_columns
from lregloss.data.targets import Targets, read_targets
from lregloss.tasks import TaskKind

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val", "dev": "val",
               "test": "test"}  # fmt: skip


@dataclass(frozen=True)
class LabelledRows:
    """The rows of a table file that have a target.

    Args:
        table: the kept rows (every column read).
        rows: each kept row's data row number in the file (the first data row is 1); a range
            where no row was dropped.
        targets: their targets and task.
        split_indices: ``train``/``val``/``test`` -> indices into the kept rows.
    """

    table: pa.Table
    rows: np.ndarray | range
    targets: Targets
    split_indices: dict[str, Tensor]


def as_list(value: str | Sequence[str] | None) -> list[str]:
    """A config value naming one column or several, as a list."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(item) for item in value]


def _split_by_column(column: pa.ChunkedArray, name: str, rows: np.ndarray | range, path: Path) -> dict[str, Tensor]:
    values = [str(value).strip().lower() if value is not None else "" for value in column.to_pylist()]
    parts: dict[str, list[int]] = {split: [] for split in SPLITS}
    for position, value in enumerate(values):
        if value not in SPLIT_NAMES:
            raise ValueError(
                f"{path}, row {int(rows[position])}: split column {name} holds {value!r}; use train, val or test"
            )
        parts[SPLIT_NAMES[value]].append(position)
    return {split: torch.tensor(part, dtype=torch.long) for split, part in parts.items()}


def read_labelled_rows(
    path: Path,
    target: str | Sequence[str],
    inputs: Sequence[str] | None,
    *,
    task: str | None,
    levels: Sequence[Any] | None,
    split: str | None,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    keep: Callable[[pa.Table], pa.ChunkedArray | pa.Array] | None = None,
) -> LabelledRows:
    """Read ``path``'s target, input and split columns, drop the rows without a target, type the targets, split.

    Args:
        path: a CSV (plain or compressed) or Parquet file.
        target: the target column, or several (attributes, or several real targets).
        inputs: the input columns; None for every column that is neither a target nor the split.
        task, levels: as `read_targets`.
        split: a column of ``train``/``val``/``test`` per row, or None to split by ``seed``:
            stratified by class or level (`stratified_split`), else at random
            (`shuffled_split`), ``val_fraction`` and ``test_fraction`` of the rows.
        seed: the split's seed.
        val_fraction, test_fraction: shares of the rows for validation and test.
        keep: a further filter of rows (True keeps), e.g. rows with text.

    Raises:
        ValueError: a missing column (named with the ones there are), a target that does
            not fit the task, a bad split value, or an empty split.
        FileNotFoundError: ``path`` is not a file.
    """
    targets = as_list(target)
    if not targets:
        raise ValueError("target is not set; give data.target=<column> (or a list of columns)")
    available = table_columns(path)
    check_columns(path, available, targets, "target")
    extra = [split] if split else []
    check_columns(path, available, extra, "split")
    if inputs is None:
        inputs = [column for column in available if column not in targets and column not in extra]
    else:
        check_columns(path, available, inputs, "features" if keep is None else "text")
    overlap = sorted(set(inputs) & set(targets))
    if overlap:
        raise ValueError(f"target: {', '.join(overlap)} is also an input column; leave it out of the inputs")
    table = read_table(path, list(dict.fromkeys([*targets, *inputs, *extra])))
    has_target = pc.invert(missing_mask(table[targets[0]]))
    for name in targets[1:]:
        has_target = pc.and_(has_target, pc.invert(missing_mask(table[name])))
    kept = has_target if keep is None else pc.and_(has_target, keep(table))
    kept = pc.fill_null(kept, False)
    dropped = table.num_rows - (pc.sum(kept).as_py() or 0)
    rows = np.flatnonzero(kept.to_numpy(zero_copy_only=False)) + 1 if dropped else range(1, table.num_rows + 1)
    if dropped:
        log.info("%s: %d of %d rows dropped (no target%s)", path, dropped, table.num_rows, "" if keep is None else ", or no text")
    if dropped:
        table = table.filter(kept)
    if table.num_rows == 0:
        raise ValueError(f"{path} holds no row with a target ({', '.join(targets)})")
    labelled = read_targets(table.select(targets), targets, rows, path, task, levels)
    if split:
        split_indices = _split_by_column(table[split], split, rows, path)
    else:
        fractions = (val_fraction, test_fraction)
        if labelled.kind in (TaskKind.MULTICLASS, TaskKind.ORDINAL):
            val, test, train = stratified_split(labelled.values, fractions, seed)
        else:
            val, test, train = shuffled_split(table.num_rows, fractions, seed)
        split_indices = {"train": train, "val": val, "test": test}
    for name in SPLITS:
        if len(split_indices[name]) == 0:
            how = f"split column {split}" if split else f"val_fraction={val_fraction}, test_fraction={test_fraction}"
            raise ValueError(
                f"the {name} split of {path} is empty ({table.num_rows} rows, {how}); give more rows or other fractions"
            )
    return LabelledRows(table, rows, labelled, split_indices)


def describe(path: Path, labelled: LabelledRows, target: str | Sequence[str]) -> str:
    """One log line: the rows, the task and why it was chosen, the split sizes."""
    targets = labelled.targets
    kind = targets.kind.value
    size = f"{len(targets.names)} {'levels' if targets.kind is TaskKind.ORDINAL else 'classes'}"
    if targets.kind is TaskKind.MULTILABEL:
        size = f"{len(targets.names)} attributes"
    elif targets.kind is TaskKind.REGRESSION:
        size = f"{len(targets.names)} target{'s' if len(targets.names) > 1 else ''}"
    sizes = " / ".join(str(len(labelled.split_indices[name])) for name in SPLITS)
    return (
        f"{path}: task {kind} ({size}) from {', '.join(as_list(target))}: {targets.reason} "
        f"(data.task overrides it); train / val / test rows {sizes}"
    )
