"""RESULTS.md: the machine and versions, a summary of the targets, then every table."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytorch_lightning as pl
import torch

from lregloss.benchmarking.machine import cpu_model
from lregloss.benchmarking.timing import Table


@dataclass
class BenchmarkResult:
    """One benchmark module's tables, with the load average around its run."""

    name: str
    tables: list[Table]
    seconds: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]


def memory_gib() -> str:
    try:
        with open("/proc/meminfo") as meminfo:
            kib = int(meminfo.readline().split()[1])
        return f"{kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        return "unknown"


def environment_lines() -> list[str]:
    """The machine, the versions and the thread count, as Markdown list items."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (all timings on CPU)"
    return [
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores; memory {memory_gib()}",
        f"- GPU: {gpu}",
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()}, torch {torch.__version__}, pytorch_lightning {pl.__version__}",
        f"- torch threads: {torch.get_num_threads()} (intra-op, set by the runner), "
        f"interop {torch.get_num_interop_threads()}",
    ]


def summary_table(results: Sequence[BenchmarkResult]) -> str:
    """One line per row that has a target."""
    lines = [
        "| benchmark | variant | baseline | ratio (paired) | ratio (mins) | target | met |",  # counts: syncs, ops
        "|---|---|---|---:|---:|---:|---|",
    ]
    for result in results:
        for table in result.tables:
            if hasattr(table, "summary_rows"):  # counts, not times (benchmarks.step_costs)
                lines += [f"| {table.title} | {' | '.join(row)} |" for row in table.summary_rows()]
                continue
            for row in table.rows:
                if row.target is None:
                    continue
                met = "yes" if row.met else "**no**"
                lines.append(
                    f"| {table.title} | {row.label} | {row.baseline.name} | {row.paired_ratio:.3f}x "
                    f"| {row.ratio_of_mins:.3f}x | <= {row.target:.2f}x | {met} |"
                )
    return "\n".join(lines)


def results_markdown(results: Sequence[BenchmarkResult], command: str, notes: Sequence[str] = ()) -> str:
    """The whole RESULTS.md."""
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts = [
        "# Benchmark results",
        "",
        f"Written by `{command}` on {when}. Every table times its variants side by side in one "
        "process: warm-up rounds, then rounds in which each variant runs once, in an order rotated "
        "from round to round. Times are per call (per training step, per epoch).",
        "",
        "- **ratio (paired)**: the median over rounds of the variant's time divided by the "
        "baseline's time in the same round. Targets are judged on it: on a shared machine the load "
        "changes over seconds, and a ratio of two samples taken moments apart cancels most of it.",
        "- **ratio (medians)**: median time over the baseline's median time.",
        "- **ratio (mins)**: fastest over fastest, the run least disturbed by other processes.",
        "",
        "## Machine",
        "",
        *environment_lines(),
        "- load average (1, 5, 15 min) before and after each benchmark: "
        + "; ".join(
            f"{r.name} {r.load_before[0]:.2f}/{r.load_before[1]:.2f}/{r.load_before[2]:.2f} -> "
            f"{r.load_after[0]:.2f}/{r.load_after[1]:.2f}/{r.load_after[2]:.2f} ({r.seconds:.0f} s)"
            for r in results
        ),
        "",
        "## Targets",
        "",
        summary_table(results),
        "",
    ]
    if notes:
        parts += ["## Notes", "", *(f"- {note}" for note in notes), ""]
    for result in results:
        parts += [f"## {result.name}", ""]
        for table in result.tables:
            parts += [table.markdown(), ""]
    return "\n".join(parts)


def run_standalone(run: Callable[[bool, torch.device], Sequence[Table]], doc: str) -> None:
    """Command line of one benchmark module: ``python -m benchmarks.<name> [--tiny] [--device cuda]``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="toy sizes, for a smoke test")
    parser.add_argument("--device", type=torch.device, default=torch.device("cpu"), help="cpu (default) or cuda")
    args = parser.parse_args()
    torch.set_num_threads(2)
    for table in run(args.tiny, args.device):
        print(table.markdown(), end="\n\n")
