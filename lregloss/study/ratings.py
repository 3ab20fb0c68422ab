"""Star ratings as regression, as classification or as ordinal levels: every loss on the same decoded metrics.

The default reviews recipe (``model=bag_of_ngrams``, 5 epochs, best checkpoint by ``val/acc``) with
each loss, every seed, and temperature scaling on (`lregloss.callbacks.TemperatureScaling`: one T
fitted on the validation split, for the losses that give a distribution). Every loss decodes its
outputs into a level 0..4 its own way (`lregloss.losses.Loss.predict_level`), and the same metrics
compare the levels (`lregloss.metrics.OrdinalMetrics`). The losses that give a distribution are also
decoded by every rule from their best checkpoint's test outputs, their calibration is set against
the ECE a calibrated model would measure on the same test reviews (`calibrated_ece`), and their
reliability at T is drawn, pooled over seeds. lregloss's three ordinal objectives run beside the
peers of the ``ordinal-peers`` extra: coral-pytorch's CORN and spacecutter's cumulative link.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from rich.console import Console
from torch import Tensor

from lregloss.losses import LEVEL_RULES
from lregloss.reporting.jobs import Job
from lregloss.study.calibration import FLOOR_DRAWS, Reliability, calibrated_ece, reliability
from lregloss.study.plots import plot_reliability
from lregloss.study.runs import set_up_data, train_run, trained_module
from lregloss.study.settings import StudyOutcome, StudySettings
from lregloss.study.summary import format_mean_std, markdown_table, mean_std


@dataclass(frozen=True)
class Setting:
    """One row: its overrides of the default recipe, and how it treats the rating."""

    overrides: tuple[str, ...]
    treats_as: str


SETTINGS = {
    "softmax": Setting(("loss=softmax",), "classification"),
    "hinge": Setting(("loss=hinge",), "classification"),
    "squared_hinge": Setting(("loss=squared_hinge",), "classification"),
    "hsoftmax": Setting(("loss=hsoftmax",), "classification"),
    "ordinal/binary": Setting(("loss=ordinal", "loss.objective=binary"), "ordinal"),
    "ordinal/likelihood": Setting(("loss=ordinal", "loss.objective=likelihood"), "ordinal"),
    "ordinal/corn": Setting(("loss=ordinal", "loss.objective=corn"), "ordinal"),
    "coral_corn": Setting(("loss=coral_corn",), "ordinal (coral-pytorch)"),
    "spacecutter": Setting(("loss=spacecutter",), "ordinal (spacecutter)"),
    "l1": Setting(("loss=l1",), "regression"),
    "l2": Setting(("loss=l2",), "regression"),
}
TINY_SETTINGS = ("softmax", "ordinal/corn", "coral_corn", "l2")
EVERY_RUN = ("temperature_scaling=true",)
OBJECTIVES = ("ordinal/binary", "ordinal/likelihood", "ordinal/corn")  # lregloss's own ordinal objectives
PEERS = {"coral_corn": "ordinal/corn"}  # a peer -> lregloss's objective that fits the same model the same way
TARGET_ECE = 0.02  # test ECE after temperature scaling (issue 17)
TARGET_MAE = 0.36  # test MAE of the best ordinal objective (issue 17)
METRICS = {  # logged metric -> column of the results table
    "test/mae": "test MAE",
    "test/rmse": "test RMSE",
    "test/acc": "test acc",
    "test/acc_within1": "within one star",
    "val/mae": "val MAE",
    "val/acc": "val acc",
}
CALIBRATION = {  # logged metric -> column of the calibration table
    "test/temperature": "T",
    "test/uncalibrated/ece": "ECE at T = 1",
    "test/ece": "ECE at T",
    "test/uncalibrated/nll": "NLL at T = 1",
    "test/nll": "NLL at T",
    "test/uncalibrated/rps": "RPS at T = 1",
    "test/rps": "RPS at T",
}
PLOT = "ratings_reliability.png"


@dataclass(frozen=True)
class TestDistribution:
    """One run's test split as its best checkpoint sees it: the distribution at the run's T, the true levels,
    the levels each rule decodes, and the ECE a calibrated model would measure there."""

    proba: Tensor
    target: Tensor
    levels: dict[str, Tensor]
    calibrated_ece: float

    def mae(self, rule: str) -> float:
        return float((self.levels[rule] - self.target).abs().float().mean())

    def accuracy(self, rule: str) -> float:
        return float((self.levels[rule] == self.target).float().mean())


@torch.no_grad()
def test_distribution(job: Job, datamodule) -> TestDistribution:
    """The run's best checkpoint on the test split, at the temperature the run fitted."""
    module = trained_module(job, datamodule)
    outputs, targets = [], []
    for inputs, levels in datamodule.test_dataloader():
        outputs.append(module.model(inputs))
        targets.append(levels)
    outputs, target = torch.cat(outputs), torch.cat(targets)
    loss, size = module.loss, module.task.size
    proba = loss.predict_proba(outputs, module.scale)
    levels = {rule: loss.predict_level(outputs, size, rule, module.scale) for rule in LEVEL_RULES}
    return TestDistribution(proba, target, levels, calibrated_ece(proba))


