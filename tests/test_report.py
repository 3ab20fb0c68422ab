"""scripts/report.py: job folders written by hand, then one real sweep read back end to end."""

import io
import json
import math
import subprocess
import sys

import pytest
from omegaconf import OmegaConf
from rich.console import Console
from torch.utils.tensorboard import SummaryWriter

from lregloss.reporting.jobs import ReportError
from lregloss.reporting import make_report
from lregloss.reporting.cli import main
from lregloss.reporting.events import read_job_events
from lregloss.reporting.jobs import collect_jobs
from lregloss.reporting.plots import metric_grid
from lregloss.reporting.render import console_table
from lregloss.reporting.table import build_table, main_metric, metric_columns, sorted_table, varied_keys

from conftest import ROOT
from test_train import run_entry_point

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_job(folder, overrides, results=None, error=None, choices=None, config=None, val_curve=None, zeros=None):
    """A job folder as lregloss.app.train writes it; ``val_curve`` is one val/acc per epoch, then a final evaluation."""
    (folder / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(list(overrides)), folder / ".hydra" / "overrides.yaml")
    hydra_config = OmegaConf.create({"hydra": {"runtime": {"choices": choices or {}}}})
    OmegaConf.save(hydra_config, folder / ".hydra" / "hydra.yaml")
    config = config or {"monitor": {"metric": "val/acc", "mode": "max"}, "seed": 0}
    OmegaConf.save(OmegaConf.create(config), folder / "config.yaml")
    if results is not None:
        (folder / "results.json").write_text(json.dumps(results))
    if error is not None:
        (folder / "error.txt").write_text(error)
    if val_curve is not None or zeros is not None:
        writer = SummaryWriter(str(folder / "tensorboard"))
        for step, value in enumerate(zeros or []):
            writer.add_scalar("weights/zero_fraction", value, step)
        for epoch, value in enumerate(val_curve or []):
            step = 10 * (epoch + 1)  # Lightning logs the epoch at every step it logs a metric
            writer.add_scalar("epoch", epoch, step)
            writer.add_scalar("val/acc", value, step)
        if val_curve:  # lregloss.app.train validates the best checkpoint once more after fitting
            writer.add_scalar("epoch", len(val_curve), 10 * len(val_curve) + 1)
            writer.add_scalar("val/acc", max(val_curve), 10 * len(val_curve) + 1)
        writer.close()
    return folder


def results(test_acc, val_acc=0.5, epochs=2, **more):
    return {"test/acc": test_acc, "val/acc": val_acc, "epochs": epochs, "wall_time_s": 12.345678, **more}


@pytest.fixture
def grid_sweep(tmp_path):
    """A 2x2 sweep (loss x reg.strength) in which one job failed and one was killed, plus a third, shared override."""
    sweep = tmp_path / "multiruns" / "2024-01-01_00-00-00"
    common = ["paths.log_dir=logs", "trainer.max_epochs=2"]
    write_job(sweep / "0", [*common, "loss=hinge", "reg.strength=0.01"], results(0.81234567, **{"test/mae": 0.4}),
              val_curve=[0.5, 0.7], zeros=[0.0, 0.25])
    write_job(sweep / "1", [*common, "loss=hinge", "reg.strength=1e-4"], results(0.6), val_curve=[0.4, 0.6])
    write_job(sweep / "2", [*common, "loss=softmax", "reg.strength=0.01"],
              error="loss=softmax: lr too high\nTraceback (most recent call last): ...")
    write_job(sweep / "3", [*common, "loss=softmax", "reg.strength=1e-4"])
    return sweep


def test_jobs_are_found_in_sweeps_runs_and_log_folders(tmp_path):
    logs = tmp_path / "logs"
    for job in ("2", "10"):
        write_job(logs / "multiruns" / "first" / job, ["loss=hinge"])
    write_job(logs / "multiruns" / "second" / "0", ["loss=l1"])
    write_job(logs / "runs" / "2024-01-01_00-00-00", ["loss=l2"])
    (logs / "multiruns" / "first" / "report").mkdir()  # an earlier report is no job

    def names(folder):
        return [job.name for job in collect_jobs([folder])]

    assert names(logs / "multiruns" / "first") == ["2", "10"]
    assert names(logs / "multiruns") == ["first/2", "first/10", "second/0"]
    assert names(logs / "runs") == ["2024-01-01_00-00-00"]
    assert names(logs / "runs" / "2024-01-01_00-00-00") == ["2024-01-01_00-00-00"]
    assert names(logs) == ["multiruns/first/2", "multiruns/first/10", "multiruns/second/0", "runs/2024-01-01_00-00-00"]


