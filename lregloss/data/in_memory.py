"""The loaders of data modules whose splits are tensors held in memory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader

from lregloss.lightning import pl
from lregloss.data.resumable import EpochShuffle, ResumableLoader


class InMemorySplitsDataModule(pl.LightningDataModule):
    """A data module whose splits are data sets in memory, each batch fetched with one index list.

    Subclasses fill ``self.datasets`` ("train", "val", "test" -> a data set indexable by a
    list of indices, such as a ``TensorDataset``, which gathers its tensors with it) in
    ``setup``, and set ``batch_size`` and ``num_workers``. One gather per batch replaces B
    item fetches and a stack. Training batches come in an `EpochShuffle` order of the run's
    seed (``torch.initial_seed()``) and the epoch, from a `ResumableLoader`, so a killed run
    resumes mid-epoch on the same batches; evaluation batches in the data set's order.

    Under DDP every process loads its own share of each split (`EpochShuffle`): training
    batches of ``batch_size`` per process, so ``batch_size * world_size`` per optimizer step,
    the same number of them on every rank; evaluation over disjoint blocks that together hold
    the split once.

    Attributes:
        eval_batch_size: samples per validation and test batch; None for ``batch_size``.
        batch_collate: applied to each fetched batch; None leaves it as fetched.
    """

    datasets: dict[str, Any]
    batch_size: int
    num_workers: int
    eval_batch_size: int | None = None
    batch_collate: Callable[[Any], Any] | None = None

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