def run(settings: StudySettings, console: Console) -> StudyOutcome:
    """Train every setting with every seed; tabulate the metrics, the decoding rules and the calibration; plot reliability."""
    jobs: dict[str, list[Job]] = {}
    for label in TINY_SETTINGS if settings.tiny else SETTINGS:
        jobs[label] = []
        for seed in settings.seeds:
            name = f"{label.replace('/', '-')}-seed{seed}"
            overrides = [*SETTINGS[label].overrides, *EVERY_RUN, f"seed={seed}", *settings.reviews_overrides,
                         *settings.training]  # fmt: skip
            job = train_run(settings.conf_dir, overrides, settings.work_dir / "ratings" / name)
            console.print(f"  ratings {name}: test MAE {job.results['test/mae']:.3f}, "
                          f"{job.results['wall_time_s']:.1f} s", highlight=False)  # fmt: skip
            jobs[label].append(job)

    calibrated = [label for label, runs in jobs.items() if "test/ece" in runs[0].results]
    datamodule = set_up_data(jobs[calibrated[0]][0])  # one split for all: the runs share the data config
    tested = {label: [test_distribution(job, datamodule) for job in jobs[label]] for label in calibrated}
    diagrams: dict[str, Reliability] = {
        label: reliability(torch.cat([t.proba for t in runs]), torch.cat([t.target for t in runs]))
        for label, runs in tested.items()
    }
    plot_reliability(diagrams, settings.output / PLOT, "at each run's fitted T")

    headline = [mae_finding(jobs, tested), calibration_finding(jobs, tested)]
    headline += [peer_finding(jobs, peer, own) for peer, own in PEERS.items() if peer in jobs and own in jobs]
    test_size = len(next(iter(tested.values()))[0].target)
    intro = (
        f"`python scripts/train.py <overrides> temperature_scaling=true seed=<seed>` for each row, seeds "
        f"{', '.join(map(str, settings.seeds))} (mean ± std over seeds); `ordinal/<objective>` is `loss=ordinal "
        "loss.objective=<objective>`, `coral_corn` and `spacecutter` the peers of the `ordinal-peers` extra. "
        "MAE and RMSE are in stars; accuracy is the exact level. Each loss decodes levels by its own rule "
        "(`level_decoding=auto`: the mode for softmax-like losses, the median for the ordinal ones, the "
        "rounded value for regression)."
    )
    decoding_intro = (
        "The losses that give a distribution, decoded by every rule from their best checkpoint's test outputs at "
        "the fitted T (`level_decoding=mode`, `median` or `expected`, the rounded mean):"
    )
    calibration_intro = (
        f"Calibration on the {test_size:,} test reviews before (T = 1) and after temperature scaling (T fitted on "
        "the validation split by `temperature_scaling=true`). ECE is the top-label calibration error in 15 bins; "
        "\"calibrated model's ECE\" is the ECE a perfectly calibrated model with the same distributions would "
        f"measure on these reviews (labels drawn from the distributions themselves, mean of {FLOOR_DRAWS} draws): ECE "
        "counts |accuracy - confidence| in bins of finitely many reviews, so even a calibrated model's is above "
        "0, and a measured ECE near it is sampling noise. NLL and RPS (ranked probability score) are proper "
        "scores: lower is better."
    )
    reliability_text = (
        f"Reliability of the test predictions at each run's T, pooled over the seeds; ECE of the pooled "
        "predictions: " + ", ".join(f"{label} {diagram.ece:.3f}" for label, diagram in diagrams.items()) + "."
    )
    markdown = "\n\n".join([
        intro, results_table(jobs), *(line + "." for line in headline), decoding_intro, decoding_table(tested),
        calibration_intro, calibration_table(jobs, tested), reliability_text, f"![Reliability diagram]({PLOT})",
    ])  # fmt: skip
    title = "Ratings as regression, classification or ordinal levels"
    return StudyOutcome("ratings", title, markdown, [PLOT], headline)


