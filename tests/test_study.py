"""The lecture study at smoke size: each study trains through lregloss.app.train, reads its runs back, and writes
its tables and plots with sane values; the command writes the pages."""

import io
import math
import re

import pytest
import torch
from rich.console import Console
from torchmetrics.functional.classification import multiclass_calibration_error

from lregloss.study import attributes, cbow, hsoftmax, ratings, sparsity
from lregloss.study.calibration import calibrated_ece, reliability
from lregloss.study.cli import main
from lregloss.study.settings import StudySettings
from lregloss.study.summary import format_mean_std, markdown_table

from conftest import CONF

PNG_LIMIT = 200_000  # bytes: the README shows these


@pytest.fixture
def settings(tmp_path, tiny_reviews_csv):
    """Smoke size, on the 300 reviews of conftest (n-grams seen once kept, batches of 16)."""
    reviews = (f"data.path={tiny_reviews_csv}", "data.min_count=1", "data.batch_size=16")
    return StudySettings(CONF, tmp_path / "runs", tmp_path / "results", tiny=True, reviews_overrides=reviews)


@pytest.fixture
def console():
    return Console(file=io.StringIO(), width=200)


def table_rows(markdown: str, first_cell: str) -> list[list[str]]:
    """The cells of every row of the first Markdown table whose first cell is ``first_cell``."""
    table = next(block for block in markdown.split("\n\n") if block.startswith("|"))
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()]
    return [row for row in rows if row[0] == first_cell]


def mean_of(cell: str) -> float:
    """The mean of a ``0.681 ± 0.004`` cell (or of a plain number, or of ``12.5 ± 0.1 %``)."""
    return float(re.match(r"[-\d.]+", cell).group())


def check_png(path):
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size < PNG_LIMIT


def test_sparsity_l1_has_exact_zeros_l2_none_and_the_references_are_fitted(settings, console):
    outcome = sparsity.run(settings, console)
    check_png(settings.output / sparsity.PLOT)
    (none,) = table_rows(outcome.markdown, "none")
    (l2,) = table_rows(outcome.markdown, "l2")
    (l1,) = table_rows(outcome.markdown, "l1 (proximal)")
    (elastic,) = table_rows(outcome.markdown, "elastic (proximal)")
    for row in (none, l2, l1, elastic):
        assert 0 <= mean_of(row[2]) <= 1 and 0 <= mean_of(row[3]) <= 1  # test and validation accuracy
        assert row[6] == "2 seeds"
    # every n-gram of the vocabulary occurs in the training split, so every weight gets a gradient
    assert mean_of(none[4]) == 0 and mean_of(l2[4]) == 0
    assert mean_of(l1[4]) > 0 and mean_of(elastic[4]) > 0
    references = [line for line in outcome.markdown.splitlines() if line.startswith("| scikit-learn")]
    assert len(references) == 2 and "0.0 %" in references[1]
    assert "meets" in outcome.headline[0] or "misses" in outcome.headline[0]
    assert "| 10 | " in outcome.markdown  # the 10th-ranked n-grams


def test_sentiment_ranking_reads_five_stars_minus_one_star():
    weight = torch.tensor([[0.0, 0, 0, 0, 3], [2.0, 0, 0, 0, 0], [0.0, 0, 0, 0, 0]])
    ngrams = ["love", "returned", "the"]
    assert sparsity.top_ngrams(weight, ngrams, 2, toward_five=True) == ["love (+3)", "-"]
    assert sparsity.top_ngrams(weight, ngrams, 1, toward_five=False) == ["returned (-2)"]


def test_matched_accuracy_keeps_the_largest_strength_within_one_point():
    def run_with(accuracy):
        return sparsity.SparsityRun(type("J", (), {"results": {"val/acc": accuracy}})(), torch.zeros(1), 0.0, 0)

    sweep = {sparsity.l1(1e-6): run_with(0.670), sparsity.l1(5e-6): run_with(0.661), sparsity.l1(1e-5): run_with(0.655)}
    assert sparsity.pick_matched(sweep, reference_acc=0.670).strength == 5e-6
    assert sparsity.pick_matched(sweep, reference_acc=0.700).strength == 1e-6  # none within: the most accurate


def test_ratings_every_loss_on_the_same_metrics_decoding_rules_calibration_and_peers(settings, console):
    outcome = ratings.run(settings, console)
    check_png(settings.output / ratings.PLOT)
    tables = [block for block in outcome.markdown.split("\n\n") if block.startswith("|")]
    assert len(tables) == 3  # results, decoding rules, calibration
    distribution_losses = [label for label in ratings.TINY_SETTINGS if label != "l2"]
    for label in ratings.TINY_SETTINGS:
        (row,) = table_rows(tables[0], f"`{label}`")
        mae, rmse, acc, within_one = (mean_of(cell) for cell in row[2:6])
        assert 0 <= mae <= rmse <= 4  # in stars; RMSE >= MAE
        assert 0 <= acc <= within_one <= 1
        assert bool(table_rows(tables[1], f"`{label}`")) == (label in distribution_losses)
    for label in distribution_losses:
        (decoded,) = table_rows(tables[1], f"`{label}`")
        assert all(0 <= mean_of(cell) <= 4 for cell in decoded[1:4]) and all(0 <= mean_of(cell) <= 1 for cell in decoded[4:])
        (calibration,) = table_rows(tables[2], f"`{label}`")
        temperature, calibrated_model_ece = mean_of(calibration[1]), mean_of(calibration[-1])
        assert 0.01 <= temperature <= 100 and 0 < calibrated_model_ece < 1
    # lregloss's CORN and coral-pytorch's train the same model alike
    (peer,) = [line for line in outcome.headline if line.startswith("ordinal/corn against coral_corn")]
    differences = [float(value) for value in re.findall(r"difference (\d\.\d+)", peer)]
    assert len(differences) == 2 and max(differences) < 0.01, peer
    assert re.search(r"softmax \d\.\d{3}, ordinal/corn \d\.\d{3}, coral_corn \d\.\d{3}", outcome.markdown)  # pooled ECE


