"""Feature columns of a table as one float matrix: numbers standardised, categories one-hot, gaps imputed.

Everything is fitted on the training split and saved (`FeatureEncoder.state_dict`), so that
validation, test and a new file to predict are encoded with the same numbers.
"""

from __future__ import annotations

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
        missing: column -> missing values the last `encode` imputed (what the log reports).
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
    def fit(cls, table: pa.Table, columns: Sequence[str], path: Path, max_categories: int) -> FeatureEncoder:
        """Fit on the training rows ``table`` of ``columns``.

        Raises:
            ValueError: a column with no value in the training rows, or of a type that is
                neither numeric nor text (dates, lists); the message names it and the fix.
        """
        numeric, means, stds, categories = [], [], [], {}
        for name in columns:
            column = table[name]
            if pa.types.is_null(column.type) or pc.all(missing_mask(column)).as_py():
                raise ValueError(
                    f"{path}: feature column {name} has no value in the training split; fill it, or leave it out "
                    "of data.features"
                )
            if is_numeric(column.type):
                values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
                numeric.append(name)
                means.append(np.nanmean(values))
                stds.append(max(float(np.nanstd(values)), SMALLEST_STD))
            elif is_categorical(column.type):
                counts = pc.value_counts(pc.drop_null(pc.cast(column, pa.string()))).to_pylist()
                ranked = sorted(((c["counts"], c["values"]) for c in counts if c["values"]), key=lambda p: (-p[0], p[1]))
                categories[name] = sorted(value for _, value in ranked[:max_categories])
            else:
                raise ValueError(
                    f"{path}: feature column {name} holds {column.type} values, which lregloss does not encode; "
                    "convert it to numbers or text, or list the other columns in data.features"
                )
        return cls(numeric, torch.tensor(means, dtype=torch.float64), torch.tensor(stds, dtype=torch.float64), categories)

    def encode(self, table: pa.Table) -> Tensor:
        """The (N, width) float32 features of ``table``'s rows; counts the imputed values in ``missing``.

        One float64 pass per numeric column, written into the float32 output: no (N, F)
        float64 block.
        """
        self.missing = {}
        out = np.zeros((table.num_rows, self.width), dtype=np.float32)
        for column, name in enumerate(self.numeric):
            values = pc.cast(table[name], pa.float64()).to_numpy(zero_copy_only=False)
            values = values.copy() if not values.flags.writeable else values
            gaps = np.isnan(values)
            values -= float(self.mean[column])
            values /= float(self.std[column])
            count = int(np.count_nonzero(gaps))
            if count:
                self.missing[name] = count
                values[gaps] = 0.0  # imputed with the training mean
            out[:, column] = values
        start = len(self.numeric)
        for name, kept in self.categories.items():
            column = pc.cast(table[name], pa.string())
            gaps = int(pc.sum(missing_mask(column)).as_py() or 0)
            if gaps:
                self.missing[name] = gaps
            index = pc.fill_null(pc.index_in(column, value_set=pa.array(kept, pa.string())), -1)
            index = index.to_numpy(zero_copy_only=False).astype(np.int64)
            rows = np.flatnonzero(index >= 0)
            out[rows, start + index[rows]] = 1.0  # unseen or missing: all zeros
            start += len(kept)
        return torch.from_numpy(out)

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
