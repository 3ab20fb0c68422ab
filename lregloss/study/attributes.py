"""Attributes: one hinge or one logistic loss per attribute, on the scene recipe.

``experiment=scene`` (MULAN scene: 6 attributes of 2,407 images, an MLP, the checkpoint with the
lowest ``val/hamming`` tested) with ``loss=attr_logistic`` and ``loss=attr_hinge``, every seed:
the multi-label metrics of `lregloss.metrics.MultilabelMetrics`, and each attribute's F1.
"""

from __future__ import annotations

from rich.console import Console

from lregloss.reporting.jobs import Job
from lregloss.study.plots import plot_attribute_f1
from lregloss.study.runs import train_run
from lregloss.study.settings import StudyOutcome, StudySettings
from lregloss.study.summary import format_mean_std, markdown_table, mean_std

RECIPE = ("experiment=scene",)
LOSSES = ("attr_logistic", "attr_hinge")
METRICS = {  # logged metric -> column
    "test/hamming": "test hamming",
    "test/subset_acc": "subset acc",
    "test/f1_micro": "micro F1",
    "test/f1_macro": "macro F1",
    "val/hamming": "val hamming",
}
F1_PREFIX = "test/f1/"  # one per attribute: test/f1/Beach, ...
PLOT = "attributes_f1.png"


def run(settings: StudySettings, console: Console) -> StudyOutcome:
    """Train both losses with every seed; tabulate the test metrics and plot each attribute's F1."""
    jobs: dict[str, list[Job]] = {}
    for loss in LOSSES:
        jobs[loss] = []
        for seed in settings.seeds:
            name = f"{loss}-seed{seed}"
            overrides = [*RECIPE, f"loss={loss}", f"seed={seed}", *settings.training]
            job = train_run(settings.conf_dir, overrides, settings.work_dir / "attributes" / name)
            console.print(f"  attributes {name}: test hamming {job.results['test/hamming']:.4f}, "
                          f"{job.results['wall_time_s']:.1f} s", highlight=False)  # fmt: skip
            jobs[loss].append(job)

    attributes = [key.removeprefix(F1_PREFIX) for key in jobs[LOSSES[0]][0].results if key.startswith(F1_PREFIX)]
    f1 = {loss: {a: [job.results[F1_PREFIX + a] for job in runs] for a in attributes} for loss, runs in jobs.items()}
    plot_attribute_f1(f1, settings.output / PLOT)

    hamming = {loss: [job.results["test/hamming"] for job in runs] for loss, runs in jobs.items()}
    spread = {loss: mean_std(values) for loss, values in hamming.items()}
    better, worse = sorted(spread, key=lambda loss: spread[loss][0])
    headline = (
        f"test hamming: {', '.join(f'{loss} {format_mean_std(values, 4)}' for loss, values in hamming.items())}; "
        f"{better} lower by {spread[worse][0] - spread[better][0]:.4f}, against standard deviations over seeds of "
        f"{spread[better][1]:.4f} and {spread[worse][1]:.4f}"
    )
    intro = (
        "`python scripts/train.py experiment=scene loss=<loss> seed=<seed>`, "
        f"seeds {', '.join(map(str, settings.seeds))} "
        "(mean ± std over seeds). Hamming loss is the share of wrong attribute decisions; subset accuracy the "
        f"share of images with all {len(attributes)} attributes right."
    )
    rows = [
        [f"`{loss}`", *(format_mean_std([job.results[metric] for job in runs], 4) for metric in METRICS)]
        for loss, runs in jobs.items()
    ]
    table = markdown_table(["loss", *METRICS.values()], rows)
    markdown = "\n\n".join([intro, table, headline + ".", f"![Test F1 per attribute]({PLOT})"])
    title = "Attributes: per-attribute hinge against logistic loss"
    return StudyOutcome("attributes", title, markdown, [PLOT], [headline])
