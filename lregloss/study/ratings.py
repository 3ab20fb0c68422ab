"""Star ratings as regression, as classification or as ordinal levels: every loss on the same decoded metrics.

The default reviews recipe (``model=bag_of_ngrams``, 5 epochs, best checkpoint by ``val/acc``)
with each loss, every seed. Every loss decodes its outputs into a level 0..4 its own way
(`lregloss.losses.Loss.predict_level`), and the same metrics compare the levels
(`lregloss.metrics.OrdinalMetrics`). The losses that give a distribution get a reliability
diagram of their test predictions, pooled over seeds.
"""

from __future__ import annotations

import torch
from rich.console import Console

from lregloss.reporting.jobs import Job
from lregloss.study.calibration import Reliability, reliability
from lregloss.study.plots import plot_reliability
from lregloss.study.runs import set_up_data, train_run, trained_module
from lregloss.study.settings import StudyOutcome, StudySettings
from lregloss.study.summary import format_mean_std, markdown_table, mean_std

LOSSES = {  # loss -> how it treats the rating
    "softmax": "classification",
    "hinge": "classification",
    "squared_hinge": "classification",
    "hsoftmax": "classification",
    "ordinal": "ordinal",
    "l1": "regression",
    "l2": "regression",
}
TINY_LOSSES = ("softmax", "ordinal", "l2")
METRICS = {  # logged metric -> column
    "test/mae": "test MAE",
    "test/rmse": "test RMSE",
    "test/acc": "test acc",
    "test/acc_within1": "within one star",
    "test/ece": "ECE",
    "val/mae": "val MAE",
    "val/acc": "val acc",
}
PLOT = "ratings_reliability.png"


@torch.no_grad()
def test_distributions(job: Job, datamodule) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's best checkpoint's predicted distributions on the test split, and the true levels."""
    module = trained_module(job, datamodule)
    probabilities, targets = [], []
    for ids, levels in datamodule.test_dataloader():
        probabilities.append(module.loss.predict_proba(module.model(ids)))
        targets.append(levels)
    return torch.cat(probabilities), torch.cat(targets)


def run(settings: StudySettings, console: Console) -> StudyOutcome:
    """Train every loss with every seed; tabulate the decoded metrics; plot reliability where a loss gives one."""
    jobs: dict[str, list[Job]] = {}
    for loss in TINY_LOSSES if settings.tiny else LOSSES:
        jobs[loss] = []
        for seed in settings.seeds:
            name = f"{loss}-seed{seed}"
            overrides = [f"loss={loss}", f"seed={seed}", *settings.reviews_overrides, *settings.training]
            job = train_run(settings.conf_dir, overrides, settings.work_dir / "ratings" / name)
            console.print(f"  ratings {name}: test MAE {job.results['test/mae']:.3f}, "
                          f"{job.results['wall_time_s']:.1f} s", highlight=False)  # fmt: skip
            jobs[loss].append(job)

    calibrated = [loss for loss, runs in jobs.items() if "test/ece" in runs[0].results]
    datamodule = set_up_data(jobs[calibrated[0]][0])  # one split for all: the runs share the data config
    diagrams: dict[str, Reliability] = {}
    for loss in calibrated:
        pooled = [test_distributions(job, datamodule) for job in jobs[loss]]
        diagrams[loss] = reliability(torch.cat([p for p, _ in pooled]), torch.cat([t for _, t in pooled]))
    plot_reliability(diagrams, settings.output / PLOT)

    mae = {loss: mean_std([job.results["test/mae"] for job in runs]) for loss, runs in jobs.items()}
    best = min(mae, key=lambda loss: mae[loss][0])
    # "tied": the means differ by less than the larger of the two spreads over seeds
    tied = [loss for loss in mae if loss != best and mae[loss][0] - mae[best][0] <= max(mae[loss][1], mae[best][1])]
    headline = (
        f"lowest test MAE: {best} ({mae[best][0]:.3f} ± {mae[best][1]:.3f} stars); "
        + (f"within a standard deviation of it: {', '.join(tied)}" if tied
           else "every other loss is more than a standard deviation above")  # fmt: skip
    )
    intro = (
        f"The default reviews recipe with each loss, seeds {', '.join(map(str, settings.seeds))} "
        "(mean ± std over seeds). MAE and RMSE are in stars; accuracy is the exact level; ECE is the "
        "top-label calibration error (15 bins) of the losses that give a distribution."
    )
    reliability_text = (
        f"Reliability of the test predictions, pooled over the seeds ({', '.join(calibrated)}); ECE of the pooled "
        "predictions: " + ", ".join(f"{loss} {diagram.ece:.3f}" for loss, diagram in diagrams.items()) + "."
    )
    markdown = "\n\n".join([intro, results_table(jobs), headline + ".", reliability_text,
                            f"![Reliability diagram]({PLOT})"])  # fmt: skip
    title = "Ratings as regression, classification or ordinal levels"
    return StudyOutcome("ratings", title, markdown, [PLOT], [headline])


def results_table(jobs: dict[str, list[Job]]) -> str:
    """One row per loss: how it treats the rating, then each metric's mean ± std over seeds ('-' where not logged)."""
    rows = []
    for loss, runs in jobs.items():
        cells = [format_mean_std([job.results[m] for job in runs]) if m in runs[0].results else "-" for m in METRICS]
        rows.append([f"`{loss}`", LOSSES[loss], *cells])
    return markdown_table(["loss", "treats ratings as", *METRICS.values()], rows, numeric_from=2)
