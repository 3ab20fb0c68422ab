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
BLOCK_ROWS = 8192  # rows encoded at a time: 8192 rows x 20 float32 columns is 640 KB, within a core's L2 cache


def _as_numbers(array: pa.Array) -> np.ndarray:
    """A numeric array as numpy numbers (float64 where it has gaps), without a copy where pyarrow can."""
    if not (pa.types.is_floating(array.type) or pa.types.is_integer(array.type)):
        array = pc.cast(array, pa.float64())
    return array.to_numpy(zero_copy_only=False)


@dataclass(frozen=True)
class RowPlacement:
    """Where each table row goes among the encoded rows: part p's rows form the p-th block, in table order.

    Args:
        part_of: (N,) int8, the part of each table row; None for one part, every row in place.
        sizes: rows per part.
    """

    part_of: np.ndarray | None
    sizes: tuple[int, ...]

    @classmethod
    def of(cls, parts: Sequence[np.ndarray], rows: int) -> RowPlacement:
        """The placement of ``parts`` (disjoint sorted row indices covering the ``rows`` rows of a table)."""
        part_of = np.empty(rows, dtype=np.int8)
        for number, indices in enumerate(parts):
            part_of[indices] = number
        return cls(part_of, tuple(len(indices) for indices in parts))

    @classmethod
    def in_place(cls, rows: int) -> RowPlacement:
        return cls(None, (rows,))

    def destination(self) -> np.ndarray:
        """(N,) int64: each table row's row among the encoded rows."""
        if self.part_of is None:
            return np.arange(self.sizes[0])
        destination = np.empty(len(self.part_of), dtype=np.int64)
        start = 0
        for number, size in enumerate(self.sizes):
            destination[self.part_of == number] = np.arange(start, start + size)
            start += size
        return destination


@dataclass(frozen=True)
class ShiftedMoments:
    """Per numeric column, the sums that give its training mean and std, of values shifted by ``shifts``.

    Over the first part's rows: the values present (``count``), sum (x - shift) (``total``),
    sum (x - shift)^2 (``squares``); over all rows, the missing values, null or NaN (``missing``).
    """

    shifts: np.ndarray
    count: np.ndarray
    total: np.ndarray
    squares: np.ndarray
    missing: np.ndarray

    def means(self) -> np.ndarray:
        """shift + sum (x - shift) / n."""
        return self.shifts + self.total / self.count

    def stds(self) -> np.ndarray:
        """Population std: sum (x - mean)^2 / n = sum (x - shift)^2 / n - (mean - shift)^2, at least 1e-6."""
        offset = self.total / self.count
        return np.maximum(np.sqrt(np.maximum(self.squares / self.count - offset * offset, 0.0)), SMALLEST_STD)


def _batch_means(batch: pa.RecordBatch) -> np.ndarray:
    """Each column's mean over the batch's finite values, 0 where it has none."""
    means = []
    for array in batch.columns:
        values = _as_numbers(array).astype(np.float64, copy=False)
        finite = values[np.isfinite(values)]
        means.append(float(finite.mean()) if len(finite) else 0.0)
    return np.array(means)


def write_shifted(
    out: np.ndarray, table: pa.Table, names: Sequence[str], shifts: np.ndarray | None, placement: RowPlacement
) -> ShiftedMoments:
    """Write float32(x - shifts[k]) of numeric column ``names[k]`` into ``out[:, k]``, NaN where x is missing.

    ``shifts`` None: each column's mean over the first record batch. Rows go where
    ``placement`` puts them. One pass, a record batch of at most ``BLOCK_ROWS`` rows at a
    time: the batch's columns are written into a small row-major block that stays in the
    cache, then its rows are copied to their parts' blocks of ``out``. On the way the
    moments of the first part's values are summed in float64, as the batch's sums less
    those of its rows in other parts (gathered: the held-out rows are the fewer); with
    shifts near the means the sums keep their precision however large the values.
    """
    columns = len(names)
    count, total, squares = np.zeros(columns, dtype=np.int64), np.zeros(columns), np.zeros(columns)
    missing = np.zeros(columns, dtype=np.int64)
    batches = table.select(list(names)).to_batches(max_chunksize=BLOCK_ROWS)  # slices of the columns, no copy
    if shifts is None:
        shifts = _batch_means(batches[0]) if batches else np.zeros(columns)
    block = np.empty((max((batch.num_rows for batch in batches), default=0), columns), dtype=np.float32)
    next_row = np.cumsum([0, *placement.sizes[:-1]])
    start = 0
    for batch in batches:
        rows = batch.num_rows
        local = np.zeros(rows, dtype=np.int8) if placement.part_of is None else placement.part_of[start : start + rows]
        elsewhere = np.flatnonzero(local)  # the batch's rows outside the first part
        for position, (array, shift) in enumerate(zip(batch.columns, shifts)):
            shifted = _as_numbers(array) - shift
            block[:rows, position] = shifted
            batch_total, present = shifted.sum(), rows - len(elsewhere)
            if math.isnan(batch_total):  # a missing value: left NaN in the block, out of the sums
                gaps = np.isnan(shifted)
                missing[position] += np.count_nonzero(gaps)
                present -= np.count_nonzero(gaps) - np.count_nonzero(gaps[elsewhere])
                shifted[gaps] = 0.0
                batch_total = shifted.sum()
            other = shifted[elsewhere]
            count[position] += present
            total[position] += batch_total - other.sum()
            squares[position] += np.dot(shifted, shifted) - np.dot(other, other)
        for part in range(len(placement.sizes)):
            chosen = np.flatnonzero(local == part)
            end = next_row[part] + len(chosen)
            np.take(block, chosen, axis=0, out=out[next_row[part] : end, :columns], mode="clip")  # chosen < rows
            next_row[part] = end
        start += rows
    return ShiftedMoments(np.asarray(shifts, dtype=np.float64), count, total, squares, missing)


