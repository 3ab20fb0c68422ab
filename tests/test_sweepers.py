"""The Optuna search and the submitit launchers (the sweep extra), through the real entry point."""

import json
import math

import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from lregloss.app.hydra_callbacks import ERROR_FILE, FailedTrialError, NanReturnAsFailure

from conftest import CONF
from test_train import run_entry_point, sweep_jobs

SEARCH = "hparams_search=reviews_optuna"
STUDY = "reviews_lr_l2_dropout"
# (low, high, log scale) of each searched parameter, as conf/hparams_search/reviews_optuna.yaml sets them
BOUNDS = {
    "optimizer.lr": (1e-3, 1e-1, True),
    "reg.strength": (1e-7, 1e-3, True),
    "model.dropout": (0.0, 0.6, False),
}


def compose_with_hydra(*overrides: str):
    """``conf/train.yaml`` composed with its ``hydra`` node, as a multirun would see it."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


def sampled_params(job) -> dict[str, float]:
    """The searched parameters of one trial, from its job's ``.hydra/overrides.yaml``."""
    overrides = dict(override.split("=", 1) for override in OmegaConf.load(job / ".hydra" / "overrides.yaml"))
    return {key: float(overrides[key]) for key in BOUNDS}


def val_acc(job) -> float:
    return json.loads((job / "results.json").read_text())["val/acc"]


def test_search_config_maximizes_the_monitored_metric_over_lr_strength_and_dropout():
    cfg = compose_with_hydra(SEARCH)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert (sweeper.direction, cfg.monitor.metric, cfg.monitor.mode) == ("maximize", "val/acc", "max")
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed == 0
    assert sweeper.storage is None and sweeper.n_trials == 20
    parser = OverridesParser.create()
    intervals = {key: parser.parse_override(f"{key}={text}").value() for key, text in sweeper.params.items()}
    assert {key: (sweep.start, sweep.end, "log" in sweep.tags) for key, sweep in intervals.items()} == BOUNDS
    assert cfg.reg._target_ == "lregloss.regularizers.L2"
    assert sweeper.study_name == STUDY
    # added to the project's own callbacks (FailedJobsReport still ends a search with failed trials in exit 1)
    assert set(cfg.hydra.callbacks) == {"output_folder_check", "failed_jobs_report", "nan_return_as_failure"}
    assert cfg.hydra.callbacks.nan_return_as_failure._target_ == "lregloss.app.hydra_callbacks.NanReturnAsFailure"


@pytest.fixture(scope="module")
def optuna_search(tmp_path_factory, tiny_reviews_csv):
    """A 3-trial search on the tiny review file: its job folders in trial order."""
    log_dir = tmp_path_factory.mktemp("logs")
    return sweep_jobs(log_dir, SEARCH, "hydra.sweeper.n_trials=3", f"data.path={tiny_reviews_csv}")


def test_each_trial_samples_its_own_params_within_the_bounds(optuna_search):
    assert len(optuna_search) == 3
    trials = [sampled_params(job) for job in optuna_search]
    for key, (low, high, _) in BOUNDS.items():
        values = [params[key] for params in trials]
        assert len(set(values)) == 3, (key, values)
        assert all(low <= value <= high for value in values), (key, values)
    for job, params in zip(optuna_search, trials):
        config = OmegaConf.load(job / "config.yaml")  # what the job trained with
        assert {key: OmegaConf.select(config, key) for key in BOUNDS} == params
        assert 0 <= val_acc(job) <= 1


def test_optimization_results_name_the_best_trial(optuna_search):
    results = OmegaConf.load(optuna_search[0].parent / "optimization_results.yaml")
    best_job = max(optuna_search, key=val_acc)
    assert results.name == "optuna"
    assert results.best_value == pytest.approx(val_acc(best_job))  # the value run() returned
    assert dict(results.best_params) == pytest.approx(sampled_params(best_job))


