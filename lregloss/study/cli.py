"""The command line of scripts/study.py: run the chosen studies and write each one's page and plots."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch
from rich.console import Console

from lregloss.benchmarking.machine import cpu_model
from lregloss.conf import CONFIG_DIR
from lregloss.study import attributes, cbow, hsoftmax, ratings, sparsity
from lregloss.study.settings import StudyOutcome, StudySettings

LOG_WIDTH = 1000  # characters per line where the output is not a terminal, as scripts/report.py
STUDIES: dict[str, Callable[[StudySettings, Console], StudyOutcome]] = {
    "sparsity": sparsity.run,
    "ratings": ratings.run,
    "attributes": attributes.run,
    "hsoftmax": hsoftmax.run,
    "cbow": cbow.run,
}
DEFAULT_STUDIES = ("sparsity", "ratings", "attributes", "hsoftmax")  # cbow trains for most of an hour: when named


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/study.py",
        description="Reproduce the lecture's claims on real data; write results/<study>.md and its plots.",
    )
    parser.add_argument("studies", nargs="*", metavar="STUDY",
                        help=f"which to run, in order, of {', '.join(STUDIES)} (default: {' '.join(DEFAULT_STUDIES)})")  # fmt: skip
    parser.add_argument("--tiny", action="store_true", help="smoke size: a few short runs and toy timings")
    parser.add_argument("--output", type=Path, default=Path("results"),
                        help="folder for the pages and plots (default results)")  # fmt: skip
    parser.add_argument("--work-dir", type=Path, help="folder for the training runs (default logs/study/<time>)")
    arguments = parser.parse_args(argv)
    unknown = [name for name in arguments.studies if name not in STUDIES]
    if unknown:
        parser.error(f"unknown study {', '.join(unknown)}; choose from {', '.join(STUDIES)}")
    return arguments


def machine() -> str:
    """The CPU, its cores, torch's threads and the versions, in one line."""
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"Python {platform.python_version()}"
    )


def page(outcome: StudyOutcome, seconds: float, load_before: float, load_after: float, command: str) -> str:
    """The study's Markdown page: title, body, then how it was made and how long it took."""
    footer = (
        f"Made by `{command}` in {seconds / 60:.1f} min ({seconds:.0f} s) on {machine()}; "
        f"load average over 1 minute {load_before:.2f} before and {load_after:.2f} after (other jobs shared the "
        f"machine where it exceeds the study's own threads); {datetime.date.today().isoformat()}."
    )
    return f"# {outcome.title}\n\n{outcome.markdown}\n\n{footer}\n"


def run_studies(names: list[str], settings: StudySettings, console: Console, command: str) -> dict[str, float]:
    """Run ``names`` in order, writing ``<output>/<name>.md`` after each; return the seconds each took."""
    settings.output.mkdir(parents=True, exist_ok=True)
    durations = {}
    for name in names:
        console.print(f"[bold]{name}[/bold]")
        load_before, started = os.getloadavg()[0], time.perf_counter()
        outcome = STUDIES[name](settings, console)
        seconds = time.perf_counter() - started
        durations[name] = seconds
        text = page(outcome, seconds, load_before, os.getloadavg()[0], f"{command} {name}".strip())
        (settings.output / f"{name}.md").write_text(text)
        for line in outcome.headline:
            console.print(f"  {line}", highlight=False)
        console.print(f"  wrote {settings.output / (name + '.md')} and {', '.join(outcome.plots) or 'no plot'} "
                      f"in {seconds:.0f} s", highlight=False)  # fmt: skip
    return durations


def main(argv: list[str] | None = None, conf_dir: Path = CONFIG_DIR) -> int:
    """Run the command; ``conf_dir`` is the folder the training runs are composed from (the package's configs)."""
    arguments = parse_arguments(argv)
    names = arguments.studies or list(DEFAULT_STUDIES)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    settings = StudySettings(
        conf_dir=conf_dir,
        work_dir=arguments.work_dir or Path("logs", "study", stamp),
        output=arguments.output,
        tiny=arguments.tiny,
    )
    command = "python scripts/study.py" + (" --tiny" if arguments.tiny else "")
    console = Console()
    if not console.is_terminal:  # a log file or a pipe: whole lines rather than lines folded at 80 characters
        console = Console(width=LOG_WIDTH)
    run_studies(list(dict.fromkeys(names)), settings, console, command)
    return 0
