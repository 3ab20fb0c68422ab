"""Turn the jobs below some folders into a table, report.md, heatmap.png and curves.png."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lregloss.reporting.jobs import ReportError
from lregloss.reporting.events import read_job_events
from lregloss.reporting.jobs import collect_jobs
from lregloss.reporting.plots import write_plots
from lregloss.reporting.render import markdown_report
from lregloss.reporting.table import (
    EPOCHS,
    JOB,
    ReportTable,
    build_table,
    main_metric,
    settings_label,
    sorted_table,
    validation_metric,
)
from lregloss.validation import writable_folder_problem

REPORT_FILE = "report.md"


@dataclass(frozen=True)
class Report:
    """What `make_report` wrote, for the console.

    Args:
        table: the table, sorted as asked.
        title: the folders it covers.
        metric: the main metric.
        output: the folder holding report.md and the plots.
        plots: the plot files written there.
        notes: one line per plot left out, saying why.
    """

    table: ReportTable
    title: str
    metric: str
    output: Path
    plots: list[str]
    notes: list[str]


def make_report(
    folders: list[Path],
    metric: str | None = None,
    output: Path | None = None,
    sort: str | None = None,
    descending: bool = False,
) -> Report:
    """Read every job below ``folders`` and write report.md and the plots; nothing is re-run.

    Args:
        folders: sweep folders, ``logs/runs``, ``logs/multiruns``, run folders.
        metric: the main metric (heatmap, first column); default: the test counterpart of the
            runs' ``monitor.metric``.
        output: where to write; default ``<first folder>/report``.
        sort: the column to order rows by; default the jobs' order.
        descending: order ``sort`` from the largest value.

    Raises:
        ReportError: a folder is missing or holds no job, ``metric`` or ``sort`` names nothing
            the jobs reported, or ``output`` cannot be written.
    """
    jobs = collect_jobs(folders)
    metric = main_metric(jobs, metric)
    metric_of_curves = validation_metric(metric)
    events = {job.name: read_job_events(job.folder, metric_of_curves, (job.results or {}).get(EPOCHS)) for job in jobs}
    table = build_table(jobs, metric, {name: job_events.zero_fraction for name, job_events in events.items()})
    shown = sorted_table(table, sort, descending) if sort else table
    output = output or folders[0] / "report"
    problem = writable_folder_problem(output)
    if problem:
        raise ReportError(f"--output {output}: {problem}; pass --output <a writable folder>")
    output.mkdir(parents=True, exist_ok=True)
    curves = [(settings_label(table, row), events[row[JOB]].curve) for row in table.rows]
    plots, notes = write_plots(table, metric, curves, metric_of_curves, output)  # axes in the jobs' order
    title = ", ".join(str(folder) for folder in folders)
    (output / REPORT_FILE).write_text(markdown_report(shown, title, metric, plots, notes))
    return Report(shown, title, metric, output, plots, notes)
