"""Labelled text of one's own (CSV or Parquet): predict a class, level or attributes from bags of n-grams."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from torch import Tensor
from torch.utils.data import TensorDataset

from lregloss.data.files import shipped_path, verify_shipped
from lregloss.data.in_memory import InMemorySplitsDataModule, NewInputs
from lregloss.data.labelled_rows import SPLITS, as_list, describe, read_labelled_rows
from lregloss.data.table import check_split_arguments
from lregloss.data.tables import check_columns, existing_file, missing_mask, read_table, table_columns
from lregloss.data.text import NgramBags

log = logging.getLogger(__name__)


def _whole_batches(batch: Sequence[Tensor]) -> tuple[Tensor, ...]:
    """Collate for a loader that fetches whole batches ``(ids, target)`` or ``(ids,)``: trim the padding columns no row uses."""
    ids, *rest = batch
    width = int((ids != 0).sum(dim=1).max().clamp_min(1))
    return ids[:, :width], *rest


def documents(table: pa.Table, columns: Sequence[str]) -> list[str]:
    """Each row's text columns, stripped, joined by a newline; a missing value is empty."""
    texts = [[(value or "").strip() for value in pc.cast(table[name], pa.string()).to_pylist()] for name in columns]
    return ["\n".join(parts) for parts in zip(*texts)]


def text_columns(
    path: str | None, shipped_file: str | None, text: str | Sequence[str], required_text: Sequence[str] | None
) -> tuple[list[str], list[str] | None]:
    """The text columns and the required ones as lists, checked as the text data modules' arguments.

    Raises:
        ValueError: neither ``path`` nor ``shipped_file``, no text column, or a required column
            that is not a text column; one line each, with its fix.
    """
    if path is None and shipped_file is None:
        raise ValueError("path is not set; give data.path=<your CSV or Parquet file>")
    columns = as_list(text)
    if not columns:
        raise ValueError("text is empty; give data.text=<column> or a list of columns")
    required = None if required_text is None else as_list(required_text)
    unknown = sorted(set(required or ()) - set(columns))
    if unknown:
        raise ValueError(f"required_text names {', '.join(unknown)}, which is not in text ({', '.join(columns)})")
    return columns, required


def has_text(columns: Sequence[str], require_all: bool):
    """A row filter: True where every one (``require_all``) or any of ``columns`` holds text."""

    def keep(table: pa.Table):
        present = [pc.invert(missing_mask(table[name])) for name in columns]
        combined = present[0]
        for mask in present[1:]:
            combined = pc.and_(combined, mask) if require_all else pc.or_(combined, mask)
        return combined

    return keep


