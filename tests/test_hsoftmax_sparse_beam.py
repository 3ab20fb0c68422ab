"""Hierarchical softmax for large vocabularies: sparse node gradients, per-sample log-likelihood, exact top-k."""

import pytest
import torch

from lregloss.losses.hierarchical import BEAM_SEARCH_ABOVE, HierarchicalSoftmax
from lregloss.losses.trees import balanced_tree, huffman_tree, tree_tables
from lregloss.losses.tree_search import tree_top_k

PEAKED, FLAT = 4.0, 0.05  # node-vector scales: a few classes take nearly all mass / nearly uniform


def skewed_counts(num_classes: int) -> list[float]:
    """Zipf-like counts 1 / (c + 1)^1.5: a deep, lopsided Huffman tree."""
    return [1.0 / (c + 1) ** 1.5 for c in range(num_classes)]


def make_loss(num_classes: int, tree: str, scale: float = 1.0, seed: int = 0, **kwargs) -> HierarchicalSoftmax:
    """A float64 HierarchicalSoftmax (D = 6) on a balanced or skewed Huffman tree, node parameters ~ N(0, scale^2)."""
    counts = skewed_counts(num_classes) if tree == "huffman" else None
    loss = HierarchicalSoftmax(6, num_classes, class_counts=counts, **kwargs).double()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in loss.parameters():
            parameter.copy_(torch.randn(parameter.shape, dtype=torch.float64, generator=generator) * scale)
    return loss


def tree_paths(num_classes: int, tree: str):
    return huffman_tree(skewed_counts(num_classes)) if tree == "huffman" else balanced_tree(num_classes)


def batch(num_classes: int, size: int = 9, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    h = torch.randn(size, 6, dtype=torch.float64, generator=generator)
    return h, torch.randint(0, num_classes, (size,), generator=generator)


def sparse_copy(dense: HierarchicalSoftmax, tree: str) -> HierarchicalSoftmax:
    counts = skewed_counts(dense.num_classes) if tree == "huffman" else None
    sparse = HierarchicalSoftmax(6, dense.num_classes, class_counts=counts, bias=dense.bias is not None, sparse=True)
    sparse = sparse.double()
    sparse.load_state_dict(dense.state_dict())
    return sparse


def test_children_table_leads_from_the_root_to_each_class():
    paths = huffman_tree(skewed_counts(11))
    children = tree_tables(paths).node_children
    for leaf, path in enumerate(paths):
        item = 0
        for node, sign in path:
            assert item == node
            item = int(children[node, 0 if sign == 1 else 1])
        assert item == len(paths) - 1 + leaf


@pytest.mark.parametrize("tree", ["balanced", "huffman"])
@pytest.mark.parametrize("bias", [True, False])
def test_sparse_gradients_equal_the_dense_ones_on_the_batch_paths_only(tree, bias):
    dense = make_loss(13, tree, bias=bias)
    sparse = sparse_copy(dense, tree)
    h, y = batch(13)
    grads = []
    for loss in (dense, sparse):
        features = h.clone().requires_grad_(True)
        value = loss(features, y)
        value.backward()
        grads.append((value, features.grad, loss.weight.grad, loss.bias.grad if bias else None))
    (dense_value, dense_h, dense_w, dense_b), (sparse_value, sparse_h, sparse_w, sparse_b) = grads
    torch.testing.assert_close(sparse_value, dense_value)  # float64: equal to rounding (summed in another order)
    torch.testing.assert_close(sparse_h, dense_h)
    on_paths = sorted({node for label in y.tolist() for node, _ in tree_paths(13, tree)[label]})
    assert sparse_w.layout == torch.sparse_coo
    assert sparse_w.coalesce().indices()[0].tolist() == on_paths
    torch.testing.assert_close(sparse_w.to_dense(), dense_w)
    if bias:
        assert sparse_b.layout == torch.sparse_coo and sparse_b.shape == (12,)
        assert sparse_b.coalesce().indices()[0].tolist() == on_paths
        torch.testing.assert_close(sparse_b.to_dense(), dense_b)


def test_sparse_loss_gradient_of_the_features_matches_finite_differences():
    loss = make_loss(7, "huffman", sparse=True)
    h, y = batch(7, size=5)
    assert torch.autograd.gradcheck(lambda features: loss(features, y), (h.requires_grad_(True),))


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda params: torch.optim.SGD(params, lr=0.1),
        lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
        lambda params: torch.optim.Adagrad(params, lr=0.1),
    ],
    ids=["sgd", "sgd-momentum", "adagrad"],
)
@pytest.mark.parametrize("tree", ["balanced", "huffman"])
@pytest.mark.filterwarnings("ignore:Sparse invariant checks are implicitly disabled")  # raised inside Adagrad
def test_optimizer_steps_on_sparse_gradients_match_the_dense_ones(optimizer, tree):
    dense = make_loss(20, tree)
    sparse = sparse_copy(dense, tree)
    optimizers = [optimizer(list(loss.parameters())) for loss in (dense, sparse)]
    for seed in (1, 2):  # two different batches: momentum and Adagrad's sums carry rows across steps
        h, y = batch(20, size=4, seed=seed)
        for loss, step in zip((dense, sparse), optimizers):
            step.zero_grad(set_to_none=True)
            loss(h, y).backward()
            step.step()
    assert not torch.equal(dense.weight, make_loss(20, tree).weight)  # the steps moved something
    torch.testing.assert_close(sparse.weight, dense.weight)
    torch.testing.assert_close(sparse.bias, dense.bias)


