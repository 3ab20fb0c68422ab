"""Proper scores for ordered levels: the ranked probability score and the negative log-likelihood."""

import math

import pytest
import torch

from lregloss.metrics import negative_log_likelihood, ranked_probability_score


def rps_by_formula(proba: list[float], level: int) -> float:
    """1/(K-1) sum over the first K-1 levels k of (P(y <= k) - 1[level <= k])^2, written out."""
    total, cdf = 0.0, 0.0
    for k in range(len(proba) - 1):
        cdf += proba[k]
        total += (cdf - (1.0 if level <= k else 0.0)) ** 2
    return total / (len(proba) - 1)


def test_rps_matches_its_formula():
    generator = torch.Generator().manual_seed(0)
    proba = torch.rand(50, 5, generator=generator, dtype=torch.float64).softmax(dim=1)
    target = torch.randint(0, 5, (50,), generator=generator)
    expected = [rps_by_formula(row.tolist(), int(y)) for row, y in zip(proba, target)]
    torch.testing.assert_close(ranked_probability_score(proba, target), torch.tensor(expected, dtype=torch.float64))


def test_rps_is_zero_for_a_sure_right_answer_and_grows_with_the_distance_of_the_mass():
    target = torch.tensor([2, 2, 2])
    proba = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0]])
    scores = ranked_probability_score(proba, target).tolist()
    assert scores[0] == 0.0 and 0 < scores[1] < scores[2]  # one level off costs less than two: accuracy cannot tell
    assert scores == pytest.approx([0.0, 0.25, 0.5])


def test_nll_is_minus_the_log_of_the_true_levels_probability_clamped_where_it_is_zero():
    proba = torch.tensor([[0.25, 0.75], [1.0, 0.0]])
    values = negative_log_likelihood(proba, torch.tensor([1, 1]))
    assert values[0].item() == pytest.approx(-math.log(0.75))
    assert values[1].item() == pytest.approx(-math.log(torch.finfo(torch.float32).tiny))  # 87.3, not inf
