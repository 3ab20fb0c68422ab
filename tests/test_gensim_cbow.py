"""gensim's CBOW copied into lregloss (lregloss.study.gensim_cbow): its scores, its tree, the optional import."""

import sys
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lregloss.losses import HierarchicalSoftmax
from lregloss.study.gensim_cbow import as_lregloss, gensim_tree, train_gensim

pytest.importorskip("gensim")

NUM_WORDS = 30
WINDOW = 2
DIMENSIONS = 8
UNSEEN = "unseen"  # a held-out token outside the vocabulary: gensim's score drops it before windowing


def markov_sentences(
    rng: np.random.Generator, count: int, successors: np.ndarray, first: np.ndarray
) -> list[list[str]]:
    """Sentences of 2..12 words from a Markov chain, so that a word's context says something about it."""
    sentences = []
    for _ in range(count):
        ids = [rng.choice(NUM_WORDS, p=first)]
        for _ in range(rng.integers(1, 12)):
            ids.append(rng.choice(NUM_WORDS, p=successors[ids[-1]]))
        sentences.append([f"w{i}" for i in ids])
    return sentences


@pytest.fixture(scope="module")
def corpus():
    """(training sentences, held-out sentences holding UNSEEN tokens, vocabulary most frequent first)."""
    rng = np.random.default_rng(0)
    successors = rng.dirichlet(np.full(NUM_WORDS, 0.1), size=NUM_WORDS)  # few likely successors per word
    first = rng.dirichlet(np.full(NUM_WORDS, 0.5))
    train = markov_sentences(rng, 400, successors, first)
    held_out = markov_sentences(rng, 40, successors, first)
    for sentence in held_out[::3]:
        sentence.insert(int(rng.integers(len(sentence) + 1)), UNSEEN)
    words = [word for word, _ in Counter(token for sentence in train for token in sentence).most_common()]
    # gensim's score leaves an empty context's mean uninitialised (inv_count in score_pair_cbow_hs): >= 2 known words.
    held_out = [sentence for sentence in held_out if sum(token in words for token in sentence) >= 2]
    return train, held_out, words


@pytest.fixture(scope="module")
def model(corpus):
    train, _, words = corpus
    trained, seconds = train_gensim(train, DIMENSIONS, WINDOW, epochs=2, seed=0, workers=1, words=words)
    assert seconds > 0
    return trained


def context_bags(ids: list[int], window: int) -> torch.Tensor:
    """(len(ids), 2 window) input ids of the words within ``window`` of each position, 0 past the ends."""
    offsets = [offset for offset in range(-window, window + 1) if offset != 0]
    return torch.tensor([[ids[i + o] if 0 <= i + o < len(ids) else 0 for o in offsets] for i in range(len(ids))])


