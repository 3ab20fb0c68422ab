"""Bag-of-n-grams text models for padded id matrices: fastText-style, and purely linear."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lregloss.validation import check_probability


class BagOfNgrams(nn.Module):
    """Mean of n-gram embeddings, optional hidden layers, dropout, then a linear output layer.

    f(x) = W dropout(h(mean_{t in x, t != 0} E[t])) + b, where h is ``hidden`` layers of
    Linear -> ReLU of width ``embed_dim``, or the identity for ``hidden=0`` (fastText,
    Joulin et al. 2017). Padding (id 0) is left out of the mean, so a document gives the
    same output whatever its padding; an all-padding row gives h(0).

    Args:
        input_size: vocabulary size, padding id 0 included.
        num_outputs: width of the output layer (set by the loss).
        embed_dim: embedding width, also the width of the hidden layers.
        hidden: number of hidden Linear -> ReLU layers after the mean.
        dropout: probability p of zeroing a unit of the document vector before the output
            layer, in [0, 1); inverted dropout (``nn.Dropout``), active in training only.

    Raises:
        ValueError: a size < 1 (``hidden`` < 0), or ``dropout`` outside [0, 1).
    """

    def __init__(
        self,
        input_size: int,
        num_outputs: int,
        embed_dim: int = 64,
        hidden: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value, smallest in (
            ("input_size", input_size, 1),
            ("num_outputs", num_outputs, 1),
            ("embed_dim", embed_dim, 1),
            ("hidden", hidden, 0),
        ):
            if int(value) != value or value < smallest:
                raise ValueError(f"{name} must be an integer >= {smallest}, got {value}")
        self.embedding = nn.EmbeddingBag(input_size, embed_dim, mode="mean", padding_idx=0)
        # fastText's init, U(-1/d, 1/d). With torch's N(0, 1) default every document starts
        # as a large random vector: on the reviews data the best validation accuracy was
        # about 1 point lower and reached later.
        nn.init.uniform_(self.embedding.weight, -1 / embed_dim, 1 / embed_dim)
        with torch.no_grad():
            self.embedding.weight[0].zero_()
        layers: list[nn.Module] = []
        for _ in range(hidden):
            layers += [nn.Linear(embed_dim, embed_dim), nn.ReLU()]
        self.hidden = nn.Sequential(*layers)
        self.dropout = nn.Dropout(check_probability("dropout", dropout))
        self.output = nn.Linear(embed_dim, num_outputs)

    def forward(self, ids: Tensor) -> Tensor:
        """(B, L) int64 ids, 0 = padding -> (B, num_outputs) outputs."""
        return self.output(self.dropout(self.hidden(self.embedding(*bags(ids)))))


class LinearBagOfNgrams(nn.Module):
    """A linear model on n-gram frequencies: one weight per (n-gram, output), plus a bias.

    f(x)_k = sum_t tf_t(x) W[t, k] + b_k, tf_t(x) = count of n-gram t in x / number of n-grams
    in x (padding, id 0, left out). Multinomial logistic regression on term frequencies with
    ``loss=softmax``; every weight belongs to one n-gram and one output, so the n-grams a
    penalty keeps or zeroes can be read off ``weight``. ``weight`` starts at 0, as in
    scikit-learn's solvers, so that an L1 penalty applied by its proximal step moves only
    the weights the data pull hard enough.

    Args:
        input_size: vocabulary size, padding id 0 included.
        num_outputs: outputs per document (set by the loss).

    Raises:
        ValueError: a size < 1.
    """

    def __init__(self, input_size: int, num_outputs: int) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("num_outputs", num_outputs)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value}")
        self.table = nn.EmbeddingBag(input_size, num_outputs, mode="mean", padding_idx=0)
        nn.init.zeros_(self.table.weight)
        self.bias = nn.Parameter(torch.zeros(num_outputs))

    @property
    def weight(self) -> Tensor:
        """(input_size, num_outputs): row t holds n-gram t's weight for each output."""
        return self.table.weight

    def forward(self, ids: Tensor) -> Tensor:
        """(B, L) int64 ids, 0 = padding -> (B, num_outputs) outputs."""
        return self.table(*bags(ids)) + self.bias


