"""The command line of lregloss-report (and scripts/report.py): parse it, make the report, print the table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from lregloss.reporting.jobs import ReportError
from lregloss.reporting.render import console_table, unfinished_lines
from lregloss.reporting.report import REPORT_FILE, make_report

EXIT_BAD_INPUT = 2  # as lregloss-train: a folder, metric or column that does not exist
LOG_WIDTH = 1000  # characters per line where the output is not a terminal


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command's arguments; ``argv`` None reads ``sys.argv``."""
    parser = argparse.ArgumentParser(
        prog="lregloss-report",
        description="Tabulate and plot the jobs of a sweep, or single runs, from what they wrote; nothing is re-run.",
    )
    parser.add_argument(
        "folders", nargs="+", type=Path,
        help="a sweep (logs/multiruns/<time>), logs/multiruns, logs/runs, the log folder, or run folders",
    )
    parser.add_argument(
        "--metric",
        help="main metric: first column and heatmap (default: the test counterpart of the runs' monitor.metric)",
    )
    parser.add_argument("--output", type=Path, help="folder for report.md and the PNGs (default: <folder>/report)")
    parser.add_argument("--sort", metavar="COLUMN", help="order the rows by this column (e.g. test/acc, loss)")
    parser.add_argument("--descending", action="store_true", help="with --sort: largest first")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the command; the exit status: 0 report written, 2 bad input (named on stderr in one line)."""
    arguments = parse_arguments(argv)
    try:
        report = make_report(
            arguments.folders, arguments.metric, arguments.output, arguments.sort, arguments.descending
        )
    except ReportError as error:
        print(f"Error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    console = Console()
    if not console.is_terminal:  # a log file or a pipe: the whole table, however wide, rather than a cut one
        console = Console(width=LOG_WIDTH)
    console.print(console_table(report.table, report.title, console))
    for line in unfinished_lines(report.table):
        console.print(line, style="red", markup=False, highlight=False)
    for note in report.notes:
        console.print(note, markup=False, highlight=False)
    written = [REPORT_FILE, *report.plots]
    console.print(f"wrote {', '.join(written)} to {report.output}", markup=False, highlight=False)
    return 0
