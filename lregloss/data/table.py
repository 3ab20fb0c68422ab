"""A table of one's own (CSV or Parquet): predict its target columns from the other columns."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import TensorDataset

from lregloss.data.features import FeatureEncoder
from lregloss.data.in_memory import InMemorySplitsDataModule, NewInputs
from lregloss.data.labelled_rows import SPLITS, as_list, describe, read_labelled_rows
from lregloss.data.tables import check_columns, existing_file, read_table, table_columns
from lregloss.validation import check_positive

log = logging.getLogger(__name__)


def check_split_arguments(batch_size: int, val_fraction: float, test_fraction: float, num_workers: int) -> None:
    """The argument checks every table-reading data module shares.

    Raises:
        ValueError: naming the argument, its value and what is allowed.
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size}")
    check_positive("val_fraction", val_fraction)
    check_positive("test_fraction", test_fraction)
    if val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction + test_fraction must be < 1 to leave training rows, got {val_fraction} + {test_fraction}"
        )
    if int(num_workers) != num_workers or num_workers < 0:
        raise ValueError(f"num_workers must be an integer >= 0, got {num_workers}")


class TableDataModule(InMemorySplitsDataModule):
    """Rows of a CSV (plain, .gz, .bz2, .xz, .zst) or Parquet file: predict ``target`` from the feature columns.

    The task is inferred from the target (`lregloss.data.targets.read_targets`: strings,
    booleans or integers with few distinct values are classes; other numbers are real
    values; several 0/1 columns are attributes; ``levels`` make ordered levels) and said in
    one log line; ``task`` overrides it. Rows without a target are dropped (counted in the
    log).

    Features (`FeatureEncoder`, fitted on the training split): every column but the
    targets and the split column, or those in ``features``; numbers standardised to zero mean
    and unit variance, missing numbers imputed with the training mean; text columns one-hot
    over their ``max_categories`` most frequent training categories, with a missing or
    unseen category all zeros. The imputed values are counted in the log, per column.

    Split: by the ``split`` column (train/val/test per row), else by ``seed``: stratified
    by class or level, at random otherwise; ``val_fraction`` and ``test_fraction`` of the
    rows.

    Batches are ``(features, target)``: (B, F) float32, and what the task's losses take
    (`lregloss.data.targets.Targets`). Prediction: ``predict_path`` is a file with the same
    feature columns (targets not needed), encoded with the training split's numbers, which
    are the module's ``state_dict`` (saved in checkpoints).

    After ``setup``: ``task`` (its ``names``: the classes, levels, attributes or targets),
    ``input_size`` (features per row), ``encoder``, ``split_indices``.

    Args:
        path: the table file.
        target: the target column, or a list of them.
        features: the feature columns; None for all but the targets and the split column.
        task: ``multiclass``, ``ordinal``, ``multilabel`` or ``regression``; None infers it.
        levels: the order of an ordinal target's levels, lowest first (as in the file).
        split: a column naming each row's split (train, val or test), or None.
        seed: seed of the split.
        val_fraction: share of the rows for validation, in (0, 1).
        test_fraction: share of the rows for testing, in (0, 1).
        max_categories: one-hot features kept per text column, the most frequent.
        batch_size: rows per training batch.
        eval_batch_size: rows per validation, test and predict batch.
        num_workers: DataLoader worker processes (0: batches are slices of tensors in memory).
        predict_path: a file to predict (``setup("predict")``), or None.

    Raises:
        ValueError: an argument out of range (at construction); a missing column, a target
            with one value or one that does not fit the task, a feature with no value, an
            empty split (at setup), each named in one line with its fix.
        FileNotFoundError: ``path`` is not a file (at setup).
    """

    def __init__(
        self,
        path: str,
        target: str | Sequence[str],
        features: Sequence[str] | None = None,
        task: str | None = None,
        levels: Sequence[Any] | None = None,
        split: str | None = None,
        seed: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        max_categories: int = 100,
        batch_size: int = 256,
        eval_batch_size: int = 1024,
        num_workers: int = 0,
        predict_path: str | None = None,
    ) -> None:
        super().__init__()
        check_split_arguments(batch_size, val_fraction, test_fraction, num_workers)
        if int(max_categories) != max_categories or max_categories < 1:
            raise ValueError(f"max_categories must be an integer >= 1, got {max_categories}")
        self.save_hyperparameters()
        self.path = path
        self.target = target if isinstance(target, str) else as_list(target)
        self.features = None if features is None else as_list(features)
        self.task_name = task
        self.levels = None if levels is None else list(levels)
        self.split = split
        self.seed = seed
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.max_categories = max_categories
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.predict_path = predict_path
        self.encoder: FeatureEncoder | None = None
        self.datasets: dict[str, TensorDataset] = {}

    @property
    def is_fitted(self) -> bool:
        return self.encoder is not None

    def state_dict(self) -> dict[str, Any]:
        """The feature encoding fitted on the training split (`FeatureEncoder.state_dict`)."""
        return {} if self.encoder is None else {"encoder": self.encoder.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.encoder = FeatureEncoder.from_state_dict(state_dict["encoder"])
        self.input_size = self.encoder.width

    def _log_imputed(self, path: Path) -> None:
        if self.encoder.missing:
            counts = ", ".join(f"{name} {count}" for name, count in sorted(self.encoder.missing.items()))
            log.info("%s: imputed %d missing values (%s)", path, sum(self.encoder.missing.values()), counts)

    def build_splits(self) -> None:
        """Read the table, type the targets, split, fit the features on the training split and encode."""
        path = existing_file(self.path)
        labelled = read_labelled_rows(
            path, self.target, self.features, task=self.task_name, levels=self.levels, split=self.split,
            seed=self.seed, val_fraction=self.val_fraction, test_fraction=self.test_fraction,
        )  # fmt: skip
        self.split_indices = labelled.split_indices
        columns = self.features or [
            name for name in labelled.table.column_names if name not in as_list(self.target) and name != self.split
        ]
        if not columns:
            raise ValueError(f"{path} has no feature column besides the target; give data.features")
        parts = [self.split_indices[name].numpy() for name in SPLITS]
        self.encoder, features = FeatureEncoder.fit_encode(labelled.table, columns, path, self.max_categories, parts)
        self._log_imputed(path)
        self.task = labelled.targets.task(self.split_indices["train"])
        self.input_size = self.encoder.width
        for name, part in zip(SPLITS, features):
            self.datasets[name] = TensorDataset(part, labelled.targets.values[self.split_indices[name]])
        categorical = len(self.encoder.categories)
        log.info(
            "%s; %d features from %d columns (%d numeric, %d text one-hot)",
            describe(path, labelled, self.target), self.input_size, len(columns), len(self.encoder.numeric), categorical,
        )  # fmt: skip

    def read_new_inputs(self, path: Path) -> NewInputs:
        check_columns(path, table_columns(path), self.encoder.columns, "features")
        table = read_table(path, self.encoder.columns)
        self.encoder.check_types(table, path)
        features = self.encoder.encode(table)
        self._log_imputed(path)
        return NewInputs(TensorDataset(features), {"row": list(range(1, table.num_rows + 1))})
