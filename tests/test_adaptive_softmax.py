"""Adaptive softmax against torch's own module fed the permuted classes, and against its formula."""

import math
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from lregloss.app.train import task_sized_arguments
from lregloss.losses import AdaptiveSoftmax
from lregloss.losses.adaptive import coverage_cutoffs, zipf_counts
from lregloss.losses.base import LossTaskMismatchError
from lregloss.tasks import Task

CONF = Path(__file__).resolve().parents[1] / "conf"
D, C = 16, 40
# Geometric counts in shuffled class order, with ties among the rare classes.
HEAVY_TAILED = [int(50 * 0.8**c) for c in torch.randperm(C, generator=torch.Generator().manual_seed(0))]


def randomised(loss: AdaptiveSoftmax, seed: int) -> AdaptiveSoftmax:
    """The loss in float64 with weights large enough that head and tail predictions both occur."""
    generator = torch.Generator().manual_seed(seed)
    loss = loss.double()
    with torch.no_grad():
        for parameter in loss.parameters():
            parameter.copy_(torch.randn(parameter.shape, dtype=torch.float64, generator=generator))
    return loss


def reference_of(loss: AdaptiveSoftmax) -> nn.AdaptiveLogSoftmaxWithLoss:
    """torch's module with the loss's cutoffs and a copy of its weights, float64."""
    torch_module = nn.AdaptiveLogSoftmaxWithLoss(D, C, loss.cutoffs, loss.div_value, loss.adaptive.head_bias)
    torch_module.double().load_state_dict(loss.adaptive.state_dict())
    return torch_module


def frequency_rank(counts: list[int] | None) -> torch.Tensor:
    """Rank of each class by decreasing count, ties by index (a stable sort); the index itself without counts."""
    if counts is None:
        return torch.arange(C)
    order = torch.sort(torch.tensor(counts), descending=True, stable=True).indices
    return torch.argsort(order)


def features_and_labels(n: int = 64, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, D, dtype=torch.float64, generator=generator), torch.randint(0, C, (n,), generator=generator)


SETTINGS = [
    {"class_counts": None},
    {"class_counts": HEAVY_TAILED},
    {"class_counts": HEAVY_TAILED, "cutoffs": [3, 10, 25], "div_value": 2.0, "head_bias": True},
]