def test_sparse_adam_moves_only_the_rows_on_the_batch_paths():
    loss = make_loss(50, "huffman", sparse=True)
    before = [parameter.detach().clone() for parameter in loss.parameters()]
    optimizer = torch.optim.SparseAdam(list(loss.parameters()), lr=0.01)
    h, y = batch(50, size=3)
    loss(h, y).backward()
    optimizer.step()
    on_paths = torch.zeros(49, dtype=torch.bool)
    on_paths[[node for label in y.tolist() for node, _ in tree_paths(50, "huffman")[label]]] = True
    for old, new in zip(before, loss.parameters()):
        moved = (old != new).reshape(49, -1).any(dim=1)
        assert torch.equal(moved, on_paths)


def test_repr_names_the_gradient_layout():
    assert "sparse=True" in repr(HierarchicalSoftmax(3, 5, sparse=True))
    assert "sparse=False" in repr(HierarchicalSoftmax(3, 5))


@pytest.mark.parametrize("tree", ["balanced", "huffman"])
@pytest.mark.parametrize("bias", [True, False])
def test_target_log_prob_is_the_targets_entry_of_the_distribution(tree, bias):
    loss = make_loss(30, tree, bias=bias)
    h, y = batch(30, size=12)
    expected = loss.log_prob(h).gather(1, y.unsqueeze(1)).squeeze(1)
    got = loss.target_log_prob(h, y)
    assert got.shape == (12,)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(-got.mean(), loss(h, y))


@pytest.mark.parametrize("tree", ["balanced", "huffman"])
@pytest.mark.parametrize("num_classes", [2, 3, 7, 50, 300])
@pytest.mark.parametrize("scale", [PEAKED, FLAT], ids=["peaked", "flat"])
def test_top_k_is_the_exact_ranking_of_the_full_distribution(tree, num_classes, scale):
    loss = make_loss(num_classes, tree, scale, seed=num_classes)
    h, _ = batch(num_classes, size=16, seed=num_classes + 1)
    ranking = loss.log_prob(h).argsort(dim=1, descending=True)
    for k in sorted({1, min(5, num_classes), num_classes}):
        got = loss.top_k(h, k)
        assert got.dtype == torch.long and got.shape == (16, k)
        assert torch.equal(got, ranking[:, :k]), k


def test_a_failed_certificate_falls_back_to_the_exact_ranking():
    loss = make_loss(300, "huffman", 1.0, seed=3)  # between peaked and flat: some rows certify, some not
    h, _ = batch(300, size=32, seed=4)
    exact = loss.log_prob(h).topk(3, dim=1).indices
    beam_only, certified = tree_top_k(h, loss.weight, loss.bias, loss.node_children, 3, beam=3)
    assert not certified.all() and certified.any()
    assert not torch.equal(beam_only, exact)  # a narrow beam alone gets some rows wrong ...
    assert torch.equal(beam_only[certified], exact[certified])  # ... but never a certified one
    assert torch.equal(loss.top_k(h, 3, beam=3), exact)


def test_top_k_needs_no_full_distribution_where_the_certificate_holds(monkeypatch):
    loss = make_loss(BEAM_SEARCH_ABOVE + 1, "huffman", PEAKED, seed=5)
    h, _ = batch(BEAM_SEARCH_ABOVE + 1, size=16, seed=6)
    expected = loss.log_prob(h).argmax(dim=1)

    def refuse(*args, **kwargs):
        raise AssertionError("the full distribution was formed")

    monkeypatch.setattr(loss, "log_prob", refuse)
    assert torch.equal(loss.predict(h), expected)


@pytest.mark.parametrize("num_classes", [BEAM_SEARCH_ABOVE, BEAM_SEARCH_ABOVE + 1])
@pytest.mark.parametrize("scale", [PEAKED, FLAT], ids=["peaked", "flat"])
def test_predict_is_the_argmax_on_either_side_of_the_beam_threshold(num_classes, scale):
    loss = make_loss(num_classes, "balanced", scale, seed=7)
    h, _ = batch(num_classes, size=16, seed=8)
    assert torch.equal(loss.predict(h), loss.log_prob(h).argmax(dim=1))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("module_dtype", [torch.float32, "same"])
def test_top_k_and_target_log_prob_take_half_precision(dtype, module_dtype):
    loss = make_loss(40, "huffman", PEAKED, seed=9).to(dtype if module_dtype == "same" else module_dtype)
    h, y = batch(40, size=8, seed=10)
    h = h.to(dtype)
    top = loss.top_k(h, 5)
    with torch.no_grad():  # log_prob's autograd path needs h and the node vectors in one dtype
        assert top.shape == (8, 5) and torch.equal(top[:, 0], loss.log_prob(h).argmax(dim=1))
    log_likelihood = loss.target_log_prob(h, y)
    assert log_likelihood.dtype == torch.float32 and bool((log_likelihood <= 0).all())


@pytest.mark.parametrize(("k", "beam"), [(0, None), (8, None), (True, None), (2.0, None), (3, 2)])
def test_top_k_refuses_k_or_beam_out_of_range(k, beam):
    loss = HierarchicalSoftmax(3, 7)
    with pytest.raises(ValueError, match="beam must" if beam else "k must be an integer from 1 to num_classes=7"):
        loss.top_k(torch.randn(2, 3), k, beam=beam)