def test_a_missing_folder_or_one_without_jobs_exits_2_in_one_line(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main([str(missing)]) == 2
    expected = f"Error: {missing} is not a folder; pass a sweep or run folder, e.g. logs/multiruns/<time>\n"
    assert capsys.readouterr().err == expected
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert main([str(tmp_path / "empty")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"Error: no job found in {tmp_path / 'empty'}: a job folder holds .hydra/ or config.yaml")
    assert error.count("\n") == 1


def test_varied_settings_are_the_overrides_that_differ_in_the_order_given(tmp_path):
    ran = {"reg": "none"}
    write_job(tmp_path / "0", ["paths.log_dir=x", "loss=hinge", "reg.strength=0.1", "reg=none"], choices=ran)
    write_job(tmp_path / "1", ["paths.log_dir=x", "loss=softmax", "reg.strength=0.01"], choices=ran)
    write_job(tmp_path / "2", ["paths.log_dir=x", "loss=softmax", "reg.strength=0.1", "+seed=1"], choices=ran)
    jobs = collect_jobs([tmp_path])
    # reg: overridden in one job only, but every job ran reg=none; seed: jobs 0 and 1 ran the config's seed 0
    assert varied_keys(jobs) == ["loss", "reg.strength", "seed"]
    assert [job.setting("seed") for job in jobs] == ["0", "0", "1"]


def test_failed_and_killed_jobs_are_rows_with_their_reason(grid_sweep):
    table = build_table(collect_jobs([grid_sweep]), "test/acc", {})
    assert [row["status"] for row in table.rows] == ["ok", "ok", "failed", "incomplete (killed?)"]
    assert table.rows[2]["test/acc"] is None and table.rows[0]["test/acc"] == 0.81234567
    assert table.unfinished == {
        "2": "loss=softmax: lr too high",
        "3": "no results.json and no error.txt",
    }


def test_the_main_metric_is_the_test_counterpart_of_the_monitored_one(tmp_path):
    write_job(tmp_path / "0", [], {"val/acc": 0.5, "test/acc": 0.4, "val/loss": 1.0, "test/mae": 0.3, "val/mae": 0.2})
    jobs = collect_jobs([tmp_path])
    assert main_metric(jobs) == "test/acc"
    assert metric_columns(jobs, "test/acc") == ["test/acc", "val/acc", "test/mae", "val/loss", "val/mae"]
    assert metric_columns(jobs, "val/mae") == ["val/mae", "test/mae", "test/acc", "val/acc", "val/loss"]
    with pytest.raises(ReportError, match=r"--metric test/f1: no job reported it; pass one of test/acc, test/mae"):
        main_metric(jobs, "test/f1")


def test_without_a_test_split_the_main_metric_is_the_monitored_one(tmp_path):
    write_job(tmp_path / "0", [], {"val/hamming": 0.1}, config={"monitor": {"metric": "val/hamming", "mode": "min"}})
    assert main_metric(collect_jobs([tmp_path])) == "val/hamming"


def test_events_give_the_curve_during_fitting_and_the_last_zero_fraction(grid_sweep):
    events = read_job_events(grid_sweep / "0", "val/acc", fitted_epochs=2)
    assert [epoch for epoch, _ in events.curve] == [1, 2]  # the best checkpoint's final evaluation left out
    assert [value for _, value in events.curve] == pytest.approx([0.5, 0.7])
    assert events.zero_fraction == 0.25
    assert read_job_events(grid_sweep / "1", "val/acc", fitted_epochs=2).zero_fraction is None
    assert read_job_events(grid_sweep / "3", "val/acc", fitted_epochs=None).curve == []


def test_rows_sort_by_metric_with_missing_values_last_and_by_settings_as_numbers(grid_sweep):
    table = build_table(collect_jobs([grid_sweep]), "test/acc", {})
    assert [row["job"] for row in sorted_table(table, "test/acc").rows] == ["1", "0", "2", "3"]
    assert [row["job"] for row in sorted_table(table, "test/acc", descending=True).rows] == ["0", "1", "2", "3"]
    assert [row["reg.strength"] for row in sorted_table(table, "reg.strength").rows] == ["1e-4", "1e-4", "0.01", "0.01"]
    with pytest.raises(ReportError, match=r"--sort test/f1: no such column; pass one of job, loss, reg.strength"):
        sorted_table(table, "test/f1")


def test_the_heatmap_grid_leaves_failed_cells_empty_and_averages_shared_cells(grid_sweep, tmp_path):
    grid = metric_grid(build_table(collect_jobs([grid_sweep]), "test/acc", {}), "loss", "reg.strength", "test/acc")
    assert (grid.row_values, grid.column_values) == (["hinge", "softmax"], ["0.01", "1e-4"])
    assert grid.values[0] == [0.81234567, 0.6] and all(math.isnan(value) for value in grid.values[1])
    assert grid.jobs == [[1, 1], [1, 1]]
    other = tmp_path / "other"
    write_job(other / "0", ["loss=l1", "reg=l2", "seed=1"], results(0.2))
    write_job(other / "1", ["loss=l1", "reg=l2", "seed=2"], results(0.4))
    write_job(other / "2", ["loss=l2", "reg=l1", "seed=1"], results(0.9))
    shared = metric_grid(build_table(collect_jobs([other]), "test/acc", {}), "loss", "reg", "test/acc")
    assert shared.values[0][0] == pytest.approx(0.3) and shared.jobs == [[2, 0], [0, 1]]


def test_report_md_and_plots(grid_sweep):
    report = make_report([grid_sweep])
    markdown = (grid_sweep / "report" / "report.md").read_text()
    assert "4 jobs, 2 with results; main metric `test/acc`." in markdown
    assert (
        "| job | loss | reg.strength | status | test/acc | val/acc | test/mae | weights/zero_fraction | epochs "
        "| wall_time_s |\n"
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|\n"
        "| 0 | hinge | 0.01 | ok | 0.8123 | 0.5 | 0.4 | 0.25 | 2 | 12.35 |\n"
        "| 1 | hinge | 1e-4 | ok | 0.6 | 0.5 | - | - | 2 | 12.35 |\n"
        "| 2 | softmax | 0.01 | failed | - | - | - | - | - | - |\n"
        "| 3 | softmax | 1e-4 | incomplete (killed?) | - | - | - | - | - | - |\n"
    ) in markdown
    assert "- job 2 (loss=softmax reg.strength=0.01): failed: loss=softmax: lr too high\n" in markdown
    assert "- job 3 (loss=softmax reg.strength=1e-4): incomplete (killed?): no results.json" in markdown
    assert "Traceback" not in markdown
    assert report.plots == ["heatmap.png", "curves.png"] and report.notes == []
    for plot in report.plots:
        assert (grid_sweep / "report" / plot).read_bytes().startswith(PNG_SIGNATURE)
        assert f"![{plot}]({plot})" in markdown


def test_a_narrow_console_shows_the_main_metrics_and_names_the_others(grid_sweep):
    table = build_table(collect_jobs([grid_sweep]), "test/acc", {})

    def printed(width):
        console = Console(width=width, file=io.StringIO())
        console.print(console_table(table, "sweep", console))
        return console.file.getvalue()

    narrow, wide = printed(80), printed(200)
    assert "left out for width, in report.md: test/mae" in narrow
    assert "│ 0.8123 │" in narrow and "0.4" not in narrow
    assert "test/mae" in wide and "left out" not in wide and " 0.4 │" in wide


def test_a_single_varied_setting_leaves_the_heatmap_out_with_a_note(tmp_path):
    write_job(tmp_path / "0", ["loss=hinge"], results(0.5))
    write_job(tmp_path / "1", ["loss=l1"], results(0.6))
    report = make_report([tmp_path], output=tmp_path / "out")
    assert report.plots == []
    assert report.notes == [
        "heatmap.png left out: it needs 2 varied settings, the jobs vary 1",
        "curves.png left out: no job logged val/acc to TensorBoard",
    ]
    assert "- heatmap.png left out: it needs 2 varied settings" in (tmp_path / "out" / "report.md").read_text()


def test_a_real_sweep_reported_from_the_command_line(tmp_path):
    sweep_result = run_entry_point(tmp_path, "loss=softmax,hinge", "reg=none,l1", multirun=True)
    assert sweep_result.returncode == 0, sweep_result.stderr[-3000:]
    [sweep] = (tmp_path / "multiruns").iterdir()
    command = [sys.executable, "scripts/report.py", str(sweep), "--sort", "loss"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert [[cell.strip() for cell in row.split("│")[1:5]] for row in rows] == [
        ["2", "hinge", "none", "ok"],
        ["3", "hinge", "l1", "ok"],
        ["0", "softmax", "none", "ok"],
        ["1", "softmax", "l1", "ok"],
    ]
    markdown = (sweep / "report" / "report.md").read_text()
    assert "| job | loss | reg | status | test/acc | val/acc |" in markdown
    assert markdown.count("| ok |") == 4
    for plot in ("heatmap.png", "curves.png"):
        assert (sweep / "report" / plot).read_bytes().startswith(PNG_SIGNATURE)