@pytest.mark.parametrize("kwargs", SETTINGS)
def test_loss_and_gradients_equal_torchs_module_on_the_ranked_classes(kwargs):
    loss = randomised(AdaptiveSoftmax(D, C, **kwargs), seed=2)
    torch_module = reference_of(loss)
    h, y = features_and_labels()
    h_ours, h_torch = h.clone().requires_grad_(), h.clone().requires_grad_()
    ours = loss(h_ours, y)
    expected = torch_module(h_torch, frequency_rank(kwargs["class_counts"])[y]).loss
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=0)
    ours.backward()
    expected.backward()
    torch.testing.assert_close(h_ours.grad, h_torch.grad, rtol=1e-12, atol=1e-15)
    theirs = dict(torch_module.named_parameters())
    for name, parameter in loss.adaptive.named_parameters():
        torch.testing.assert_close(parameter.grad, theirs[name].grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kwargs", SETTINGS)
def test_log_prob_is_torchs_in_the_original_class_order(kwargs):
    loss = randomised(AdaptiveSoftmax(D, C, **kwargs), seed=3)
    h, _ = features_and_labels()
    log_prob = loss.log_prob(h)
    assert log_prob.shape == (64, C)
    torch.testing.assert_close(log_prob.exp().sum(dim=1), torch.ones(64, dtype=torch.float64), rtol=0, atol=1e-12)
    expected = reference_of(loss).log_prob(h)[:, frequency_rank(kwargs["class_counts"])]
    torch.testing.assert_close(log_prob, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(loss.predict_proba(h), expected.exp())
    torch.testing.assert_close(loss.class_scores(h), expected)


def test_temperature_divides_the_head_and_cluster_logits_as_the_formula_says():
    counts = HEAVY_TAILED
    loss = randomised(AdaptiveSoftmax(D, C, class_counts=counts, cutoffs=[5, 20], head_bias=True), seed=4)
    h, _ = features_and_labels(n=3)
    temperature = 2.5
    rank = frequency_rank(counts).tolist()
    head = loss.adaptive.head
    tails = [(layers[0].weight, layers[1].weight) for layers in loss.adaptive.tail]
    bounds = [0, 5, 20, C]
    proba = loss.predict_proba(h, temperature)
    for i in range(3):
        z = (head.weight @ h[i] + head.bias) / temperature
        p_head = z.exp() / z.exp().sum()
        for c in range(C):
            r = rank[c]
            if r < 5:
                expected = p_head[r]
            else:
                cluster = 1 if r < 20 else 2
                projection, out = tails[cluster - 1]
                u = out @ (projection @ h[i]) / temperature
                expected = p_head[5 + cluster - 1] * u.exp()[r - bounds[cluster]] / u.exp().sum()
            assert proba[i, c].item() == pytest.approx(expected.item(), rel=1e-12)


def test_log_prob_gradients_in_features_and_temperature_match_finite_differences():
    loss = randomised(AdaptiveSoftmax(8, 7, class_counts=[1, 5, 2, 2, 9, 0, 3], cutoffs=[2, 4], div_value=2.0), seed=8)
    h = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    temperature = torch.tensor(1.7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(loss.log_prob, (h, temperature))


@pytest.mark.parametrize("kwargs", SETTINGS)
def test_predict_is_torchs_mapped_back_and_the_argmax_of_log_prob(kwargs):
    loss = randomised(AdaptiveSoftmax(D, C, **kwargs), seed=5)
    h, _ = features_and_labels(n=256)
    prediction = loss.predict(h)
    order = torch.argsort(frequency_rank(kwargs["class_counts"]))
    torch_prediction = reference_of(loss).predict(h)
    assert torch.equal(prediction, order[torch_prediction])
    assert torch.equal(prediction, loss.log_prob(h).argmax(dim=1))
    # Both of torch's branches ran: some samples decided by the head alone, some in a tail.
    in_head = torch_prediction < loss.cutoffs[0]
    assert in_head.any() and not in_head.all()


def test_target_log_prob_is_log_prob_at_the_target():
    loss = randomised(AdaptiveSoftmax(D, C, class_counts=HEAVY_TAILED), seed=6)
    h, y = features_and_labels()
    target_log_prob = loss.target_log_prob(h, y)
    torch.testing.assert_close(target_log_prob, loss.log_prob(h).gather(1, y.unsqueeze(1)).squeeze(1))
    torch.testing.assert_close(loss(h, y), -target_log_prob.mean())


def test_classes_are_ranked_by_decreasing_count_ties_by_index_in_buffers_left_out_of_checkpoints():
    loss = AdaptiveSoftmax(8, 6, class_counts=[3, 1, 4, 1, 5, 0])
    assert loss.order.tolist() == [4, 2, 0, 1, 3, 5]
    assert loss.rank.tolist() == [2, 3, 1, 4, 0, 5]
    assert not {"order", "rank"} & set(loss.state_dict())
    assert AdaptiveSoftmax(8, 6).order.tolist() == list(range(6))
    assert AdaptiveSoftmax(8, 6, class_counts=[0] * 6).order_source == "index"  # no labels: as without counts


def smallest_covering(counts: list[float], share: float) -> int:
    """The fewest most frequent classes whose counts reach ``share`` of the total, by a plain loop."""
    ranked, covered = sorted(counts, reverse=True), 0.0
    for k, count in enumerate(ranked, start=1):
        covered += count
        if covered >= share * sum(ranked):
            return k
    return len(ranked)


@pytest.mark.parametrize(
    "counts",
    [HEAVY_TAILED, zipf_counts(10_000), [1] * 10, [100, 1, 1, 1], [5, 3], [2, 0, 7, 7, 1, 0, 0]],
)
def test_cutoffs_from_counts_are_increasing_inside_the_classes_and_cover_the_shares(counts):
    cutoffs = coverage_cutoffs(counts)
    assert cutoffs == sorted(set(cutoffs)) and 0 < cutoffs[0] and cutoffs[-1] < len(counts)
    expected = sorted({min(smallest_covering(counts, share), len(counts) - 1) for share in (0.8, 0.95)})
    assert cutoffs == expected


def test_narrow_features_merge_the_chosen_clusters_that_would_be_0_wide():
    assert AdaptiveSoftmax(16, 100).cutoffs == [36, 78]  # widths 16 // 4 = 4 and 16 // 16 = 1
    assert AdaptiveSoftmax(8, 100).cutoffs == [36]  # 8 // 16 = 0: the rarest classes join the first cluster
    with pytest.raises(ValueError, match="div_value=4 leaves tail cluster 1"):
        AdaptiveSoftmax(3, 100)


def test_cutoffs_default_to_zipfs_law_over_the_class_index_without_counts():
    harmonic = [0.0]
    for rank in range(1, 10_001):
        harmonic.append(harmonic[-1] + 1 / rank)
    # H_k / H_C >= share, the first k of each: 1412 and 6130 at C = 10,000.
    expected = [next(k for k in range(1, 10_001) if harmonic[k] >= share * harmonic[-1]) for share in (0.8, 0.95)]
    assert AdaptiveSoftmax(64, 10_000).cutoffs == expected == [1412, 6130]
    assert AdaptiveSoftmax(64, 2).cutoffs == [1]


@pytest.mark.parametrize(
    "kwargs,key",
    [
        ({"in_features": 0}, "in_features"),
        ({"num_classes": 1}, "num_classes"),
        ({"class_counts": [1, 2]}, "class_counts"),
        ({"class_counts": [1, -2, 3, 4, 5]}, "class_counts"),
        ({"cutoffs": []}, "cutoffs"),
        ({"cutoffs": [0, 2]}, "cutoffs"),
        ({"cutoffs": [2, 5]}, "cutoffs"),
        ({"cutoffs": [3, 2]}, "cutoffs"),
        ({"cutoffs": [2, 2]}, "cutoffs"),
        ({"cutoffs": [1.5]}, "cutoffs"),
        ({"cutoffs": "12"}, "cutoffs"),
        ({"cutoffs": 2}, "cutoffs"),
        ({"div_value": 0}, "div_value"),
        ({"div_value": float("nan")}, "div_value"),
        ({"in_features": 4, "cutoffs": [1, 2, 3]}, "div_value=4 leaves tail cluster 2"),  # 4 // 4**2 = 0
    ],
)
def test_invalid_arguments_raise_one_line_naming_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key) as raised:
        AdaptiveSoftmax(**{"in_features": 8, "num_classes": 5, **kwargs})
    assert "\n" not in str(raised.value)


def test_a_task_with_another_class_count_or_kind_is_refused():
    loss = AdaptiveSoftmax(8, 5)
    assert loss.num_outputs(Task("multiclass", 5)) == 8
    assert loss.num_outputs(Task("ordinal", 5)) == 8
    with pytest.raises(LossTaskMismatchError, match=r"loss\.num_classes=5.*task has 7"):
        loss.num_outputs(Task("multiclass", 7))
    with pytest.raises(LossTaskMismatchError, match="multilabel"):
        loss.check_task(Task("multilabel", 5))


def test_features_of_the_wrong_width_are_refused():
    loss = AdaptiveSoftmax(8, 5)
    with pytest.raises(ValueError, match="in_features=8"):
        loss(torch.randn(3, 5), torch.tensor([0, 1, 2]))


def test_under_autocast_the_loss_is_computed_in_float32():
    loss = AdaptiveSoftmax(D, C, class_counts=HEAVY_TAILED)
    h, y = features_and_labels()
    h = h.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast_loss = loss(h.bfloat16(), y)
    assert autocast_loss.dtype == torch.float32
    # Only the bf16 rounding of h remains; torch's module alone would sum bf16 log-probabilities.
    torch.testing.assert_close(autocast_loss, loss(h.bfloat16().float(), y))


def test_training_a_small_model_lowers_the_loss():
    torch.manual_seed(0)
    x = torch.randn(200, D)
    y = (x @ torch.randn(D, 12) + torch.linspace(3, 0, 12)).argmax(dim=1)  # learnable, low classes frequent
    counts = torch.bincount(y, minlength=12).tolist()
    backbone = nn.Linear(D, 32)
    loss = AdaptiveSoftmax(32, 12, class_counts=counts, cutoffs=[4, 8])
    optimizer = torch.optim.Adam([*backbone.parameters(), *loss.parameters()], lr=0.03)
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        value = loss(backbone(x), y)
        value.backward()
        optimizer.step()
        losses.append(value.item())
    assert losses[0] > math.log(12) - 0.5  # near chance at the start
    assert losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        assert (loss.predict(backbone(x)) == y).float().mean() > 0.7  # from ~ 1/12


@pytest.mark.parametrize("class_counts", [None, [5, 1, 2, 8, 3, 3, 0]])
def test_config_instantiates(class_counts):
    config = OmegaConf.load(CONF / "pluggable" / "loss" / "adaptive_softmax.yaml")
    config.num_classes = 7  # data.num_classes of the composing config, or the task's at run time
    config.class_counts = class_counts
    loss = hydra.utils.instantiate(config)
    assert isinstance(loss, AdaptiveSoftmax)
    assert (loss.in_features, loss.num_classes, loss.div_value, loss.adaptive.head_bias) == (64, 7, 4.0, False)
    assert loss.order_source == ("index" if class_counts is None else "class_counts")
    assert loss(torch.randn(3, 64), torch.tensor([0, 3, 6])).shape == ()


def test_class_counts_data_takes_the_training_label_counts(compose_config):
    cfg = compose_config("loss=adaptive_softmax", "loss.class_counts=data", "loss.num_classes=null")
    counts = (1, 9, 4, 4, 0)
    arguments = task_sized_arguments(cfg.loss, Task("multiclass", 5, class_counts=counts))
    loss = hydra.utils.instantiate(cfg.loss, **arguments)
    assert loss.num_classes == 5 and loss.order.tolist() == [1, 2, 3, 0, 4]
