"""Hierarchical softmax: a binary tree over the classes, O(log C) work per training sample."""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lregloss.losses.base import Loss, check_num_classes
from lregloss.tasks import Task, TaskKind

TreePath = list[tuple[int, int]]  # (inner node, sign) pairs from the root down to one class


def balanced_tree(num_classes: int) -> list[TreePath]:
    """Paths of a balanced binary tree with ``num_classes`` leaves.

    Every inner node splits its classes into a first half of ceil(n/2) and a second half of
    floor(n/2), so each class lies at depth floor(log2 C) or ceil(log2 C). Inner nodes are
    numbered 0..C-2 breadth-first (0 is the root); sign +1 goes to the first child, -1 to
    the second.

    Args:
        num_classes: C >= 2.

    Returns:
        C paths; path c lists (node, sign) from the root to class c.

    Raises:
        ValueError: num_classes < 2.
    """
    num_classes = _check_int("num_classes", num_classes, 2)
    children: dict[int, tuple[int, int]] = {}
    # Keys below C are leaves (the class itself); inner nodes take keys C, C+1, ...
    root = num_classes
    next_key = root + 1
    pending = [(root, 0, num_classes)]
    while pending:
        key, lo, hi = pending.pop()
        mid = lo + (hi - lo + 1) // 2
        kids = []
        for start, stop in ((lo, mid), (mid, hi)):
            if stop - start == 1:
                kids.append(start)
            else:
                kids.append(next_key)
                pending.append((next_key, start, stop))
                next_key += 1
        children[key] = (kids[0], kids[1])
    return _paths_from_children(root, children, num_classes)


def huffman_tree(class_counts: Sequence[float]) -> list[TreePath]:
    """Paths of the Huffman tree of ``class_counts``: frequent classes get short paths.

    The two least frequent subtrees are merged until one remains, so the expected path
    length sum_c q_c depth_c (q_c = count_c / total) is minimal over binary trees; a class
    with a larger count never sits deeper than one with a smaller count. Ties go to the
    older subtree (leaves before merged nodes), the minimum-variance variant. Inner nodes
    are numbered breadth-first from 0 (the root); sign +1 goes to the first child.

    Args:
        class_counts: C >= 2 non-negative frequencies.

    Returns:
        C paths; path c lists (node, sign) from the root to class c.

    Raises:
        ValueError: fewer than 2 counts, or a count that is negative or not finite.
    """
    counts = _check_counts("class_counts", class_counts)
    if len(counts) < 2:
        raise ValueError(f"class_counts must hold at least 2 entries, got {len(counts)}")
    num_classes = len(counts)
    # (count, key): the key breaks ties by age, since merged nodes get ever larger keys.
    heap = [(count, key) for key, count in enumerate(counts)]
    heapq.heapify(heap)
    children: dict[int, tuple[int, int]] = {}
    next_key = num_classes
    while len(heap) > 1:
        count_a, a = heapq.heappop(heap)
        count_b, b = heapq.heappop(heap)
        children[next_key] = (b, a)
        heapq.heappush(heap, (count_a + count_b, next_key))
        next_key += 1
    return _paths_from_children(heap[0][1], children, num_classes)


def _paths_from_children(root: int, children: dict[int, tuple[int, int]], num_classes: int) -> list[TreePath]:
    """Walk a tree breadth-first, numbering inner nodes 0, 1, ... in visiting order.

    Breadth-first numbering makes node indices increase along every path, so each class's
    row of the path-incidence matrix comes out sorted (a coalesced sparse matrix for free).
    """
    paths: list[TreePath] = [[] for _ in range(num_classes)]
    queue: deque[tuple[int, TreePath]] = deque([(root, [])])
    next_node = 0
    while queue:
        key, prefix = queue.popleft()
        if key < num_classes:
            paths[key] = prefix
            continue
        first, second = children[key]
        queue.append((first, [*prefix, (next_node, 1)]))
        queue.append((second, [*prefix, (next_node, -1)]))
        next_node += 1
    return paths


