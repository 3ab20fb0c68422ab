"""The target columns of a table: which task they ask for, and their values as the losses take them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import Tensor

from lregloss.tasks import Task, TaskKind

MAX_INFERRED_CLASSES = 50  # an integer target with more distinct values is read as real-valued


@dataclass(frozen=True)
class Targets:
    """What the target columns ask the model to predict.

    Args:
        kind: the task kind.
        values: class or level indices (N,) int64; attributes (N, A) int64 in {0, 1}; reals
            (N,) or (N, K) float32.
        names: the class values or level values (as text), the attribute or target column names.
        reason: why this kind, for the log line ("given by data.task", "integer values, 3 distinct").
    """

    kind: TaskKind
    values: Tensor
    names: tuple[str, ...]
    reason: str

    def task(self, train_rows: Tensor) -> Task:
        """The `Task`, with the training split's class or level counts where there are classes."""
        counts = None
        if self.kind in (TaskKind.MULTICLASS, TaskKind.ORDINAL):
            counts = tuple(torch.bincount(self.values[train_rows], minlength=len(self.names)).tolist())
        return Task(self.kind, len(self.names), names=self.names, class_counts=counts)


def _kind_of(column: pa.ChunkedArray) -> str:
    kind = column.type
    if pa.types.is_boolean(kind):
        return "bool"
    if pa.types.is_integer(kind):
        return "integer"
    if pa.types.is_floating(kind):
        return "float"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind):
        return "string"
    if pa.types.is_null(kind):
        return "empty"
    return str(kind)


