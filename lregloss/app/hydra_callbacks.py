"""Hydra callbacks around whole jobs: an unwritable output folder, sweeps in which some jobs failed,
and failed jobs told to the Optuna sweeper as failed trials.

The first two are registered in conf/hydra/default.yaml. They print to stderr and exit
themselves: they run before Hydra sets up logging (``on_run_start``) or after every job
(``on_multirun_end``). The third is registered by the conf/hparams_search/ configs.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from lregloss.app.resume import resume_problem
from lregloss.validation import writable_folder_problem

ERROR_FILE = "error.txt"  # written into a job's folder by lregloss.app.train.run when the job fails


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

    A failing job does not stop the sweep (``lregloss.app.train.run`` records the error in the
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


class FailedTrialError(RuntimeError):
    """A sweep job that returned NaN: it failed, or its monitored metric was not logged."""


class NanReturnAsFailure(Callback):
    """Mark a job that returned NaN as failed, so that the Optuna sweeper records a failed trial.

    A failed multirun job returns NaN (``lregloss.app.train.run``). hydra-optuna-sweeper 1.3.0
    with optuna 2.10 ends the whole search on a NaN: it tells Optuna the NaN a second time
    as the value of a failed trial, which Optuna refuses (hydra issue #2237, fixed upstream
    after 1.3.0). A job marked failed instead is told as a failed trial without a value,
    and the search goes on. Registered by the hparams_search configs only: the basic
    sweeper stops at the first job marked failed.
    """

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status != JobStatus.COMPLETED:
            return
        value = job_return.return_value
        if not (isinstance(value, float) and math.isnan(value)):
            return
        error_file = Path(str(config.hydra.runtime.output_dir), ERROR_FILE)
        lines = error_file.read_text().splitlines() if error_file.is_file() else []
        reason = lines[0] if lines else f"{OmegaConf.select(config, 'monitor.metric')} is NaN or was not logged"
        job_return.status = JobStatus.FAILED
        job_return.return_value = FailedTrialError(f"job {config.hydra.job.num} returned NaN: {reason}")
