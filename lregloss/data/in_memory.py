"""The loaders of data modules whose splits are tensors held in memory, and the file they predict."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from lregloss.data.resumable import EpochShuffle, ResumableLoader
from lregloss.lightning import pl

PREDICT = "predict"


@dataclass(frozen=True)
class NewInputs:
    """Samples read from a new file to predict, and what names each of them in the output.

    Args:
        dataset: the model inputs, one sample per row, indexable by a list of indices (e.g. a
            one-tensor ``TensorDataset``, whose batches are ``[inputs]``).
        keys: output column name -> one value per sample, e.g. ``{"row": [1, 2, ...]}`` (the
            data row of a table, the first data row being 1) or ``{"file": [...]}``.
    """

    dataset: Any
    keys: dict[str, Sequence[Any]]


class InMemorySplitsDataModule(pl.LightningDataModule):
    """A data module whose splits are data sets in memory, each batch fetched with one index list.

    Subclasses implement ``build_splits`` (read the data, fill ``self.datasets`` with
    "train", "val", "test" -> a data set indexable by a list of indices, such as a
    ``TensorDataset``, which gathers its tensors with it; set ``task`` and ``input_size``)
    and ``read_new_inputs`` (a new file in the training data's format, prepared with what
    ``build_splits`` fitted on the training split), and set ``batch_size``, ``num_workers``
    and ``predict_path``. One gather per batch replaces B item fetches and a stack.
    Training batches come in an `EpochShuffle` order of the run's seed
    (``torch.initial_seed()``) and the epoch, from a `ResumableLoader`, so a killed run
    resumes mid-epoch on the same batches; evaluation batches in the data set's order.

    Prediction (``trainer.predict(model, datamodule=...)``): ``setup("predict")`` reads
    ``predict_path`` into ``self.new_inputs`` and the ``predict`` loader gives its batches in
    file order. What was fitted on the training split (a vocabulary, feature means) is the
    data module's ``state_dict``, which Lightning saves in every checkpoint; a data module
    given it by ``load_state_dict`` predicts without reading the training data, one without
    it builds the splits first.

    Under DDP every process loads its own share of each split (`EpochShuffle`): training
    batches of ``batch_size`` per process, so ``batch_size * world_size`` per optimizer step,
    the same number of them on every rank; evaluation over disjoint blocks that together hold
    the split once.

    Attributes:
        eval_batch_size: samples per validation, test and predict batch; None for ``batch_size``.
        batch_collate: applied to each fetched batch; None leaves it as fetched.
    """

    datasets: dict[str, Any]
    batch_size: int
    num_workers: int
    predict_path: str | None = None
    new_inputs: NewInputs | None = None
    eval_batch_size: int | None = None
    batch_collate: Callable[[Any], Any] | None = None

    def build_splits(self) -> None:
        """Read the data, fit its preparation on the training split, fill ``datasets``, set ``task`` and ``input_size``."""
        raise NotImplementedError

    def read_new_inputs(self, path: Path) -> NewInputs:
        """The samples of ``path``, a file in the training data's format (targets not needed), prepared as training's."""
        raise NotImplementedError

    @property
    def is_fitted(self) -> bool:
        """True once what preparing new inputs needs from the training split is known (built, or loaded)."""
        return True

    def setup(self, stage: str | None = None) -> None:
        """Build the splits once; for ``stage="predict"``, read ``predict_path`` (building the splits only if not fitted).

        Raises:
            ValueError: ``stage="predict"`` without a ``predict_path``.
            FileNotFoundError: ``predict_path`` does not exist.
        """
        if stage == PREDICT:
            if self.predict_path is None:
                raise ValueError(f"predict_path is not set; give {type(self).__name__}(predict_path=<file>) to predict")
            path = Path(self.predict_path)
            if not path.exists():
                raise FileNotFoundError(f"predict_path {self.predict_path!r} does not exist (looked at {path.resolve()})")
            if not self.is_fitted:
                self.build_splits()
            self.new_inputs = self.read_new_inputs(path)
            self.datasets[PREDICT] = self.new_inputs.dataset
        elif not {"train", "val", "test"} <= self.datasets.keys():
            self.build_splits()

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        batch_size = self.batch_size if shuffle else self.eval_batch_size or self.batch_size
        dataset = self.datasets[split]
        # {num_replicas, rank} under DDP once the trainer has set up its processes, None without it.
        share = self.trainer.distributed_sampler_kwargs if self.trainer is not None else None
        order = EpochShuffle(len(dataset), torch.initial_seed(), batch_size, shuffle=shuffle, **(share or {}))
        loader = ResumableLoader if shuffle else DataLoader
        return loader(dataset, sampler=order, batch_size=None, num_workers=self.num_workers, collate_fn=self.batch_collate)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(PREDICT, shuffle=False)
