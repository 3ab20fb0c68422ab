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
from torch.utils.data import DataLoader, DistributedSampler

from lregloss.private_names import require

require(DataLoader, "_index_sampler")  # overridden below (see lregloss.private_names)

SEED_MODULUS = 2**63  # torch.Generator.manual_seed takes seeds below 2**64; keep a margin for seed + epoch


class EpochShuffle(DistributedSampler):
    """The indices 0..size-1, or batches of them, in a random order fixed by ``seed`` and the epoch; one rank's share.

    The order of epoch e is ``randperm(size)`` from ``torch.Generator().manual_seed(seed + e)``
    (as torch's ``DistributedSampler`` does), never the global generator, so that it does not
    depend on what else has drawn random numbers. Lightning calls ``set_epoch`` at the start of
    every epoch.

    Under DDP (``num_replicas`` > 1) each rank takes its own share of the indices, and every
    rank the same number of batches where it matters:

    - shuffled (training): every ``num_replicas``-th index of the epoch's order, from
      ``rank`` on, the order first padded with its own first indices to a multiple of
      ``num_replicas``, as torch's ``DistributedSampler`` does. The shares are disjoint but
      for fewer than ``num_replicas`` repeated samples an epoch, and of equal length: a rank
      with one batch more would wait for the others in its gradient all-reduce forever.
    - in order (evaluation): a contiguous block of ``size // num_replicas`` or one more
      indices, none repeated, so that metrics gathered over the ranks are those of the whole
      split. The ranks may differ by one batch, which evaluation allows: it runs no collective
      per batch, only at the epoch's end.

    It is a ``DistributedSampler`` so that Lightning uses it as it is: any other sampler it
    wraps in its own, which pads evaluation with repeated batches and loses this order.

    Args:
        size: number of samples.
        seed: the run's shuffle seed (e.g. ``torch.initial_seed()``, which ``seed_everything`` sets).
        batch_size: when given, yield lists of this many indices (the last one shorter) instead
            of single indices, for a ``DataLoader(batch_size=None)`` that fetches whole batches.
        shuffle: False keeps the order 0..size-1 (every epoch the same).
        num_replicas: number of processes sharing the data (DDP's world size).
        rank: this process's global rank, in 0..num_replicas-1.

    Raises:
        ValueError: an argument out of range, or fewer samples than processes in order (a
            rank without a batch would skip evaluation and leave the others waiting).
    """

    def __init__(
        self,
        size: int,
        seed: int,
        batch_size: int | None = None,
        shuffle: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if int(size) != size or size < 0:
            raise ValueError(f"size must be an integer >= 0, got {size}")
        if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
            raise ValueError(f"batch_size must be an integer >= 1 or None, got {batch_size}")
        if int(num_replicas) != num_replicas or num_replicas < 1:
            raise ValueError(f"num_replicas must be an integer >= 1, got {num_replicas}")
        if not shuffle and 0 < size < num_replicas:
            raise ValueError(
                f"{size} samples cannot give each of {num_replicas} processes one to evaluate; "
                "use fewer devices or a larger split"
            )
        seed = int(seed) % SEED_MODULUS
        super().__init__(range(int(size)), num_replicas=int(num_replicas), rank=int(rank), shuffle=shuffle, seed=seed)
        self.size = int(size)
        self.batch_size = batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def epoch_seed(self) -> int:
        """The seed of this epoch's order, ``seed + epoch``."""
        return (self.seed + self.epoch) % SEED_MODULUS

    def order(self) -> torch.Tensor:
        """This epoch's permutation of 0..size-1 (of every rank's indices)."""
        if not self.shuffle:
            return torch.arange(self.size)
        return torch.randperm(self.size, generator=torch.Generator().manual_seed(self.epoch_seed()))

    def indices(self) -> torch.Tensor:
        """This rank's indices of this epoch, in order (see the class docstring for the shares)."""
        order = self.order()
        if self.num_replicas == 1:
            return order
        if not self.shuffle:
            start, stop = (self.size * r // self.num_replicas for r in (self.rank, self.rank + 1))
            return order[start:stop]
        padded = order.repeat(-(-self.total_size // max(self.size, 1)))[: self.total_size]
        return padded[self.rank :: self.num_replicas]

    def _num_indices(self) -> int:
        if self.num_replicas == 1:
            return self.size
        if self.shuffle:
            return self.num_samples
        return self.size * (self.rank + 1) // self.num_replicas - self.size * self.rank // self.num_replicas

    def __iter__(self) -> Iterator[Any]:
        indices = self.indices()
        if self.batch_size is None:
            yield from indices.tolist()
        else:
            yield from (chunk.tolist() for chunk in indices.split(self.batch_size))

    def __len__(self) -> int:
        if self.batch_size is None:
            return self._num_indices()
        return -(-self._num_indices() // self.batch_size)


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

