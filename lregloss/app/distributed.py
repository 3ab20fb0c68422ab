"""One Hydra job on several processes: Lightning's DDP, each rank running this job in its folder.

Lightning's DDP (``strategy: ddp``) starts the other ranks of a node by running the script
again, with ``sys.argv`` plus a ``hydra.run.dir`` override. Inside a multirun that is the whole
sweep again (``--multirun`` and every swept value), in a new sweep folder of its own; and
the environment it leaves behind (``LOCAL_RANK`` and the rest) makes the sweep's next job
believe its processes were started for it, so that job waits for ranks that never come.
`HydraDDPStrategy` starts each rank on this job alone, in this job's folder (`rank_arguments`),
and `distributed_job` puts the process back as it found it when the job ends.

Only global rank 0 writes the run folder's files (config, TensorBoard events, checkpoints,
``results.json``); the other ranks of a node write their Hydra log next to them
(``train_rank<k>.log``) and nothing else. The other nodes of a multi-node job are started
by the user, one command per node (see conf/trainer/ddp.yaml).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytorch_lightning as pl
import torch
from hydra._internal.utils import get_args_parser
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_original_cwd, to_absolute_path
from lightning_fabric.strategies.launchers.subprocess_script import _ChildProcessObserver
from lightning_fabric.utilities.distributed import _set_num_threads_if_needed
from lightning_fabric.utilities.rank_zero import rank_zero_only
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

from lregloss.private_names import require

# The private methods overridden below (see lregloss.private_names): an override of a renamed
# method would never run, and the other ranks would re-run the whole command line.
require(_ChildProcessObserver, "_run")
require(_SubprocessScriptLauncher, "_call_children_scripts", "_check_can_spawn_children")
require(DDPStrategy, "_configure_launcher")

log = logging.getLogger(__name__)

# What Lightning's launcher sets in the launching process's own environment.
LAUNCH_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
# Hydra command-line flags a rank keeps: they choose the config it composes.
CONFIG_FLAGS = (("config_path", "--config-path"), ("config_name", "--config-name"), ("config_dir", "--config-dir"))


def is_global_zero() -> bool:
    """True in the process of global rank 0, the one that writes the run folder, and in a run without DDP.

    For use before the trainer exists (``trainer.is_global_zero`` after): the rank Lightning
    read from the environment when imported (``RANK``, ``LOCAL_RANK``, ``SLURM_PROCID``) or
    set since, and the node rank a multi-node launch is given (``NODE_RANK``, ``GROUP_RANK``).
    """
    node = os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", "0"))
    return rank_zero_only.rank == 0 and int(node) == 0


def _quoted(value: str) -> str:
    """``value`` as a quoted Hydra override value, read back unchanged (spaces, '=', quotes, ...).

    Inside quotes Hydra unescapes only quotes and the backslashes right before a quote or the
    closing one; every other backslash stays as it is.
    """
    escaped = re.sub(r'(\\*)("|$)', lambda m: m.group(1) * 2 + ("\\" + m.group(2) if m.group(2) else ""), value)
    return f'"{escaped}"'


def rank_arguments(
    argv: Sequence[str],
    task_overrides: Sequence[str],
    hydra_overrides: Sequence[str],
    output_dir: str,
    job_name: str,
    rank: int,
) -> list[str]:
    """The command-line arguments (after the script) that run one Hydra job again as another rank.

    The job's own overrides (in a multirun: this job's values, not the sweep's lists), the
    Hydra overrides given with them, and the flags of ``argv`` that pick the config; then the
    job's folder as the run folder, no ``.hydra/`` copy (rank 0 writes it), run mode, and a
    job name that makes Hydra's log file ``<job_name>_rank<rank>.log``.

    Args:
        argv: the launching process's ``sys.argv[1:]``.
        task_overrides: ``hydra.overrides.task`` of the job.
        hydra_overrides: ``hydra.overrides.hydra`` of the job.
        output_dir: the job's folder, ``hydra.runtime.output_dir``.
        job_name: ``hydra.job.name``.
        rank: the global rank the arguments are for.
    """
    parsed = get_args_parser().parse_args(list(argv))
    flags = [item for name, flag in CONFIG_FLAGS if getattr(parsed, name) for item in (flag, getattr(parsed, name))]
    kept_hydra = [override for override in hydra_overrides if not override.startswith("hydra.mode=")]
    return [
        *flags,
        *task_overrides,
        *kept_hydra,
        f"hydra.run.dir={_quoted(output_dir)}",
        "hydra.output_subdir=null",
        "hydra.mode=RUN",
        f"hydra.job.name={job_name}_rank{rank}",
    ]


def rank_command(rank: int) -> tuple[list[str], str]:
    """The command, and its working directory, that run the current Hydra job as global rank ``rank``."""
    import __main__  # as Lightning does: the script or module this process was started with

    if __main__.__spec__ is None:
        command = [sys.executable, to_absolute_path(sys.argv[0])]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name]
    hydra = HydraConfig.get()
    command += rank_arguments(
        sys.argv[1:], hydra.overrides.task, hydra.overrides.hydra, hydra.runtime.output_dir, hydra.job.name, rank
    )
    return command, get_original_cwd()


class _StoppableObserver(_ChildProcessObserver):
    """Lightning's watcher of the other ranks (it kills every process when one of them fails), with an off switch.

    A job that ends its other ranks itself (`distributed_job`, after a failure in this
    process) switches it off first, so that their exit does not take this process, and with
    it a sweep, down as well.
    """

    stopped = False

    def _run(self) -> bool:
        return True if self.stopped else super()._run()


class HydraJobLauncher(_SubprocessScriptLauncher):
    """Lightning's subprocess launcher, starting the node's other ranks on this Hydra job (`rank_command`).

    Outside Hydra it starts them as Lightning does, with the script's own command line.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.observer: _StoppableObserver | None = None

    def launch(self, function: Callable, *args: Any, trainer: pl.Trainer | None = None, **kwargs: Any) -> Any:
        # Lightning's own (2.6), keeping the observer it starts.
        self.cluster_environment.validate_settings(num_devices=self.num_processes, num_nodes=self.num_nodes)
        if not self.cluster_environment.creates_processes_externally:
            self._call_children_scripts()
            self.observer = _StoppableObserver(main_pid=os.getpid(), child_processes=self.procs)
            self.observer.start()
        _set_num_threads_if_needed(num_processes=self.num_processes)
        return function(*args, **kwargs)

    def _call_children_scripts(self) -> None:
        if not HydraConfig.initialized():
            super()._call_children_scripts()
            return
        # Lightning's own (2.6), with the command of `rank_command`.
        self._check_can_spawn_children()
        self.procs = []
        os.environ["MASTER_ADDR"] = self.cluster_environment.main_address
        os.environ["MASTER_PORT"] = str(self.cluster_environment.main_port)
        os.environ["NODE_RANK"] = str(self.cluster_environment.node_rank())
        os.environ["LOCAL_RANK"] = str(self.cluster_environment.local_rank())
        os.environ["WORLD_SIZE"] = f"{self.num_processes * self.num_nodes}"
        for local_rank in range(1, self.num_processes):
            env = os.environ.copy()
            env["LOCAL_RANK"] = str(local_rank)
            if os.environ.get("PL_GLOBAL_SEED") is None:
                env.pop("PL_GLOBAL_SEED", None)
            command, cwd = rank_command(self.cluster_environment.node_rank() * self.num_processes + local_rank)
            self.procs.append(subprocess.Popen(command, env=env, cwd=cwd))