def bags(ids: Tensor) -> tuple[Tensor, Tensor]:
    """(B, L) padded ids -> (flat non-padding ids, offset of each row's first id).

    ``nn.EmbeddingBag`` reads these as B bags. On CPU its padded 2-D path with
    ``padding_idx`` is several times slower, forward and backward, than this 1-D form.
    """
    present = ids != 0
    lengths = present.sum(dim=1)
    return ids[present], lengths.cumsum(dim=0) - lengths


class ContextBag(nn.Module):
    """CBOW's input side: the mean of the context words' embeddings, then the output layer the loss needs.

    h(x) = mean_{t in x, t != 0} E[t]; f(x) = W h(x) + b where the loss takes class scores
    (``num_outputs`` != ``embed_dim``: softmax, hinge), f(x) = h(x) where the loss owns the
    output layer and takes the features (``num_outputs`` == ``embed_dim``: hierarchical and
    adaptive softmax). E starts as word2vec's input vectors, U(-0.5/d, 0.5/d); id 0 (padding,
    unknown words) is left out of the mean, and a context without a known word gives h = 0.

    Args:
        input_size: vocabulary size + 1 (id 0 is padding).
        num_outputs: the loss's input width: C class scores, or ``embed_dim`` features.
        embed_dim: d, the width of the word vectors.
        sparse: the embedding's gradient as a sparse tensor of the batch's rows only (take an
            optimizer that accepts sparse gradients: SGD, SparseAdam, Adagrad).

    Raises:
        ValueError: a size < 1.
    """

    def __init__(self, input_size: int, num_outputs: int, embed_dim: int = 100, sparse: bool = False) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("num_outputs", num_outputs), ("embed_dim", embed_dim)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value}")
        self.embedding = nn.EmbeddingBag(input_size, embed_dim, mode="mean", padding_idx=0, sparse=sparse)
        nn.init.uniform_(self.embedding.weight, -0.5 / embed_dim, 0.5 / embed_dim)
        with torch.no_grad():
            self.embedding.weight[0].zero_()
        self.output = nn.Identity() if num_outputs == embed_dim else nn.Linear(embed_dim, num_outputs)

    def forward(self, ids: Tensor) -> Tensor:
        """(B, L) int64 context ids, 0 = padding -> (B, num_outputs)."""
        flat, offsets = bags(ids)
        if self.embedding.sparse:
            return self.output(SparseBagMean.apply(self.embedding.weight, flat, offsets))
        return self.output(self.embedding(flat, offsets))


class SparseBagMean(torch.autograd.Function):
    """``F.embedding_bag(flat, weight, offsets, mode="mean", sparse=True)`` with a leaner backward.

    Forward is torch's. Backward: bag b's gradient g_b / |b| is the gradient of each of its
    rows, handed on as one sparse COO tensor of (row id, g_b / |b|) pairs, uncoalesced (the
    optimizer's sparse update sums repeated ids). torch's own sparse backward for ``mean``
    does the same work through an index and a division per element, about 1.5x the time on CPU.
    """

    @staticmethod
    def forward(ctx, weight: Tensor, flat: Tensor, offsets: Tensor) -> Tensor:
        ctx.save_for_backward(flat, offsets)
        ctx.shape = weight.shape
        return torch.nn.functional.embedding_bag(flat, weight, offsets, mode="mean")

    @staticmethod
    def backward(ctx, grad: Tensor):
        flat, offsets = ctx.saved_tensors
        lengths = torch.diff(offsets, append=offsets.new_tensor([len(flat)]))
        values = (grad / lengths.clamp_min(1).unsqueeze(1).to(grad.dtype)).repeat_interleave(lengths, dim=0, output_size=len(flat))
        return torch.sparse_coo_tensor(flat.unsqueeze(0), values, ctx.shape, check_invariants=False), None, None