class TreeTables(NamedTuple):
    """One tree as index tensors, built by ``tree_tables``.

    The (C, L) padded paths serve training (L is the longest path), the parent links serve
    the full distribution. Inner nodes are numbered breadth-first, so depth d holds the
    contiguous nodes level_starts[d] .. level_starts[d+1] - 1.
    """

    path_nodes: Tensor  # (C, L) long: inner node at each step; padding points at node 0
    path_signs: Tensor  # (C, L) float: +1 or -1 at each step, 0 on padding
    node_parent: Tensor  # (C-1,) long: parent of each inner node (0 for the root)
    node_sign: Tensor  # (C-1,) float: sign of the branch from the parent (0 for the root)
    leaf_parent: Tensor  # (C,) long: last inner node on each class's path
    leaf_sign: Tensor  # (C,) float: sign of the branch from it to the class
    level_starts: tuple[int, ...]  # first node of each depth, then C-1


def tree_tables(paths: Sequence[TreePath]) -> TreeTables:
    """Index tensors of a tree given as breadth-first numbered paths (see ``balanced_tree``)."""
    num_nodes = len(paths) - 1
    longest = max(len(path) for path in paths)
    node_parent = [0] * num_nodes
    node_sign = [0.0] * num_nodes
    node_depth = [0] * num_nodes
    for path in paths:
        for (parent, sign), (node, _) in zip(path, path[1:]):
            node_parent[node] = parent
            node_sign[node] = float(sign)
            node_depth[node] = node_depth[parent] + 1
    nodes_per_depth = [0] * longest
    for depth in node_depth:
        nodes_per_depth[depth] += 1
    padded_nodes: list[int] = []
    padded_signs: list[float] = []
    for path in paths:
        padding = longest - len(path)
        padded_nodes.extend([node for node, _ in path] + [0] * padding)
        padded_signs.extend([float(sign) for _, sign in path] + [0.0] * padding)
    return TreeTables(
        path_nodes=torch.tensor(padded_nodes).view(len(paths), longest),
        path_signs=torch.tensor(padded_signs).view(len(paths), longest),
        node_parent=torch.tensor(node_parent),
        node_sign=torch.tensor(node_sign),
        leaf_parent=torch.tensor([path[-1][0] for path in paths]),
        leaf_sign=torch.tensor([float(path[-1][1]) for path in paths]),
        level_starts=(0, *itertools.accumulate(nodes_per_depth)),
    )


def hsoftmax_loss(
    features: Tensor, target: Tensor, weight: Tensor, bias: Tensor | None, path_nodes: Tensor, path_signs: Tensor
) -> Tensor:
    """Hierarchical softmax negative log-likelihood, mean over the batch.

    loss = mean_i -sum_{(n, s) on path(y_i)} log sigmoid(s * (v_n . h_i + b_n))

    Only the L nodes on each sample's own path are touched: O(N L D) work and memory, with
    node vectors gathered by ``F.embedding`` (whose backward accumulates into the rows used).

    Args:
        features: h, (N, D).
        target: class indices y, (N,), long.
        weight: node vectors V, (C-1, D).
        bias: node biases b, (C-1,), or None.
        path_nodes: (C, L) long node indices per class (see ``tree_tables``).
        path_signs: (C, L) signs per class, 0 on padding.

    Returns:
        0-dim tensor.
    """
    # index_select, not path_nodes[target]: advanced indexing was hundreds of times slower on CPU.
    nodes = path_nodes.index_select(0, target)
    signs = path_signs.index_select(0, target)
    vectors = F.embedding(nodes, weight)  # (N, L, D)
    if bias is None:
        logits = torch.bmm(vectors, features.unsqueeze(2))
    else:
        logits = torch.baddbmm(F.embedding(nodes, bias.unsqueeze(1)), vectors, features.unsqueeze(2))
    log_likelihood = F.logsigmoid(signs * logits.squeeze(2)) * signs.abs()
    return log_likelihood.sum().div(-features.shape[0])