def lookup_gap_bounds(margins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds on log sigmoid(g) - gensim's table value for it, per node margin g = s v_n . h in (-6, 6).

    gensim reads LOG_TABLE[i], i = int((g + 6) * (1000 / 6 / 2)), an entry that holds log
    sigmoid(x_i) with x_i = -6 + 12 i / 1000; the C integer division makes the factor 83, not
    83.33, so g - x_i lies in [0.004 (g + 6), 0.004 (g + 6) + 0.012). log sigmoid rises with
    slope sigmoid(-t), which falls with t, so the gap lies between (g - x) sigmoid(-g) and
    (g - x) sigmoid(-x).
    """
    shortest = 0.004 * (margins + 6)
    longest = shortest + 0.012
    return shortest * torch.sigmoid(-margins), longest * torch.sigmoid(longest - margins)


def lregloss_scores(
    sentences: list[list[str]], words: list[str], embeddings: torch.Tensor, loss: HierarchicalSoftmax
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sentence: sum of log p(word | context) by the loss, bounds on its gap to gensim's, the largest |margin|.

    The context is gensim's: the sentence's known words, ``WINDOW`` of them on each side.
    """
    input_id = {word: w + 1 for w, word in enumerate(words)}
    totals, low, high, largest = [], [], [], []
    for sentence in sentences:
        ids = [input_id[token] for token in sentence if token in input_id]
        features = F.embedding_bag(context_bags(ids, WINDOW), embeddings, mode="mean", padding_idx=0)
        target = torch.tensor(ids) - 1
        totals.append(loss.log_prob(features).gather(1, target.unsqueeze(1)).sum().double())
        logits = (features @ loss.weight.T).double()
        signs = loss.path_signs[target].double()
        margins = signs * logits.gather(1, loss.path_nodes[target])
        shortest, longest = lookup_gap_bounds(margins)
        low.append((shortest * signs.abs()).sum())
        high.append((longest * signs.abs()).sum())
        largest.append((margins * signs.abs()).abs().max())
    return torch.stack(totals), torch.stack(low), torch.stack(high), torch.stack(largest)


def test_lregloss_scores_the_copied_model_as_gensim_does_up_to_gensims_log_sigmoid_table(corpus, model):
    _, held_out, words = corpus
    embeddings, loss = as_lregloss(model, words)
    ours, low, high, largest = lregloss_scores(held_out, words, embeddings, loss)
    assert largest.max() < 6, "gensim skips nodes with |margin| >= 6: train for less"
    assert largest.max() > 0.5, "margins near 0 would hide a wrong sign or context: train for more"
    gensim = torch.from_numpy(model.score(held_out, total_sentences=len(held_out))).double()
    # The table's own entries are float32, and so are gensim's sums: 1e-4 per sentence covers them.
    gap = ours - gensim
    assert torch.all(gap >= low - 1e-4), (gap - low).min()
    assert torch.all(gap <= high + 1e-4), (gap - high).max()

    # The same check fails for node vectors left in gensim's numbering (root last, not first).
    # gensim's syn1 holds C rows: points run 0..C-2 and the last row is never used.
    with torch.no_grad():
        loss.weight.copy_(torch.from_numpy(model.syn1[: len(words) - 1]))
    unordered = lregloss_scores(held_out, words, embeddings, loss)[0]
    assert torch.any(unordered - gensim > high + 1e-4) or torch.any(unordered - gensim < low - 1e-4)


def test_as_lregloss_puts_word_w_at_input_id_w_plus_1_and_padding_at_0(corpus, model):
    _, _, words = corpus
    embeddings, loss = as_lregloss(model, words)
    assert embeddings.shape == (len(words) + 1, DIMENSIONS) and embeddings.dtype == torch.float32
    assert torch.equal(embeddings[0], torch.zeros(DIMENSIONS))
    for w, word in enumerate(words):
        assert torch.equal(embeddings[w + 1], torch.tensor(model.wv[word]))
    assert loss.bias is None and loss.weight.shape == (len(words) - 1, DIMENSIONS)
    root = max(int(node) for word in words for node in model.wv.get_vecattr(word, "point"))
    assert torch.equal(loss.weight[0], torch.tensor(model.syn1[root]))  # breadth-first: the root is node 0


def test_gensim_tree_is_a_full_huffman_tree_and_its_probabilities_sum_to_one(corpus, model):
    _, _, words = corpus
    paths = gensim_tree(model, words)
    depths = [len(path) for path in paths]
    assert sum(2.0 ** -depth for depth in depths) == 1.0  # Kraft equality: a full binary tree ...
    for a, path in enumerate(paths):  # ... whose leaves are exactly the classes (no path is a prefix of another)
        assert not any(other[: len(path)] == path for b, other in enumerate(paths) if b != a)
    counts = [model.wv.get_vecattr(word, "count") for word in words]
    for a in range(len(words)):
        for b in range(len(words)):
            if counts[a] > counts[b]:
                assert depths[a] <= depths[b], (words[a], counts[a], depths[a], words[b], counts[b], depths[b])
    assert max(depths) > min(depths)  # the counts are skewed enough for the test to mean something
    _, loss = as_lregloss(model, words)
    torch.testing.assert_close(loss.path_lengths, torch.tensor(depths))
    features = torch.randn(16, DIMENSIONS, generator=torch.Generator().manual_seed(0)) * 3
    torch.testing.assert_close(loss.log_prob(features).exp().sum(dim=1), torch.ones(16))


def test_train_gensim_refuses_a_vocabulary_other_than_lreglosss(corpus):
    train, _, words = corpus
    with pytest.raises(ValueError, match=r"only words' \['extra'\]"):
        train_gensim(train, DIMENSIONS, WINDOW, epochs=1, seed=0, workers=1, words=[*words, "extra"])


def test_a_missing_gensim_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gensim", None)
    monkeypatch.setitem(sys.modules, "gensim.models", None)
    with pytest.raises(ImportError, match=r"pip install 'lregloss\[gensim\]'"):
        train_gensim([["a", "b"]], 4, 1, epochs=1, seed=0)
