"""Feature columns of a table as one float matrix: numbers standardised, categories one-hot, gaps imputed.

Everything is fitted on the training split and saved (`FeatureEncoder.state_dict`), so that
validation, test and a new file to predict are encoded with the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import Tensor

from lregloss.data.tables import is_categorical, is_numeric, missing_mask

SMALLEST_STD = 1e-6  # a feature constant on the training split is centred, not divided by ~0


def _sum_and_count(column: pa.ChunkedArray) -> tuple[float, int]:
    """The sum and number of a numeric column's values that are not missing (null or NaN)."""
    as_float = pc.cast(column, pa.float64())  # integers summed as floats: no overflow
    total = pc.sum(as_float, min_count=0).as_py()
    if not math.isnan(total):
        return float(total), len(column) - column.null_count
    total, count = 0.0, 0  # NaN values (Parquet keeps them): leave them out too
    for chunk in as_float.chunks:
        chunk = chunk.to_numpy(zero_copy_only=False)
        present = ~np.isnan(chunk)
        total += float(chunk.sum(where=present))
        count += int(np.count_nonzero(present))
    return total, count


def _as_numbers(array: pa.Array) -> np.ndarray:
    """A numeric array as numpy numbers (float64 where it has gaps), without a copy where pyarrow can."""
    if not (pa.types.is_floating(array.type) or pa.types.is_integer(array.type)):
        array = pc.cast(array, pa.float64())
    return array.to_numpy(zero_copy_only=False)


