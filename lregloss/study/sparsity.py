"""L1 gives sparse weights, L2 dense ones: a linear model on the reviews' n-grams, at matched accuracy.

Model: ``experiment=reviews_linear``, multinomial logistic regression on n-gram frequencies
(`lregloss.models.text.LinearBagOfNgrams`), so each weight belongs to one n-gram and one star
rating. Each penalty's strength is swept with seed 0. L2 keeps its best validation accuracy;
L1 (``mode=proximal``, exact zeros) and elastic net keep the largest strength whose validation
accuracy is within `MATCH` of that L2 pick's ("matched accuracy"). The picks, and no penalty,
then run with every seed. scikit-learn's L1 and L2 logistic regression on TF-IDF 1-2 grams are
the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from rich.console import Console

from lregloss.reporting.jobs import Job
from lregloss.study.plots import plot_sparsity
from lregloss.study.runs import best_weights, set_up_data, train_run
from lregloss.study.settings import StudyOutcome, StudySettings
from lregloss.study.sklearn_text import ReferenceFit, reference_fits
from lregloss.study.summary import format_mean_std, markdown_table, mean_std

RECIPE = ("experiment=reviews_linear",)
WEIGHT = "model.table.weight"  # (n-grams, 5 ratings); row 0 is padding, always 0, left out of every count
MATCH = 0.01  # "matched accuracy": validation accuracy at most 1 point below the L2 pick's
TARGET_ZEROS = 0.95  # the claim: L1 keeps at least 95% exact zeros within MATCH of L2's test accuracy
L2_STRENGTHS = (1e-7, 3e-7, 1e-6, 3e-6)
L1_STRENGTHS = (2e-6, 3e-6, 4e-6, 5e-6, 6e-6, 7e-6, 1e-5, 2e-5)
TINY_L2_STRENGTHS = (3e-7,)
TINY_L1_STRENGTHS = (5e-6, 2e-5)
TOP_NGRAMS = 10
PLOT = "sparsity.png"


@dataclass(frozen=True)
class Penalty:
    """One regularizer setting: its family (``l1``), the strength it is ranked by, a label, its overrides."""

    family: str
    strength: float
    label: str
    overrides: tuple[str, ...]

    def run_name(self, seed: int) -> str:
        """The run's folder name: ``l1-5e-06-seed0``, ``elastic-5e-06+3e-07-seed1``, ``none-seed2``."""
        strength = f"-{self.label.replace(' + ', '+')}" if self.strength else ""
        return f"{self.family}{strength}-seed{seed}"


def l2(strength: float) -> Penalty:
    return Penalty("l2", strength, f"{strength:g}", ("reg=l2", f"reg.strength={strength}"))


def l1(strength: float) -> Penalty:
    return Penalty("l1", strength, f"{strength:g}", ("reg=l1", "reg.mode=proximal", f"reg.strength={strength}"))


def elastic(l1_strength: float, l2_strength: float) -> Penalty:
    overrides = ("reg=elastic", "reg.mode=proximal", f"reg.l1_strength={l1_strength}", f"reg.l2_strength={l2_strength}")
    return Penalty("elastic", l1_strength, f"{l1_strength:g} + {l2_strength:g}", overrides)


NO_PENALTY = Penalty("none", 0.0, "-", ("reg=none",))


@dataclass(frozen=True)
class SparsityRun:
    """A trained run and what its best checkpoint's n-gram weights hold.

    Args:
        job: the run as `lregloss.reporting.jobs.load_job` reads it.
        weight: the (n-grams, ratings) weights, padding row left out.
        zero_fraction: share of those weights exactly 0.
        ngrams_kept: n-grams with any non-zero weight.
    """

    job: Job
    weight: torch.Tensor
    zero_fraction: float
    ngrams_kept: int

    def metric(self, name: str) -> float:
        return self.job.results[name]


def read_run(job: Job) -> SparsityRun:
    """The run's best n-gram weights (padding row 0 left out) and their counts."""
    weight = best_weights(job, WEIGHT)[1:]
    return SparsityRun(job, weight, float((weight == 0).float().mean()), int((weight != 0).any(dim=1).sum()))


def sentiment_weights(weight: torch.Tensor) -> torch.Tensor:
    """Per n-gram, its weight toward 5 stars minus its weight toward 1 star: w[:, 4] - w[:, 0]."""
    return weight[:, -1] - weight[:, 0]


