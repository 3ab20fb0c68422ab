"""A multilayer perceptron for feature vectors (scene attributes, linear baselines)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from lregloss.validation import check_probability


class MLP(nn.Module):
    """Linear -> activation -> dropout blocks, then a linear output layer.

    With ``hidden_sizes=[]`` it is a linear model. Dropout is inverted dropout
    (``nn.Dropout``): active only in training, activations scaled by 1/(1-p) so evaluation
    needs no rescaling.

    Args:
        input_size: number of input features.
        num_outputs: width of the output layer (set by the loss).
        hidden_sizes: width of each hidden layer.
        dropout: probability p of zeroing a hidden unit (and an input, see input_dropout).
        input_dropout: dropout probability on the inputs.

    Raises:
        ValueError: a size < 1, or a dropout probability outside [0, 1).
    """

    def __init__(
        self,
        input_size: int,
        num_outputs: int,
        hidden_sizes: Sequence[int] = (256,),
        dropout: float = 0.0,
        input_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        sizes = [input_size, *hidden_sizes, num_outputs]
        if any(int(size) != size or size < 1 for size in sizes):
            raise ValueError(f"MLP sizes must be integers >= 1, got input_size={input_size}, hidden_sizes={list(hidden_sizes)}, num_outputs={num_outputs}")
        p = check_probability("dropout", dropout)
        layers: list[nn.Module] = [nn.Dropout(check_probability("input_dropout", input_dropout))]
        for width_in, width_out in zip(sizes[:-2], sizes[1:-1]):
            layers += [nn.Linear(width_in, width_out), nn.GELU(), nn.Dropout(p)]
        layers.append(nn.Linear(sizes[-2], sizes[-1]))
        self.layers = nn.Sequential(*layers)

    def forward(self, inputs: Tensor) -> Tensor:
        return self.layers(inputs)
