"""Numbers of a study as text: mean +- std over seeds, Markdown tables."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1 in the denominator; 0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def format_mean_std(values: Sequence[float], digits: int = 3) -> str:
    """``0.681 ± 0.004``; a single value alone."""
    mean, std = mean_std(values)
    return f"{mean:.{digits}f}" if len(values) == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]], numeric_from: int = 1) -> str:
    """A GitHub pipe table; columns from ``numeric_from`` on are right-aligned."""
    rule = ["---" if i < numeric_from else "---:" for i in range(len(header))]
    lines = [header, rule, *[[str(cell).replace("|", "\\|") for cell in row] for row in rows]]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)
