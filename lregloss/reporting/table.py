"""The report's table: one row per job, the settings that varied, the final metrics, sparsity and time."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from omegaconf import OmegaConf

from lregloss.app.hydra_callbacks import ERROR_FILE
from lregloss.reporting.events import ZERO_FRACTION
from lregloss.reporting.jobs import FAILED, OK, RESULTS_FILE, Job, ReportError, natural_key, parse_override

JOB = "job"
STATUS = "status"
EPOCHS = "epochs"
WALL_TIME = "wall_time_s"


@dataclass(frozen=True)
class ReportTable:
    """Rows of raw values (None where a job has none) under named columns.

    Args:
        columns: ``job``, the varied settings, ``status``, the metrics, the zero fraction, epochs and wall time.
        varied: the settings that differ between jobs, as their overrides name them (``loss``, ``reg.strength``).
        metrics: the metric columns, the main metric first.
        rows: one dict per job, keyed by column.
        unfinished: why each job without results has none (its error line), by job name.
    """

    columns: list[str]
    varied: list[str]
    metrics: list[str]
    rows: list[dict[str, Any]]
    unfinished: dict[str, str]


def counterpart(metric: str) -> str:
    """``val/acc`` for ``test/acc`` and the other way round; other names unchanged."""
    split, _, name = metric.partition("/")
    return {"val": f"test/{name}", "test": f"val/{name}"}.get(split, metric)


def validation_metric(metric: str) -> str:
    """The validation metric whose curve goes with ``metric`` (``val/acc`` for ``test/acc``)."""
    return counterpart(metric) if metric.startswith("test/") else metric


def reported_metrics(jobs: list[Job]) -> set[str]:
    """Every ``val/*`` and ``test/*`` metric in any job's results.json."""
    return {key for job in jobs for key in job.results or {} if key.startswith(("val/", "test/"))}


def main_metric(jobs: list[Job], requested: str | None = None) -> str:
    """The metric the report ranks by: ``requested``, else the test counterpart of the runs' ``monitor.metric``.

    Where no job has that test metric (``test=false``), the monitored validation metric itself.

    Raises:
        ReportError: ``requested`` is reported by no job, or no config names a monitored metric.
    """
    reported = reported_metrics(jobs)
    if requested is not None:
        if reported and requested not in reported:
            raise ReportError(f"--metric {requested}: no job reported it; pass one of {', '.join(sorted(reported))}")
        return requested
    monitored = next(filter(None, (OmegaConf.select(job.config, "monitor.metric") for job in jobs)), None)
    if monitored is None:
        raise ReportError("no job's config.yaml names monitor.metric; pass --metric <name>, e.g. --metric test/acc")
    tested = counterpart(monitored) if monitored.startswith("val/") else monitored
    return monitored if monitored in reported and tested not in reported else tested


def metric_columns(jobs: list[Job], metric: str) -> list[str]:
    """Every reported metric: ``metric`` and its counterpart first, then the other test, then validation ones."""
    reported = reported_metrics(jobs)
    first = [name for name in dict.fromkeys([metric, counterpart(metric)]) if name in reported]
    rest = sorted(reported - set(first), key=lambda name: (not name.startswith("test/"), name))
    return first + rest


def varied_keys(jobs: list[Job]) -> list[str]:
    """The override keys whose value differs between jobs, in the order the overrides give them."""
    keys = dict.fromkeys(parse_override(override)[0] for job in jobs for override in job.overrides)
    return [key for key in keys if len({job.setting(key) for job in jobs}) > 1]


def build_table(jobs: list[Job], metric: str, zero_fractions: dict[str, float | None]) -> ReportTable:
    """One row per job, in the jobs' order; ``zero_fractions`` by job name, where the job logged one."""
    varied = varied_keys(jobs)
    metrics = metric_columns(jobs, metric)
    rows = []
    for job in jobs:
        results = job.results or {}
        row: dict[str, Any] = {JOB: job.name, **{key: job.setting(key) for key in varied}, STATUS: job.status}
        row.update({name: results.get(name) for name in metrics})
        row[ZERO_FRACTION] = zero_fractions.get(job.name)
        row[EPOCHS] = results.get(EPOCHS)
        row[WALL_TIME] = results.get(WALL_TIME)
        rows.append(row)
    columns = [JOB, *varied, STATUS, *metrics, ZERO_FRACTION, EPOCHS, WALL_TIME]
    unfinished = {job.name: unfinished_reason(job) for job in jobs if job.status != OK}
    return ReportTable(columns, varied, metrics, rows, unfinished)


def unfinished_reason(job: Job) -> str:
    """Why ``job`` has no results: its error line, or that it left neither results nor error."""
    if job.status == FAILED:
        return job.error or f"{ERROR_FILE} is empty"
    return f"no {RESULTS_FILE} and no {ERROR_FILE}"


def sorted_table(table: ReportTable, column: str, descending: bool = False) -> ReportTable:
    """``table`` with rows ordered by ``column``; rows without a value last either way.

    Raises:
        ReportError: ``column`` is not one of the table's; the message lists them.
    """
    if column not in table.columns:
        raise ReportError(f"--sort {column}: no such column; pass one of {', '.join(table.columns)}")
    present = [row for row in table.rows if row[column] is not None]
    missing = [row for row in table.rows if row[column] is None]
    present.sort(key=lambda row: sort_key(row[column]), reverse=descending)
    return replace(table, rows=present + missing)


def sort_key(value: Any) -> tuple[int, Any]:
    """Numbers, and settings that read as numbers (``1e-4``), by value; before other text, in natural order."""
    try:
        return (0, float(value))
    except ValueError:
        return (1, natural_key(str(value)))


def settings_label(table: ReportTable, row: dict[str, Any]) -> str:
    """A job's varied settings (``loss=hinge reg=l1``); its name where nothing varied."""
    return " ".join(f"{key}={row[key]}" for key in table.varied) or row[JOB]


def format_value(value: Any) -> str:
    """A cell's text: numbers to 4 significant digits, ``-`` where there is none."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
