"""Hydra callbacks around whole jobs: an unwritable output folder, and sweeps in which some jobs failed.

Registered in conf/hydra/default.yaml. They print to stderr and exit themselves: they run
before Hydra sets up logging (``on_run_start``) or after every job (``on_multirun_end``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from lregloss.resume import resume_problem
from lregloss.validation import writable_folder_problem

ERROR_FILE = "error.txt"  # written into a job's folder by lregloss.train.run when the job fails


def _fail(message: str, status: int) -> None:
    print(f"Error: {message}", file=sys.stderr)
    sys.exit(status)


class OutputFolderCheck(Callback):
    """Stop before anything runs when the run or sweep folder cannot be written (exit status 2).

    Otherwise Hydra fails later, creating the folder, with a traceback that does not say which
    setting to change. With ``resume=<run dir>``, the folder must also hold a run to continue;
    checked here, as Hydra would otherwise create whatever folder was named.
    """

    def _check(self, config: DictConfig, key: str) -> None:
        folder = OmegaConf.select(config, key)
        problem = writable_folder_problem(folder)
        if problem:
            log_dir = OmegaConf.select(config, "paths.log_dir", default=None)
            _fail(
                f"cannot write the output folder {folder} ({key}, below paths.log_dir={log_dir}): {problem}; "
                "pass paths.log_dir=<a writable folder>",
                status=2,
            )

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        resume = OmegaConf.select(config, "resume", default=None)
        if resume is not None:
            problem = resume_problem(resume)  # before Hydra creates the folder it names
            if problem:
                _fail(problem, status=2)
        self._check(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.sweep.dir")


def failed_jobs(sweep_dir: Path) -> list[tuple[str, str, str]]:
    """(job folder name, the overrides that tell it from the other jobs, first line of its error) per failed job."""
    jobs = {}
    for overrides_file in sweep_dir.glob("*/.hydra/overrides.yaml"):
        jobs[overrides_file.parent.parent] = list(OmegaConf.load(overrides_file))
    shared = set.intersection(*(set(overrides) for overrides in jobs.values())) if len(jobs) > 1 else set()
    failures = []
    for error_file in sorted(sweep_dir.glob(f"*/{ERROR_FILE}"), key=lambda p: (len(p.parent.name), p.parent.name)):
        own = [override for override in jobs.get(error_file.parent, []) if override not in shared]
        lines = error_file.read_text().splitlines()
        failures.append((error_file.parent.name, " ".join(own), lines[0] if lines else ""))
    return failures


class FailedJobsReport(Callback):
    """After a multirun, list the jobs that failed and exit with status 1 if any did.

    A failing job does not stop the sweep (``lregloss.train.run`` records the error in the
    job's ``error.txt`` and returns NaN), so the other jobs' results are all kept; this makes
    the sweep as a whole still end in failure, with one line per failed job.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
        failures = failed_jobs(sweep_dir)
        if not failures:
            return
        jobs = sum(1 for path in sweep_dir.iterdir() if (path / ".hydra").is_dir())
        lines = [f"{len(failures)} of {jobs} jobs failed (the other jobs' results are in {sweep_dir}):"]
        lines += [f"  job {name} [{overrides}]: {error}" for name, overrides, error in failures]
        _fail("\n".join(lines), status=1)
