"""gensim's CBOW with hierarchical softmax, the peer of lregloss's CBOW recipe, and its weights in lregloss's form.

The peer is ``Word2Vec(sg=0, hs=1, negative=0, cbow_mean=1, sample=0, shrink_windows=False,
min_count=1)``: the centre word w is predicted from h, the mean of the input vectors of the
words within ``window`` of it, with

    p(w | h) = prod_{(n, s) on path(w)} sigmoid(s * v_n . h)

over gensim's Huffman tree, where gensim's code bit 0 is sign +1 and bit 1 is sign -1 (it
trains with g = 1 - code - sigmoid(v_n . h)). ``as_lregloss`` copies the input vectors into
lregloss's id order (word ``words[w]`` is input id w + 1, id 0 is padding) and the node
vectors v_n into a ``HierarchicalSoftmax`` over the same tree, so lregloss evaluates gensim's
model with its own code: h = EmbeddingBag(mode="mean", padding_idx=0) of the context's ids,
log p(y | h) from the loss.

gensim is optional: ``pip install 'lregloss[gensim]'``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from lregloss.losses.hierarchical import HierarchicalSoftmax
from lregloss.losses.trees import TreePath

if TYPE_CHECKING:
    from gensim.models import Word2Vec


def train_gensim(
    sentences: Sequence[Sequence[str]],
    vector_size: int,
    window: int,
    epochs: int,
    seed: int,
    workers: int = 2,
    alpha: float = 0.025,
    min_alpha: float = 0.0001,
    words: Sequence[str] | None = None,
) -> tuple[Word2Vec, float]:
    """gensim's CBOW with hierarchical softmax trained on ``sentences``, and the seconds training took.

    Every token is kept (min_count=1, no down-sampling) and every window has its full
    width (shrink_windows=False), as in lregloss's recipe; the learning rate falls linearly
    from ``alpha`` to ``min_alpha`` over all epochs. The seconds are those of ``train``
    alone, as in gensim's "effective words/s" figure: the vocabulary pass (``build_vocab``,
    one scan of the corpus and the Huffman tree) is excluded. With ``workers`` > 1 the
    result depends on thread scheduling; workers=1 is reproducible.

    Args:
        sentences: lists of tokens, re-iterable (read once for the vocabulary, once per epoch).
        vector_size: D, the width of the input and node vectors.
        window: context words on each side of the centre.
        epochs: passes over ``sentences``.
        seed: gensim's seed for the initial input vectors.
        workers: gensim's training threads.
        alpha: initial learning rate.
        min_alpha: final learning rate.
        words: lregloss's vocabulary; if given, gensim's must hold the same words.

    Returns:
        (the trained ``gensim.models.Word2Vec``, seconds spent in its ``train``).

    Raises:
        ImportError: gensim is not installed.
        ValueError: gensim's vocabulary differs from ``words``.
    """
    try:
        from gensim.models import Word2Vec
    except ImportError as error:
        raise ImportError("gensim is not installed: pip install 'lregloss[gensim]'") from error
    model = Word2Vec(
        sg=0,
        hs=1,
        negative=0,
        cbow_mean=1,
        sample=0,
        shrink_windows=False,
        min_count=1,
        window=window,
        vector_size=vector_size,
        epochs=epochs,
        workers=workers,
        seed=seed,
        alpha=alpha,
        min_alpha=min_alpha,
    )
    model.build_vocab(sentences)
    if words is not None:
        _check_vocabulary(model, words)
    start = time.perf_counter()
    model.train(sentences, total_examples=model.corpus_count, epochs=model.epochs)
    return model, time.perf_counter() - start


def gensim_tree(model: Word2Vec, words: Sequence[str]) -> list[TreePath]:
    """gensim's Huffman tree as lregloss paths: path w lists (node, sign) from the root to ``words[w]``.

    Nodes are gensim's ``point`` numbers (rows of ``model.syn1``, numbered by creation, the
    root last); sign = +1 for code bit 0 and -1 for bit 1, since gensim's
    p(bit) = sigmoid((1 - 2 bit) * v_n . h).

    Raises:
        ValueError: the model has no hierarchical softmax, or its vocabulary differs from ``words``.
    """
    if not model.hs:
        raise ValueError("the gensim model has no hierarchical softmax tree; train it with hs=1")
    _check_vocabulary(model, words)
    paths = []
    for word in words:
        points, codes = model.wv.get_vecattr(word, "point"), model.wv.get_vecattr(word, "code")
        paths.append([(int(node), 1 - 2 * int(bit)) for node, bit in zip(points, codes)])
    return paths


def as_lregloss(model: Word2Vec, words: Sequence[str]) -> tuple[Tensor, HierarchicalSoftmax]:
    """gensim's weights in lregloss's form: (input embeddings, output layer).

    Returns:
        (E, loss): E is (C + 1, D) float32 with E[0] = 0 (padding) and E[w + 1] = gensim's
        input vector of ``words[w]``; loss is ``HierarchicalSoftmax(D, C, bias=False)`` over
        ``gensim_tree``, its node vectors gensim's ``syn1`` rows in breadth-first order
        (``loss.weight = syn1[loss.node_order]``).

    Raises:
        ValueError: see ``gensim_tree``.
    """
    paths = gensim_tree(model, words)
    rows = [model.wv.key_to_index[word] for word in words]
    vectors = torch.from_numpy(model.wv.vectors[rows]).float()
    embeddings = torch.cat([vectors.new_zeros(1, vectors.shape[1]), vectors])
    loss = HierarchicalSoftmax(vectors.shape[1], len(words), bias=False, paths=paths)
    with torch.no_grad():
        loss.weight.copy_(torch.from_numpy(model.syn1)[loss.node_order])
    return embeddings, loss


def _check_vocabulary(model: Word2Vec, words: Sequence[str]) -> None:
    """Raise unless gensim's vocabulary holds exactly ``words`` (in any order: gensim orders ties its own way)."""
    ours, theirs = set(words), set(model.wv.key_to_index)
    if len(ours) != len(words) or ours != theirs:
        raise ValueError(
            f"gensim's vocabulary ({len(theirs)} words) differs from words ({len(words)}, {len(ours)} distinct): "
            f"only gensim's {sorted(theirs - ours)[:5]}, only words' {sorted(ours - theirs)[:5]}; "
            "pass the sentences with out-of-vocabulary tokens removed"
        )