def _centre_into(out: np.ndarray, table: pa.Table, names: Sequence[str], means: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Write float32(x - mean) of each numeric column ``names[k]`` into ``out[:, k]``, 0 where x is missing.

    Returns each column's number of missing values and float64 sum of squares
    sum (x - mean)^2. A record batch of rows at a time, every column of it before the next:
    the batch's rows of ``out`` stay in the cache while their columns are written.
    """
    gaps, squares = np.zeros(len(names), dtype=np.int64), np.zeros(len(names))
    start = 0
    for batch in table.select(list(names)).to_batches():
        block = out[start : start + batch.num_rows]
        for position, (array, mean) in enumerate(zip(batch.columns, means)):
            centred = _as_numbers(array) - mean
            missing = np.isnan(centred)
            count = np.count_nonzero(missing)
            if count:
                centred[missing] = 0.0  # imputed with the training mean
                gaps[position] += count
            squares[position] += np.dot(centred, centred)
            block[:, position] = centred
        start += batch.num_rows
    return gaps, squares


def _empty_features(rows: int, numeric: int, width: int) -> np.ndarray:
    """A (rows, width) float32 block for the features: the one-hot part zeroed, the ``numeric`` first columns to be written."""
    out = np.empty((rows, width), dtype=np.float32)
    out[:, numeric:] = 0.0
    return out


def _one_hot_into(out: np.ndarray, first: int, values: pa.ChunkedArray, kept: Sequence[str]) -> int:
    """Set ``out[row, first + k]`` to 1 where the row's value is ``kept[k]``; returns the missing values."""
    index = pc.fill_null(pc.index_in(pc.cast(values, pa.string()), value_set=pa.array(kept, pa.string())), -1)
    index = index.to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(index >= 0)
    out[rows, first + index[rows]] = 1.0  # unseen or missing: all zeros
    return int(pc.sum(missing_mask(values)).as_py() or 0)


@dataclass
class FeatureEncoder:
    """x = [standardised numbers..., one-hot categories...] per row.

    - a numeric (integer, real or boolean) column: (x - mean) / max(std, 1e-6), mean and
      population std over the training rows' values; a missing value (null or NaN) is
      imputed with the mean, so it encodes as 0;
    - a string column: one 0/1 feature per category seen in the training rows (the
      ``max_categories`` most frequent, ties alphabetically); a missing value (null or empty),
      or a category not kept or not seen in training, encodes as all zeros.

    Attributes:
        numeric: numeric column names, in output order.
        mean: (len(numeric),) float64 training means.
        std: (len(numeric),) float64 training standard deviations (at least 1e-6).
        categories: string column name -> its kept categories, in output order.
        missing: column -> missing values the last `encode` (or `fit_encode`) imputed.
    """

    numeric: list[str]
    mean: Tensor
    std: Tensor
    categories: dict[str, list[str]]
    missing: dict[str, int] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categories]

    @property
    def width(self) -> int:
        """Features per row: one per numeric column, one per kept category."""
        return len(self.numeric) + sum(len(kept) for kept in self.categories.values())

    @classmethod
    def fit_encode(
        cls, table: pa.Table, columns: Sequence[str], path: Path, max_categories: int, train: np.ndarray
    ) -> tuple[FeatureEncoder, Tensor]:
        """Fit on the rows ``train`` (indices) of ``table`` and encode every row: (encoder, (N, width) features).

        One pass over each numeric column: its training mean is the sum over all rows less
        the held-out rows' (gathered, about a fifth of the table), over the count likewise;
        the centred values are written and their squares summed on the way, and the
        held-out rows' squares taken off again for the training variance.

        Raises:
            ValueError: a column with no value in the training rows, or of a type that is
                neither numeric nor text (dates, lists); the message names it and the fix.
        """
        held_out = np.ones(table.num_rows, dtype=bool)
        held_out[train] = False
        held_out = np.flatnonzero(held_out)
        numeric, means, categories, held_values = [], [], {}, {}
        for name in columns:
            column = table[name]
            no_value = ValueError(
                f"{path}: feature column {name} has no value in the training split; fill it, or leave it out of "
                "data.features"
            )
            if pa.types.is_null(column.type):
                raise no_value
            if is_numeric(column.type):
                total, count = _sum_and_count(column)
                held = _as_numbers(pc.take(column, held_out).combine_chunks()).astype(np.float64, copy=False)
                present = ~np.isnan(held)
                count -= int(np.count_nonzero(present))
                if count == 0:
                    raise no_value
                numeric.append(name)
                means.append((total - float(held.sum(where=present))) / count)
                held_values[name] = (held[present], count)
            elif is_categorical(column.type):
                training = column.take(train)
                if pc.all(missing_mask(training)).as_py():
                    raise no_value
                counts = pc.value_counts(pc.drop_null(pc.cast(training, pa.string()))).to_pylist()
                ranked = sorted(((c["counts"], c["values"]) for c in counts if c["values"]), key=lambda p: (-p[0], p[1]))
                categories[name] = sorted(value for _, value in ranked[:max_categories])
            else:
                raise ValueError(
                    f"{path}: feature column {name} holds {column.type} values, which lregloss does not encode; "
                    "convert it to numbers or text, or list the other columns in data.features"
                )
        width = len(numeric) + sum(len(kept) for kept in categories.values())
        out = _empty_features(table.num_rows, len(numeric), width)
        gaps, squares = _centre_into(out, table, numeric, means)
        stds = []
        for name, mean, column_squares in zip(numeric, means, squares.tolist()):
            held, count = held_values[name]
            column_squares -= float(np.dot(held - mean, held - mean))
            stds.append(max(math.sqrt(max(column_squares, 0.0) / count), SMALLEST_STD))
        encoder = cls(numeric, torch.tensor(means, dtype=torch.float64), torch.tensor(stds, dtype=torch.float64), categories)
        encoder.missing = {name: count for name, count in zip(numeric, gaps.tolist()) if count}
        encoder._one_hot_and_scale(out, table)
        return encoder, torch.from_numpy(out)

    def encode(self, table: pa.Table) -> Tensor:
        """The (N, width) float32 features of ``table``'s rows; counts the imputed values in ``missing``."""
        out = _empty_features(table.num_rows, len(self.numeric), self.width)
        gaps, _ = _centre_into(out, table, self.numeric, self.mean.tolist())
        self.missing = {name: count for name, count in zip(self.numeric, gaps.tolist()) if count}
        self._one_hot_and_scale(out, table)
        return torch.from_numpy(out)

    def _one_hot_and_scale(self, out: np.ndarray, table: pa.Table) -> None:
        """Divide the centred numbers by their std (torch's threads); set the one-hot features."""
        torch.from_numpy(out)[:, : len(self.numeric)].div_(self.std.to(torch.float32))
        first = len(self.numeric)
        for name, kept in self.categories.items():
            gaps = _one_hot_into(out, first, table[name], kept)
            if gaps:
                self.missing[name] = gaps
            first += len(kept)

    def state_dict(self) -> dict[str, Any]:
        """Plain containers and tensors (``torch.load(weights_only=True)`` reads them)."""
        return {"numeric": list(self.numeric), "mean": self.mean, "std": self.std, "categories": dict(self.categories)}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> FeatureEncoder:
        return cls(list(state["numeric"]), state["mean"], state["std"], {k: list(v) for k, v in state["categories"].items()})

    def check_types(self, table: pa.Table, path: Path) -> None:
        """Raise unless each numeric column of ``table`` (a new file) holds numbers.

        Raises:
            ValueError: naming the file, the column and the first value that is not a number.
        """
        for name in self.numeric:
            column = table[name]
            if is_numeric(column.type) or pa.types.is_null(column.type):
                continue
            texts = column.to_pylist()
            for row, value in enumerate(texts, start=1):
                try:
                    float(value)
                except (TypeError, ValueError):
                    if value not in (None, ""):
                        raise ValueError(
                            f"{path}, row {row}: feature {name} {value!r} is not a number, as it was in training; "
                            "fix the row"
                        ) from None
