"""Binary trees over C classes for hierarchical softmax: balanced, Huffman, or given; as index tensors."""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from lregloss.validation import check_counts, check_integer

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
    num_classes = check_integer("num_classes", num_classes, 2)
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
    counts = check_counts("class_counts", class_counts)
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


def breadth_first(paths: Sequence[TreePath]) -> tuple[list[TreePath], list[int]]:
    """The same tree with its inner nodes renumbered breadth-first, and each new node's old number.

    ``paths`` may number the C-1 inner nodes in any order (word2vec's and gensim's trees
    number them by creation); lregloss's tables need the breadth-first numbering of
    ``balanced_tree``. Node vectors move with their nodes: ``new_weight = old_weight[old_node]``.

    Args:
        paths: C >= 2 paths of (inner node, sign) from the root to each class; signs +1 or -1.

    Returns:
        (the renumbered paths, ``old_node``: old number of new node 0, 1, ..., C-2).

    Raises:
        ValueError: the paths do not form one full binary tree with a leaf per class (named).
    """
    num_classes = len(paths)
    if num_classes < 2:
        raise ValueError(f"paths must hold at least 2 classes, got {num_classes}")
    children: dict[int, list[int | None]] = {}
    for leaf, path in enumerate(paths):
        if not path:
            raise ValueError(f"paths[{leaf}] is empty; every class needs at least one inner node above it")
        keys = [num_classes + int(node) for node, _ in path] + [leaf]
        for (node, sign), key, child in zip(path, keys, keys[1:]):
            if sign not in (1, -1):
                raise ValueError(f"paths[{leaf}] holds sign {sign!r} at node {node}; signs are +1 or -1")
            slot = children.setdefault(key, [None, None])
            branch = 0 if sign == 1 else 1
            if slot[branch] not in (None, child):
                raise ValueError(f"paths[{leaf}] gives node {node}'s {sign:+d} branch a second child; paths must form one tree")
            slot[branch] = child
    roots = {int(path[0][0]) for path in paths}
    incomplete = [key - num_classes for key, slot in children.items() if None in slot]
    if len(roots) != 1 or len(children) != num_classes - 1 or incomplete:
        raise ValueError(
            f"paths must form one full binary tree over {num_classes} classes (one root, {num_classes - 1} inner "
            f"nodes with two children each); got roots {sorted(roots)[:5]}, {len(children)} inner nodes"
            + (f", nodes with one child {incomplete[:5]}" if incomplete else "")
        )
    complete = {key: (slot[0], slot[1]) for key, slot in children.items()}
    renumbered, visited = _walk_breadth_first(num_classes + roots.pop(), complete, num_classes)
    return renumbered, [key - num_classes for key in visited]


def _paths_from_children(root: int, children: dict[int, tuple[int, int]], num_classes: int) -> list[TreePath]:
    """Walk a tree breadth-first, numbering inner nodes 0, 1, ... in visiting order.

    Breadth-first numbering makes node indices increase along every path, so each class's
    row of the path-incidence matrix comes out sorted (a coalesced sparse matrix for free).
    """
    return _walk_breadth_first(root, children, num_classes)[0]


def _walk_breadth_first(
    root: int, children: dict[int, tuple[int, int]], num_classes: int
) -> tuple[list[TreePath], list[int]]:
    """(paths with inner nodes numbered in breadth-first visiting order, the key of each visited inner node)."""
    paths: list[TreePath] = [[] for _ in range(num_classes)]
    queue: deque[tuple[int, TreePath]] = deque([(root, [])])
    visited: list[int] = []
    while queue:
        key, prefix = queue.popleft()
        if key < num_classes:
            paths[key] = prefix
            continue
        first, second = children[key]
        queue.append((first, [*prefix, (len(visited), 1)]))
        queue.append((second, [*prefix, (len(visited), -1)]))
        visited.append(key)
    return paths, visited


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
    node_children: Tensor  # (C-1, 2) long: +1 then -1 child of each inner node; inner n as n, class c as C-1+c
    level_starts: tuple[int, ...]  # first node of each depth, then C-1


def tree_tables(paths: Sequence[TreePath]) -> TreeTables:
    """Index tensors of a tree given as breadth-first numbered paths (see ``balanced_tree``)."""
    num_nodes = len(paths) - 1
    longest = max(len(path) for path in paths)
    node_parent = [0] * num_nodes
    node_sign = [0.0] * num_nodes
    node_depth = [0] * num_nodes
    node_children = [[0, 0] for _ in range(num_nodes)]
    for leaf, path in enumerate(paths):
        for (parent, sign), (node, _) in itertools.pairwise(path):
            node_parent[node] = parent
            node_sign[node] = float(sign)
            node_depth[node] = node_depth[parent] + 1
            node_children[parent][sign < 0] = node
        node_children[path[-1][0]][path[-1][1] < 0] = num_nodes + leaf
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
        node_children=torch.tensor(node_children, dtype=torch.long).view(num_nodes, 2),
        level_starts=(0, *itertools.accumulate(nodes_per_depth)),
    )
