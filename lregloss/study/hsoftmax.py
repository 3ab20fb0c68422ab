"""Hierarchical softmax costs O(log2 C) per sample, full softmax O(C): training-step time against C.

One training step (forward + backward from features h, parameter gradients set to None
first) of each output layer at several class counts C, timed with the benchmarks' own
layers and timer (`lregloss.benchmarking.output_layers`, `lregloss.benchmarking.timing`): interleaved rounds, medians,
ratios of times taken in the same round. Uniform labels; hsoftmax on a balanced tree. A third
variant, hsoftmax with its node vectors frozen, times the O(N log2 C D) work alone: the step
with them trainable also allocates and fills their dense (C-1, D) gradient. A fourth,
hsoftmax with sparse node gradients (``sparse=True``) followed by a plain SGD step, is the
whole training step at O(N log2 C D): its gradient and update touch only the nodes on the
batch's paths. The features h are a leaf (N, D) tensor, so no variant pays an O(C) cost on
the input side.
"""

from __future__ import annotations

import math
import resource
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from rich.console import Console

from lregloss.benchmarking.output_layers import (
    BATCH,
    FEATURES,
    TINY_BATCH,
    TINY_FEATURES,
    OutputLayers,
    training_variants,
    zipf_labels,
)
from lregloss.benchmarking.timing import Row, Timing, time_variants
from lregloss.losses import HierarchicalSoftmax
from lregloss.study.plots import plot_step_times
from lregloss.study.settings import StudyOutcome, StudySettings
from lregloss.study.summary import markdown_table

CLASS_COUNTS = (100, 300, 1_000, 3_000, 10_000, 30_000, 100_000)
TINY_CLASS_COUNTS = (10, 40)
SOFTMAX, HSOFTMAX = "full softmax, uniform", "hsoftmax, uniform"  # lregloss.benchmarking.output_layers's variant names
FROZEN = "hsoftmax, node vectors frozen"
SPARSE = "hsoftmax, sparse gradients + SGD step"
SPARSE_LR = 1e-3  # any rate times the same; a small one keeps the node vectors near their start
TARGET = 1.5  # the sparse step's growth may exceed log2 C's by this factor
ROUNDS, BIG_ROUNDS, BIG = 7, 5, 30_000  # timed rounds; fewer from C = BIG on, where a softmax step takes seconds
PLOT = "hsoftmax_scaling.png"


@dataclass
class PageFaults:
    """Minor page faults of this process during the calls of the functions ``counting`` wraps."""

    faults: int = 0
    calls: int = 0

    def counting(self, fn: Callable[[], None]) -> Callable[[], None]:
        """``fn``, counting its page faults here."""

        def run() -> None:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            fn()
            self.faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
            self.calls += 1

        return run

    @property
    def per_call(self) -> float:
        """Mean faults per call, 0 before any."""
        return self.faults / max(self.calls, 1)


def step_timings(num_classes: int, features: int, batch: int, rounds: int) -> tuple[dict[str, Timing], float]:
    """Step times at ``num_classes`` of full softmax, hsoftmax, frozen and sparse hsoftmax, interleaved.

    Returns:
        (variant name -> its timing, minor page faults per sparse step).
    """
    generator = torch.Generator().manual_seed(num_classes)
    labels = {
        "uniform": torch.randint(0, num_classes, (batch,), generator=generator),
        "zipf": zipf_labels(num_classes, batch, generator),  # training_variants builds a Huffman variant from it
    }
    counts = 1.0 / torch.arange(1, num_classes + 1, dtype=torch.float64)
    with warnings.catch_warnings():  # the adaptive softmax it also builds has empty clusters at toy C
        warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
        layers = OutputLayers(features, num_classes, counts, generator)
    h = torch.randn(batch, features, generator=generator).requires_grad_(True)
    variants = training_variants(layers, h, labels)
    chosen = {name: variants[name] for name in (SOFTMAX, HSOFTMAX)}
    frozen = HierarchicalSoftmax(features, num_classes).requires_grad_(False)
    frozen.load_state_dict(layers.hsoftmax.state_dict())

    def frozen_step() -> None:
        h.grad = None
        frozen(h, labels["uniform"]).backward()

    chosen[FROZEN] = frozen_step
    faults = PageFaults()
    chosen[SPARSE] = faults.counting(sparse_sgd_step(layers.hsoftmax, h, labels["uniform"]))
    # short steps are grouped into samples of >= 20 ms, as the benchmark does; long ones timed one by one
    min_sample_s = 0.0 if num_classes >= BIG else 0.02
    return time_variants(chosen, repeats=rounds, warmup=1, min_sample_s=min_sample_s), faults.per_call


