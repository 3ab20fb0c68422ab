"""Training batches that a killed run can pick up in mid-epoch, in the same order.

Lightning restores where an epoch stopped (its batch counter) but not what the data loader
had handed out: an ordinary loader starts the epoch again, in a new random order. Here the
order of an epoch is a pure function of (seed, epoch) (`EpochShuffle`), and the loader
(`ResumableLoader`) follows Lightning's ``state_dict``/``load_state_dict`` protocol for
loaders, so a resumed epoch skips exactly the batches already trained on, without loading
them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from itertools import islice
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

SEED_MODULUS = 2**63  # torch.Generator.manual_seed takes seeds below 2**64; keep a margin for seed + epoch


class EpochShuffle(Sampler):
    """The indices 0..size-1, or batches of them, in a random order fixed by ``seed`` and the epoch.

    The order of epoch e is ``randperm(size)`` from ``torch.Generator().manual_seed(seed + e)``
    (as torch's ``DistributedSampler`` does), never the global generator, so that it does not
    depend on what else has drawn random numbers. Lightning calls ``set_epoch`` at the start of
    every epoch.

    Args:
        size: number of samples.
        seed: the run's shuffle seed (e.g. ``torch.initial_seed()``, which ``seed_everything`` sets).
        batch_size: when given, yield lists of this many indices (the last one shorter) instead
            of single indices, for a ``DataLoader(batch_size=None)`` that fetches whole batches.
        shuffle: False keeps the order 0..size-1 (every epoch the same).
    """

    def __init__(self, size: int, seed: int, batch_size: int | None = None, shuffle: bool = True) -> None:
        if int(size) != size or size < 0:
            raise ValueError(f"size must be an integer >= 0, got {size}")
        if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
            raise ValueError(f"batch_size must be an integer >= 1 or None, got {batch_size}")
        self.size = int(size)
        self.seed = int(seed) % SEED_MODULUS
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def epoch_seed(self) -> int:
        """The seed of this epoch's order, ``seed + epoch``."""
        return (self.seed + self.epoch) % SEED_MODULUS

    def order(self) -> torch.Tensor:
        """This epoch's permutation of 0..size-1."""
        if not self.shuffle:
            return torch.arange(self.size)
        return torch.randperm(self.size, generator=torch.Generator().manual_seed(self.epoch_seed()))

    def __iter__(self) -> Iterator[Any]:
        order = self.order()
        if self.batch_size is None:
            yield from order.tolist()
        else:
            yield from (chunk.tolist() for chunk in order.split(self.batch_size))

    def __len__(self) -> int:
        if self.batch_size is None:
            return self.size
        return -(-self.size // self.batch_size)


class _SkipFirst(Sized):
    """An index sampler whose first pass leaves out its first ``count`` items (batches, for a loader)."""

    def __init__(self, sampler: Any, count: int) -> None:
        self.sampler = sampler
        self.count = count

    def __iter__(self) -> Iterator[Any]:
        return islice(iter(self.sampler), self.count, None)

    def __len__(self) -> int:
        return len(self.sampler)  # the full epoch: Lightning counts the skipped batches as done


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over an `EpochShuffle` that Lightning resumes in mid-epoch.

    ``state_dict()`` holds the sampler's seed and epoch and how many batches of that epoch's
    pass have been handed out; Lightning stores it in every checkpoint. After
    ``load_state_dict``, a pass over the same epoch starts after those batches: the sampler's
    index batches are skipped and the data behind them is never loaded. A pass over a later
    epoch (the checkpoint was taken at an epoch's end) starts at its beginning. Lightning
    fetches no batch ahead from a loader with a length, so the count is exactly the batches
    trained on.

    A pass starts working at its first batch, not when ``iter()`` is called: Lightning builds
    the iterator before it calls ``set_epoch`` on the first epoch after a restart, and the
    epoch decides both the order and the skip. The loader's own ``generator`` is then seeded
    with the epoch's seed, so worker seeds follow (seed, epoch) and nothing is drawn from the
    global generator.

    Args:
        dataset: the data set.
        sampler: the order, an `EpochShuffle` (yielding batches when the loader has
            ``batch_size=None``).
        **kwargs: any other ``DataLoader`` argument except ``shuffle``, ``batch_sampler`` and
            ``generator``.
    """

    def __init__(self, dataset: Any, sampler: EpochShuffle, **kwargs: Any) -> None:
        for name in ("shuffle", "generator", "batch_sampler"):
            if kwargs.get(name) is not None:
                raise ValueError(f"ResumableLoader takes its order from the EpochShuffle sampler, not from {name}=")
        super().__init__(dataset, sampler=sampler, generator=torch.Generator(), **kwargs)
        self._served = 0
        self._skip = 0
        self._resume: tuple[int, int] | None = None  # (epoch, batches already served) from a checkpoint

    @property
    def _index_sampler(self):
        sampler = super()._index_sampler
        return _SkipFirst(sampler, self._skip) if self._skip else sampler

    def __iter__(self) -> Iterator[Any]:
        return self._pass()

    def _pass(self) -> Iterator[Any]:
        epoch = self.sampler.epoch
        skip = self._resume[1] if self._resume is not None and self._resume[0] == epoch else 0
        self._resume = None
        self.generator.manual_seed(self.sampler.epoch_seed())
        self._skip = skip
        iterator = super().__iter__()  # takes _index_sampler, which skips `skip` batches
        self._skip = 0
        if skip and self.persistent_workers:
            iterator._index_sampler = super()._index_sampler  # later epochs reuse this iterator: no skip
        self._served = skip
        for batch in iterator:
            self._served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.sampler.seed, "epoch": self.sampler.epoch, "batches": self._served}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.sampler.seed = int(state_dict["seed"])
        self.sampler.set_epoch(state_dict["epoch"])
        self._resume = (int(state_dict["epoch"]), int(state_dict["batches"]))