def test_a_calibrated_models_ece_is_the_binomial_spread_of_accuracy_around_its_confidence():
    # N samples all at confidence 0.7 fall in one bin: a calibrated model's ECE is E|X/N - 0.7|, X ~ Binomial(N, 0.7)
    n = 200
    successes = torch.arange(n + 1, dtype=torch.float64)
    pmf = torch.exp(torch.lgamma(torch.tensor(n + 1.0, dtype=torch.float64)) - torch.lgamma(successes + 1) - torch.lgamma(n - successes + 1)
                    + successes * math.log(0.7) + (n - successes) * math.log(0.3))  # fmt: skip
    exact = float((pmf * (successes / n - 0.7).abs()).sum())
    proba = torch.tensor([[0.7, 0.3]]).repeat(n, 1)
    assert calibrated_ece(proba, draws=20000) == pytest.approx(exact, rel=0.03)  # 20000 draws: a standard error of ~0.6%
    # it shrinks as 1 / sqrt(N), and a sure, right model has none
    assert calibrated_ece(proba.repeat(16, 1), draws=5000) == pytest.approx(exact / 4, rel=0.05)
    assert calibrated_ece(torch.eye(3).repeat(10, 1)) == 0.0


def test_reliability_bins_give_torchmetrics_calibration_error():
    generator = torch.Generator().manual_seed(0)
    proba = torch.softmax(3 * torch.randn(500, 5, generator=generator), dim=1)
    target = torch.randint(0, 5, (500,), generator=generator)
    found = reliability(proba, target)
    expected = multiclass_calibration_error(proba, target, num_classes=5, n_bins=15, norm="l1")
    assert found.ece == pytest.approx(float(expected), abs=1e-6)
    assert sum(found.count) == 500
    assert all(0 <= value <= 1 for value in found.confidence + found.accuracy)


def test_attributes_both_losses_on_the_scene_recipe(settings, console):
    outcome = attributes.run(settings, console)
    check_png(settings.output / attributes.PLOT)
    for loss in attributes.LOSSES:
        (row,) = table_rows(outcome.markdown, f"`{loss}`")
        assert all(0 <= mean_of(cell) <= 1 for cell in row[1:])
        assert "±" in row[1]  # two seeds
    assert "lower by" in outcome.headline[0]


def test_hsoftmax_times_both_layers_at_every_class_count(settings, console):
    outcome = hsoftmax.run(settings, console)
    check_png(settings.output / hsoftmax.PLOT)
    for num_classes in hsoftmax.TINY_CLASS_COUNTS:
        (row,) = table_rows(outcome.markdown, f"{num_classes:,}")
        assert float(row[1]) == pytest.approx(torch.tensor(num_classes).log2().item(), abs=0.05)
        assert mean_of(row[2]) > 0 and mean_of(row[3]) > 0 and float(row[4]) > 0


def test_cbow_every_output_layer_and_gensim_on_the_same_words(settings, console):
    pytest.importorskip("gensim")
    outcome = cbow.run(settings, console)
    check_png(settings.output / cbow.PLOT)
    for label in [*cbow.TINY_SETTINGS, cbow.GENSIM]:
        (row,) = table_rows(outcome.markdown, label)
        assert mean_of(row[1].replace(",", "")) > 0  # words/s
        log_likelihood, perplexity = mean_of(row[2]), mean_of(row[3])
        assert log_likelihood < 0 and perplexity == pytest.approx(math.exp(-log_likelihood), rel=0.05)
        assert all(0 <= mean_of(cell) <= 1 for cell in row[4:])
    assert outcome.headline[0].startswith("hsoftmax (Huffman) trains") and outcome.headline[1].startswith("against gensim")


def test_the_command_writes_each_chosen_study_page(tmp_path, capsys):
    assert main(["hsoftmax", "--tiny", "--output", str(tmp_path / "results"), "--work-dir", str(tmp_path)], CONF) == 0
    page = (tmp_path / "results" / "hsoftmax.md").read_text()
    assert page.startswith("# Hierarchical softmax") and "Made by `python scripts/study.py --tiny hsoftmax`" in page
    assert re.search(r"load average over 1 minute \d+\.\d\d before", page)
    assert sorted(path.name for path in (tmp_path / "results").iterdir()) == ["hsoftmax.md", hsoftmax.PLOT]
    with pytest.raises(SystemExit):
        main(["sparsity", "nonsense"], CONF)
    assert "unknown study nonsense; choose from sparsity, ratings, attributes, hsoftmax, cbow" in capsys.readouterr().err


def test_summary_formats():
    assert format_mean_std([0.5, 0.7]) == "0.600 ± 0.141"
    assert format_mean_std([0.25]) == "0.250"
    assert markdown_table(["a", "b"], [["x|y", 1]]).splitlines() == ["| a | b |", "| --- | ---: |", "| x\\|y | 1 |"]
