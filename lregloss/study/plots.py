"""The studies' figures, written with matplotlib's object API (no pyplot: no GUI backend, no global state)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from lregloss.benchmarking.timing import Timing
from lregloss.study.calibration import Reliability

DPI = 100  # a 3-panel figure stays near 100 KB


def save(figure: Figure, path: Path) -> None:
    """Write ``figure`` as a PNG at ``path``, making its folder where missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)


def plot_sparsity(
    sweeps: dict[str, Sequence[tuple[float, float, float]]],
    accuracy_floor: float,
    l1_weight: torch.Tensor,
    l2_weight: torch.Tensor,
    path: Path,
) -> None:
    """Validation accuracy and share of exact zeros against strength per penalty; histograms of the picks' weights.

    Args:
        sweeps: family -> (strength, val acc, zero fraction) per swept strength.
        accuracy_floor: the matched-accuracy line (L2's best validation accuracy - 1 point).
        l1_weight: the L1 pick's weights.
        l2_weight: the L2 pick's weights.
        path: the PNG to write.
    """
    figure = Figure(figsize=(13.0, 3.8), layout="constrained")
    accuracy, zeros, weights = figure.subplots(1, 3)
    for family, points in sweeps.items():
        strengths, accuracies, fractions = zip(*sorted(points))
        accuracy.plot(strengths, accuracies, marker="o", label=family)
        zeros.plot(strengths, 100 * np.array(fractions), marker="o", label=family)
    accuracy.axhline(accuracy_floor, color="grey", linestyle="--", label="L2 best - 1 point")
    accuracy.set(xscale="log", xlabel="strength (elastic: its L1 strength)", ylabel="validation accuracy",
                 title="accuracy (seed 0)")  # fmt: skip
    zeros.set(xscale="log", xlabel="strength (elastic: its L1 strength)", ylabel="% weights exactly 0",
              title="sparsity (seed 0)", ylim=(-3, 103))  # fmt: skip
    accuracy.legend()
    zeros.legend()
    bins = np.linspace(-1, 1, 81) * float(max(l1_weight.abs().max(), l2_weight.abs().max()))
    for name, weight in (("L2", l2_weight), ("L1", l1_weight)):
        share = float((weight == 0).float().mean())
        weights.hist(weight.flatten().numpy(), bins=bins, alpha=0.6, label=f"{name} pick: {share:.1%} exactly 0")
    weights.set(yscale="log", xlabel="weight", ylabel="weights (log scale)", title="weights of the picks (seed 0)")
    weights.legend()
    save(figure, path)


def plot_reliability(diagrams: dict[str, Reliability], path: Path, distributions: str = "") -> None:
    """Accuracy against confidence per loss (the diagonal is perfect calibration), and how confident each is.

    ``distributions`` says which were binned (``at each run's fitted T``), in the title.
    """
    figure = Figure(figsize=(10.0, 4.2), layout="constrained")
    curve, spread = figure.subplots(1, 2)
    curve.plot([0, 1], [0, 1], color="grey", linestyle="--", label="calibrated")
    for name, diagram in diagrams.items():
        curve.plot(diagram.confidence, diagram.accuracy, marker="o", label=f"{name} (ECE {diagram.ece:.3f})")
        spread.plot(diagram.confidence, np.array(diagram.count) / sum(diagram.count), marker="o", label=name)
    curve.set(xlabel="confidence (probability of the most probable level)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
              title=f"reliability (test, pooled over seeds{', ' + distributions if distributions else ''})")  # fmt: skip
    spread.set(xlabel="confidence (probability of the most probable level)", ylabel="share of test predictions",
               xlim=(0, 1), title="confidence histogram")  # fmt: skip
    curve.legend()
    spread.legend()
    save(figure, path)


def plot_attribute_f1(f1: dict[str, dict[str, Sequence[float]]], path: Path) -> None:
    """Grouped bars: each attribute's test F1 per loss, mean over seeds with the seeds' std as error bars."""
    losses = list(f1)
    attributes = list(f1[losses[0]])
    figure = Figure(figsize=(9.0, 4.0), layout="constrained")
    axes = figure.subplots()
    width = 0.8 / len(losses)
    positions = np.arange(len(attributes))
    for index, loss in enumerate(losses):
        values = [f1[loss][attribute] for attribute in attributes]
        means = [float(np.mean(v)) for v in values]
        stds = [float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for v in values]
        axes.bar(positions + (index - (len(losses) - 1) / 2) * width, means, width, yerr=stds, capsize=3, label=loss)
    axes.set_xticks(positions, labels=attributes)
    axes.set(ylabel="test F1", ylim=(0, 1), title="test F1 per attribute (mean ± std over seeds)")
    axes.legend(loc="lower right")
    save(figure, path)


def plot_step_times(classes: Sequence[int], timings: dict[str, Sequence[Timing]], path: Path) -> None:
    """Log-log step time against C per variant, min-max as error bars, with C and log2 C slopes for the eye.

    The C slope goes through the first variant's time at the largest C, the log2 C slope through the
    last variant's.
    """
    figure = Figure(figsize=(6.5, 4.5), layout="constrained")
    axes = figure.subplots()
    c = np.array(classes, dtype=float)
    for name, series in timings.items():
        median = np.array([t.median for t in series]) * 1e3
        spread = [median - np.array([t.min for t in series]) * 1e3, np.array([t.max for t in series]) * 1e3 - median]
        axes.errorbar(c, median, yerr=spread, marker="o", capsize=3, label=name)
    first, last = list(timings.values())[0], list(timings.values())[-1]
    axes.plot(c, first[-1].median * 1e3 * c / c[-1], color="grey", linestyle="--", label="proportional to C")
    axes.plot(c, last[-1].median * 1e3 * np.log2(c) / np.log2(c[-1]), color="grey", linestyle=":",
              label="proportional to log2 C")  # fmt: skip
    axes.set(xscale="log", yscale="log", xlabel="classes C", ylabel="training step (forward + backward), ms",
             title="output layer step time against C")  # fmt: skip
    axes.legend()
    save(figure, path)
