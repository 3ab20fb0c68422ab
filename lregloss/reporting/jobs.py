"""Find the jobs below a folder and read what each one wrote: overrides, choices, config, results, error."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lregloss.app.hydra_callbacks import ERROR_FILE

RESULTS_FILE = "results.json"  # written by lregloss.app.train.train once a job has been fitted and tested
OK = "ok"
FAILED = "failed"
INCOMPLETE = "incomplete (killed?)"
NOT_OVERRIDDEN = "(default)"
# logs/multiruns/<time>/<job>: the deepest layout, from the log folder, that holds jobs.
SEARCH_DEPTH = 3



class ReportError(ValueError):
    """A sweep report cannot be made: a folder is missing or holds no job, or a named metric or column is unknown.

    The message names what was given and what would be accepted.
    """


@dataclass(frozen=True)
class Job:
    """One run's folder and what it wrote.

    Args:
        folder: the job's folder.
        name: how the report names it: its path below the folders given (``0``, ``<time>/3``).
        overrides: its command-line overrides (``.hydra/overrides.yaml``), as given.
        choices: the option picked in each config group (``hydra.runtime.choices``).
        config: its resolved ``config.yaml`` (empty where it wrote none).
        results: the final metrics of ``results.json``; None where it has none.
        error: the first line of its ``error.txt``; None where it has none.
    """

    folder: Path
    name: str
    overrides: list[str]
    choices: dict[str, Any]
    config: DictConfig
    results: dict[str, float] | None
    error: str | None

    @property
    def status(self) -> str:
        """``ok`` with results, ``failed`` with an error file, else ``incomplete (killed?)``."""
        if self.results is not None:
            return OK
        return FAILED if self.error is not None else INCOMPLETE

    def setting(self, key: str) -> str:
        """The job's value of ``key`` (``loss``, ``reg.strength``): as overridden, else its group choice or config."""
        overridden = dict(parse_override(override) for override in self.overrides)
        if key in overridden:
            return overridden[key]
        if self.choices.get(key) is not None:
            return str(self.choices[key])
        value = OmegaConf.select(self.config, key, default=None, throw_on_resolution_failure=False)
        if isinstance(value, (bool, int, float, str)):
            return str(value)
        return NOT_OVERRIDDEN


def parse_override(override: str) -> tuple[str, str]:
    """``('reg.strength', '1e-4')`` from ``reg.strength=1e-4``; ``+``/``++`` dropped; ``~key`` (deleted) gives ``~``."""
    key, _, value = override.partition("=")
    if key.startswith("~"):
        return key[1:], "~"
    return key.lstrip("+"), value


def natural_key(name: str) -> list[Any]:
    """Sort key under which job ``10`` follows job ``9``: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def is_job_folder(folder: Path) -> bool:
    """True for a folder a training run wrote: it holds ``.hydra/`` or ``config.yaml``."""
    return (folder / ".hydra").is_dir() or (folder / "config.yaml").is_file()


def job_folders(folder: Path, depth: int = SEARCH_DEPTH) -> list[Path]:
    """``folder`` itself if it is a job, else the jobs in its subfolders (``depth`` levels down), in natural order."""
    if is_job_folder(folder):
        return [folder]
    if depth == 0:
        return []
    subfolders = [child for child in folder.iterdir() if child.is_dir() and not child.name.startswith(".")]
    found = []
    for child in sorted(subfolders, key=lambda path: natural_key(path.name)):
        found += job_folders(child, depth - 1)
    return found


def load_job(folder: Path, name: str) -> Job:
    """Read the files a job wrote into ``folder``; a file it did not write leaves that field empty."""
    hydra_dir = folder / ".hydra"
    overrides_file, hydra_file = hydra_dir / "overrides.yaml", hydra_dir / "hydra.yaml"
    overrides = [str(item) for item in OmegaConf.load(overrides_file)] if overrides_file.is_file() else []
    choices = {}
    if hydra_file.is_file():
        choices_node = OmegaConf.select(OmegaConf.load(hydra_file), "hydra.runtime.choices")
        choices = OmegaConf.to_container(choices_node) if choices_node is not None else {}
    # config.yaml is the resolved config; a job that failed before writing it still has Hydra's copy
    config_file = next((path for path in (folder / "config.yaml", hydra_dir / "config.yaml") if path.is_file()), None)
    config = OmegaConf.load(config_file) if config_file else DictConfig({})
    results_file, error_file = folder / RESULTS_FILE, folder / ERROR_FILE
    results = json.loads(results_file.read_text()) if results_file.is_file() else None
    error = None
    if error_file.is_file():
        error = next(iter(error_file.read_text().splitlines()), "")
    return Job(folder, name, overrides, choices, config, results, error)


def collect_jobs(folders: list[Path]) -> list[Job]:
    """Every job at or below ``folders``: a sweep, ``logs/runs``, ``logs/multiruns``, the log folder, or one run.

    Raises:
        ReportError: a folder does not exist, or none of them holds a job.
    """
    found = []
    for folder in folders:
        if not folder.is_dir():
            raise ReportError(f"{folder} is not a folder; pass a sweep or run folder, e.g. logs/multiruns/<time>")
        found += [job.resolve() for job in job_folders(folder)]
    if not found:
        shown = ", ".join(str(folder) for folder in folders)
        raise ReportError(
            f"no job found in {shown}: a job folder holds .hydra/ or config.yaml (logs/runs/<time>, "
            "logs/multiruns/<time>/<n>); pass a sweep, runs or run folder"
        )
    common = Path(os.path.commonpath(found))
    return [load_job(folder, job_name(folder, common)) for folder in dict.fromkeys(found)]  # a job given twice once


def job_name(folder: Path, common: Path) -> str:
    """``folder``'s path below ``common``, the folder all jobs share; its own name where it is that folder."""
    relative = folder.relative_to(common)
    return relative.as_posix() if relative.parts else folder.name