def tree_log_prob(
    logits: Tensor,
    node_parent: Tensor,
    node_sign: Tensor,
    leaf_parent: Tensor,
    leaf_sign: Tensor,
    level_starts: Sequence[int],
) -> Tensor:
    """log p(c) for every class from all inner-node logits z, (N, C); exactly normalised.

    log p(c) = sum_{(n, s) on path(c)} log sigmoid(s * z_n)

    Computed top-down, one depth at a time: the log-probability of reaching a node is its
    parent's plus the log-probability of the branch between them. Each tree node is visited
    once, so this costs O(N C) time and memory (a sum over each class's path would cost
    O(N C L)), with a loop over depths only. Without autograd (evaluation, metrics) the
    same sums are formed in place, see ``tree_log_prob_into``.

    Args:
        logits: z, (N, C-1), one per inner node.
        node_parent, node_sign, leaf_parent, leaf_sign, level_starts: see ``TreeTables``.

    Returns:
        (N, C) log-probabilities.
    """
    if not (torch.is_grad_enabled() and logits.requires_grad):
        buffer = logits.new_empty(logits.shape[0] * (logits.shape[1] + 1))
        buffer[: logits.numel()].view(logits.shape).copy_(logits)
        return tree_log_prob_into(buffer, node_parent, node_sign, leaf_parent, leaf_sign, level_starts)
    branch = F.logsigmoid(node_sign * logits.index_select(1, node_parent))  # into each node
    reach = [logits.new_zeros(logits.shape[0], 1)]  # log 1 at the root
    for depth in range(1, len(level_starts) - 1):
        above, start, stop = level_starts[depth - 1], level_starts[depth], level_starts[depth + 1]
        parents = reach[-1].index_select(1, node_parent[start:stop] - above)
        reach.append(parents + branch[:, start:stop])
    reach_all = torch.cat(reach, dim=1)
    return reach_all.index_select(1, leaf_parent) + F.logsigmoid(leaf_sign * logits.index_select(1, leaf_parent))


@torch.no_grad()
def tree_log_prob_into(
    buffer: Tensor,
    node_parent: Tensor,
    node_sign: Tensor,
    leaf_parent: Tensor,
    leaf_sign: Tensor,
    level_starts: Sequence[int],
) -> Tensor:
    """``tree_log_prob`` without autograd, overwriting ``buffer``, which it returns as (N, C).

    Large (N, C) temporaries cost more than the arithmetic done in them (at C = 1e5 and
    N = 1024 each is 400 MB, whose first write page-faults), so only one is allocated here,
    ``branches``: for each inner node n, the log-probability of reaching its first child
    (column n) and its second child (column C-1+n). These start as log sigmoid(z_n) and
    log sigmoid(-z_n), written as torch's ``logsigmoid`` computes them, min(z, 0) - sp and
    -(max(z, 0) + sp) with sp = log1p(exp(-abs(z))), so the exp and log1p are evaluated once
    for both signs; adding each node's own reach, depth by depth from the root, completes
    them. The logits' memory then holds each depth's reach and finally the result. Columns
    are gathered with ``torch.gather``, several times faster on CPU than ``index_select``
    along dim 1.

    Args:
        buffer: N * C elements, contiguous, whose first N * (C-1) hold the logits z as an
            (N, C-1) matrix; overwritten.
        node_parent, node_sign, leaf_parent, leaf_sign, level_starts: see ``TreeTables``.

    Returns:
        ``buffer`` viewed as the (N, C) log-probabilities.
    """
    num_nodes = len(node_parent)
    batch = buffer.numel() // (num_nodes + 1)
    logits = buffer[: batch * num_nodes].view(batch, num_nodes)
    branches = buffer.new_empty(batch, 2 * num_nodes)
    first, second = branches[:, :num_nodes], branches[:, num_nodes:]
    softplus = torch.abs(logits, out=second).neg_().exp_().log1p_()
    torch.clamp_max(logits, 0, out=first).sub_(softplus)
    softplus.add_(logits.clamp_min_(0)).neg_()
    # Column of ``branches`` holding the log-probability of reaching each inner node / class.
    node_column = node_parent + num_nodes * (node_sign < 0)
    for depth in range(1, len(level_starts) - 1):
        start, stop = level_starts[depth], level_starts[depth + 1]
        columns = node_column[start:stop].expand(batch, -1)
        reach = torch.gather(branches, 1, columns, out=buffer[: columns.numel()].view(columns.shape))
        first[:, start:stop].add_(reach)
        second[:, start:stop].add_(reach)
    leaf_column = (leaf_parent + num_nodes * (leaf_sign < 0)).expand(batch, -1)
    return torch.gather(branches, 1, leaf_column, out=buffer.view(batch, num_nodes + 1))


