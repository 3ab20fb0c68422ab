"""Multi-label attribute benchmarks of feature vectors (MULAN scene, yeast), data shipped inside."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from lregloss.data.files import open_text, shipped_path, verify_sha256
from lregloss.data.in_memory import InMemorySplitsDataModule, NewInputs
from lregloss.tasks import Task
from lregloss.validation import check_choice, check_positive

SPLITS = ("train", "val", "test")
SMALLEST_STD = 1e-6  # a feature constant on the training split is centred, not divided by ~0


@dataclass(frozen=True)
class MultilabelBenchmark:
    """The layout of one shipped benchmark: each row is its features, then its {0,1} labels.

    Args:
        num_features: feature columns per row.
        attributes: the attribute names, in the order of the label columns.
        train_file: the training part, in lregloss/data/assets (see its README.md).
        train_sha256: sha256 of ``train_file``.
        test_file: the test part, in lregloss/data/assets.
        test_sha256: sha256 of ``test_file``.
    """

    num_features: int
    attributes: tuple[str, ...]
    train_file: str
    train_sha256: str
    test_file: str
    test_sha256: str

    @property
    def num_columns(self) -> int:
        return self.num_features + len(self.attributes)


BENCHMARKS = {
    # Boutell et al. 2004: colour moments (mean, variance, skewness of L, U, V) of 7x7 blocks.
    "scene": MultilabelBenchmark(
        num_features=294,
        attributes=("Beach", "Sunset", "FallFoliage", "Field", "Mountain", "Urban"),
        train_file="scene-train.csv.gz",
        train_sha256="5925a1314e3272f811dd86ec68793aa02fcad04d051216c0be72657b9f9a855e",
        test_file="scene-test.csv.gz",
        test_sha256="73cff88e75777ae5fb99994645b4bc3e5a4951c9983faa3658e26f7c34566fce",
    ),
    # Elisseeff and Weston 2001: gene expression and phylogenetic profiles; 14 functional classes.
    "yeast": MultilabelBenchmark(
        num_features=103,
        attributes=tuple(f"Class{k}" for k in range(1, 15)),
        train_file="yeast-train.csv.gz",
        train_sha256="bba8740b17f6c85e8e1e5a11673991f29b7d5f2313ddb4f5d0ed3ef51c2e6fef",
        test_file="yeast-test.csv.gz",
        test_sha256="274f1e5640ef4ff71b3826dc4593423a0a28163c08c2cc23c177df2978ded89c",
    ),
}


def read_feature_label_rows(
    path: Path, benchmark: MultilabelBenchmark, labels_optional: bool = False
) -> tuple[Tensor, Tensor]:
    """Read comma-separated rows of ``benchmark``'s layout: its features, then one 0 or 1 per attribute.

    Blank lines are skipped (the MULAN scene training file starts with one).

    Args:
        path: the file (plain, .gz or .xz).
        benchmark: the layout.
        labels_optional: also accept rows of the features alone (a file to predict), and
            return the labels of the rows that have them (as -1 where they do not).

    Returns:
        ``(features, labels)``: (N, F) float32 and (N, A) int64 in {0, 1} (-1 for none).

    Raises:
        ValueError: a row with another number of values, a value that is not a finite number,
            a label other than 0 or 1, or no row at all; the message names the file and the
            line (the first line is line 1).
    """
    num_features = benchmark.num_features
    widths = (num_features, benchmark.num_columns) if labels_optional else (benchmark.num_columns,)
    layout = f"{num_features} features, then {len(benchmark.attributes)} labels"
    if labels_optional:
        layout = f"{num_features} features, optionally then {len(benchmark.attributes)} labels"
    rows: list[list[float]] = []
    with open_text(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            values = line.split(",")
            if len(values) not in widths:
                raise ValueError(
                    f"{path}, line {line_number}: {len(values)} comma-separated values, expected "
                    f"{' or '.join(map(str, widths))} ({layout})"
                )
            row = []
            for column, text in enumerate(values, start=1):
                try:
                    value = float(text)
                except ValueError:
                    value = math.nan
                if not math.isfinite(value):
                    raise ValueError(
                        f"{path}, line {line_number}, column {column}: {text.strip()!r} is not a finite number"
                    )
                if column > num_features and value not in (0.0, 1.0):
                    attribute = benchmark.attributes[column - num_features - 1]
                    raise ValueError(
                        f"{path}, line {line_number}, column {column}: label {text.strip()!r} of attribute "
                        f"{attribute!r} is not 0 or 1"
                    )
                row.append(value)
            rows.append(row + [-1.0] * (benchmark.num_columns - len(row)))
    if not rows:
        raise ValueError(
            f"{path} holds no rows; expected lines of {' or '.join(map(str, widths))} comma-separated values"
        )
    table = torch.tensor(rows, dtype=torch.float64)
    return table[:, :num_features].float(), table[:, num_features:].long()


def random_split(size: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Split the rows 0..size-1 into ``round(fraction * size)`` rows and the rest, at random.

    The order is ``randperm(size)`` from ``torch.Generator().manual_seed(seed)``; the first
    part takes its first rows. Both parts are returned sorted.

    Not stratified by label set, unlike the reviews split by rating: 122 of the 164 label
    sets of yeast's training file occur at most 6 times, so rounding per label set would
    leave every rare set in training and make validation easier than test.
    """
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    cut = round(fraction * size)
    return order[:cut].sort().values, order[cut:].sort().values