class HydraDDPStrategy(DDPStrategy):
    """Lightning's ``DDPStrategy`` whose other ranks run this Hydra job, in its folder (`HydraJobLauncher`).

    Takes DDPStrategy's arguments (``find_unused_parameters``, ``static_graph``, ``timeout``,
    ...). Use it with `distributed_job` around the job's fit, validate and test.
    """

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if type(self._launcher) is _SubprocessScriptLauncher:
            self._launcher = HydraJobLauncher(self.cluster_environment, self.num_processes, self.num_nodes)


def _process_group() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _wait(process: subprocess.Popen, local_rank: int, timeout_s: float) -> None:
    try:
        status = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        status = process.wait()
    if status:
        log.warning("the process of local rank %d ended with status %d", local_rank, status)


@contextmanager
def distributed_job(trainer: pl.Trainer, exit_timeout_s: float = 60.0) -> Iterator[None]:
    """Run one job's fit, validate and test on ``trainer``, then leave the process as a new job needs it.

    At the end: on success, a barrier (every rank runs the job to its end) and a wait for the
    ranks this process started; on an error in this process, those ranks are killed, as they
    would otherwise wait for it in their next collective until the process group's timeout
    (30 minutes). Then the process group is destroyed and the launch variables are restored,
    so that the next job of a multirun starts its own ranks, on a new port. Without a process
    group there is nothing to do.

    Args:
        trainer: the job's trainer.
        exit_timeout_s: how long to wait, after a successful job, for the other ranks to exit
            before killing them.
    """
    saved = {name: os.environ.get(name) for name in LAUNCH_VARIABLES}
    launcher = trainer.strategy.launcher
    succeeded = False
    try:
        yield
        if _process_group():
            trainer.strategy.barrier("lregloss.distributed_job")  # should it fail (a rank died), kill the rest below
        succeeded = True
    finally:
        if isinstance(launcher, HydraJobLauncher):
            if launcher.observer is not None:
                launcher.observer.stopped = True
            for local_rank, process in enumerate(launcher.procs, start=1):
                if succeeded:
                    _wait(process, local_rank, exit_timeout_s)
                elif process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    process.wait()
        if _process_group():
            torch.distributed.destroy_process_group()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
