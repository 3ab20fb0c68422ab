"""BagOfNgrams: shapes, the mean over non-padding ids written out, padding and dropout."""

import pytest
import torch

from lregloss.models import BagOfNgrams, LinearBagOfNgrams
from lregloss.models.text import bags

IDS = torch.tensor([[3, 1, 4, 1, 5], [9, 2, 6, 0, 0], [7, 0, 0, 0, 0]])


def reference_outputs(model: BagOfNgrams, ids: torch.Tensor) -> torch.Tensor:
    """mean of the non-padding embedding rows, then the linear layer, in float64."""
    table = model.embedding.weight.double()
    weight, bias = model.output.weight.double(), model.output.bias.double()
    rows = []
    for row in ids.tolist():
        present = [i for i in row if i != 0]
        mean = table[present].mean(dim=0) if present else torch.zeros(table.shape[1], dtype=torch.float64)
        rows.append(mean @ weight.T + bias)
    return torch.stack(rows)


@pytest.mark.parametrize("num_outputs", [1, 4, 5])
@pytest.mark.parametrize("hidden", [0, 2])
def test_output_shape(num_outputs, hidden):
    model = BagOfNgrams(input_size=10, num_outputs=num_outputs, embed_dim=8, hidden=hidden)
    assert model(IDS).shape == (3, num_outputs)


def test_outputs_are_the_linear_map_of_the_mean_embedding():
    torch.manual_seed(0)
    model = BagOfNgrams(input_size=10, num_outputs=4, embed_dim=8)
    torch.testing.assert_close(model(IDS).double(), reference_outputs(model, IDS))


def test_padding_is_ignored():
    torch.manual_seed(0)
    model = BagOfNgrams(input_size=10, num_outputs=5, embed_dim=8, hidden=1)
    wider = torch.cat([IDS, torch.zeros(3, 7, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model(wider), model(IDS))
    interleaved = torch.tensor([[0, 3, 1, 0, 4, 1, 5]])
    torch.testing.assert_close(model(interleaved), model(IDS[:1]))


def test_all_padding_row_gives_the_bias_and_padding_gets_no_gradient():
    model = BagOfNgrams(input_size=10, num_outputs=3, embed_dim=8)
    assert torch.equal(model.embedding.weight[0], torch.zeros(8))
    outputs = model(torch.tensor([[0, 0, 0], [1, 0, 0]]))
    torch.testing.assert_close(outputs[0], model.output.bias)
    outputs.sum().backward()
    assert torch.equal(model.embedding.weight.grad[0], torch.zeros(8))
    assert model.embedding.weight.grad[1].abs().sum() > 0


def test_bags_flattens_rows_and_offsets():
    flat, offsets = bags(IDS)
    assert flat.tolist() == [3, 1, 4, 1, 5, 9, 2, 6, 7]
    assert offsets.tolist() == [0, 5, 8]


def test_embeddings_start_small_as_in_fasttext():
    model = BagOfNgrams(input_size=1000, num_outputs=5, embed_dim=64)
    assert model.embedding.weight[1:].abs().max() <= 1 / 64
    assert model.embedding.weight[1:].std() > 0.5 / 64 / 3**0.5


def test_dropout_acts_in_training_only():
    torch.manual_seed(0)
    model = BagOfNgrams(input_size=10, num_outputs=5, embed_dim=64, dropout=0.5)
    clean = BagOfNgrams(input_size=10, num_outputs=5, embed_dim=64)
    clean.load_state_dict(model.state_dict())
    model.train()
    assert not torch.allclose(model(IDS), model(IDS))
    model.eval()
    torch.testing.assert_close(model(IDS), clean.eval()(IDS))


@pytest.mark.parametrize("dropout", [-0.1, 1.0, 1.5])
def test_invalid_dropout_is_refused(dropout):
    with pytest.raises(ValueError, match="dropout"):
        BagOfNgrams(input_size=10, num_outputs=5, dropout=dropout)


@pytest.mark.parametrize(
    "arguments, name",
    [({"input_size": 0}, "input_size"), ({"num_outputs": 0}, "num_outputs"), ({"embed_dim": 0}, "embed_dim"), ({"hidden": -1}, "hidden")],
)
def test_invalid_sizes_are_refused(arguments, name):
    with pytest.raises(ValueError, match=name):
        BagOfNgrams(**{"input_size": 10, "num_outputs": 5, **arguments})


def test_linear_bag_is_the_frequency_vector_times_its_weights_plus_bias():
    torch.manual_seed(0)
    model = LinearBagOfNgrams(input_size=10, num_outputs=4)
    with torch.no_grad():
        model.weight[1:].normal_()
        model.bias.normal_()
    frequencies = torch.zeros(len(IDS), 10, dtype=torch.float64)
    for row, ids in enumerate(IDS.tolist()):
        present = [i for i in ids if i != 0]
        for i in present:
            frequencies[row, i] += 1 / len(present)  # count / number of n-grams, padding left out
    torch.testing.assert_close(model(IDS).double(), frequencies @ model.weight.double() + model.bias.double())


def test_linear_bag_starts_at_zero_with_one_weight_per_ngram_and_output():
    model = LinearBagOfNgrams(input_size=10, num_outputs=5)
    assert model.weight.shape == (10, 5)
    assert not model.weight.any() and not model.bias.any()
    assert torch.equal(model(IDS), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="num_outputs"):
        LinearBagOfNgrams(input_size=10, num_outputs=0)