class TextDataModule(InMemorySplitsDataModule):
    """Text columns of a CSV (plain or compressed) or Parquet file: predict ``target`` from bags of n-grams.

    The task is inferred from the target as for tables (`lregloss.data.targets.read_targets`:
    a column of classes, ordered ``levels``, several 0/1 attribute columns, real values) and
    said in one log line; ``task`` overrides it. Rows without a target, or without text in
    the ``required_text`` columns (default: in any text column), are dropped and counted in
    the log. A document is the row's ``text`` columns, stripped, joined by a newline.

    Split: by the ``split`` column (train/val/test per row), else by ``seed``: stratified
    by class or level (`lregloss.data.splits.stratified_split`), at random otherwise.

    Features: ``tokenize`` (lowercase words, clitics kept, "!" and "?"), the first
    ``max_tokens`` tokens of each document, and all 1..``ngrams``-grams of them. The
    vocabulary is built from the training split only: n-grams seen at least ``min_count``
    times, the ``max_vocab`` most frequent; id 0 is padding and unseen n-grams are dropped.
    Every document is encoded once, at setup, into a padded (N, L) int64 matrix.

    Batches are ``(ids, target)``: ``ids`` (B, L) int64 with 0 padding, trimmed to the
    batch's longest document, and what the task's losses take. Training batches come in an
    order fixed by ``torch.initial_seed()`` and the epoch, from a loader that a killed run
    resumes in mid-epoch. Prediction: ``predict_path`` is a file with the same text
    columns (targets not needed; a text column other than ``required_text`` may be
    missing); every row is predicted, encoded with the training vocabulary, which is the
    module's ``state_dict`` (saved in checkpoints).

    The reviews recipe (``data=reviews``) is this module on the shipped Women's E-Commerce
    Clothing Reviews (``shipped_file``), Title and Review Text to the 1..5 star Rating.

    After ``setup``: ``task``, ``input_size`` (vocabulary size), ``vocabulary`` (id ->
    n-gram), ``texts`` and ``labels`` (every kept row) and ``split_indices`` (split name ->
    row indices into them).

    Args:
        path: the file; None for ``shipped_file``.
        text: the text column, or a list of them.
        target: the target column (class, level), or a list of 0/1 attribute columns.
        task: ``multiclass``, ``ordinal``, ``multilabel`` or ``regression``; None infers it.
        levels: the order of an ordinal target's levels, lowest first (as in the file).
        split: a column naming each row's split (train, val or test), or None.
        required_text: the text columns a row must have text in to be kept; None: any one.
        shipped_file: a data file shipped inside lregloss (``lregloss/data/assets``), read
            when ``path`` is None after its sha256 check.
        seed: seed of the split. The training order comes from ``torch.initial_seed()``.
        val_fraction: share of the rows (of each class, where stratified) for validation.
        test_fraction: share of the rows for testing.
        max_tokens: tokens kept per document before n-grams, or None for all.
        ngrams: longest n-gram (1 for unigrams only).
        min_count: training occurrences an n-gram needs to enter the vocabulary.
        max_vocab: the most vocabulary entries (padding included), or None for no cap.
        batch_size: documents per batch.
        num_workers: DataLoader worker processes (0: batches are slices of tensors in memory).
        predict_path: a file to predict (``setup("predict")``), or None.

    Raises:
        ValueError: an argument out of range (at construction); a missing column, a target
            with one value or one that does not fit the task, an empty split (at setup), each
            named in one line with its fix.
        FileNotFoundError: ``path`` is not a file (at setup).
        ChecksumMismatchError: the shipped file fails its checksum (at setup).
    """

    batch_collate = staticmethod(_whole_batches)

    def __init__(
        self,
        path: str | None = None,
        text: str | Sequence[str] = "text",
        target: str | Sequence[str] = "label",
        task: str | None = None,
        levels: Sequence[Any] | None = None,
        split: str | None = None,
        required_text: Sequence[str] | None = None,
        shipped_file: str | None = None,
        seed: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        max_tokens: int | None = 256,
        ngrams: int = 2,
        min_count: int = 5,
        max_vocab: int | None = None,
        batch_size: int = 256,
        num_workers: int = 0,
        predict_path: str | None = None,
    ) -> None:
        super().__init__()
        check_split_arguments(batch_size, val_fraction, test_fraction, num_workers)
        for name, value in (("ngrams", ngrams), ("min_count", min_count)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value}")
        for name, value, smallest in (("max_tokens", max_tokens, 1), ("max_vocab", max_vocab, 2)):
            if value is not None and (int(value) != value or value < smallest):
                raise ValueError(f"{name} must be an integer >= {smallest} or None (no limit), got {value}")
        self.text, self.required_text = text_columns(path, shipped_file, text, required_text)
        self.save_hyperparameters()
        self.path = path
        self.shipped_file = shipped_file
        self.target = target if isinstance(target, str) else as_list(target)
        self.task_name = task
        self.levels = None if levels is None else list(levels)
        self.split = split
        self.seed = seed
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.max_tokens = max_tokens
        self.ngrams = ngrams
        self.min_count = min_count
        self.max_vocab = max_vocab
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.predict_path = predict_path
        self.vocabulary: list[str] | None = None
        self.datasets: dict[str, TensorDataset] = {}

    @property
    def is_fitted(self) -> bool:
        return self.vocabulary is not None

    def state_dict(self) -> dict[str, list[str]]:
        """The training vocabulary (id -> n-gram), which encoding a new file needs; empty before it is built."""
        return {} if self.vocabulary is None else {"vocabulary": list(self.vocabulary)}

    def load_state_dict(self, state_dict: dict[str, list[str]]) -> None:
        self.vocabulary = list(state_dict["vocabulary"])
        self.input_size = len(self.vocabulary)

    def _file(self) -> Path:
        if self.path is not None:
            return existing_file(self.path, ", or path=null for the shipped data" if self.shipped_file else "")
        path = shipped_path(self.shipped_file)
        verify_shipped(path, "pass data.path= to your own file")
        return path

    def _bags(self, texts: Sequence[str]) -> NgramBags:
        return NgramBags.of(texts, self.max_tokens, self.ngrams)

    def build_splits(self) -> None:
        """Read, split, build the vocabulary from the training split and encode."""
        path = self._file()
        labelled = read_labelled_rows(
            path, self.target, self.text, task=self.task_name, levels=self.levels, split=self.split,
            seed=self.seed, val_fraction=self.val_fraction, test_fraction=self.test_fraction,
            keep=has_text(self.required_text or self.text, require_all=self.required_text is not None),
        )  # fmt: skip
        self.split_indices = labelled.split_indices
        self.texts = documents(labelled.table, self.text)
        self.labels = labelled.targets.values
        bags = self._bags(self.texts)
        self.vocabulary, vocabulary_ids = bags.vocabulary(self.split_indices["train"], self.min_count, self.max_vocab)
        ids = bags.encode(vocabulary_ids)
        for name in SPLITS:
            rows = self.split_indices[name]
            self.datasets[name] = TensorDataset(ids[rows], self.labels[rows])
        self.task = labelled.targets.task(self.split_indices["train"])
        self.input_size = len(self.vocabulary)
        log.info("%s; vocabulary of %d n-grams", describe(path, labelled, self.target), self.input_size)

    def read_new_inputs(self, path: Path) -> NewInputs:
        available = table_columns(path)
        check_columns(path, available, self.required_text or [], "text")
        present = [name for name in self.text if name in available]
        if not present:
            check_columns(path, available, self.text, "text")
        table = read_table(path, present)
        full = table
        for name in self.text:  # a text column the file lacks reads as empty
            if name not in present:
                full = full.append_column(name, pa.array([""] * table.num_rows, pa.string()))
        texts = documents(full, self.text)
        bags = self._bags(texts)
        ids = bags.encode(bags.ids_in(self.vocabulary))
        return NewInputs(TensorDataset(ids), {"row": list(range(1, len(texts) + 1))})