def metric(runs: list[Job], name: str) -> list[float]:
    """The logged ``name`` (``test/mae``) of each run."""
    return [job.results[name] for job in runs]


def mae_finding(jobs: dict[str, list[Job]], tested: dict[str, list[TestDistribution]]) -> str:
    """The lowest test MAE of any loss and decoding rule, and the best ordinal objective's against `TARGET_MAE`."""
    candidates = {(label, "auto"): metric(runs, "test/mae") for label, runs in jobs.items()}
    candidates |= {(label, rule): [t.mae(rule) for t in runs] for label, runs in tested.items() for rule in LEVEL_RULES}
    spread = {key: mean_std(values) for key, values in candidates.items()}
    (label, rule), (mean, std) = min(spread.items(), key=lambda item: item[1][0])
    text = f"lowest test MAE: {label} decoded by {rule} ({mean:.3f} ± {std:.3f} stars)"
    objectives = [key for key in spread if key[0] in OBJECTIVES]
    if objectives:
        best = min(objectives, key=lambda key: spread[key][0])
        verdict = "meets" if spread[best][0] <= TARGET_MAE else "misses"
        text += (
            f"; best ordinal objective: {best[0]} decoded by {best[1]} ({spread[best][0]:.3f} ± {spread[best][1]:.3f}), "
            f"which {verdict} the target of MAE <= {TARGET_MAE}"
        )
    return text


def calibration_finding(jobs: dict[str, list[Job]], tested: dict[str, list[TestDistribution]]) -> str:
    """Which losses reach `TARGET_ECE` after temperature scaling, against the ECE a calibrated model measures."""
    after = {label: mean_std(metric(jobs[label], "test/ece")) for label in tested}
    floors = [t.calibrated_ece for runs in tested.values() for t in runs]
    reached = [label for label, (mean, _) in after.items() if mean <= TARGET_ECE]
    return (
        f"test ECE after temperature scaling: {', '.join(f'{label} {mean:.3f}' for label, (mean, _) in after.items())}; "
        f"<= {TARGET_ECE} for {', '.join(reached) or 'none'}; a perfectly calibrated model with the same "
        f"distributions would measure {min(floors):.3f} to {max(floors):.3f} on these test reviews"
    )


def peer_finding(jobs: dict[str, list[Job]], peer: str, own: str) -> str:
    """lregloss's objective against the peer that fits the same thing: difference of mean test MAE and NLL."""
    parts = []
    for name in ("test/mae", "test/nll"):
        (own_mean, own_std), (peer_mean, peer_std) = mean_std(metric(jobs[own], name)), mean_std(metric(jobs[peer], name))
        parts.append(f"{name} {own_mean:.4f} ± {own_std:.4f} against {peer_mean:.4f} ± {peer_std:.4f} "
                     f"(difference {abs(own_mean - peer_mean):.4f})")  # fmt: skip
    return f"{own} against {peer}: " + "; ".join(parts)


def results_table(jobs: dict[str, list[Job]]) -> str:
    """One row per setting: how it treats the rating, then each metric's mean ± std over seeds."""
    rows = [
        [f"`{label}`", SETTINGS[label].treats_as, *(format_mean_std(metric(runs, name)) for name in METRICS)]
        for label, runs in jobs.items()
    ]
    return markdown_table(["loss", "treats ratings as", *METRICS.values()], rows, numeric_from=2)


def decoding_table(tested: dict[str, list[TestDistribution]]) -> str:
    """Test MAE and accuracy of each distribution loss under each rule, mean ± std over seeds."""
    rules = [rule for rule in LEVEL_RULES if rule != "auto"]
    rows = [
        [f"`{label}`", *(format_mean_std([t.mae(rule) for t in runs]) for rule in rules),
         *(format_mean_std([t.accuracy(rule) for t in runs]) for rule in rules)]
        for label, runs in tested.items()
    ]  # fmt: skip
    header = ["loss", *(f"MAE, {rule}" for rule in rules), *(f"acc, {rule}" for rule in rules)]
    return markdown_table(header, rows)


def calibration_table(jobs: dict[str, list[Job]], tested: dict[str, list[TestDistribution]]) -> str:
    """Per distribution loss: T, ECE, NLL and RPS before and after it, and the ECE of a calibrated model."""
    rows = [
        [f"`{label}`", *(format_mean_std(metric(jobs[label], name)) for name in CALIBRATION),
         format_mean_std([t.calibrated_ece for t in runs])]
        for label, runs in tested.items()
    ]  # fmt: skip
    return markdown_table(["loss", *CALIBRATION.values(), "calibrated model's ECE"], rows)
