"""Bag-of-n-grams text features: tokenizer, n-grams as integer codes, vocabulary, padded id matrix.

A document's features are its tokens followed by every 2..n-gram of consecutive tokens
(`with_ngrams` spells them as strings). `NgramBags` holds the same features as integer
codes, order by order, so that counting, ranking and encoding run in numpy and pyarrow;
only the n-grams that enter the vocabulary are ever spelled.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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


def _exclusive_cumsum(counts: np.ndarray) -> np.ndarray:
    return np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64) if len(counts) else counts


def _dense_codes(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys, each key's index among them), by pyarrow's hash table: no sort."""
    encoded = pc.dictionary_encode(pa.array(keys, pa.int64()))
    return encoded.dictionary.to_numpy(), encoded.indices.to_numpy()


@dataclass(frozen=True)
class NgramOrder:
    """The n-grams of one order n in every document, as dense codes 0..K-1.

    Attributes:
        rows: (M,) the document of each occurrence, documents in order, positions in order.
        codes: (M,) the n-gram at each occurrence.
        prefix: (K,) each n-gram's first n - 1 tokens, as a code of order n - 1 (for
            n = 1: the token's own word code).
        last: (K,) each n-gram's last token, as a word code.
    """

    rows: np.ndarray
    codes: np.ndarray
    prefix: np.ndarray
    last: np.ndarray

    @property
    def size(self) -> int:
        return len(self.last)


@dataclass(frozen=True)
class NgramBags:
    """Each document's 1..n-grams (its `with_ngrams` features) as integer codes.

    Attributes:
        words: word code -> token.
        lengths: (N,) tokens per document.
        orders: `NgramOrder` of 1-grams, 2-grams, ... n-grams.
    """

    words: list[str]
    lengths: np.ndarray
    orders: list[NgramOrder]

    @classmethod
    def of(cls, texts: Sequence[str], max_tokens: int | None, n: int) -> NgramBags:
        """The n-grams of ``tokenize(text)[:max_tokens]`` for each text, n = 1..``n``."""
        tokens = [tokenize(text)[:max_tokens] for text in texts]
        lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        encoded = pc.dictionary_encode(pa.array(chain.from_iterable(tokens), pa.string(), size=int(lengths.sum())))
        words = encoded.dictionary.to_pylist()
        word_codes = encoded.indices.to_numpy()  # int32, one per token of all documents in order
        width = max(len(words), 1)
        token_rows = np.repeat(np.arange(len(tokens), dtype=np.int32), lengths)
        position = np.arange(len(token_rows)) - np.repeat(_exclusive_cumsum(lengths), lengths)  # in its document
        remaining = np.repeat(lengths, lengths) - position  # tokens from each to its document's end: n-grams start where >= n
        orders = [NgramOrder(token_rows, word_codes, np.arange(len(words)), np.arange(len(words)))]
        codes_by_start = word_codes  # the code of the n-gram starting at each token, where one does
        for size in range(2, n + 1):
            starts = np.flatnonzero(remaining >= size)
            keys = codes_by_start[starts].astype(np.int64) * width + word_codes[starts + size - 1]  # < tokens**2
            distinct, codes = _dense_codes(keys)
            orders.append(NgramOrder(token_rows[starts], codes, distinct // width, distinct % width))
            codes_by_start = np.zeros(len(word_codes), dtype=codes.dtype)
            codes_by_start[starts] = codes
        return cls(words, lengths, orders)

    def spell(self, order: int, codes: np.ndarray) -> list[str]:
        """The strings of n-grams ``codes`` of order ``order`` (1 for words), as `with_ngrams` joins them."""
        level = self.orders[order - 1]
        if order == 1:
            return [self.words[code] for code in codes.tolist()]
        prefixes = self.spell(order - 1, level.prefix[codes])
        return [f"{prefix} {self.words[word]}" for prefix, word in zip(prefixes, level.last[codes].tolist())]

    def vocabulary(self, rows: Tensor | np.ndarray, min_count: int, max_vocab: int | None) -> tuple[list[str], list[np.ndarray]]:
        """The vocabulary of documents ``rows`` and each order's code -> id (0: not in it).

        Vocabulary: ``PAD`` at 0, then the n-grams seen at least ``min_count`` times in
        those documents, ranked by count (ties alphabetically by their string, so the list
        is deterministic), at most ``max_vocab`` entries, ``PAD`` included. There is no
        unknown entry: `encode` drops unseen n-grams instead (see there).
        """
        chosen = np.zeros(len(self.lengths), dtype=bool)
        chosen[np.asarray(rows, dtype=np.int64)] = True
        candidates = []
        for order, level in enumerate(self.orders, start=1):
            counts = np.bincount(level.codes[chosen[level.rows]], minlength=level.size)
            frequent = np.flatnonzero(counts >= min_count)
            strings = self.spell(order, frequent)
            candidates.extend(zip((-counts[frequent]).tolist(), strings, [order] * len(frequent), frequent.tolist()))
        candidates.sort(key=lambda candidate: (candidate[0], candidate[1]))
        if max_vocab is not None:
            candidates = candidates[: max_vocab - 1]
        ids = [np.zeros(level.size, dtype=np.int64) for level in self.orders]
        for index, (_, _, order, code) in enumerate(candidates, start=1):
            ids[order - 1][code] = index
        return [PAD, *(candidate[1] for candidate in candidates)], ids

    def ids_in(self, vocabulary: Sequence[str]) -> list[np.ndarray]:
        """Each order's code -> id in ``vocabulary`` (id -> n-gram; 0 where an n-gram is not in it)."""
        index = {feature: i for i, feature in enumerate(vocabulary)}
        return [
            np.fromiter((index.get(s, 0) for s in self.spell(order, np.arange(level.size))), np.int64, level.size)
            for order, level in enumerate(self.orders, start=1)
        ]

    def encode(self, ids: Sequence[np.ndarray]) -> Tensor:
        """The documents as one (N, L) int64 matrix of vocabulary ids, padded with 0.

        Each row lists a document's known features in `with_ngrams` order (its words, then
        its 2-grams, ...). n-grams missing from the vocabulary are dropped rather than
        mapped to an "unknown" id: under a mean bag an unknown vector only dilutes the
        known n-grams, and on the review data (min_count=5, where about 11% of a document's
        features are unseen) both choices score the same on validation, so the shorter
        encoding is kept. A document left with no feature encodes as a row of padding,
        which the model maps to its bias alone. L is the longest encoded document (at
        least 1).
        """
        documents = len(self.lengths)
        placed = []  # per order: (rows, columns, ids) of the known features
        before = np.zeros(documents, dtype=np.int64)  # known features of the lower orders, per document
        for level, order_ids in zip(self.orders, ids):
            found = order_ids[level.codes]
            known = found != 0  # id 0 is padding: unseen features are dropped
            rows, found = level.rows[known], found[known]
            counts = np.bincount(rows, minlength=documents)
            columns = np.arange(len(rows)) - _exclusive_cumsum(counts)[rows] + before[rows]
            placed.append((rows, columns, found))
            before += counts
        matrix = np.zeros((documents, int(before.max(initial=0)) or 1), dtype=np.int64)
        for rows, columns, found in placed:
            matrix[rows, columns] = found
        return torch.from_numpy(matrix)
