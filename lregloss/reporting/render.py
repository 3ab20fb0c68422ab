"""The report's table as text: a Rich table for the console, a GitHub pipe table for report.md."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from lregloss.reporting.table import JOB, STATUS, ReportTable, counterpart, format_value, settings_label


def is_numeric(table: ReportTable, column: str) -> bool:
    """True where every value of ``column`` is a number or missing: such columns are right-aligned."""
    return all(isinstance(row[column], (int, float)) or row[column] is None for row in table.rows)


def unfinished_lines(table: ReportTable) -> list[str]:
    """One line per job without results: its name, its varied settings, and why."""
    lines = []
    for row in table.rows:
        if row[JOB] in table.unfinished:
            label = f"job {row[JOB]}" + (f" ({settings_label(table, row)})" if table.varied else "")
            lines.append(f"{label}: {row[STATUS]}: {table.unfinished[row[JOB]]}")
    return lines


def rich_table(table: ReportTable, columns: list[str], title: str, caption: str | None = None) -> Table:
    """``columns`` of ``table`` as a Rich table; jobs without results in red."""
    shown = Table(title=title, caption=caption)
    cells = [[format_value(row[column]) for column in columns] for row in table.rows]
    for index, column in enumerate(columns):
        widest = max((len(line[index]) for line in cells), default=0)
        # values keep their width; a narrow terminal folds the long headers (weights/zero_fraction) instead
        justify = "right" if is_numeric(table, column) else "left"
        shown.add_column(column, justify=justify, min_width=widest, overflow="fold")
    for row, line in zip(table.rows, cells):
        shown.add_row(*line, style="red" if row[JOB] in table.unfinished else None)
    return shown


def console_table(table: ReportTable, title: str, console: Console) -> Table:
    """The whole table where it fits ``console``'s width; else without the metrics past the main pair."""
    whole = rich_table(table, table.columns, title)
    unbounded = console.options.update_width(sys.maxsize)  # measure the width it wants, not the one it gets
    if console.measure(whole, options=unbounded).maximum <= console.width:
        return whole
    main_pair = {table.metrics[0], counterpart(table.metrics[0])} if table.metrics else set()
    hidden = [column for column in table.metrics if column not in main_pair]
    columns = [column for column in table.columns if column not in hidden]
    caption = f"left out for width, in report.md: {', '.join(hidden)}"
    return rich_table(table, columns, title, caption)


def markdown_cell(value: object) -> str:
    """A cell's text with the pipe escaped, so that it cannot split the row."""
    return format_value(value).replace("|", "\\|")


def markdown_table(table: ReportTable) -> str:
    """A GitHub pipe table, numeric columns right-aligned."""
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---:" if is_numeric(table, column) else "---" for column in table.columns) + "|"
    rows = ["| " + " | ".join(markdown_cell(row[column]) for column in table.columns) + " |" for row in table.rows]
    return "\n".join([header, rule, *rows])


def markdown_report(table: ReportTable, title: str, metric: str, plots: list[str], notes: list[str]) -> str:
    """report.md: a summary line, the table, the jobs without results, the plots and any notes on them."""
    unfinished = unfinished_lines(table)
    lines = [
        f"# Report: {title}",
        "",
        f"{len(table.rows)} jobs, {len(table.rows) - len(unfinished)} with results; main metric `{metric}`.",
        "",
        markdown_table(table),
    ]
    if unfinished:
        lines += ["", "## Failed jobs", "", *(f"- {line}" for line in unfinished)]
    if plots or notes:
        lines += ["", "## Plots", ""]
        for plot in plots:
            lines += [f"![{plot}]({plot})", ""]
        lines += [f"- {note}" for note in notes]
    return "\n".join(lines).rstrip() + "\n"