def top_ngrams(weight: torch.Tensor, ngrams: list[str], count: int, toward_five: bool) -> list[str]:
    """The ``count`` n-grams with the largest (or most negative) `sentiment_weights`, as ``ngram (+12)``."""
    scores = sentiment_weights(weight)
    order = scores.argsort(descending=toward_five)[:count].tolist()
    return [f"{ngrams[i]} ({scores[i]:+.0f})" if scores[i] != 0 else "-" for i in order]


def pick_matched(sweep: dict[Penalty, SparsityRun], reference_acc: float) -> Penalty:
    """The largest strength whose validation accuracy is within `MATCH` of ``reference_acc``; else the most accurate."""
    matched = [penalty for penalty, run in sweep.items() if run.metric("val/acc") >= reference_acc - MATCH]
    if matched:
        return max(matched, key=lambda penalty: penalty.strength)
    return max(sweep, key=lambda penalty: sweep[penalty].metric("val/acc"))


def mean_of(runs: list[SparsityRun], metric: str) -> float:
    return mean_std([run.metric(metric) for run in runs])[0]


def run(settings: StudySettings, console: Console) -> StudyOutcome:
    """Sweep, pick at matched accuracy, run the picks with every seed, fit the references; tabulate and plot."""

    def train(penalty: Penalty, seed: int) -> SparsityRun:
        name = penalty.run_name(seed)
        overrides = [*RECIPE, *penalty.overrides, f"seed={seed}", *settings.reviews_overrides, *settings.training]
        trained = read_run(train_run(settings.conf_dir, overrides, settings.work_dir / "sparsity" / name))
        console.print(f"  sparsity {name}: val acc {trained.metric('val/acc'):.4f}, {trained.zero_fraction:.1%} "
                      f"zeros, {trained.metric('wall_time_s'):.1f} s", highlight=False)  # fmt: skip
        return trained

    l2_grid, l1_grid = (TINY_L2_STRENGTHS, TINY_L1_STRENGTHS) if settings.tiny else (L2_STRENGTHS, L1_STRENGTHS)
    sweeps = {"l2": {penalty: train(penalty, 0) for penalty in map(l2, l2_grid)}}
    l2_pick = max(sweeps["l2"], key=lambda penalty: sweeps["l2"][penalty].metric("val/acc"))
    reference_acc = sweeps["l2"][l2_pick].metric("val/acc")
    sweeps["l1"] = {penalty: train(penalty, 0) for penalty in map(l1, l1_grid)}
    sweeps["elastic"] = {penalty: train(penalty, 0) for penalty in (elastic(s, l2_pick.strength) for s in l1_grid)}
    l1_pick, elastic_pick = (pick_matched(sweeps[family], reference_acc) for family in ("l1", "elastic"))
    picks = [NO_PENALTY, l2_pick, l1_pick, elastic_pick]

    def every_seed(penalty: Penalty) -> list[SparsityRun]:
        swept = sweeps.get(penalty.family, {}).get(penalty)
        return [swept if seed == 0 and swept else train(penalty, seed) for seed in settings.seeds]

    seeded = {penalty: every_seed(penalty) for penalty in picks}

    data = set_up_data(seeded[NO_PENALTY][0].job)
    console.print("  sparsity: fitting the scikit-learn references", highlight=False)
    references = reference_fits(data)
    plot_sparsity(
        {family: [(p.strength, r.metric("val/acc"), r.zero_fraction) for p, r in sweep.items()]
         for family, sweep in sweeps.items()},
        reference_acc - MATCH,
        seeded[l1_pick][0].weight,
        seeded[l2_pick][0].weight,
        settings.output / PLOT,
    )  # fmt: skip

    zeros = mean_std([r.zero_fraction for r in seeded[l1_pick]])[0]
    gap = mean_of(seeded[l2_pick], "test/acc") - mean_of(seeded[l1_pick], "test/acc")
    verdict = "meets" if zeros >= TARGET_ZEROS and gap <= MATCH else "misses"
    headline = (
        f"L1 (proximal, {l1_pick.label}) keeps {zeros:.1%} exact zeros at a test accuracy {gap * 100:.2f} points "
        f"below L2's (mean of {len(settings.seeds)} seeds): it {verdict} the target of >= {TARGET_ZEROS:.0%} zeros "
        f"within {MATCH * 100:.0f} point."
    )
    ngrams = data.vocabulary[1:]
    intro = (
        f"`python scripts/train.py experiment=reviews_linear reg=...`: multinomial logistic regression on the "
        f"frequencies of the reviews' {len(ngrams):,} n-grams (1-2 grams seen 5+ times), one weight per n-gram and "
        "star rating, trained as the default recipe is (AdamW, one-cycle, 5 epochs, best `val/acc` checkpoint). "
        "L2 takes the strength with the best validation accuracy (seed 0); L1 and elastic net, by the proximal "
        f"step (exact zeros), the largest strength whose validation accuracy is within {MATCH * 100:.0f} point of "
        f"that (matched accuracy). Then seeds {', '.join(map(str, settings.seeds))}: mean ± std over seeds. "
        "Exact zeros: the share of the n-gram weights that are exactly 0 in the best checkpoint."
    )
    markdown = "\n\n".join([
        intro,
        results_table(seeded, references, len(ngrams)),
        headline,
        words_table(seeded[l1_pick][0].weight, seeded[l2_pick][0].weight, ngrams),
        sweep_table(sweeps),
        f"![L1 against L2: validation accuracy and exact zeros per strength, and the weights]({PLOT})",
    ])  # fmt: skip
    return StudyOutcome("sparsity", "L1 gives sparse weights, L2 dense ones", markdown, [PLOT], [headline])


