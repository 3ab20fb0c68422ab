"""Hierarchical softmax costs O(log2 C) per sample, full softmax O(C): training-step time against C.

One training step (forward + backward from features h, parameter gradients set to None
first) of each output layer at several class counts C, timed with the benchmarks' own
layers and timer (`lregloss.benchmarking.output_layers`, `lregloss.benchmarking.timing`): interleaved rounds, medians,
ratios of times taken in the same round. Uniform labels; hsoftmax on a balanced tree. A third
variant, hsoftmax with its node vectors frozen, times the O(N log2 C D) work alone: the step
with them trainable also allocates and fills their dense (C-1, D) gradient.
"""

from __future__ import annotations

import math
import warnings

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
ROUNDS, BIG_ROUNDS, BIG = 7, 5, 30_000  # timed rounds; fewer from C = BIG on, where a softmax step takes seconds
PLOT = "hsoftmax_scaling.png"


def step_timings(num_classes: int, features: int, batch: int, rounds: int) -> dict[str, Timing]:
    """Step times at ``num_classes`` of full softmax, hsoftmax and hsoftmax with frozen node vectors, interleaved."""
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
    # short steps are grouped into samples of >= 20 ms, as the benchmark does; long ones timed one by one
    return time_variants(chosen, repeats=rounds, warmup=1, min_sample_s=0.0 if num_classes >= BIG else 0.02)


def run(settings: StudySettings, console: Console) -> StudyOutcome:
    """Time the three steps at every C; tabulate and plot the times on log-log axes."""
    features, batch = (TINY_FEATURES, TINY_BATCH) if settings.tiny else (FEATURES, BATCH)
    rows: list[Row] = []
    frozen: list[Timing] = []
    for num_classes in TINY_CLASS_COUNTS if settings.tiny else CLASS_COUNTS:
        rounds = 2 if settings.tiny else (BIG_ROUNDS if num_classes >= BIG else ROUNDS)
        timings = step_timings(num_classes, features, batch, rounds)
        rows.append(Row(str(num_classes), timings[HSOFTMAX], timings[SOFTMAX]))
        frozen.append(timings[FROZEN])
        console.print(f"  hsoftmax C={num_classes}: softmax {timings[SOFTMAX].median * 1e3:.3g} ms, hsoftmax "
                      f"{timings[HSOFTMAX].median * 1e3:.3g} ms, frozen nodes {timings[FROZEN].median * 1e3:.3g} ms",
                      highlight=False)  # fmt: skip
    classes = [int(row.label) for row in rows]
    plot_step_times(classes, {"full softmax": [row.baseline for row in rows], "hsoftmax": [row.timing for row in rows],
                              "hsoftmax, node vectors frozen": frozen}, settings.output / PLOT)  # fmt: skip

    first, last = rows[0], rows[-1]
    crossover = next((c for c, row in zip(classes, rows) if row.paired_ratio < 1), None)
    headline = (
        f"from C = {classes[0]} to {classes[-1]} (x{classes[-1] / classes[0]:g}; log2 C x"
        f"{math.log2(classes[-1]) / math.log2(classes[0]):.2f}) a softmax step grows "
        f"x{last.baseline.median / first.baseline.median:.1f}, "
        f"an hsoftmax step x{last.timing.median / first.timing.median:.1f} "
        f"(x{frozen[-1].median / frozen[0].median:.1f} with its node vectors frozen); "
        + (f"hsoftmax is faster from C = {crossover} on" if crossover else "hsoftmax is never faster")
    )
    rounds = sorted({len(row.timing.samples) for row in rows}, reverse=True)
    intro = (
        f"D = {features} features, batch {batch}, uniform labels, hsoftmax on a balanced tree; the median over "
        f"{' or '.join(map(str, rounds))} interleaved rounds (fewer for the largest C), min-max in brackets. The ratio "
        "is the median over rounds of hsoftmax's time over softmax's in the same round. \"Frozen nodes\": hsoftmax "
        "with its node vectors frozen, so the step computes the N log2 C path logits and their gradient with "
        "respect to h, without the dense (C - 1) x D gradient of the node vectors that a trainable step "
        "allocates and fills."
    )
    header = ["C", "log2 C", "softmax ms", "hsoftmax ms", "hsoftmax / softmax", "frozen nodes ms",
              "frozen nodes us per log2 C"]  # fmt: skip
    table = markdown_table(header, [
        [f"{c:,}", f"{math.log2(c):.1f}", milliseconds(row.baseline), milliseconds(row.timing),
         f"{row.paired_ratio:.3f}", milliseconds(fixed), f"{fixed.median * 1e6 / math.log2(c):.0f}"]
        for c, row, fixed in zip(classes, rows, frozen)
    ])  # fmt: skip
    markdown = "\n\n".join([intro, table, headline + ".", f"![Training-step time against C]({PLOT})"])
    return StudyOutcome("hsoftmax", "Hierarchical softmax costs log2 C", markdown, [PLOT], [headline])


def milliseconds(timing: Timing) -> str:
    """``12.3 [11.9-14.0]``: the median and the range of the samples, in ms."""
    return f"{timing.median * 1e3:.3g} [{timing.min * 1e3:.3g}-{timing.max * 1e3:.3g}]"
