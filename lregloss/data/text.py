"""Bag-of-n-grams text features: tokenizer, n-grams, vocabulary, padded id matrix."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import chain, repeat

import numpy as np
import torch
from torch import Tensor

PAD = "<pad>"  # id 0; EmbeddingBag(padding_idx=0) leaves it out of the mean

# Lowercase words with an optional clitic ("don't", "it's" stay one token, so the negation
# survives), plus "!" and "?", which carry sentiment in reviews ("love it!!").
TOKEN_PATTERN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?]")


def tokenize(text: str) -> list[str]:
    """Lowercase ``text`` and split it into words, clitics kept, and "!"/"?" marks.

    Example: ``tokenize("Don't buy it!!")`` is ``["don't", "buy", "it", "!", "!"]``.
    """
    return TOKEN_PATTERN.findall(text.lower().replace("\u2019", "'"))


def with_ngrams(tokens: Sequence[str], n: int) -> list[str]:
    """The tokens followed by every 2..n-gram of consecutive tokens, joined by one space.

    Example: ``with_ngrams(["not", "good", "!"], 2)`` is
    ``["not", "good", "!", "not good", "good !"]``.
    """
    features = list(tokens)
    for size in range(2, n + 1):
        features.extend(" ".join(tokens[i : i + size]) for i in range(len(tokens) - size + 1))
    return features


def build_vocabulary(documents: Iterable[Sequence[str]], min_count: int, max_vocab: int | None) -> list[str]:
    """Index -> feature list: ``PAD`` at 0, then features seen at least ``min_count`` times.

    Features are ranked by count (ties alphabetically, so the list is deterministic) and at
    most ``max_vocab`` entries are kept, ``PAD`` included. There is no unknown entry:
    ``encode`` drops unseen features instead (see there).

    Args:
        documents: feature lists (e.g. ``with_ngrams(tokenize(text), 2)``), training split only.
        min_count: the fewest occurrences, over all documents, a feature needs to be kept.
        max_vocab: the most entries, or None for no cap.
    """
    counts = Counter(chain.from_iterable(documents))
    kept = sorted((f for f, c in counts.items() if c >= min_count), key=lambda f: (-counts[f], f))
    if max_vocab is not None:
        kept = kept[: max_vocab - 1]
    return [PAD, *kept]


def encode(documents: Sequence[Sequence[str]], vocabulary: Sequence[str]) -> Tensor:
    """Map feature lists to ids and pad them with 0 into one (N, L) int64 matrix.

    Features missing from the vocabulary are dropped rather than mapped to an "unknown"
    id: under a mean bag an unknown vector only dilutes the known n-grams, and on the
    review data (min_count=5, where about 11% of a document's features are unseen) both
    choices score the same on validation, so the shorter encoding is kept. A document left
    with no feature encodes as a row of padding, which the model maps to its bias alone.
    L is the longest encoded document (at least 1).
    """
    index = {feature: i for i, feature in enumerate(vocabulary)}
    lengths = np.fromiter(map(len, documents), dtype=np.int64, count=len(documents))
    flat = np.fromiter(map(index.get, chain.from_iterable(documents), repeat(0)), dtype=np.int64, count=int(lengths.sum()))
    rows = np.repeat(np.arange(len(documents)), lengths)
    known = flat != 0  # id 0 is padding: unseen features are dropped
    flat, rows = flat[known], rows[known]
    kept = np.bincount(rows, minlength=len(documents))
    starts = np.concatenate(([0], np.cumsum(kept)[:-1]))
    ids = np.zeros((len(documents), int(kept.max(initial=0)) or 1), dtype=np.int64)
    ids[rows, np.arange(len(flat)) - starts[rows]] = flat
    return torch.from_numpy(ids)
