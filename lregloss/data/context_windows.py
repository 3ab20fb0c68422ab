"""Words in their context windows: the examples of a CBOW language model (Mikolov et al., 2013).

Each in-vocabulary word of a document is one example: its class is the word, its input the
ids of the up to ``window`` words on each side within the same document.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from lregloss.data.files import shipped_path, verify_shipped
from lregloss.data.in_memory import InMemorySplitsDataModule, NewInputs
from lregloss.data.labelled_rows import SPLITS, read_labelled_rows
from lregloss.data.labelled_text import documents, has_text, text_columns
from lregloss.data.splits import shuffled_split
from lregloss.data.table import check_split_arguments
from lregloss.data.tables import check_columns, existing_file, read_table, table_columns
from lregloss.data.text import tokenize
from lregloss.tasks import Task, TaskKind

log = logging.getLogger(__name__)

UNKNOWN = "<unk>"  # input id 0: words outside the vocabulary, left out of every context like padding


def word_vocabulary(documents: Sequence[Sequence[str]], min_count: int, max_vocab: int | None) -> tuple[list[str], list[int]]:
    """The words seen at least ``min_count`` times, most frequent first (ties alphabetically), and their counts.

    At most ``max_vocab`` words. Class w is ``words[w]``; its model input id is w + 1.
    """
    counted = Counter(chain.from_iterable(documents))
    ranked = sorted((-count, word) for word, count in counted.items() if count >= min_count)
    if max_vocab is not None:
        ranked = ranked[:max_vocab]
    return [word for _, word in ranked], [-count for count, _ in ranked]


@dataclass(frozen=True)
class ContextWindows:
    """Every in-vocabulary word of some documents with its context.

    Attributes:
        contexts: (M, 2 * window) int64 input ids of the words before (nearest last) and after
            (nearest first) each centre word, 0 past the document's ends and for unknown words.
        centres: (M,) int64 class of each centre word.
        documents: (M,) int64 index of each centre word's document.
        positions: (M,) int64 token position of each centre word in its document.
        unknown: tokens of these documents outside the vocabulary (not predicted).
    """

    contexts: Tensor
    centres: Tensor
    documents: Tensor
    positions: Tensor
    unknown: int

    @classmethod
    def of(cls, documents: Sequence[Sequence[str]], words: Sequence[str], window: int) -> ContextWindows:
        """The windows of ``documents`` (token lists) over the vocabulary ``words``."""
        lengths = np.fromiter(map(len, documents), dtype=np.int64, count=len(documents))
        total = int(lengths.sum())
        lookup = pa.array(words, pa.string())
        found = pc.index_in(pa.array(chain.from_iterable(documents), pa.string(), size=total), value_set=lookup)
        ids = np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64) + 1  # 0: unknown
        document = np.repeat(np.arange(len(documents), dtype=np.int64), lengths)
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        position = np.arange(total, dtype=np.int64) - starts
        ends = starts + np.repeat(lengths, lengths)
        offsets = [*range(-window, 0), *range(1, window + 1)]
        contexts = np.zeros((total, len(offsets)), dtype=np.int64)
        index = np.arange(total, dtype=np.int64)
        for column, offset in enumerate(offsets):
            neighbour = index + offset
            inside = (neighbour >= starts) & (neighbour < ends)
            contexts[inside, column] = ids[neighbour[inside]]
        known = ids != 0
        return cls(
            contexts=torch.from_numpy(contexts[known]),
            centres=torch.from_numpy(ids[known] - 1),
            documents=torch.from_numpy(document[known]),
            positions=torch.from_numpy(position[known]),
            unknown=int(total - known.sum()),
        )


class CbowDataModule(InMemorySplitsDataModule):
    """A CBOW language model's data: predict each word of a text from the words around it.

    Documents are the rows' ``text`` columns, stripped and joined by a newline, tokenized as
    the n-gram recipes do (`lregloss.data.text.tokenize`: lowercase words, clitics kept, "!"
    and "?"); rows without text in the ``required_text`` columns (default: in any text
    column) are dropped. Documents, not words, are split: stratified by the
    ``stratify`` column where one is given (``stratify: Rating`` with the reviews' seed gives
    the ratings recipe's split), else at random by ``seed``.

    The vocabulary is the training split's words seen at least ``min_count`` times (the
    ``max_vocab`` most frequent), most frequent first: C classes, word w of class w, model
    input id w + 1. Other words are unknown: input id 0, which the model leaves out of a
    context's mean (as padding), and, as centres, neither trained nor scored; their number
    per split is logged. An example is one in-vocabulary word of a document (its class) and
    the ids of the ``window`` words on each side within the same document (0 where the
    window runs past the document's ends), ``(contexts (B, 2 window) int64, centres (B,))``.
    ``task`` is multiclass over the C words, with the training centres' counts (for a
    Huffman tree, ``loss.class_counts=data``).

    Prediction: ``predict_path`` is a file with the same text columns; every in-vocabulary
    word of it is predicted from its context, reported with its row and position.

    After ``setup``: ``task``, ``input_size`` (C + 1), ``vocabulary`` (class -> word),
    ``windows`` (split name -> `ContextWindows`), ``split_documents`` (split name -> token
    lists, as given to peers such as gensim).

    Args:
        path: a CSV (plain or compressed) or Parquet file; None for ``shipped_file``.
        text: the text column, or a list of them.
        required_text: the text columns a row must have text in; None: any one of ``text``.
        stratify: a column whose values stratify the split of the documents, or None.
        shipped_file: a data file shipped inside lregloss, read when ``path`` is None.
        seed: seed of the split; the training order comes from ``torch.initial_seed()``.
        val_fraction, test_fraction: shares of the documents held out.
        window: context words on each side of the centre, >= 1.
        min_count: training occurrences a word needs to enter the vocabulary, >= 1.
        max_vocab: the most words in the vocabulary, or None for no cap.
        batch_size: examples (centre words) per training step.
        eval_batch_size: examples per evaluation batch; None for ``batch_size``.
        num_workers: DataLoader worker processes.
        predict_path: a file to predict, or None.

    Raises:
        ValueError: an argument out of range (at construction), a missing column or an empty
            split (at setup), each in one line with its fix.
        FileNotFoundError: ``path`` is not a file (at setup).
    """

    def __init__(
        self,
        path: str | None = None,
        text: str | Sequence[str] = "text",
        required_text: Sequence[str] | None = None,
        stratify: str | None = None,
        shipped_file: str | None = None,
        seed: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        window: int = 5,
        min_count: int = 1,
        max_vocab: int | None = None,
        batch_size: int = 1024,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        predict_path: str | None = None,
    ) -> None:
        super().__init__()
        check_split_arguments(batch_size, val_fraction, test_fraction, num_workers)
        for name, value, smallest in (("window", window, 1), ("min_count", min_count, 1)):
            if int(value) != value or value < smallest:
                raise ValueError(f"{name} must be an integer >= {smallest}, got {value}")
        for name, value in (("max_vocab", max_vocab), ("eval_batch_size", eval_batch_size)):
            if value is not None and (int(value) != value or value < 1):
                raise ValueError(f"{name} must be an integer >= 1 or None, got {value}")
        self.text, self.required_text = text_columns(path, shipped_file, text, required_text)
        self.save_hyperparameters()
        self.path = path
        self.stratify = stratify
        self.shipped_file = shipped_file
        self.seed = seed
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.window = int(window)
        self.min_count = int(min_count)
        self.max_vocab = max_vocab
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.predict_path = predict_path
        self.vocabulary: list[str] | None = None
        self.datasets: dict[str, TensorDataset] = {}
        self.windows: dict[str, ContextWindows] = {}
        self.split_documents: dict[str, list[list[str]]] = {}

    @property
    def is_fitted(self) -> bool:
        return self.vocabulary is not None

    def state_dict(self) -> dict[str, list[str]]:
        """The vocabulary (class -> word), which predicting a new file needs; empty before it is built."""
        return {} if self.vocabulary is None else {"vocabulary": list(self.vocabulary)}

    def load_state_dict(self, state_dict: dict[str, list[str]]) -> None:
        self.vocabulary = list(state_dict["vocabulary"])
        self.input_size = len(self.vocabulary) + 1

    def _file(self) -> Path:
        if self.path is not None:
            return existing_file(self.path, ", or path=null for the shipped data" if self.shipped_file else "")
        path = shipped_path(self.shipped_file)
        verify_shipped(path, "pass data.path= to your own file")
        return path

    def _split_texts(self, path: Path) -> tuple[list[str], dict[str, Tensor]]:
        """Every kept row's document and the split's row indices."""
        keep = has_text(self.required_text or self.text, require_all=self.required_text is not None)
        fractions = (self.val_fraction, self.test_fraction)
        if self.stratify is not None:
            labelled = read_labelled_rows(
                path, self.stratify, self.text, task="multiclass", levels=None, split=None, seed=self.seed,
                val_fraction=self.val_fraction, test_fraction=self.test_fraction, keep=keep,
            )  # fmt: skip
            return documents(labelled.table, self.text), labelled.split_indices
        check_columns(path, table_columns(path), self.text, "text")
        table = read_table(path, self.text)
        table = table.filter(keep(table))
        val, test, train = shuffled_split(table.num_rows, fractions, self.seed)
        return documents(table, self.text), {"train": train, "val": val, "test": test}

    def build_splits(self) -> None:
        """Read and split the documents, build the vocabulary from the training split, cut every split into windows."""
        path = self._file()
        texts, split_indices = self._split_texts(path)
        tokens = [tokenize(text) for text in texts]
        for name in SPLITS:
            self.split_documents[name] = [tokens[i] for i in split_indices[name].tolist()]
        self.vocabulary, counts = word_vocabulary(self.split_documents["train"], self.min_count, self.max_vocab)
        if len(self.vocabulary) < 2:
            raise ValueError(
                f"data.min_count={self.min_count} leaves {len(self.vocabulary)} word(s) in the vocabulary of {path}; "
                "lower data.min_count or give more text"
            )
        for name in SPLITS:
            windows = ContextWindows.of(self.split_documents[name], self.vocabulary, self.window)
            if len(windows.centres) == 0:
                raise ValueError(f"the {name} split of {path} holds no word of the vocabulary; give more documents")
            self.windows[name] = windows
            self.datasets[name] = TensorDataset(windows.contexts, windows.centres)
        centre_counts = torch.bincount(self.windows["train"].centres, minlength=len(self.vocabulary))
        self.task = Task(TaskKind.MULTICLASS, len(self.vocabulary), tuple(self.vocabulary), tuple(centre_counts.tolist()))
        self.input_size = len(self.vocabulary) + 1
        held_out = ", ".join(
            f"{name} {len(self.windows[name].centres):,} words ({self.windows[name].unknown:,} unknown left out)"
            for name in SPLITS
        )
        log.info(
            "%s: %d documents, vocabulary of %d words (min_count=%d, covering %d training words), window +-%d; %s",
            path, len(texts), len(self.vocabulary), self.min_count, sum(counts), self.window, held_out,
        )  # fmt: skip

    def read_new_inputs(self, path: Path) -> NewInputs:
        check_columns(path, table_columns(path), self.text, "text")
        table = read_table(path, self.text)
        tokens = [tokenize(text) for text in documents(table, self.text)]
        windows = ContextWindows.of(tokens, self.vocabulary, self.window)
        info = {
            "row": (windows.documents + 1).tolist(),
            "position": windows.positions.tolist(),
            "word": [self.vocabulary[c] for c in windows.centres.tolist()],
        }
        return NewInputs(TensorDataset(windows.contexts), info)
