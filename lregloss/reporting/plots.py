"""The report's plots: the main metric over two varied settings, and each job's validation curve."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state
from matplotlib.ticker import MaxNLocator

from lregloss.reporting.table import ReportTable

HEATMAP = "heatmap.png"
CURVES = "curves.png"


@dataclass(frozen=True)
class MetricGrid:
    """A metric over the values of two settings.

    Args:
        row_values: the first setting's values, in the jobs' order.
        column_values: the second setting's values, in the jobs' order.
        values: the mean metric of the jobs in each cell; NaN where none has it.
        jobs: how many jobs fall in each cell, with the metric or without.
    """

    row_values: list[str]
    column_values: list[str]
    values: list[list[float]]
    jobs: list[list[int]]


def metric_grid(table: ReportTable, row_key: str, column_key: str, metric: str) -> MetricGrid:
    """``metric`` of each job placed by its ``row_key`` and ``column_key`` settings; jobs sharing a cell averaged."""
    row_values = list(dict.fromkeys(row[row_key] for row in table.rows))
    column_values = list(dict.fromkeys(row[column_key] for row in table.rows))
    found: dict[tuple[int, int], list[float]] = {}
    jobs = [[0] * len(column_values) for _ in row_values]
    for row in table.rows:
        cell = row_values.index(row[row_key]), column_values.index(row[column_key])
        jobs[cell[0]][cell[1]] += 1
        if row[metric] is not None:
            found.setdefault(cell, []).append(row[metric])
    values = [
        [float(np.mean(found[i, j])) if (i, j) in found else math.nan for j in range(len(column_values))]
        for i in range(len(row_values))
    ]
    return MetricGrid(row_values, column_values, values, jobs)


def plot_heatmap(grid: MetricGrid, row_key: str, column_key: str, title: str, path: Path) -> None:
    """Write ``grid`` as a heatmap, each cell labelled; a cell without a value blank, ``no result`` where a job ran."""
    figure = Figure(
        figsize=(max(4.0, 1.3 * len(grid.column_values) + 2.5), max(3.0, 0.6 * len(grid.row_values) + 1.8)),
        layout="constrained",
    )
    axes = figure.subplots()
    values = np.ma.masked_invalid(np.array(grid.values, dtype=float))
    image = axes.imshow(values, cmap="viridis", aspect="auto")
    figure.colorbar(image, ax=axes)
    axes.set_xticks(range(len(grid.column_values)), labels=grid.column_values)
    axes.set_yticks(range(len(grid.row_values)), labels=grid.row_values)
    axes.set_xlabel(column_key)
    axes.set_ylabel(row_key)
    axes.set_title(title)
    for i, row in enumerate(grid.values):
        for j, value in enumerate(row):
            if not math.isnan(value):
                color = "white" if image.norm(value) < 0.5 else "black"  # readable on viridis' dark and light ends
                axes.text(j, i, f"{value:.4g}", ha="center", va="center", color=color)
            elif grid.jobs[i][j]:
                axes.text(j, i, "no result", ha="center", va="center", color="red")
    figure.savefig(path, dpi=120)


def plot_curves(curves: list[tuple[str, list[tuple[int, float]]]], metric: str, path: Path) -> None:
    """Write one line per job, ``metric`` against epochs completed, labelled by the job's varied settings."""
    figure = Figure(figsize=(8.0, 4.5), layout="constrained")
    axes = figure.subplots()
    for label, points in curves:
        if points:
            epochs, values = zip(*points)
            axes.plot(epochs, values, marker="o", label=label)
    last_epoch = max(epoch for _, points in curves for epoch, _ in points)
    axes.set_xlim(0.5, last_epoch + 0.5)  # whole epochs only, even for a single one
    axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    axes.set_xlabel("epoch")
    axes.set_ylabel(metric)
    axes.set_title(f"{metric} during fitting")
    figure.legend(loc="outside right upper", fontsize="small")
    figure.savefig(path, dpi=120)


def write_plots(
    table: ReportTable,
    metric: str,
    curves: list[tuple[str, list[tuple[int, float]]]],
    metric_of_curves: str,
    output: Path,
) -> tuple[list[str], list[str]]:
    """Write heatmap.png and curves.png into ``output`` where there is something to draw.

    Args:
        table: the report's table; the heatmap is over its first two varied settings.
        metric: the metric of the heatmap.
        curves: each job's label (its varied settings) and (epoch, value) points; labels may repeat.
        metric_of_curves: the validation metric of ``curves``.
        output: the folder to write into.

    Returns:
        The file names written, and one note per plot left out, saying why.
    """
    written, notes = [], []
    if len(table.varied) < 2:
        notes.append(f"{HEATMAP} left out: it needs 2 varied settings, the jobs vary {len(table.varied)}")
    else:
        row_key, column_key = table.varied[:2]
        grid = metric_grid(table, row_key, column_key, metric)
        if all(math.isnan(value) for row in grid.values for value in row):
            notes.append(f"{HEATMAP} left out: no job reported {metric}")
        else:
            shared = any(count > 1 for row in grid.jobs for count in row)
            title = metric + (f" (mean over {', '.join(table.varied[2:])})" if shared else "")
            plot_heatmap(grid, row_key, column_key, title, output / HEATMAP)
            written.append(HEATMAP)
    if any(points for _, points in curves):
        plot_curves(curves, metric_of_curves, output / CURVES)
        written.append(CURVES)
    else:
        notes.append(f"{CURVES} left out: no job logged {metric_of_curves} to TensorBoard")
    return written, notes
