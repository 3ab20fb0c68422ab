"""Hierarchical softmax against an independent tree walk, autograd, and its tree guarantees."""

import math
from collections import deque
from pathlib import Path

import hydra
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from lregloss.losses.base import LossTaskMismatchError
from lregloss.losses.hierarchical import HierarchicalSoftmax, hsoftmax_loss
from lregloss.losses.trees import balanced_tree, huffman_tree, tree_tables
from lregloss.losses.tree_search import tree_log_prob
from lregloss.tasks import Task

CONF = Path(__file__).resolve().parents[1] / "conf"
SIZES = [2, 3, 5, 10, 1000]


def random_counts(num_classes: int, seed: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    # Heavy-tailed, with repeats and zeros, so that ties and empty classes are exercised.
    return (torch.rand(num_classes, generator=generator) ** 4 * 50).long().tolist()


def randomised(loss: HierarchicalSoftmax, seed: int) -> HierarchicalSoftmax:
    """The loss in float64 with random node parameters (they start at zero)."""
    generator = torch.Generator().manual_seed(seed)
    loss = loss.double()
    with torch.no_grad():
        loss.weight.copy_(torch.randn(loss.weight.shape, dtype=torch.float64, generator=generator))
        if loss.bias is not None:
            loss.bias.copy_(torch.randn(loss.bias.shape, dtype=torch.float64, generator=generator))
    return loss


def features_and_labels(n: int, d: int, c: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, dtype=torch.float64, generator=generator), torch.randint(0, c, (n,), generator=generator)


def log_sigmoid(z: float) -> float:
    return -math.log1p(math.exp(-z)) if z >= 0 else z - math.log1p(math.exp(z))


def balanced_log_likelihood_by_walk(h: list[float], y: int, weight: list[list[float]], bias: list[float]) -> float:
    """log p(y | h) on the balanced tree, written from the definition, not from the module's paths.

    A node covers classes lo..hi-1 and sends the first ceil(n/2) of them to its +1 branch;
    inner nodes are numbered breadth-first from the root.
    """
    num_classes = len(bias) + 1
    ids: dict[tuple[int, int], int] = {}
    queue = deque([(0, num_classes)])
    while queue:
        lo, hi = queue.popleft()
        if hi - lo > 1:
            ids[(lo, hi)] = len(ids)
            mid = lo + (hi - lo + 1) // 2
            queue.extend([(lo, mid), (mid, hi)])
    total, lo, hi = 0.0, 0, num_classes
    while hi - lo > 1:
        node = ids[(lo, hi)]
        z = sum(v * x for v, x in zip(weight[node], h)) + bias[node]
        mid = lo + (hi - lo + 1) // 2
        if y < mid:
            total, hi = total + log_sigmoid(z), mid
        else:
            total, lo = total + log_sigmoid(-z), mid
    return total


def assert_valid_tree(paths: list[list[tuple[int, int]]], num_classes: int) -> None:
    """The paths are the root-to-leaf paths of one full binary tree with C leaves."""
    assert len(paths) == num_classes
    node_at: dict[tuple, int] = {}  # path prefix -> the inner node reached
    for path in paths:
        assert path and path[0][0] == 0, "every path starts at the root, node 0"
        assert all(sign in (1, -1) for _, sign in path)
        for step, (node, _) in enumerate(path):
            assert node_at.setdefault(tuple(path[:step]), node) == node, "one prefix, one node"
    assert sorted(node_at.values()) == list(range(num_classes - 1)), "C-1 inner nodes, each reached by one prefix"
    leaves = {tuple(path) for path in paths}
    assert len(leaves) == num_classes, "paths are distinct"
    assert not leaves & set(node_at), "no class path ends at an inner node (prefix-free)"
    assert sum(2.0 ** -len(path) for path in paths) == pytest.approx(1.0, abs=1e-12), "full tree (Kraft equality)"


@pytest.mark.parametrize("num_classes", [*range(2, 40), 1000])
def test_balanced_tree_is_valid_with_depths_floor_or_ceil_of_log2(num_classes):
    paths = balanced_tree(num_classes)
    assert_valid_tree(paths, num_classes)
    depths = {len(path) for path in paths}
    assert depths <= {math.floor(math.log2(num_classes)), math.ceil(math.log2(num_classes))}


def test_balanced_tree_of_three_classes_by_hand():
    assert balanced_tree(3) == [[(0, 1), (1, 1)], [(0, 1), (1, -1)], [(0, -1)]]


@pytest.mark.parametrize(
    "counts,depths",
    [
        ([1, 1, 2, 4, 8], [4, 4, 3, 2, 1]),
        ([5, 2, 1, 1], [1, 2, 3, 3]),
        ([1, 1, 1, 1], [2, 2, 2, 2]),  # ties go to leaves first: the balanced tree
        ([3, 7], [1, 1]),
        ([0, 0, 10], [2, 2, 1]),
    ],
)
def test_huffman_depths_of_known_counts(counts, depths):
    paths = huffman_tree(counts)
    assert_valid_tree(paths, len(counts))
    assert [len(path) for path in paths] == depths


@pytest.mark.parametrize("num_classes", [2, 5, 10, 1000])
@pytest.mark.parametrize("seed", [0, 1])
def test_huffman_puts_frequent_classes_no_deeper_and_beats_balanced(num_classes, seed):
    counts = random_counts(num_classes, seed)
    paths = huffman_tree(counts)
    assert_valid_tree(paths, num_classes)
    depths = torch.tensor([len(path) for path in paths])
    by_count = torch.tensor(counts)
    more_frequent = by_count[:, None] > by_count[None, :]
    assert not (more_frequent & (depths[:, None] > depths[None, :])).any()
    balanced_depths = torch.tensor([len(path) for path in balanced_tree(num_classes)])
    assert (by_count * depths).sum() <= (by_count * balanced_depths).sum()


@pytest.mark.parametrize("class_counts", [None, [1, 1, 2, 4, 8]])
def test_module_buffers_hold_the_tree_paths(class_counts):
    loss = HierarchicalSoftmax(3, 5, class_counts=class_counts)
    paths = balanced_tree(5) if class_counts is None else huffman_tree(class_counts)
    assert loss.path_lengths.tolist() == [len(path) for path in paths]
    for c, path in enumerate(paths):
        length = len(path)
        assert loss.path_nodes[c, :length].tolist() == [node for node, _ in path]
        assert loss.path_signs[c, :length].tolist() == [sign for _, sign in path]
        assert not loss.path_signs[c, length:].any()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("num_classes", SIZES)
@pytest.mark.parametrize("huffman", [False, True])
def test_log_prob_without_autograd_matches_the_differentiable_one(num_classes, huffman, bias, dtype):
    # Evaluation (no autograd) forms the same sums in place, in one buffer; training keeps
    # the differentiable version. They must agree, and neither may touch its inputs.
    counts = random_counts(num_classes, seed=4) if huffman else None
    loss = randomised(HierarchicalSoftmax(6, num_classes, class_counts=counts, bias=bias), seed=5).to(dtype)
    h, _ = features_and_labels(9, 6, num_classes, seed=6)
    h = h.to(dtype)
    expected = loss.log_prob(h)  # parameters require grad: the differentiable version
    assert expected.requires_grad
    with torch.no_grad():
        got = loss.log_prob(h)
        logits = F.linear(h, loss.weight, loss.bias)
        kept = logits.clone()
        from_logits = tree_log_prob(
            logits, loss.node_parent, loss.node_sign, loss.leaf_parent, loss.leaf_sign, loss.level_starts
        )
    assert got.shape == (9, num_classes) and got.is_contiguous() and not got.requires_grad
    tolerance = {"atol": 1e-12, "rtol": 0} if dtype == torch.float64 else {"atol": 1e-5, "rtol": 1e-5}
    torch.testing.assert_close(got, expected.detach(), **tolerance)
    torch.testing.assert_close(from_logits, expected.detach(), **tolerance)
    assert torch.equal(logits, kept)


@pytest.mark.parametrize("num_classes", SIZES)
@pytest.mark.parametrize("huffman", [False, True])
def test_log_prob_is_normalised(num_classes, huffman):
    counts = random_counts(num_classes, seed=2) if huffman else None
    loss = randomised(HierarchicalSoftmax(6, num_classes, class_counts=counts), seed=3)
    h, _ = features_and_labels(32, 6, num_classes)
    totals = loss.log_prob(h).exp().sum(dim=1)
    torch.testing.assert_close(totals, torch.ones_like(totals), atol=1e-12, rtol=0)
    # The promised 1e-5 also holds in float32, the training precision.
    totals32 = loss.float().log_prob(h.float()).exp().sum(dim=1)
    torch.testing.assert_close(totals32, torch.ones_like(totals32), atol=1e-5, rtol=0)


@pytest.mark.parametrize("num_classes", SIZES)
@pytest.mark.parametrize("huffman", [False, True])
def test_loss_is_mean_negative_log_prob_of_the_target(num_classes, huffman):
    counts = random_counts(num_classes, seed=4) if huffman else None
    loss = randomised(HierarchicalSoftmax(6, num_classes, class_counts=counts), seed=5)
    h, y = features_and_labels(64, 6, num_classes, seed=6)
    expected = -loss.log_prob(h).gather(1, y.unsqueeze(1)).mean()
    torch.testing.assert_close(loss(h, y), expected)


@pytest.mark.parametrize("num_classes", [2, 3, 5, 10, 17])
@pytest.mark.parametrize("bias", [True, False])
def test_loss_matches_the_formula_on_an_independent_tree_walk(num_classes, bias):
    loss = randomised(HierarchicalSoftmax(4, num_classes, bias=bias), seed=7)
    h, y = features_and_labels(9, 4, num_classes, seed=8)
    weight = loss.weight.tolist()
    node_bias = loss.bias.tolist() if bias else [0.0] * (num_classes - 1)
    log_likelihoods = [
        balanced_log_likelihood_by_walk(h[i].tolist(), int(y[i]), weight, node_bias) for i in range(len(y))
    ]
    expected = torch.tensor(-sum(log_likelihoods) / len(y), dtype=torch.float64)
    torch.testing.assert_close(loss(h, y), expected)
    # and the full distribution, class by class
    row = [balanced_log_likelihood_by_walk(h[0].tolist(), c, weight, node_bias) for c in range(num_classes)]
    torch.testing.assert_close(loss.log_prob(h)[0], torch.tensor(row, dtype=torch.float64))


def test_huffman_loss_matches_the_product_of_sigmoids_along_the_paths():
    counts = [1, 1, 2, 4, 8, 3]
    loss = randomised(HierarchicalSoftmax(4, 6, class_counts=counts), seed=9)
    h, y = features_and_labels(12, 4, 6, seed=10)
    paths = huffman_tree(counts)
    total = 0.0
    for i in range(len(y)):
        probability = 1.0
        for node, sign in paths[int(y[i])]:
            z = float(loss.weight[node].detach() @ h[i] + loss.bias[node].detach())
            probability *= 1 / (1 + math.exp(-sign * z))
        total -= math.log(probability)
    torch.testing.assert_close(loss(h, y), torch.tensor(total / len(y), dtype=torch.float64))


def test_zero_initialisation_gives_probability_two_to_the_minus_depth():
    loss = HierarchicalSoftmax(5, 6, class_counts=[1, 1, 2, 4, 8, 3])
    h = torch.randn(7, 5)
    expected = -math.log(2) * loss.path_lengths.float()
    torch.testing.assert_close(loss.log_prob(h), expected.expand(7, -1))


@pytest.mark.parametrize("class_counts", [None, [3, 1, 4, 1, 5]])
@pytest.mark.parametrize("bias", [True, False])
def test_loss_gradients_match_finite_differences(class_counts, bias):
    tables = tree_tables(balanced_tree(5) if class_counts is None else huffman_tree(class_counts))
    generator = torch.Generator().manual_seed(11)
    h = torch.randn(6, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(4, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    node_bias = torch.randn(4, dtype=torch.float64, generator=generator, requires_grad=True) if bias else None
    y = torch.tensor([0, 1, 2, 3, 4, 2])
    signs = tables.path_signs.double()

    def loss_of(*tensors):
        return hsoftmax_loss(tensors[0], y, tensors[1], tensors[2] if bias else None, tables.path_nodes, signs)

    inputs = (h, weight, node_bias) if bias else (h, weight)
    assert torch.autograd.gradcheck(loss_of, inputs)


def test_log_prob_gradients_match_finite_differences():
    tables = tree_tables(huffman_tree([3, 1, 4, 1, 5, 9, 2]))
    logits = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)

    def log_prob_of(z):
        return tree_log_prob(
            z, tables.node_parent, tables.node_sign.double(), tables.leaf_parent, tables.leaf_sign.double(),
            tables.level_starts,
        )

    assert torch.autograd.gradcheck(log_prob_of, (logits,))


@pytest.mark.parametrize("num_classes", [2, 5, 10, 1000])
def test_predictions_agree_with_the_distribution(num_classes):
    loss = randomised(HierarchicalSoftmax(6, num_classes), seed=12)
    h, _ = features_and_labels(20, 6, num_classes, seed=13)
    proba = loss.predict_proba(h)
    prediction = loss.predict(h)
    assert proba.shape == (20, num_classes)
    assert prediction.shape == (20,) and prediction.dtype == torch.long
    assert torch.equal(prediction, proba.argmax(dim=1))
    torch.testing.assert_close(loss.class_scores(h), proba.log())
    expected_level = (proba @ torch.arange(num_classes, dtype=torch.float64)).round().long()
    assert torch.equal(loss.predict_level(h, num_classes, rule="expected"), expected_level)


def test_num_outputs_is_the_feature_width_and_checks_the_class_count():
    loss = HierarchicalSoftmax(64, 5)
    assert loss.num_outputs(Task("multiclass", 5)) == 64
    assert loss.num_outputs(Task("ordinal", 5)) == 64
    with pytest.raises(LossTaskMismatchError, match=r"loss\.num_classes=5.*task has 7"):
        loss.num_outputs(Task("multiclass", 7))
    with pytest.raises(LossTaskMismatchError, match="multilabel"):
        loss.check_task(Task("multilabel", 5))


def test_features_of_the_wrong_width_are_refused():
    loss = HierarchicalSoftmax(4, 5)
    with pytest.raises(ValueError, match="in_features=4"):
        loss(torch.randn(3, 5), torch.tensor([0, 1, 2]))


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        ({"in_features": 0, "num_classes": 5}, "in_features"),
        ({"in_features": 2.5, "num_classes": 5}, "in_features"),
        ({"in_features": "wide", "num_classes": 5}, "in_features"),
        ({"in_features": 4, "num_classes": 1}, "num_classes"),
        ({"in_features": 4, "num_classes": None}, "num_classes"),
        ({"in_features": 4, "num_classes": 3, "class_counts": [1, 2]}, "class_counts"),
        ({"in_features": 4, "num_classes": 3, "class_counts": [1, -2, 3]}, "class_counts"),
        ({"in_features": 4, "num_classes": 3, "class_counts": [1, float("nan"), 3]}, "class_counts"),
        ({"in_features": 4, "num_classes": 3, "class_counts": [1, "many", 3]}, "class_counts"),
    ],
)
def test_invalid_arguments_raise_naming_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        HierarchicalSoftmax(**kwargs)


