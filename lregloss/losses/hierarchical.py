"""Hierarchical softmax: a binary tree over the classes, O(log C) work per training sample."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lregloss.losses.base import OutputLayerLoss
from lregloss.losses.tree_search import tree_log_prob, tree_log_prob_into, tree_top_k
from lregloss.losses.trees import TreePath, balanced_tree, breadth_first, huffman_tree, tree_tables
from lregloss.tasks import TaskKind
from lregloss.validation import check_counts, check_integer

# top_k's beam: BEAM_PER_K * k items per sample, at least MIN_BEAM. A wider beam fails its
# certificate less often (each failure costs that row's full O(C D) distribution), a
# narrower one expands fewer nodes per level.
BEAM_PER_K, MIN_BEAM = 4, 16
# ``predict`` searches the tree by beam above this many classes and takes the argmax of the
# full distribution at or below it, where one (N, C-1) matrix product beats the beam's
# gathers. Measured on 1 CPU thread, N = 1024, D = 256, peaked distributions (every
# certificate held), balanced tree, C = 256 / 512 / 1024 / 2048 / 4096 / 8192: beam (width
# 16) 21 / 23 / 29 / 39 / 40 / 41 ms, log_prob's argmax 6 / 11 / 22 / 48 / 104 / 234 ms.
BEAM_SEARCH_ABOVE = 1024


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
    log_likelihood = path_log_likelihood(features, target, weight, bias, path_nodes, path_signs)
    return log_likelihood.sum().div(-features.shape[0])


def path_log_likelihood(
    features: Tensor, target: Tensor, weight: Tensor, bias: Tensor | None, path_nodes: Tensor, path_signs: Tensor
) -> Tensor:
    """The terms log sigmoid(s * (v_n . h_i + b_n)) along each sample's path, (N, L), 0 on padding.

    Summed over a row they give log p(y_i | h_i). Arguments as ``hsoftmax_loss``.
    """
    # index_select, not path_nodes[target]: advanced indexing was hundreds of times slower on CPU.
    nodes = path_nodes.index_select(0, target)
    signs = path_signs.index_select(0, target)
    vectors = F.embedding(nodes, weight)  # (N, L, D)
    if bias is None:
        logits = torch.bmm(vectors, features.unsqueeze(2))
    else:
        logits = torch.baddbmm(F.embedding(nodes, bias.unsqueeze(1)), vectors, features.unsqueeze(2))
    return F.logsigmoid(signs * logits.squeeze(2)) * signs.abs()


def path_entries(target: Tensor, path_starts: Tensor, path_lengths: Tensor) -> tuple[Tensor, Tensor]:
    """The batch's paths laid end to end: (sample of each entry, its index into the flat path tables), both (E,).

    E = sum_i depth(y_i): no padding, so a Huffman tree's short paths cost their own length.
    """
    lengths = path_lengths.index_select(0, target)
    ends = lengths.cumsum(0)
    rows = torch.repeat_interleave(torch.arange(len(target), device=target.device), lengths, output_size=int(ends[-1]))
    shift = path_starts.index_select(0, target) - (ends - lengths)  # entry j of sample i sits at start_i + j
    return rows, torch.arange(rows.shape[0], device=target.device) + shift.index_select(0, rows)


class SparsePathLoss(torch.autograd.Function):
    """-1/N sum over the entries e = (sample i, node n, sign s) of log sigmoid(s (v_n . h_i + b_n)), fused.

    ``hsoftmax_loss`` over paths laid end to end (`path_entries`) with one backward written
    out: for g_e = -s sigmoid(-s z_e) / N, dL/dh_i = sum_{e of i} g_e v_n, and dL/dv_n,
    dL/db_n are sparse COO tensors of the rows (n_e, g_e h_i), (n_e, g_e), uncoalesced (the
    optimizer's sparse update sums repeated nodes). One gather of node vectors and features
    serves forward and backward; autograd's general path (an embedding, a batched product,
    a log-sigmoid, each with its backward and the padding of the shorter paths) costs
    several times more per step on CPU.
    """

    @staticmethod
    def forward(ctx, features: Tensor, weight: Tensor, bias: Tensor | None, rows: Tensor, nodes: Tensor, signs: Tensor) -> Tensor:
        vectors = weight.index_select(0, nodes)
        inputs = features.index_select(0, rows)
        logits = torch.einsum("ed,ed->e", vectors, inputs)
        if bias is not None:
            logits = logits + bias.index_select(0, nodes)
        signed = signs * logits
        ctx.save_for_backward(vectors, inputs, rows, nodes, signed, signs)
        ctx.batch, ctx.num_nodes, ctx.has_bias = features.shape[0], weight.shape[0], bias is not None
        return F.logsigmoid(signed).sum().div(-features.shape[0])

    @staticmethod
    def backward(ctx, grad: Tensor):
        vectors, inputs, rows, nodes, signed, signs = ctx.saved_tensors
        slope = torch.sigmoid(signed.neg()).mul_(signs).mul_(grad / -ctx.batch).unsqueeze(1)  # dL/dz_e
        grad_features = vectors.new_zeros(ctx.batch, vectors.shape[1]).index_add_(0, rows, vectors * slope)
        index = nodes.unsqueeze(0)
        grad_weight = torch.sparse_coo_tensor(index, inputs * slope, (ctx.num_nodes, inputs.shape[1]), check_invariants=False)
        slope = slope.squeeze(1)
        grad_bias = torch.sparse_coo_tensor(index, slope, (ctx.num_nodes,), check_invariants=False) if ctx.has_bias else None
        return grad_features, grad_weight, grad_bias, None, None, None


class HierarchicalSoftmax(OutputLayerLoss):
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

    For large C (a word model's vocabulary), ``sparse=True`` makes the gradients of the node
    vectors and biases sparse COO tensors over the nodes on the batch's paths, so a step
    costs O(N L D) rather than the O(C D) of a dense (C-1, D) gradient and its update. The
    optimizers that take sparse gradients are ``torch.optim.SGD`` (with weight_decay=0: it
    raises on weight decay), ``torch.optim.SparseAdam`` (which requires every parameter it
    is given to have sparse gradients) and ``torch.optim.Adagrad``. ``top_k``,
    ``target_log_prob`` and, above ``BEAM_SEARCH_ABOVE`` classes, ``predict`` avoid the full
    distribution too.

    Args:
        in_features: D, the width of the features h, >= 1.
        num_classes: C, the number of classes (leaves), >= 2.
        class_counts: optional C non-negative class frequencies; builds a Huffman tree.
        bias: learn a bias b_n per inner node.
        sparse: sparse gradients for the node vectors and biases (see above).
        paths: optional tree of your own: C paths of (inner node, sign) from the root, as
            ``balanced_tree`` returns, numbered in any order (see ``breadth_first``).

    Raises:
        ValueError: an argument out of range (named in the message).
    """

    tasks = frozenset({TaskKind.MULTICLASS, TaskKind.ORDINAL})

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        class_counts: Sequence[int] | None = None,
        bias: bool = True,
        sparse: bool = False,
        paths: Sequence[TreePath] | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_integer("in_features", in_features, 1)
        self.num_classes = check_integer("num_classes", num_classes, 2)
        if paths is not None and class_counts is not None:
            raise ValueError("give class_counts (a Huffman tree) or paths (a tree of your own), not both")
        self.node_order: list[int] | None = None  # for paths=: the given number of each inner node, breadth-first
        if paths is not None:
            if len(paths) != self.num_classes:
                raise ValueError(f"paths must hold num_classes={self.num_classes} paths, got {len(paths)}")
            paths, self.node_order = breadth_first(paths)
            self.tree = "given"
        elif class_counts is None:
            paths = balanced_tree(self.num_classes)
            self.tree = "balanced"
        else:
            counts = check_counts("class_counts", class_counts)
            if len(counts) != self.num_classes:
                raise ValueError(
                    f"class_counts must hold num_classes={self.num_classes} entries, got {len(counts)}"
                )
            paths = huffman_tree(counts)
            self.tree = "huffman"
        self.sparse = bool(sparse)
        tables = tree_tables(paths)
        # Derived from the arguments, so rebuilt rather than saved in checkpoints.
        names = ("path_nodes", "path_signs", "node_parent", "node_sign", "leaf_parent", "leaf_sign", "node_children")
        for name in names:
            self.register_buffer(name, getattr(tables, name), persistent=False)
        self.level_starts = tables.level_starts
        # The paths laid end to end, for the sparse training step (`path_entries`).
        on_path = tables.path_signs != 0
        depth = on_path.sum(dim=1)
        self.register_buffer("path_depth", depth, persistent=False)
        self.register_buffer("path_start", depth.cumsum(0) - depth, persistent=False)
        self.register_buffer("flat_path_nodes", tables.path_nodes[on_path], persistent=False)
        self.register_buffer("flat_path_signs", tables.path_signs[on_path], persistent=False)
        self.weight = nn.Parameter(torch.zeros(self.num_classes - 1, self.in_features))
        self.bias = nn.Parameter(torch.zeros(self.num_classes - 1)) if bias else None

    @property
    def path_lengths(self) -> Tensor:
        """Depth of each class's leaf (number of inner nodes on its path), (C,) long."""
        return self.path_depth

    def forward(self, outputs: Tensor, target: Tensor) -> Tensor:
        """-log p(y | h), sum over path nodes, mean over the batch; outputs are h (N, D)."""
        self._check_features(outputs)
        if not self.sparse:
            return hsoftmax_loss(outputs, target, self.weight, self.bias, self.path_nodes, self.path_signs)
        rows, entries = path_entries(target, self.path_start, self.path_depth)
        nodes, signs = self.flat_path_nodes.index_select(0, entries), self.flat_path_signs.index_select(0, entries)
        features = outputs.to(self.weight.dtype)
        return SparsePathLoss.apply(features, self.weight, self.bias, rows, nodes, signs.to(features.dtype))

    def target_log_prob(self, outputs: Tensor, target: Tensor) -> Tensor:
        """log p(y_i | h_i) per sample, (N,): minus the per-sample loss, from the path only, O(N L D).

        Half precision is promoted to float32 first, as in ``log_prob``.
        """
        self._check_features(outputs)
        dtype = torch.promote_types(outputs.dtype, torch.float32)
        bias = None if self.bias is None else self.bias.to(dtype)
        terms = path_log_likelihood(
            outputs.to(dtype), target, self.weight.to(dtype), bias, self.path_nodes, self.path_signs.to(dtype)
        )
        return terms.sum(dim=1)

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
        """Class index argmax_c p(c | h), shape (N,), long: by ``top_k`` for C > ``BEAM_SEARCH_ABOVE``."""
        if self.num_classes > BEAM_SEARCH_ABOVE:
            return self.top_k(outputs, 1)[:, 0]
        return self.log_prob(outputs).argmax(dim=-1)

    @torch.no_grad()
    def top_k(self, outputs: Tensor, k: int, beam: int | None = None) -> Tensor:
        """The k classes of highest p(c | h), best first, (N, k) long, exactly, without the full distribution.

        A certified beam search down the tree (``tree_top_k``); the rows whose certificate
        fails are ranked from their full ``log_prob``. Half precision is promoted to float32.

        Args:
            outputs: features h, (N, D).
            k: 1 <= k <= C.
            beam: frontier width >= k; default max(BEAM_PER_K * k, MIN_BEAM), at most C.

        Raises:
            ValueError: k or beam out of range.
        """
        self._check_features(outputs)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.num_classes:
            raise ValueError(f"k must be an integer from 1 to num_classes={self.num_classes}, got {k!r}")
        if beam is None:
            beam = min(max(BEAM_PER_K * k, MIN_BEAM), self.num_classes)
        elif isinstance(beam, bool) or not isinstance(beam, int) or beam < k:
            raise ValueError(f"beam must be an integer >= k={k}, got {beam!r}")
        features = outputs.to(torch.promote_types(outputs.dtype, torch.float32))
        classes, certified = tree_top_k(features, self.weight, self.bias, self.node_children, k, beam)
        uncertain = (~certified).nonzero().squeeze(1)
        if uncertain.numel():
            classes[uncertain] = self.log_prob(outputs.index_select(0, uncertain)).topk(k, dim=1).indices
        return classes

    def predict_proba(self, outputs: Tensor, temperature: float | Tensor = 1.0) -> Tensor:
        """p(c | h) with node logits divided by T, shape (N, C)."""
        return self.log_prob(outputs, temperature).exp()

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, num_classes={self.num_classes}, tree={self.tree}, "
            f"bias={self.bias is not None}, sparse={self.sparse}"
        )