def _standardise_shifted(out: np.ndarray, offsets: np.ndarray, stds: np.ndarray, missing: np.ndarray) -> None:
    """In ``out[:, :K]``: (x' - offset) / std per column, then 0 where x' is NaN (missing: imputed with the mean)."""
    numbers = torch.from_numpy(out)[:, : len(stds)]
    scale = torch.from_numpy(1.0 / stds).to(torch.float32)
    torch.addcmul(torch.from_numpy(-offsets / stds).to(torch.float32), numbers, scale, out=numbers)
    for position in np.flatnonzero(missing):
        column = numbers[:, position]
        column.masked_fill_(column.isnan(), 0.0)


def _no_value(path: Path, name: str) -> ValueError:
    return ValueError(
        f"{path}: feature column {name} has no value in the training split; fill it, or leave it out of data.features"
    )


def _empty_features(rows: int, numeric: int, width: int) -> np.ndarray:
    """A (rows, width) float32 block for the features: the one-hot part zeroed, the ``numeric`` first columns to be written."""
    out = np.empty((rows, width), dtype=np.float32)
    out[:, numeric:] = 0.0
    return out


def _one_hot_into(
    out: np.ndarray, first: int, values: pa.ChunkedArray, kept: Sequence[str], destination: np.ndarray
) -> int:
    """Set ``out[destination[row], first + k]`` to 1 where the row's value is ``kept[k]``; return the missing values."""
    index = pc.fill_null(pc.index_in(pc.cast(values, pa.string()), value_set=pa.array(kept, pa.string())), -1)
    index = index.to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(index >= 0)
    out[destination[rows], first + index[rows]] = 1.0  # unseen or missing: all zeros
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
        cls, table: pa.Table, columns: Sequence[str], path: Path, max_categories: int, parts: Sequence[np.ndarray]
    ) -> tuple[FeatureEncoder, list[Tensor]]:
        """Fit on the rows ``parts[0]`` (training) and encode each part: (encoder, [(N_p, width) features]).

        ``parts`` are disjoint sorted row indices that cover the table (train, val, test);
        their features are consecutive row blocks of one matrix, so no part is copied out of
        another. One pass over the numeric columns (`write_shifted`, shifted by each column's
        mean over the first record batch) writes the values and sums the training rows'
        moments; the shifts are then corrected to the training means and the values divided
        by the training stds, in place.

        Raises:
            ValueError: a column with no value in the training rows, or of a type that is
                neither numeric nor text (dates, lists); the message names it and the fix.
        """
        train = parts[0]
        numeric, categories = [], {}
        for name in columns:
            column = table[name]
            if pa.types.is_null(column.type):
                raise _no_value(path, name)
            if is_numeric(column.type):
                numeric.append(name)
            elif is_categorical(column.type):
                training = column.take(train)
                if pc.all(missing_mask(training)).as_py():
                    raise _no_value(path, name)
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
        placement = RowPlacement.of(parts, table.num_rows)
        moments = write_shifted(out, table, numeric, None, placement)
        empty = next((name for name, count in zip(numeric, moments.count.tolist()) if count == 0), None)
        if empty is not None:
            raise _no_value(path, empty)
        means, stds = moments.means(), moments.stds()
        _standardise_shifted(out, means - moments.shifts, stds, moments.missing)
        encoder = cls(numeric, torch.from_numpy(means), torch.from_numpy(stds), categories)
        encoder.missing = {name: count for name, count in zip(numeric, moments.missing.tolist()) if count}
        encoder._one_hot(out, table, placement)
        return encoder, list(torch.from_numpy(out).split(placement.sizes))

    def encode(self, table: pa.Table) -> Tensor:
        """The (N, width) float32 features of ``table``'s rows, in order; counts the imputed values in ``missing``."""
        out = _empty_features(table.num_rows, len(self.numeric), self.width)
        placement = RowPlacement.in_place(table.num_rows)
        moments = write_shifted(out, table, self.numeric, self.mean.numpy(), placement)
        _standardise_shifted(out, np.zeros(len(self.numeric)), self.std.numpy(), moments.missing)
        self.missing = {name: count for name, count in zip(self.numeric, moments.missing.tolist()) if count}
        self._one_hot(out, table, placement)
        return torch.from_numpy(out)

    def _one_hot(self, out: np.ndarray, table: pa.Table, placement: RowPlacement) -> None:
        """Set the one-hot features of each text column, in the rows ``placement`` gives; count their gaps."""
        first = len(self.numeric)
        destination = placement.destination() if self.categories else None
        for name, kept in self.categories.items():
            gaps = _one_hot_into(out, first, table[name], kept, destination)
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