def test_tree_builders_refuse_fewer_than_two_classes():
    with pytest.raises(ValueError, match="num_classes"):
        balanced_tree(1)
    with pytest.raises(ValueError, match="class_counts"):
        huffman_tree([4])


@pytest.mark.parametrize("class_counts", [None, [40, 40, 20, 10, 10, 5, 5, 2, 1, 1]])
def test_training_separates_a_tiny_problem(class_counts):
    torch.manual_seed(0)
    num_classes = 10
    # Orthogonal class means 6 noise deviations apart, so every split of the tree is
    # linearly separable with a wide margin.
    y = torch.arange(100) % num_classes
    x = 3 * nn.functional.one_hot(y, num_classes).float() + 0.3 * torch.randn(100, num_classes)
    backbone = nn.Linear(num_classes, 16)
    loss = HierarchicalSoftmax(16, num_classes, class_counts=class_counts)
    optimizer = torch.optim.SGD([*backbone.parameters(), *loss.parameters()], lr=0.5)
    for _ in range(200):
        optimizer.zero_grad()
        final_loss = loss(backbone(x), y)
        final_loss.backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = (loss.predict(backbone(x)) == y).float().mean()
    assert final_loss < 0.1  # from log(2) * mean depth ~ 2.3 at the zero start
    assert accuracy >= 0.98


@pytest.mark.parametrize("class_counts", [None, [5, 1, 2, 8, 3, 3, 0]])
def test_config_instantiates(class_counts):
    config = OmegaConf.load(CONF / "pluggable" / "loss" / "hsoftmax.yaml")
    config.num_classes = 7  # data.num_classes of the composing config, or the task's at run time
    config.class_counts = class_counts
    loss = hydra.utils.instantiate(config)
    assert isinstance(loss, HierarchicalSoftmax)
    assert (loss.in_features, loss.num_classes, loss.bias is not None) == (64, 7, True)
    assert loss.tree == ("balanced" if class_counts is None else "huffman")
    h = torch.randn(3, 64)
    assert loss(h, torch.tensor([0, 3, 6])).shape == ()