def sparse_sgd_step(dense: HierarchicalSoftmax, h: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    """A training step of a ``sparse=True`` copy of ``dense``: forward, backward, SGD update of the rows used."""
    sparse = HierarchicalSoftmax(dense.in_features, dense.num_classes, sparse=True)
    sparse.load_state_dict(dense.state_dict())
    optimizer = torch.optim.SGD(sparse.parameters(), lr=SPARSE_LR)

    def step() -> None:
        h.grad = None
        optimizer.zero_grad(set_to_none=True)
        sparse(h, labels).backward()
        optimizer.step()

    return step


def run(settings: StudySettings, console: Console) -> StudyOutcome:
    """Time the four steps at every C; tabulate and plot the times on log-log axes."""
    features, batch = (TINY_FEATURES, TINY_BATCH) if settings.tiny else (FEATURES, BATCH)
    rows: list[Row] = []
    frozen: list[Timing] = []
    sparse: list[Timing] = []
    faults: list[float] = []
    for num_classes in TINY_CLASS_COUNTS if settings.tiny else CLASS_COUNTS:
        rounds = 2 if settings.tiny else (BIG_ROUNDS if num_classes >= BIG else ROUNDS)
        timings, sparse_faults = step_timings(num_classes, features, batch, rounds)
        rows.append(Row(str(num_classes), timings[HSOFTMAX], timings[SOFTMAX]))
        frozen.append(timings[FROZEN])
        sparse.append(timings[SPARSE])
        faults.append(sparse_faults)
        console.print(f"  hsoftmax C={num_classes}: softmax {timings[SOFTMAX].median * 1e3:.3g} ms, hsoftmax "
                      f"{timings[HSOFTMAX].median * 1e3:.3g} ms, frozen nodes {timings[FROZEN].median * 1e3:.3g} ms, "
                      f"sparse + SGD {timings[SPARSE].median * 1e3:.3g} ms", highlight=False)  # fmt: skip
    classes = [int(row.label) for row in rows]
    plot_step_times(classes, {"full softmax": [row.baseline for row in rows], "hsoftmax": [row.timing for row in rows],
                              "hsoftmax, node vectors frozen": frozen, SPARSE: sparse},
                    settings.output / PLOT)  # fmt: skip

    first, last = rows[0], rows[-1]
    log_growth = math.log2(classes[-1]) / math.log2(classes[0])
    sparse_growth = sparse[-1].median / sparse[0].median
    crossover = next((c for c, row in zip(classes, rows) if row.paired_ratio < 1), None)
    headline = (
        f"from C = {classes[0]} to {classes[-1]} (x{classes[-1] / classes[0]:g}; log2 C x"
        f"{log_growth:.2f}) a softmax step grows "
        f"x{last.baseline.median / first.baseline.median:.1f}, "
        f"an hsoftmax step x{last.timing.median / first.timing.median:.1f} "
        f"(x{frozen[-1].median / frozen[0].median:.1f} with its node vectors frozen); "
        + (f"hsoftmax is faster from C = {crossover} on" if crossover else "hsoftmax is never faster")
    )
    sparse_headline = (
        f"with sparse node gradients and its SGD update an hsoftmax step grows x{sparse_growth:.2f}, "
        f"{sparse_growth / log_growth:.2f} times log2 C's growth (target: at most {TARGET:g} times, "
        f"x{TARGET * log_growth:.2f}): {'met' if sparse_growth <= TARGET * log_growth else 'missed'}, with "
        f"{faults[0]:.0f} minor page faults per step at C = {classes[0]} and {faults[-1]:.0f} at C = {classes[-1]} "
        "(faults slow a step: more of them at the small C flatter the growth, more at the large C inflate it)"
    )
    rounds = sorted({len(row.timing.samples) for row in rows}, reverse=True)
    intro = (
        f"D = {features} features, batch {batch}, uniform labels, hsoftmax on a balanced tree; the median over "
        f"{' or '.join(map(str, rounds))} interleaved rounds (fewer for the largest C), min-max in brackets. The ratio "
        "is the median over rounds of hsoftmax's time over softmax's in the same round. \"Frozen nodes\": hsoftmax "
        "with its node vectors frozen, so the step computes the N log2 C path logits and their gradient with "
        "respect to h, without the dense (C - 1) x D gradient of the node vectors that a trainable step "
        "allocates and fills. \"Sparse + SGD\": hsoftmax with sparse=True, whose node gradients are sparse "
        "tensors over the N log2 C rows on the batch's paths, then an SGD step (lr "
        f"{SPARSE_LR:g}, no momentum) that updates only those rows: the whole training step, optimizer included, "
        "where the other columns time forward and backward only. \"Page faults\": the minor page faults per sparse "
        "step, over all its calls. Where glibc's allocator hands a step's (N, L, D) temporaries (L = ceil(log2 C) "
        "path nodes, 18 MB at C = 100,000) back to the system, the next step maps them in again, a cost outside "
        "the operation count that depends on what ran before and varies from run to run; with "
        "MALLOC_TRIM_THRESHOLD_=4294967295 MALLOC_MMAP_THRESHOLD_=4294967295 in the environment it keeps them, "
        "and every variant is timed without such faults."
    )
    header = ["C", "log2 C", "softmax ms", "hsoftmax ms", "hsoftmax / softmax", "frozen nodes ms",
              "frozen nodes us per log2 C", "sparse + SGD ms", "sparse + SGD us per log2 C",
              "sparse + SGD page faults"]  # fmt: skip
    table = markdown_table(header, [
        [f"{c:,}", f"{math.log2(c):.1f}", milliseconds(row.baseline), milliseconds(row.timing),
         f"{row.paired_ratio:.3f}", milliseconds(fixed), f"{fixed.median * 1e6 / math.log2(c):.0f}",
         milliseconds(step), f"{step.median * 1e6 / math.log2(c):.0f}", f"{fault:.0f}"]
        for c, row, fixed, step, fault in zip(classes, rows, frozen, sparse, faults)
    ])  # fmt: skip
    markdown = "\n\n".join(
        [intro, table, headline + ".", sparse_headline + ".", f"![Training-step time against C]({PLOT})"]
    )
    return StudyOutcome("hsoftmax", "Hierarchical softmax costs log2 C", markdown, [PLOT], [headline, sparse_headline])


def milliseconds(timing: Timing) -> str:
    """``12.3 [11.9-14.0]``: the median and the range of the samples, in ms."""
    return f"{timing.median * 1e3:.3g} [{timing.min * 1e3:.3g}-{timing.max * 1e3:.3g}]"