def results_table(seeded: dict[Penalty, list[SparsityRun]], references: list[ReferenceFit], ngrams: int) -> str:
    """One row per pick (mean ± std over seeds), then the scikit-learn references (one deterministic fit each)."""
    header = ["regularizer", "strength", "test acc", "val acc", "exact zeros", "n-grams kept", "runs"]
    rows = []
    for penalty, runs in seeded.items():
        rows.append([
            f"{penalty.family} (proximal)" if penalty.family in ("l1", "elastic") else penalty.family,
            penalty.label,
            format_mean_std([r.metric("test/acc") for r in runs]),
            format_mean_std([r.metric("val/acc") for r in runs]),
            format_mean_std([100 * r.zero_fraction for r in runs], 1) + " %",
            f"{mean_std([r.ngrams_kept for r in runs])[0]:,.0f} of {ngrams:,}",
            f"{len(runs)} seeds",
        ])  # fmt: skip
    for fit in references:
        rows.append([fit.name, "-", f"{fit.test_acc:.3f}", f"{fit.val_acc:.3f}", f"{100 * fit.zero_fraction:.1f} %",
                     f"of {fit.features:,} TF-IDF features", f"1 fit, {fit.seconds:.0f} s"])  # fmt: skip
    return markdown_table(header, rows, numeric_from=2)


def words_table(l1_weight: torch.Tensor, l2_weight: torch.Tensor, ngrams: list[str]) -> str:
    """The n-grams pulling hardest toward 5 stars and toward 1 star in the L1 and the L2 pick (seed 0)."""
    columns = [
        top_ngrams(l1_weight, ngrams, TOP_NGRAMS, toward_five=True),
        top_ngrams(l1_weight, ngrams, TOP_NGRAMS, toward_five=False),
        top_ngrams(l2_weight, ngrams, TOP_NGRAMS, toward_five=True),
        top_ngrams(l2_weight, ngrams, TOP_NGRAMS, toward_five=False),
    ]
    header = ["rank", "L1: toward 5 stars", "L1: toward 1 star", "L2: toward 5 stars", "L2: toward 1 star"]
    rows = [[str(rank + 1), *(column[rank] for column in columns)] for rank in range(TOP_NGRAMS)]
    caption = (
        "The n-grams with the largest weight toward 5 stars minus weight toward 1 star, w[5] - w[1], "
        "in the seed-0 picks:"
    )
    return caption + "\n\n" + markdown_table(header, rows, numeric_from=len(header))


def sweep_table(sweeps: dict[str, dict[Penalty, SparsityRun]]) -> str:
    """The seed-0 sweep the picks were made from: validation accuracy and exact zeros per strength."""
    rows = [
        [family, penalty.label, f"{run.metric('val/acc'):.4f}", f"{100 * run.zero_fraction:.1f} %"]
        for family, sweep in sweeps.items()
        for penalty, run in sweep.items()
    ]
    caption = (
        "The seed-0 sweep the strengths were picked from (elastic: L1 strength + the L2 pick's strength); "
        f"L1 and elastic keep the largest strength within {MATCH * 100:.0f} point of L2's best validation accuracy:"
    )
    header = ["regularizer", "strength", "val acc", "exact zeros"]
    return caption + "\n\n" + markdown_table(header, rows, numeric_from=2)