class HierarchicalSoftmax(Loss):
    """Hierarchical softmax over a binary tree with one leaf per class (Morin & Bengio 2005).

    p(y | h) = prod_{(n, s) on path(y)} sigmoid(s * (v_n . h + b_n))

    loss = mean_i -log p(y_i | h_i) = mean_i -sum_{(n, s) on path(y_i)} log sigmoid(s (v_n . h_i + b_n))

    Sum over the nodes on the path, mean over the batch. The model outputs features h
    (N, D), not class scores: this module owns the C-1 inner-node vectors v_n (and biases
    b_n) and replaces the final linear layer, so training costs O(D log C) per sample
    instead of O(D C). The tree is balanced (depth floor or ceil of log2 C) unless
    ``class_counts`` are given, in which case it is a Huffman tree (frequent classes get
    short paths, the expected path length is minimal).

    Node vectors and biases start at zero, as word2vec's syn1: every branch then has
    probability 1/2 and p(c) = 2^-depth(c), uniform on a balanced tree of 2^k leaves and
    close to the class frequencies on a Huffman tree, so training starts from the class
    prior. The node vectors get gradient from the first step (h != 0), the features from
    the second.

    Args:
        in_features: D, the width of the features h, >= 1.
        num_classes: C, the number of classes (leaves), >= 2.
        class_counts: optional C non-negative class frequencies; builds a Huffman tree.
        bias: learn a bias b_n per inner node.

    Raises:
        ValueError: an argument out of range (named in the message).
    """

    tasks = frozenset({TaskKind.MULTICLASS, TaskKind.ORDINAL})

    def __init__(
        self, in_features: int, num_classes: int, class_counts: Sequence[int] | None = None, bias: bool = True
    ) -> None:
        super().__init__()
        self.in_features = _check_int("in_features", in_features, 1)
        self.num_classes = _check_int("num_classes", num_classes, 2)
        if class_counts is None:
            paths = balanced_tree(self.num_classes)
        else:
            counts = _check_counts("class_counts", class_counts)
            if len(counts) != self.num_classes:
                raise ValueError(
                    f"class_counts must hold num_classes={self.num_classes} entries, got {len(counts)}"
                )
            paths = huffman_tree(counts)
        self.tree = "balanced" if class_counts is None else "huffman"
        tables = tree_tables(paths)
        # Derived from the arguments, so rebuilt rather than saved in checkpoints.
        for name in ("path_nodes", "path_signs", "node_parent", "node_sign", "leaf_parent", "leaf_sign"):
            self.register_buffer(name, getattr(tables, name), persistent=False)
        self.level_starts = tables.level_starts
        self.weight = nn.Parameter(torch.zeros(self.num_classes - 1, self.in_features))
        self.bias = nn.Parameter(torch.zeros(self.num_classes - 1)) if bias else None

    @property
    def path_lengths(self) -> Tensor:
        """Depth of each class's leaf (number of inner nodes on its path), (C,) long."""
        return (self.path_signs != 0).sum(dim=1)

    def num_outputs(self, task: Task) -> int:
        """D: the model outputs features, the class scores are computed here.

        Raises:
            LossTaskMismatchError: the task's number of classes differs from num_classes.
        """
        check_num_classes(self, task)
        return self.in_features

    def forward(self, outputs: Tensor, target: Tensor) -> Tensor:
        """-log p(y | h), sum over path nodes, mean over the batch; outputs are h (N, D)."""
        self._check_features(outputs)
        return hsoftmax_loss(outputs, target, self.weight, self.bias, self.path_nodes, self.path_signs)

    def log_prob(self, outputs: Tensor, temperature: float | Tensor = 1.0) -> Tensor:
        """log p(c | h) for every class c, (N, C); exp of each row sums to 1.

        All C-1 node logits z = (h V^T + b) / T are computed once (O(N C D)), then combined down
        the tree by ``tree_log_prob`` (by ``tree_log_prob_into``, in place, without
        autograd). Half precision is promoted to float32 first, since each class sums up to
        L log-sigmoids.
        """
        self._check_features(outputs)
        dtype = torch.promote_types(outputs.dtype, torch.float32)
        if torch.is_grad_enabled() and (outputs.requires_grad or self.weight.requires_grad):
            logits = F.linear(outputs, self.weight, self.bias).to(dtype)
            if isinstance(temperature, Tensor) or temperature != 1.0:  # a tensor T may be being fitted
                logits = logits / temperature
            return tree_log_prob(
                logits, self.node_parent, self.node_sign, self.leaf_parent, self.leaf_sign, self.level_starts
            )
        # Without autograd: the logits go straight into the buffer that will hold the result.
        buffer = outputs.new_empty(outputs.shape[0] * self.num_classes, dtype=dtype)
        logits = buffer[: outputs.shape[0] * (self.num_classes - 1)].view(outputs.shape[0], self.num_classes - 1)
        if self.bias is None:
            torch.mm(outputs.to(dtype), self.weight.t().to(dtype), out=logits)
        else:
            torch.addmm(self.bias.to(dtype), outputs.to(dtype), self.weight.t().to(dtype), out=logits)
        if temperature != 1.0:
            logits.div_(temperature)
        return tree_log_prob_into(
            buffer, self.node_parent, self.node_sign, self.leaf_parent, self.leaf_sign, self.level_starts
        )

    def class_scores(self, outputs: Tensor) -> Tensor:
        """(N, C) scores whose ranking is the prediction (log p(c | h), for top-k metrics)."""
        return self.log_prob(outputs)

    def predict(self, outputs: Tensor) -> Tensor:
        """Class index argmax_c p(c | h), shape (N,), long."""
        return self.log_prob(outputs).argmax(dim=-1)

    def predict_proba(self, outputs: Tensor, temperature: float | Tensor = 1.0) -> Tensor:
        """p(c | h) with node logits divided by T, shape (N, C)."""
        return self.log_prob(outputs, temperature).exp()

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, num_classes={self.num_classes}, tree={self.tree}, "
            f"bias={self.bias is not None}"
        )

    def _check_features(self, outputs: Tensor) -> None:
        if outputs.ndim != 2 or outputs.shape[1] != self.in_features:
            raise ValueError(
                f"HierarchicalSoftmax expects features of shape (N, in_features={self.in_features}), got "
                f"{tuple(outputs.shape)}; the model's last layer must output in_features values"
            )


def _check_int(name: str, value: int, minimum: int) -> int:
    try:
        is_int = not isinstance(value, bool) and int(value) == value
    except (TypeError, ValueError):
        is_int = False
    if not is_int or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_counts(name: str, counts: Sequence[float]) -> list[float]:
    values = []
    for index, count in enumerate(counts):
        try:
            value = float(count)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must hold finite numbers >= 0, got {count!r} at index {index}")
        values.append(value)
    return values
