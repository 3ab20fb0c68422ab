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
