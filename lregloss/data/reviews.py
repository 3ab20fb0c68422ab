"""Star ratings (1..5) from clothing review text: the ordinal recipe, data shipped inside."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from lregloss.data.files import open_text, shipped_path, verify_sha256
from lregloss.data.in_memory import InMemorySplitsDataModule, NewInputs
from lregloss.data.text import build_vocabulary, encode, tokenize, with_ngrams
from lregloss.tasks import Task
from lregloss.validation import check_positive

SHIPPED_FILE = "womens_clothing_reviews.csv.gz"  # in lregloss/data/assets; see its README.md
SHIPPED_SHA256 = "9a9e641e54bb9844cb15dbfe2cbed86af9d6c30c70dade926cd31ab52c7aabb5"
REQUIRED_COLUMNS = ("Title", "Review Text", "Rating")
REVIEW_COLUMN = "Review Text"  # the one column a file to predict needs
OWN_DATA_HINT = "pass path= to your own CSV with the columns " + ", ".join(REQUIRED_COLUMNS)
NUM_STARS = 5
SPLITS = ("train", "val", "test")


def read_review_rows(path: Path, columns: Sequence[str]) -> Iterator[tuple[int, int, dict[str, str]]]:
    """The data rows of a review CSV as ``(row number, line number, row)``, the first data row being row 1.

    Raises:
        ValueError: the header lacks one of ``columns``; the message names the file.
    """
    with open_text(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(
                f"{path} lacks the column(s) {', '.join(repr(c) for c in missing)}; a review CSV "
                f"needs a header with {', '.join(repr(c) for c in columns)}"
            )
        for row_number, row in enumerate(reader, start=1):
            yield row_number, reader.line_num, row


def document(row: dict[str, str]) -> str:
    """The text of a review row: its title (empty where the column is missing), a newline, its review text."""
    return f"{(row.get('Title') or '').strip()}\n{(row['Review Text'] or '').strip()}"


def read_reviews(path: Path) -> tuple[list[str], list[int]]:
    """Read (document, level) pairs, skipping rows without review text.

    The document is the title, a newline, then the review text (`document`). The level is
    the star rating minus one, 0..4.

    Raises:
        ValueError: a required column is missing, or a rating is not an integer in 1..5;
            the message names the file (and the row: the first data row is row 1).
    """
    texts: list[str] = []
    levels: list[int] = []
    for row_number, line_number, row in read_review_rows(path, REQUIRED_COLUMNS):
        rating = (row["Rating"] or "").strip()
        if not rating.isdigit() or not 1 <= int(rating) <= NUM_STARS:
            raise ValueError(
                f"{path}, row {row_number} (line {line_number}): Rating {rating!r} is not "
                f"an integer star rating in 1..{NUM_STARS}"
            )
        if (row["Review Text"] or "").strip():
            texts.append(document(row))
            levels.append(int(rating) - 1)
    return texts, levels


def read_new_reviews(path: Path) -> list[str]:
    """The document of every data row of a review CSV to predict: a Review Text column needed, Title and Rating not.

    Unlike `read_reviews` no row is skipped, so that the predictions line up with the file's
    rows: a row without review text is its title alone, one with neither is empty.

    Raises:
        ValueError: the header has no Review Text column; the message names the file.
    """
    return [document(row) for _, _, row in read_review_rows(path, (REVIEW_COLUMN,))]


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


def _whole_batches(batch: Sequence[Tensor]) -> tuple[Tensor, ...]:
    """Collate for a loader that fetches whole batches ``(ids, levels)`` or ``(ids,)``: trim the padding columns no row uses."""
    ids, *rest = batch
    width = int((ids != 0).sum(dim=1).max().clamp_min(1))
    return ids[:, :width], *rest


class ReviewsDataModule(InMemorySplitsDataModule):
    """Women's E-Commerce Clothing Reviews: predict the star rating from the review text.

    The data (23,486 reviews, CC0) ships inside the package as
    ``lregloss/data/assets/womens_clothing_reviews.csv.gz`` (columns: row index, Title,
    Review Text, Rating) and is checked against its sha256 before use. Rows without review
    text are dropped (845 rows; 22,641 are kept). A document is the title followed by the
    review text.

    Split: stratified by rating, deterministic for ``seed``: within each rating the rows are
    shuffled by ``torch.Generator().manual_seed(seed)`` and cut into ``val_fraction``,
    ``test_fraction`` and the rest for training (80/10/10 by default: 18,113 / 2,264 /
    2,264 rows for seed 0).

    Features: ``tokenize`` (lowercase words, clitics kept, "!" and "?"), the first
    ``max_tokens`` tokens of each document, and all 1..``ngrams``-grams of them. The
    vocabulary is built from the training split only: n-grams seen at least ``min_count``
    times, the ``max_vocab`` most frequent; id 0 is padding and unseen n-grams are dropped.
    Every document is encoded once, at setup, into a padded (N, L) int64 matrix.

    Batches are ``(ids, level)``: ``ids`` (B, L) int64 with 0 padding, trimmed to the
    batch's longest document; ``level`` (B,) int64 = rating - 1, in 0..4. Training batches
    come in an order fixed by ``torch.initial_seed()`` and the epoch (`EpochShuffle`), from a
    loader that a killed run resumes in mid-epoch (`ResumableLoader`).

    After ``setup``: ``task`` (ordinal, 5 levels, training counts), ``input_size``
    (vocabulary size), ``vocabulary`` (id -> n-gram), ``texts`` and ``levels`` (every kept
    row) and ``split_indices`` (split name -> row indices into them).

    Prediction: ``predict_path`` is a review CSV of the same format whose Title and Rating
    columns may be missing; every row is predicted (`read_new_reviews`), encoded with the
    training vocabulary, which is the module's ``state_dict`` (saved in checkpoints).

    Args:
        path: a review CSV (plain, .gz or .xz) with the columns Title, Review Text and Rating;
            None for the shipped data.
        num_classes: number of rating levels; must be 5 (star ratings 1..5).
        batch_size: documents per batch.
        seed: seed of the split. The training order comes from ``torch.initial_seed()`` (the
            run's ``seed``) and the epoch.
        val_fraction: share of each rating kept for validation, in (0, 1).
        test_fraction: share of each rating kept for testing, in (0, 1).
        max_tokens: tokens kept per document before n-grams, or None for all. The longest
            shipped document has 124, so 256 only guards the (N, L) matrix against a user's
            long documents (cutting to 64 costs about 1 point of validation accuracy).
        ngrams: longest n-gram (1 for unigrams only).
        min_count: occurrences in the training split an n-gram needs to enter the vocabulary;
            5 keeps 31,952 entries on the shipped data, as accurate on validation as 2
            (78,081 entries) at half the training time (embedding gradients are dense).
        max_vocab: the most vocabulary entries (padding included), or None for no cap.
        num_workers: DataLoader worker processes; 0 loads in the main process, which is
            enough as batches are slices of tensors held in memory.
        predict_path: a review CSV to predict (``setup("predict")``), or None.

    Raises:
        ValueError: an argument out of range (at construction), or a CSV without the
            required columns, with a rating outside 1..5, or too small to fill every split
            (at setup).
        FileNotFoundError: ``path`` is not a file (at setup).
        ChecksumMismatchError: the shipped file fails its checksum (at setup).
    """

    batch_collate = staticmethod(_whole_batches)

    def __init__(
        self,
        path: str | None = None,
        num_classes: int = NUM_STARS,
        batch_size: int = 256,
        seed: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        max_tokens: int | None = 256,
        ngrams: int = 2,
        min_count: int = 5,
        max_vocab: int | None = None,
        num_workers: int = 0,
        predict_path: str | None = None,
    ) -> None:
        super().__init__()
        if num_classes != NUM_STARS:
            raise ValueError(f"num_classes must be {NUM_STARS} for star ratings 1..{NUM_STARS}, got {num_classes}")
        for name, value in (("batch_size", batch_size), ("ngrams", ngrams), ("min_count", min_count)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value}")
        for name, value, smallest in (("max_tokens", max_tokens, 1), ("max_vocab", max_vocab, 2)):
            if value is not None and (int(value) != value or value < smallest):
                raise ValueError(f"{name} must be an integer >= {smallest} or None (no limit), got {value}")
        check_positive("val_fraction", val_fraction)
        check_positive("test_fraction", test_fraction)
        if val_fraction + test_fraction >= 1:
            raise ValueError(
                f"val_fraction + test_fraction must be < 1 to leave training rows, got {val_fraction} + {test_fraction}"
            )
        if int(num_workers) != num_workers or num_workers < 0:
            raise ValueError(f"num_workers must be an integer >= 0, got {num_workers}")
        self.save_hyperparameters()
        self.path = path
        self.num_classes = num_classes
        self.batch_size = batch_size
        self.seed = seed
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.max_tokens = max_tokens
        self.ngrams = ngrams
        self.min_count = min_count
        self.max_vocab = max_vocab
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

    def _encode(self, texts: Sequence[str]) -> Tensor:
        """The (N, L) padded n-gram ids of ``texts`` under the training vocabulary."""
        documents = [with_ngrams(tokenize(text)[: self.max_tokens], self.ngrams) for text in texts]
        return encode(documents, self.vocabulary)

    def read_new_inputs(self, path: Path) -> NewInputs:
        texts = read_new_reviews(path)
        return NewInputs(TensorDataset(self._encode(texts)), {"row": list(range(1, len(texts) + 1))})

    def build_splits(self) -> None:
        """Read, split, build the vocabulary from the training split and encode."""
        if self.path is None:
            path = shipped_path(SHIPPED_FILE)
            verify_sha256(path, SHIPPED_SHA256, OWN_DATA_HINT)
        else:
            path = Path(self.path)
            if not path.is_file():
                raise FileNotFoundError(
                    f"path {self.path!r} is not a file (looked at {path.resolve()}); give a review CSV (plain, .gz "
                    f"or .xz) with the columns {', '.join(REQUIRED_COLUMNS)}, or path=null for the shipped data"
                )
        self.texts, levels = read_reviews(path)
        if not self.texts:
            raise ValueError(f"{path} holds no row with review text")
        self.levels = torch.tensor(levels, dtype=torch.long)
        split = stratified_split(self.levels, (self.val_fraction, self.test_fraction), self.seed)
        self.split_indices = dict(zip(("val", "test", "train"), split))
        for name in SPLITS:
            if len(self.split_indices[name]) == 0:
                raise ValueError(
                    f"the {name} split of {path} is empty: {len(self.texts)} rows with review text, "
                    f"val_fraction={self.val_fraction}, test_fraction={self.test_fraction}, rounded per rating; "
                    "give more rows or larger fractions"
                )
        documents = [with_ngrams(tokenize(text)[: self.max_tokens], self.ngrams) for text in self.texts]
        train_rows = self.split_indices["train"].tolist()
        self.vocabulary = build_vocabulary([documents[i] for i in train_rows], self.min_count, self.max_vocab)
        ids = encode(documents, self.vocabulary)
        for name in SPLITS:
            rows = self.split_indices[name]
            self.datasets[name] = TensorDataset(ids[rows], self.levels[rows])
        counts = torch.bincount(self.levels[self.split_indices["train"]], minlength=NUM_STARS)
        self.task = Task(
            "ordinal",
            NUM_STARS,
            names=tuple(f"{k} star{'s' if k > 1 else ''}" for k in range(1, NUM_STARS + 1)),
            class_counts=tuple(counts.tolist()),
        )
        self.input_size = len(self.vocabulary)