def test_sqlite_study_records_a_failed_trial_and_a_rerun_continues_it(tmp_path, tiny_reviews_csv):
    storage = f"sqlite:///{tmp_path}/study.db"
    common = [SEARCH, f"hydra.sweeper.storage={storage}", f"data.path={tiny_reviews_csv}"]
    # lr=0 fails the job (ConfigError); TPE's seed 0 samples it for the third trial only.
    result = run_entry_point(tmp_path / "first", *common, "hydra.sweeper.n_trials=3", "optimizer.lr=choice(0.0,0.01)",
                             multirun=True)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 of 3 jobs failed" in result.stderr
    assert "optimizer.lr must be a finite number > 0" in result.stderr

    study = optuna.load_study(study_name=STUDY, storage=storage)
    [sweep_dir] = (tmp_path / "first" / "multiruns").iterdir()
    states = {trial.number: trial.state for trial in study.trials}
    assert states == {0: optuna.trial.TrialState.COMPLETE, 1: optuna.trial.TrialState.COMPLETE,
                      2: optuna.trial.TrialState.FAIL}
    for trial in study.trials[:2]:
        assert trial.value == pytest.approx(val_acc(sweep_dir / str(trial.number)))
    assert (sweep_dir / "2" / ERROR_FILE).is_file()
    assert OmegaConf.load(sweep_dir / "optimization_results.yaml").best_params["optimizer.lr"] == 0.01

    # A fixed lr leaves the search space as it was (Optuna refuses a parameter whose distribution changes).
    result = run_entry_point(tmp_path / "second", *common, "hydra.sweeper.n_trials=1", "optimizer.lr=0.01",
                             multirun=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(optuna.load_study(study_name=STUDY, storage=storage).trials) == 4


def job_config(tmp_path, value: float, error: str | None = None):
    """The config a Hydra callback gets at a job's end, for a job folder ``tmp_path``."""
    if error is not None:
        (tmp_path / ERROR_FILE).write_text(error + "\nTraceback ...\n")
    config = OmegaConf.create({"monitor": {"metric": "val/acc"},
                               "hydra": {"runtime": {"output_dir": str(tmp_path)}, "job": {"num": 7}}})
    return config, JobReturn(status=JobStatus.COMPLETED, _return_value=value)


def test_a_nan_job_is_marked_failed_with_its_error_line(tmp_path):
    config, job_return = job_config(tmp_path, math.nan, error="training diverged at step 3")
    NanReturnAsFailure().on_job_end(config, job_return)
    assert job_return.status == JobStatus.FAILED
    with pytest.raises(FailedTrialError, match="job 7 returned NaN: training diverged at step 3"):
        job_return.return_value


def test_a_nan_without_error_file_names_the_monitored_metric(tmp_path):
    config, job_return = job_config(tmp_path, math.nan)
    NanReturnAsFailure().on_job_end(config, job_return)
    with pytest.raises(FailedTrialError, match="val/acc is NaN or was not logged"):
        job_return.return_value


def test_a_finite_result_is_left_alone(tmp_path):
    config, job_return = job_config(tmp_path, 0.5)
    NanReturnAsFailure().on_job_end(config, job_return)
    assert (job_return.status, job_return.return_value) == (JobStatus.COMPLETED, 0.5)


def test_slurm_launcher_composes_with_typical_overrides():
    cfg = compose_with_hydra("hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu",
                             "hydra.launcher.gpus_per_node=4", "hydra.launcher.tasks_per_node=4",
                             "hydra.launcher.timeout_min=240", "hydra.launcher.cpus_per_task=8")
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.gpus_per_node, launcher.tasks_per_node) == ("gpu", 4, 4)
    assert (launcher.timeout_min, launcher.cpus_per_task, launcher.nodes) == (240, 8, 1)
    assert launcher.submitit_folder.endswith("/.submitit/%j")


def test_slurm_ddp_preset_runs_one_task_per_device():
    launcher = compose_with_hydra("hydra/launcher=slurm_ddp", "trainer.devices=4").hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.tasks_per_node, launcher.gpus_per_node, launcher.nodes) == (4, 4, 1)
    two_nodes = compose_with_hydra("hydra/launcher=slurm_ddp", "trainer.devices=2", "+trainer.num_nodes=3")
    assert (two_nodes.hydra.launcher.tasks_per_node, two_nodes.hydra.launcher.nodes) == (2, 3)


def test_submitit_local_runs_the_jobs_and_reports_the_failed_one(tmp_path, tiny_reviews_csv):
    # Two jobs, as two submitit processes: softmax trains; attr_hinge does not fit star ratings and fails.
    result = run_entry_point(tmp_path, "hydra/launcher=submitit_local", "loss=softmax,attr_hinge",
                             f"data.path={tiny_reviews_csv}", multirun=True)
    [sweep_dir] = (tmp_path / "multiruns").iterdir()
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 of 2 jobs failed" in result.stderr
    assert "job 1 [loss=attr_hinge]: " in result.stderr
    results = json.loads((sweep_dir / "0" / "results.json").read_text())
    assert 0 <= results["test/acc"] <= 1
    assert "_target_: lregloss.losses.SoftmaxCrossEntropy" in (sweep_dir / "0" / "config.yaml").read_text()
    assert "losses that fit" in (sweep_dir / "1" / ERROR_FILE).read_text()
    assert len(list((sweep_dir / ".submitit").glob("*/*_log.out"))) == 2  # each job ran in its own submitit process