def _text(value: Any) -> str:
    """A target value as a class name: ``3`` rather than ``3.0`` for whole floats."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _row_of(rows: np.ndarray | range, position: int) -> int:
    return int(rows[position])


def _class_indices(
    column: pa.ChunkedArray, name: str, order: Sequence[str], rows: np.ndarray | range, path: Path, what: str
) -> Tensor:
    texts = [_text(value) for value in column.to_pylist()]
    index = {value: i for i, value in enumerate(order)}
    unknown = next((i for i, value in enumerate(texts) if value not in index), None)
    if unknown is not None:
        raise ValueError(
            f"{path}, row {_row_of(rows, unknown)}: {name} {texts[unknown]!r} is not one of the {what} "
            f"{', '.join(order)}; fix the row or data.levels"
        )
    return torch.tensor([index[value] for value in texts], dtype=torch.long)


def _reals(column: pa.ChunkedArray, name: str, rows: np.ndarray | range, path: Path, need: str = "a regression target") -> np.ndarray:
    try:
        return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowException:
        texts = column.to_pylist()
        for position, value in enumerate(texts):
            try:
                float(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{path}, row {_row_of(rows, position)}: {name} {value!r} is not a number, which {need} "
                    "needs; fix the row, or set data.task"
                ) from None
        raise


def read_targets(
    table: pa.Table,
    columns: Sequence[str],
    rows: np.ndarray | range,
    path: Path,
    task: str | None = None,
    levels: Sequence[Any] | None = None,
) -> Targets:
    """The targets of ``table``'s ``columns``, their task inferred unless ``task`` names it.

    Inference, always overridable with ``task``:

    - one column of strings or booleans, or of integers with at most 50 distinct values:
      multiclass, the classes in sorted order;
    - ``levels`` given: ordinal, the levels in that order (else the sorted distinct numbers);
    - one column of other numbers: regression;
    - several columns all 0 or 1: multilabel, one attribute per column; of other numbers:
      regression with one output per column.

    Args:
        table: the target columns, rows without a missing target already dropped.
        columns: the target column names.
        rows: the file's data row number (from 1) of each table row, for messages.
        path: the file, for messages.
        task: ``multiclass``, ``ordinal``, ``multilabel``, ``regression``, or None to infer.
        levels: the ordered levels of an ordinal target (values as in the file).

    Raises:
        ValueError: a target with one value, a value that is not a class, level, number or
            0/1 of the declared task, or a task the columns cannot have; the message names the
            file, the column, the row and the fix.
    """
    if task is not None:
        try:
            kind = TaskKind(task)
        except ValueError:
            allowed = ", ".join(k.value for k in TaskKind)
            raise ValueError(f"task {task!r} is unknown; use one of: {allowed}, or null to infer it") from None
        reason = "given by data.task"
    else:
        kind, reason = _infer_kind(table, columns, levels)
    if len(columns) > 1 and kind in (TaskKind.MULTICLASS, TaskKind.ORDINAL):
        raise ValueError(
            f"target: a {kind.value} task takes one target column, got {len(columns)} ({', '.join(columns)}); "
            "give one, or data.task=multilabel or regression"
        )
    if kind is TaskKind.MULTILABEL:
        values = []
        for name in columns:
            reals = _reals(table[name], name, rows, path, "an attribute (0 or 1)")
            bad = np.flatnonzero((reals != 0) & (reals != 1))
            if len(bad):
                value = table[name][int(bad[0])].as_py()
                raise ValueError(
                    f"{path}, row {_row_of(rows, bad[0])}: {name} {value!r} is not 0 or 1, which an attribute "
                    "needs; fix the row, or set data.task"
                )
            values.append(torch.from_numpy(reals.astype(np.int64)))
        return Targets(kind, torch.stack(values, dim=1), tuple(columns), reason)
    if kind is TaskKind.REGRESSION:
        values = torch.from_numpy(np.column_stack([_reals(table[name], name, rows, path) for name in columns]))
        values = values.float().squeeze(1) if len(columns) == 1 else values.float()
        return Targets(kind, values, tuple(columns), reason)
    (name,) = columns
    column = table[name]
    if kind is TaskKind.ORDINAL:
        if levels is not None:
            order = [_text(level) for level in levels]
        elif _kind_of(column) in ("integer", "float"):
            order = [_text(value) for value in sorted(pc.unique(column).to_pylist())]
        else:
            raise ValueError(
                f"{path}: {name} holds {_kind_of(column)} levels, whose order is not known; give it with "
                "data.levels=[lowest,...,highest]"
            )
        what = "levels"
    else:
        order = [_text(value) for value in sorted(pc.unique(column).to_pylist())]
        what = "classes"
    if len(order) < 2:
        raise ValueError(
            f"{path}: target {name} holds one value ({order[0] if order else 'none'}) in {len(column)} rows; "
            f"a {kind.value} target needs two or more"
        )
    return Targets(kind, _class_indices(column, name, order, rows, path, what), tuple(order), reason)


def _infer_kind(table: pa.Table, columns: Sequence[str], levels: Sequence[Any] | None) -> tuple[TaskKind, str]:
    if levels is not None:
        return TaskKind.ORDINAL, "data.levels given"
    kinds = [_kind_of(table[name]) for name in columns]
    if len(columns) > 1:
        if all(kind in ("bool", "integer", "float") for kind in kinds):
            binary = all(pc.all(pc.is_in(table[name], value_set=pa.array([0, 1], table[name].type))).as_py()
                         for name in columns if kinds[columns.index(name)] != "bool")  # fmt: skip
            if binary:
                return TaskKind.MULTILABEL, f"{len(columns)} columns of 0 and 1"
            return TaskKind.REGRESSION, f"{len(columns)} numeric columns"
        return TaskKind.MULTILABEL, f"{len(columns)} columns"  # read_targets names the first value that is not 0/1
    (kind,) = kinds
    if kind in ("string", "bool"):
        return TaskKind.MULTICLASS, f"{kind} values"
    if kind == "integer":
        distinct = len(pc.unique(table[columns[0]]))
        if distinct <= MAX_INFERRED_CLASSES:
            return TaskKind.MULTICLASS, f"integer values, {distinct} distinct"
        return TaskKind.REGRESSION, f"integer values, {distinct} distinct (more than {MAX_INFERRED_CLASSES})"
    if kind == "float":
        return TaskKind.REGRESSION, "real values"
    raise ValueError(f"target {columns[0]} holds {kind} values, which no task reads; give another data.target")
