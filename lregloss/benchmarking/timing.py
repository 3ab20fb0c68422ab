"""The shared timer and table: variants timed side by side in one process, ratios to a baseline.

Machines running these benchmarks are often shared, so one variant's timing must not be
compared with another's taken a minute later. ``time_variants`` runs every variant once per
round, in an order rotated from round to round, and keeps every sample; a ratio is then
taken between medians of samples drawn from the same stretch of time. The minimum (the
run least disturbed by other processes) is printed too.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Measured:
    """What a variant returns when it times itself (e.g. the epochs inside a Lightning fit).

    ``time_variants`` then records ``seconds`` instead of the wall time of the whole call, so
    set-up that is not part of the measured work (building a Trainer) stays out.
    """

    seconds: float


@dataclass(frozen=True)
class Timing:
    """Every sample of one variant, in seconds per call; sample r was taken in round r."""

    name: str
    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)


def no_synchronize() -> None:
    """CPU work is done when the call returns; nothing to wait for."""


def calls_per_sample(fn: Callable[[], object], min_sample_s: float, synchronize: Callable[[], None] = no_synchronize) -> int:
    """How many back-to-back calls of ``fn`` make a sample of at least ``min_sample_s``.

    Calls of tens of microseconds are timed in groups, so timer resolution and the loop's own
    overhead do not dominate; calls already longer than ``min_sample_s`` are timed one by one.
    """
    synchronize()
    start = time.perf_counter()
    fn()
    synchronize()
    once = time.perf_counter() - start
    return max(1, math.ceil(min_sample_s / max(once, 1e-7)))


def time_variants(
    variants: Mapping[str, Callable[[], object]],
    repeats: int,
    warmup: int = 2,
    min_sample_s: float = 0.0,
    synchronize: Callable[[], None] = no_synchronize,
) -> dict[str, Timing]:
    """Time each variant ``repeats`` times, interleaved, after ``warmup`` untimed rounds.

    Round r runs the variants in their given order rotated by r, so no variant always runs
    right after the same neighbour (caches, allocator state, CPU frequency). Garbage
    collection is switched off while timing and run between rounds.

    Args:
        variants: name -> a function doing one unit of work (a training step, a forward
            and backward pass); its result is discarded unless it is a ``Measured``, whose
            seconds are then the sample.
        repeats: the number of timed rounds, >= 1.
        warmup: untimed rounds first (allocator, caches, lazy initialisation).
        min_sample_s: group calls so that each sample lasts at least this long (see
            ``calls_per_sample``); 0 times every call on its own.
        synchronize: waits for queued device work (``torch.cuda.synchronize``), called
            before a sample's clock starts and before it stops, as GPU calls return early.

    Returns:
        name -> its ``Timing``, in seconds per call.

    Raises:
        ValueError: no variants, or ``repeats`` < 1.
    """
    if not variants:
        raise ValueError("time_variants needs at least one variant")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    calls = {name: calls_per_sample(variants[name], min_sample_s, synchronize) if min_sample_s else 1 for name in names}
    samples: dict[str, list[float]] = {name: [] for name in names}
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for round_index in range(repeats):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                fn, count = variants[name], calls[name]
                synchronize()
                start = time.perf_counter()
                for _ in range(count):
                    result = fn()
                synchronize()
                elapsed = (time.perf_counter() - start) / count
                samples[name].append(result.seconds if isinstance(result, Measured) else elapsed)
            gc.collect()
    finally:
        if was_enabled:
            gc.enable()
    return {name: Timing(name, tuple(samples[name])) for name in names}


@dataclass
class Row:
    """One line of a ratio table: a variant's timing against the table's baseline.

    ``target`` is the largest acceptable ratio, or None where the row is only reported.
    """

    label: str
    timing: Timing
    baseline: Timing
    target: float | None = None

    @property
    def ratio(self) -> float:
        """Median time over the baseline's median time."""
        return self.timing.median / self.baseline.median

    @property
    def paired_ratio(self) -> float:
        """Median over rounds of this round's time over the baseline's time in the same round.

        Other processes' load changes over seconds; a ratio of two samples taken moments
        apart cancels most of it, so this is the ratio the target is judged on.
        """
        return statistics.median(t / b for t, b in zip(self.timing.samples, self.baseline.samples))

    @property
    def ratio_of_mins(self) -> float:
        """Fastest time over the baseline's fastest: the ratio least touched by other load."""
        return self.timing.min / self.baseline.min

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.paired_ratio <= self.target


@dataclass
class Table:
    """A benchmark's result: rows of ratios against named baselines, plus notes."""

    title: str
    setup: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unit: str = "ms"

    def add(self, label: str, timing: Timing, baseline: Timing, target: float | None = None) -> Row:
        row = Row(label, timing, baseline, target)
        self.rows.append(row)
        return row

    @property
    def labels(self) -> list[str]:
        return [row.label for row in self.rows]

    def row(self, label: str) -> Row:
        """The row called ``label``; KeyError if there is none."""
        for row in self.rows:
            if row.label == label:
                return row
        raise KeyError(label)

    def markdown(self) -> str:
        """The table as GitHub Markdown: title, setup, one line per row, then the notes."""
        scale = {"ms": 1e3, "us": 1e6, "s": 1.0}[self.unit]
        lines = [
            f"### {self.title}",
            "",
            self.setup,
            "",
            f"| variant | baseline | median {self.unit} | min {self.unit} | max {self.unit} "
            "| ratio (paired) | ratio (medians) | ratio (mins) | target | met |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for row in self.rows:
            timing = row.timing
            target = "" if row.target is None else f"<= {row.target:.2f}x"
            met = {None: "", True: "yes", False: "**no**"}[row.met]
            lines.append(
                f"| {row.label} | {row.baseline.name} | {timing.median * scale:.3g} | {timing.min * scale:.3g} "
                f"| {timing.max * scale:.3g} | {row.paired_ratio:.3f}x | {row.ratio:.3f}x "
                f"| {row.ratio_of_mins:.3f}x | {target} | {met} |"
            )
        if self.notes:
            lines.append("")
            lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines)


def ratio_table(
    title: str,
    setup: str,
    timings: Mapping[str, Timing],
    baseline: str,
    targets: Mapping[str, float] | None = None,
    labels: Sequence[str] | None = None,
) -> Table:
    """A table with one row per timing in ``labels`` (default: all), each against ``baseline``."""
    targets = targets or {}
    table = Table(title, setup)
    for label in labels if labels is not None else list(timings):
        table.add(label, timings[label], timings[baseline], targets.get(label))
    return table