def feature_moments(features: Tensor) -> tuple[Tensor, Tensor]:
    """Each feature's mean and population standard deviation over the rows of ``features``, the latter at least 1e-6.

    Standardizing is then ``(x - mean) / std``: zero mean and unit variance on these rows.
    """
    return features.mean(dim=0), features.std(dim=0, correction=0).clamp_min(SMALLEST_STD)


class MultilabelDataModule(InMemorySplitsDataModule):
    """A multi-label benchmark: predict every attribute of a feature vector (yes or no each).

    ``name`` picks the benchmark; its files ship inside the package as gzip-compressed CSVs
    (``lregloss/data/assets/<name>-train.csv.gz``, ``-test.csv.gz``: the MULAN files, values
    unchanged) and are checked against their sha256 before use.

    - ``scene`` (Boutell et al. 2004): 2,407 images, 294 colour-moment features in [0, 1], 6
      attributes (Beach, Sunset, FallFoliage, Field, Mountain, Urban); the standard split of
      1,211 training and 1,196 test images.
    - ``yeast`` (Elisseeff and Weston 2001): 2,417 genes, 103 features, 14 functional classes;
      1,500 training and 917 test genes.

    Split: the test split is the benchmark's test file. The validation split is
    ``round(val_fraction * n)`` rows of the training file drawn at random, deterministic for
    ``seed`` (`random_split`); train / val / test have 1,029 / 182 / 1,196 rows for scene and
    1,275 / 225 / 917 for yeast at the defaults.

    Features: float32; with ``standardize`` each feature is shifted and scaled to zero mean
    and unit variance on the training split (validation and test with the same numbers).

    Batches are ``(features, labels)``: (B, F) float32 and (B, A) int64 in {0, 1}, sliced from
    tensors in memory (one gather per batch). Training batches come in an order fixed by
    ``torch.initial_seed()`` and the epoch (`EpochShuffle`), from a loader that a killed run
    resumes in mid-epoch (`ResumableLoader`).

    After ``setup``: ``task`` (multilabel, one entry per attribute, ``class_counts`` = positive
    training rows per attribute), ``input_size`` (feature count), ``datasets`` (split name ->
    TensorDataset), ``split_indices`` (``train``/``val`` -> row indices into the training
    file) and, with ``standardize``, ``feature_mean`` and ``feature_std``.

    Prediction: ``predict_path`` is a file of rows of the features alone or of the
    benchmark's layout (labels then ignored), standardized with the training split's
    ``feature_mean`` and ``feature_std``, which are the module's ``state_dict`` (saved in
    checkpoints).

    Args:
        name: the benchmark: ``scene`` or ``yeast``.
        train_path: your own training file of the benchmark's layout (one row per line: the
            features, then a 0 or 1 per attribute, comma-separated; plain, .gz or .xz); None
            for the shipped one. Give ``test_path`` with it.
        test_path: your own test file of the same layout; None for the shipped one.
        batch_size: rows per batch.
        seed: seed of the validation split. The training order comes from
            ``torch.initial_seed()`` (the run's ``seed``) and the epoch.
        val_fraction: share of the training file kept for validation, in (0, 1).
        standardize: scale features to zero mean and unit variance on the training split.
        num_workers: DataLoader worker processes; 0 loads in the main process, which is
            enough as batches are slices of tensors held in memory.
        predict_path: a file of feature rows to predict (``setup("predict")``), or None.

    Raises:
        ValueError: an unknown name or an argument out of range (at construction); a file
            with a malformed row (named with its line) or too few rows to fill every split
            (at setup).
        FileNotFoundError: ``train_path`` or ``test_path`` is not a file (at setup).
        ChecksumMismatchError: a shipped file fails its checksum (at setup).
    """

    def __init__(
        self,
        name: str = "scene",
        train_path: str | None = None,
        test_path: str | None = None,
        batch_size: int = 64,
        seed: int = 0,
        val_fraction: float = 0.15,
        standardize: bool = True,
        num_workers: int = 0,
        predict_path: str | None = None,
    ) -> None:
        super().__init__()
        check_choice("name", name, tuple(BENCHMARKS))
        if (train_path is None) != (test_path is None):
            raise ValueError(
                "train_path and test_path go together: give both (your own files) or neither (the shipped "
                f"{name} files); got train_path={train_path!r}, test_path={test_path!r}"
            )
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size}")
        if check_positive("val_fraction", val_fraction) >= 1:
            raise ValueError(f"val_fraction must be < 1 to leave training rows, got {val_fraction}")
        if int(num_workers) != num_workers or num_workers < 0:
            raise ValueError(f"num_workers must be an integer >= 0, got {num_workers}")
        self.save_hyperparameters()
        self.name = name
        self.benchmark = BENCHMARKS[name]
        self.train_path = train_path
        self.test_path = test_path
        self.batch_size = batch_size
        self.seed = seed
        self.val_fraction = val_fraction
        self.standardize = standardize
        self.num_workers = num_workers
        self.predict_path = predict_path
        self.input_size = self.benchmark.num_features
        self.feature_mean: Tensor | None = None
        self.feature_std: Tensor | None = None
        self.datasets: dict[str, TensorDataset] = {}

    @property
    def is_fitted(self) -> bool:
        return not self.standardize or self.feature_mean is not None

    def state_dict(self) -> dict[str, Tensor]:
        """The training split's feature means and standard deviations, which a new file is standardized with."""
        if self.feature_mean is None:
            return {}
        return {"feature_mean": self.feature_mean, "feature_std": self.feature_std}

    def load_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        self.feature_mean, self.feature_std = state_dict["feature_mean"], state_dict["feature_std"]

    def _prepared(self, features: Tensor) -> Tensor:
        if not self.standardize:
            return features
        return (features - self.feature_mean) / self.feature_std

    def read_new_inputs(self, path: Path) -> NewInputs:
        features, _ = read_feature_label_rows(path, self.benchmark, labels_optional=True)
        return NewInputs(TensorDataset(self._prepared(features)), {"row": list(range(1, len(features) + 1))})

    def _files(self) -> dict[str, Path]:
        """The training and test files to read: the user's, or the shipped ones after their checksum."""
        if self.train_path is None:
            files = {}
            for part, file_name, sha256 in (
                ("train", self.benchmark.train_file, self.benchmark.train_sha256),
                ("test", self.benchmark.test_file, self.benchmark.test_sha256),
            ):
                files[part] = shipped_path(file_name)
                verify_sha256(files[part], sha256, "pass train_path= and test_path= to your own files of the same layout")
            return files
        files = {"train": Path(self.train_path), "test": Path(self.test_path)}
        for part, path in files.items():
            if not path.is_file():
                raise FileNotFoundError(
                    f"{part}_path {str(path)!r} is not a file (looked at {path.resolve()}); give a file of "
                    f"{self.benchmark.num_columns} comma-separated values per line ({self.benchmark.num_features} "
                    f"features, then a 0 or 1 for each of {', '.join(self.benchmark.attributes)}), or "
                    "train_path=null test_path=null for the shipped data"
                )
        return files

    def build_splits(self) -> None:
        """Read, check, split and (optionally) standardize."""
        files = self._files()
        train_features, train_labels = read_feature_label_rows(files["train"], self.benchmark)
        test_features, test_labels = read_feature_label_rows(files["test"], self.benchmark)
        val_rows, train_rows = random_split(len(train_labels), self.val_fraction, self.seed)
        self.split_indices = {"train": train_rows, "val": val_rows}
        for part, rows in self.split_indices.items():
            if len(rows) == 0:
                raise ValueError(
                    f"the {part} split of {files['train']} is empty: {len(train_labels)} rows, "
                    f"val_fraction={self.val_fraction}; give more rows or another val_fraction"
                )
        features = {"train": train_features[train_rows], "val": train_features[val_rows], "test": test_features}
        labels = {"train": train_labels[train_rows], "val": train_labels[val_rows], "test": test_labels}
        if self.standardize:
            self.feature_mean, self.feature_std = feature_moments(features["train"])
        features = {part: self._prepared(values) for part, values in features.items()}
        self.datasets = {part: TensorDataset(features[part], labels[part]) for part in SPLITS}
        self.task = Task(
            "multilabel",
            len(self.benchmark.attributes),
            names=self.benchmark.attributes,
            class_counts=tuple(labels["train"].sum(dim=0).tolist()),
        )
