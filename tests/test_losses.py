"""Each loss against its formula written out here, against autograd, and against torch's own losses."""

import contextlib
import math
from pathlib import Path

import hydra
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from lregloss.code_paths import accelerator_code_paths
from lregloss.losses import (
    AbsoluteError,
    AttributeHinge,
    AttributeLogistic,
    HierarchicalSoftmax,
    Loss,
    LossTaskMismatchError,
    MulticlassHinge,
    MulticlassSquaredHinge,
    OrdinalLogistic,
    SoftmaxCrossEntropy,
    SquaredError,
)
from lregloss.tasks import Task

CONF = Path(__file__).resolve().parents[1] / "conf"
SHAPES = [(1, 2), (7, 3), (16, 10), (5, 100)]


def scores_and_labels(n: int, c: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, c, dtype=torch.float64, generator=generator) * 2
    labels = torch.randint(0, c, (n,), generator=generator)
    return scores, labels


def hinge_by_formula(f: torch.Tensor, y: torch.Tensor, margin: float, power: int) -> torch.Tensor:
    total = 0.0
    for i in range(f.shape[0]):
        for j in range(f.shape[1]):
            if j != y[i]:
                total += max(0.0, float(f[i, j] - f[i, y[i]]) + margin) ** power
    return torch.tensor(total / f.shape[0], dtype=torch.float64)


@pytest.mark.parametrize("n,c", SHAPES)
@pytest.mark.parametrize("margin", [1.0, 0.5, 3.0])
@pytest.mark.parametrize("loss_cls,power", [(MulticlassHinge, 1), (MulticlassSquaredHinge, 2)])
def test_hinge_losses_match_their_formula(loss_cls, power, margin, n, c):
    f, y = scores_and_labels(n, c)
    torch.testing.assert_close(loss_cls(margin)(f, y), hinge_by_formula(f, y, margin, power))


@pytest.mark.parametrize("n,c", SHAPES)
@pytest.mark.parametrize("loss_cls,p", [(MulticlassHinge, 1), (MulticlassSquaredHinge, 2)])
def test_hinge_losses_are_c_times_multimarginloss(loss_cls, p, n, c):
    f, y = scores_and_labels(n, c, seed=1)
    reference = c * nn.MultiMarginLoss(p=p, margin=0.7)(f, y)
    torch.testing.assert_close(loss_cls(margin=0.7)(f, y), reference)


@pytest.mark.parametrize("n,c", SHAPES)
@pytest.mark.parametrize("loss_cls,p", [(MulticlassHinge, 1), (MulticlassSquaredHinge, 2)])
def test_hinge_gradients_are_c_times_multimarginloss_gradients(loss_cls, p, n, c):
    # The hinge losses have a hand-written backward; torch's own loss is the outside reference.
    f, y = scores_and_labels(n, c, seed=7)
    ours = f.clone().requires_grad_(True)
    theirs = f.clone().requires_grad_(True)
    loss = loss_cls(margin=0.7)(ours, y)
    loss.backward(retain_graph=True)
    (c * nn.MultiMarginLoss(p=p, margin=0.7)(theirs, y)).backward()
    torch.testing.assert_close(ours.grad, theirs.grad)
    first = ours.grad.clone()
    loss.backward()  # a second pass over the retained graph sees the same saved values
    torch.testing.assert_close(ours.grad, 2 * first)


@pytest.mark.parametrize("n,c", SHAPES)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_softmax_matches_formula_and_cross_entropy(n, c, smoothing):
    f, y = scores_and_labels(n, c, seed=2)
    log_p = f - torch.log(torch.exp(f).sum(dim=1, keepdim=True))
    q = torch.full_like(f, smoothing / c)
    q[torch.arange(n), y] += 1 - smoothing
    by_formula = -(q * log_p).sum(dim=1).mean()
    loss = SoftmaxCrossEntropy(label_smoothing=smoothing)(f, y)
    torch.testing.assert_close(loss, by_formula)
    torch.testing.assert_close(loss, F.cross_entropy(f, y, label_smoothing=smoothing))


def attribute_data(n: int, a: int, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    f = torch.randn(n, a, dtype=torch.float64, generator=generator) * 2
    t = torch.randint(0, 2, (n, a), generator=generator)
    return f, t


@pytest.mark.parametrize("n,a", [(1, 1), (8, 6), (32, 14)])
def test_attribute_hinge_matches_formula_for_both_target_codings(n, a):
    f, t = attribute_data(n, a)
    y = 2 * t - 1
    by_formula = sum(max(0.0, 1 - float(y[i, j] * f[i, j])) for i in range(n) for j in range(a)) / n
    loss = AttributeHinge()
    torch.testing.assert_close(loss(f, t), torch.tensor(by_formula, dtype=torch.float64))
    torch.testing.assert_close(loss(f, y), loss(f, t))


@pytest.mark.parametrize("n,a", [(1, 1), (8, 6), (32, 14)])
def test_attribute_logistic_matches_formula_and_bce(n, a):
    f, t = attribute_data(n, a)
    sigma = 1 / (1 + torch.exp(-f))
    by_formula = -(t * torch.log(sigma) + (1 - t) * torch.log(1 - sigma)).sum(dim=1).mean()
    loss = AttributeLogistic()(f, t)
    torch.testing.assert_close(loss, by_formula)
    torch.testing.assert_close(loss, a * nn.BCEWithLogitsLoss()(f, t.double()))


def test_attribute_logistic_pos_weight_scales_the_positive_term():
    f, t = attribute_data(6, 3)
    weights = [1.0, 2.5, 0.3]
    sigma = 1 / (1 + torch.exp(-f))
    w = torch.tensor(weights, dtype=torch.float64)
    by_formula = -(w * t * torch.log(sigma) + (1 - t) * torch.log(1 - sigma)).sum(dim=1).mean()
    torch.testing.assert_close(AttributeLogistic(pos_weight=weights)(f, t), by_formula)


def test_attribute_logistic_is_stable_for_large_scores():
    f = torch.tensor([[1000.0, -1000.0]], dtype=torch.float64)
    loss = AttributeLogistic()(f, torch.tensor([[0, 1]]))
    torch.testing.assert_close(loss, torch.tensor(2000.0, dtype=torch.float64))


def test_attribute_logistic_gradient_is_sigmoid_minus_target():
    f, t = attribute_data(9, 5)
    f.requires_grad_(True)
    AttributeLogistic()(f, t).backward()
    # the batch mean divides each sample's gradient by N
    torch.testing.assert_close(f.grad * 9, torch.sigmoid(f.detach()) - t)


@pytest.mark.parametrize("shape", [(12,), (12, 1), (12, 3)])
@pytest.mark.parametrize("loss_cls,cost", [(SquaredError, lambda r: r**2), (AbsoluteError, abs)])
def test_regression_losses_match_their_formula(loss_cls, cost, shape):
    generator = torch.Generator().manual_seed(4)
    f = torch.randn(shape, dtype=torch.float64, generator=generator)
    y = torch.randn(shape, dtype=torch.float64, generator=generator)
    rows = f.reshape(12, -1).tolist(), y.reshape(12, -1).tolist()
    by_formula = sum(cost(a - b) for fr, yr in zip(*rows) for a, b in zip(fr, yr)) / 12
    torch.testing.assert_close(loss_cls()(f, y), torch.tensor(by_formula, dtype=torch.float64))


def test_squared_error_on_one_dimension_is_mse_and_accepts_a_column():
    f = torch.randn(10, 1, dtype=torch.float64)
    y = torch.randint(0, 5, (10,))
    torch.testing.assert_close(SquaredError()(f, y), F.mse_loss(f.squeeze(1), y.double()))


def test_regression_shape_mismatch_names_the_shapes():
    with pytest.raises(ValueError, match=r"\(4, 2\).*\(4,\)"):
        SquaredError()(torch.zeros(4, 2), torch.zeros(4))


def test_absolute_error_gradient_is_sign_of_residual():
    f = torch.randn(20, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(20, 3, dtype=torch.float64)
    AbsoluteError()(f, y).backward()
    torch.testing.assert_close(f.grad * 20, torch.sign(f.detach() - y))


@pytest.mark.parametrize("n,c", SHAPES)
@pytest.mark.parametrize("margin", [1.0, 0.5])
@pytest.mark.parametrize("loss_cls", [MulticlassHinge, MulticlassSquaredHinge])
def test_the_accelerator_path_runs_torchs_fused_kernel_with_the_same_values_and_gradients(loss_cls, margin, n, c):
    scores, labels = scores_and_labels(n, c, seed=2)
    values, grads = [], []
    for path in (contextlib.nullcontext, accelerator_code_paths):
        f = scores.clone().requires_grad_(True)
        with path(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            value = loss_cls(margin)(f, labels)
            value.backward()
        fused = any(event.name == "aten::multi_margin_loss" for event in prof.events())
        assert fused == (path is accelerator_code_paths)
        values.append(value.detach())
        grads.append(f.grad)
    torch.testing.assert_close(values[1], values[0], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("loss_cls", [MulticlassHinge, MulticlassSquaredHinge])
def test_the_fused_hinge_falls_back_to_differentiable_ops_for_a_graph_of_its_gradient(loss_cls):
    f, y = scores_and_labels(4, 5, seed=6)
    f = (f + 0.1 * torch.arange(5)).requires_grad_(True)  # kinks away from the finite-difference step
    with accelerator_code_paths():
        assert torch.autograd.gradcheck(lambda x: loss_cls()(x, y), (f,))
        assert torch.autograd.gradgradcheck(lambda x: loss_cls()(x, y), (f,))


def ordinal_by_formula(o: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    total = 0.0
    for i in range(o.shape[0]):
        z = float(o[i, 0])
        for k in range(1, o.shape[1] + 1):
            if k > 1:
                z -= math.log1p(math.exp(float(o[i, k - 1])))
            p = 1 / (1 + math.exp(-z))
            total -= math.log(p) if y[i] >= k else math.log(1 - p)
    return torch.tensor(total / o.shape[0], dtype=torch.float64)


@pytest.mark.parametrize("n,k", [(1, 2), (9, 5), (30, 7)])
def test_ordinal_matches_formula_and_keeps_thresholds_ordered(n, k):
    o, y = scores_and_labels(n, k - 1, seed=5)
    y = torch.randint(0, k, (n,))
    loss = OrdinalLogistic()
    torch.testing.assert_close(loss(o, y), ordinal_by_formula(o, y))
    proba = loss.predict_proba(o)
    assert proba.shape == (n, k)
    assert torch.all(proba >= 0)
    torch.testing.assert_close(proba.sum(dim=1), torch.ones(n, dtype=torch.float64))
    # the decoded level is the number of cumulative probabilities above one half
    at_least = proba.flip(1).cumsum(1).flip(1)[:, 1:]
    torch.testing.assert_close(loss.predict(o), (at_least > 0.5).sum(dim=1))


def test_ordinal_with_two_levels_is_binary_logistic():
    o = torch.randn(11, 1, dtype=torch.float64)
    y = torch.randint(0, 2, (11,))
    reference = F.binary_cross_entropy_with_logits(o.squeeze(1), y.double())
    torch.testing.assert_close(OrdinalLogistic()(o, y), reference)


def cumulative_link_by_formula(o: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """mean_i -log(sigma(z_y) - sigma(z_{y+1})), sigma(z_0) = 1, sigma(z_K) = 0, written out in float64."""
    total = 0.0
    for i in range(o.shape[0]):
        z = [float(o[i, 0])]
        for k in range(1, o.shape[1]):
            z.append(z[-1] - math.log1p(math.exp(float(o[i, k]))))
        at_least = [1.0] + [1 / (1 + math.exp(-value)) for value in z] + [0.0]  # P(y >= k), k = 0..K
        total -= math.log(at_least[int(y[i])] - at_least[int(y[i]) + 1])
    return torch.tensor(total / o.shape[0], dtype=torch.float64)


def corn_by_formula(o: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """coral-pytorch's corn_loss written out: per task k the samples with y >= k - 1, target 1[y >= k]."""
    total, pairs = 0.0, 0
    for k in range(1, o.shape[1] + 1):
        for i in range(o.shape[0]):
            if y[i] >= k - 1:
                p = 1 / (1 + math.exp(-float(o[i, k - 1])))
                total -= math.log(p) if y[i] >= k else math.log(1 - p)
                pairs += 1
    return torch.tensor(total / pairs, dtype=torch.float64)


@pytest.mark.parametrize("objective,formula", [("likelihood", cumulative_link_by_formula), ("corn", corn_by_formula)])
@pytest.mark.parametrize("n,k", [(1, 2), (9, 3), (30, 5), (12, 7)])
def test_the_likelihood_and_corn_objectives_match_their_formulas_and_their_distributions(n, k, objective, formula):
    o = torch.randn(n, k - 1, dtype=torch.float64) * 2
    y = torch.randint(0, k, (n,))
    loss = OrdinalLogistic(objective)
    torch.testing.assert_close(loss(o, y), formula(o, y))
    proba = loss.predict_proba(o)
    assert torch.all(proba >= 0)
    torch.testing.assert_close(proba.sum(dim=1), torch.ones(n, dtype=torch.float64))
    if objective == "likelihood":  # the loss is the likelihood of the distribution it reports
        torch.testing.assert_close(loss(o, y), -proba.gather(1, y.unsqueeze(1)).log().mean())
    else:  # P(y >= k) = prod_{j <= k} P(y >= j | y >= j - 1)
        torch.testing.assert_close(proba.flip(1).cumsum(1).flip(1)[:, 1:], torch.sigmoid(o).cumprod(dim=1))


def test_the_cumulative_link_likelihood_stays_finite_where_the_probabilities_underflow():
    o = torch.tensor([[200.0, -300.0, 5.0], [-120.0, 40.0, 40.0]])
    y = torch.tensor([1, 3])
    loss = OrdinalLogistic("likelihood")(o, y)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, torch.tensor((500.0 + 200.0) / 2), rtol=1e-3, atol=1e-3)  # -log P: 200 + 300, and 200


def test_an_unknown_ordinal_objective_is_refused_naming_the_ones_there_are():
    with pytest.raises(ValueError, match="objective must be one of binary, likelihood, corn, got 'probit'"):
        OrdinalLogistic("probit")


def gradcheck_cases():
    f, y = scores_and_labels(4, 5, seed=6)
    f = f + 0.1 * torch.arange(5)  # keep hinge kinks away from the finite-difference step
    a, t = attribute_data(4, 3)
    r = torch.randn(4, 2, dtype=torch.float64)
    levels = torch.tensor([0, 4, 2, 1])
    return [
        (MulticlassHinge(), f, y),
        (MulticlassSquaredHinge(margin=2.0), f, y),
        (SoftmaxCrossEntropy(label_smoothing=0.1), f, y),
        (AttributeHinge(), a, t),
        (AttributeLogistic(pos_weight=[1.0, 2.0, 3.0]), a, t),
        (SquaredError(), r, r.flip(0) + 0.3),
        (AbsoluteError(), r, r.flip(0) + 0.3),
        (OrdinalLogistic(), torch.randn(4, 4, dtype=torch.float64), levels),
        (OrdinalLogistic("likelihood"), torch.randn(4, 4, dtype=torch.float64), levels),
        (OrdinalLogistic("corn"), torch.randn(4, 4, dtype=torch.float64), levels),
    ]


@pytest.mark.parametrize("loss,outputs,target", gradcheck_cases(), ids=lambda v: type(v).__name__)
def test_gradcheck(loss, outputs, target):
    outputs = outputs.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (outputs,))


@pytest.mark.parametrize("loss,outputs,target", gradcheck_cases(), ids=lambda v: type(v).__name__)
def test_gradgradcheck(loss, outputs, target):
    # create_graph=True (gradient penalties, Hessian-vector products): the hinge's hand-written
    # backward falls back to differentiable ops.
    outputs = outputs.clone().requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda x: loss(x, target), (outputs,))


def test_hinge_gradient_penalty_trains_through_create_graph():
    f, y = scores_and_labels(6, 4, seed=3)
    f.requires_grad_(True)
    loss = MulticlassSquaredHinge()(f, y)
    (grad,) = torch.autograd.grad(loss, f, create_graph=True)
    grad.square().sum().backward()  # raised "element 0 of tensors does not require grad"
    reference = f.detach().clone().requires_grad_(True)
    violations = (reference - reference.gather(1, y[:, None]) + 1).clamp_min(0).scatter(1, y[:, None], 0)
    (ref_grad,) = torch.autograd.grad(violations.square().sum(1).mean(), reference, create_graph=True)
    ref_grad.square().sum().backward()
    torch.testing.assert_close(grad, ref_grad)
    torch.testing.assert_close(f.grad, reference.grad)


def half_precision_cases():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(512, 1000, generator=generator) * 3
    labels = torch.randint(0, 1000, (512,), generator=generator)
    values = torch.randn(512, 1000, generator=generator) * 10
    attributes = torch.randint(0, 2, (512, 1000), generator=generator)
    return [
        (MulticlassHinge(), scores, labels),
        (MulticlassSquaredHinge(), scores, labels),
        (SoftmaxCrossEntropy(), scores, labels),
        (SquaredError(), scores, values),
        (AbsoluteError(), scores, values),
        (AttributeHinge(), scores, attributes),
        (AttributeLogistic(), scores, attributes),
        (OrdinalLogistic("binary"), scores[:, :4], labels % 5),
        (OrdinalLogistic("likelihood"), scores[:, :4], labels % 5),
        (OrdinalLogistic("corn"), scores[:, :4], labels % 5),
    ]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("loss,outputs,target", half_precision_cases(), ids=lambda v: type(v).__name__)
def test_half_precision_outputs_under_autocast_give_the_float32_loss(loss, outputs, target, dtype):
    # 512 x 1000 in float16 summed to inf (the squared hinge's value is ~1e5); the losses compute
    # in float32, as torch's own do under autocast.
    half = outputs.to(dtype).requires_grad_(True)
    with torch.autocast("cpu", dtype=dtype):
        value = loss(half, target)
    value.backward()
    assert value.dtype == torch.float32
    want = loss(half.detach().float(), target)
    torch.testing.assert_close(value, want, rtol=1e-6, atol=0)
    assert half.grad.dtype == dtype and torch.isfinite(half.grad).all()


def test_predictions_follow_each_loss():
    f = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 0.5]])
    for loss in (MulticlassHinge(), MulticlassSquaredHinge(), SoftmaxCrossEntropy()):
        assert loss.predict(f).tolist() == [1, 0]
    assert MulticlassHinge().predict_proba(f) is None
    torch.testing.assert_close(SoftmaxCrossEntropy().predict_proba(f), f.softmax(1))
    assert AttributeHinge().predict(f).tolist() == [[1, 1, 0], [1, 0, 1]]
    torch.testing.assert_close(AttributeLogistic().predict_proba(f), f.sigmoid())
    assert SquaredError().predict(torch.tensor([[1.5], [2.0]])).tolist() == [1.5, 2.0]


def test_predict_level_rounds_clips_and_takes_expectations():
    values = torch.tensor([[-0.7], [1.4], [2.6], [9.0]])
    assert AbsoluteError().predict_level(values, 5).tolist() == [0, 1, 3, 4]
    scores = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.0001], [0.5, 0.0, 0.0, 0.0, 0.5]]) + 1e-12)
    softmax = SoftmaxCrossEntropy()
    assert softmax.predict_level(scores, 5).tolist() == [3, 0]
    assert softmax.predict_level(scores, 5, rule="expected").tolist() == [2, 2]
    with pytest.raises(ValueError, match="level_decoding=expected needs a distribution.*MulticlassHinge"):
        MulticlassHinge().predict_level(scores, 5, rule="expected")
    with pytest.raises(ValueError, match="level_decoding=middle is not a rule; use one of auto, mode, median"):
        softmax.predict_level(scores, 5, rule="middle")
    with pytest.raises(ValueError, match="level_decoding=argmax is no more.*level_decoding=auto"):
        softmax.predict_level(scores, 5, rule="argmax")


class GivenDistribution(SoftmaxCrossEntropy):
    """A loss whose outputs are already the distribution: the decoding rules alone under test."""

    def predict_proba(self, outputs: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        return outputs


@pytest.mark.parametrize(
    "proba,mode,median,expected",
    [
        ([0.4, 0.05, 0.05, 0.5], 3, 2, 2),  # the case: the mode is 3, the median 2 (CDF 0.5 at level 2)
        ([0.1, 0.2, 0.3, 0.4], 3, 2, 2),  # mean 2.0
        ([0.6, 0.0, 0.0, 0.4], 0, 0, 1),  # mean 1.2
        ([0.0, 0.0, 0.1, 0.9], 3, 3, 3),
        ([0.5, 0.5, 0.0, 0.0], 0, 0, 0),  # round(0.5) is 0 (half to even), the median the first with CDF >= 1/2
    ],
)
def test_decoding_rules_on_hand_written_distributions(proba, mode, median, expected):
    outputs, loss = torch.tensor([proba], dtype=torch.float64), GivenDistribution()
    assert loss.predict_level(outputs, 4, rule="mode").item() == mode
    assert loss.predict_level(outputs, 4, rule="median").item() == median
    assert loss.predict_level(outputs, 4, rule="expected").item() == expected


@pytest.mark.parametrize("objective", ["binary", "likelihood", "corn"])
def test_an_ordinal_objectives_auto_rule_is_the_median_of_its_distribution(objective):
    o = torch.randn(200, 4, dtype=torch.float64) * 3
    loss = OrdinalLogistic(objective)
    assert torch.equal(loss.predict_level(o, 5), loss.predict_level(o, 5, rule="median"))
    assert not torch.equal(loss.predict_level(o, 5, rule="mode"), loss.predict_level(o, 5, rule="median"))


@pytest.mark.parametrize(
    "loss,task,outputs",
    [
        (MulticlassHinge(), Task("multiclass", 10), 10),
        (SoftmaxCrossEntropy(), Task("ordinal", 5), 5),
        (SquaredError(), Task("ordinal", 5), 1),
        (AbsoluteError(), Task("regression", 3), 3),
        (OrdinalLogistic(), Task("ordinal", 5), 4),
        (AttributeLogistic(), Task("multilabel", 6), 6),
    ],
)
def test_num_outputs_follows_the_task(loss, task, outputs):
    loss.check_task(task)
    assert loss.num_outputs(task) == outputs


def test_a_loss_on_the_wrong_task_names_the_losses_that_fit():
    with pytest.raises(LossTaskMismatchError, match="AttributeHinge, AttributeLogistic$"):
        MulticlassHinge().check_task(Task("multilabel", 6))
    with pytest.raises(LossTaskMismatchError, match="regression task.*AbsoluteError, SquaredError$"):
        MulticlassHinge().check_task(Task("regression", 1))
    with pytest.raises(LossTaskMismatchError, match="fit: l1, l2"):
        AttributeHinge().check_task(Task("regression", 1), {"l1": AbsoluteError, "l2": SquaredError, "hinge": MulticlassHinge})


@pytest.mark.parametrize(
    "make,argument",
    [
        (lambda: MulticlassHinge(margin=0), "margin"),
        (lambda: MulticlassSquaredHinge(margin=-1), "margin"),
        (lambda: MulticlassHinge(margin=float("nan")), "margin"),
        (lambda: SoftmaxCrossEntropy(label_smoothing=1.0), "label_smoothing"),
        (lambda: AttributeLogistic(pos_weight=[1.0, -2.0]), "pos_weight"),
        (lambda: Task("ranking", 3), "kind"),
        (lambda: Task("multiclass", 1), "size"),
    ],
)
def test_invalid_arguments_name_themselves(make, argument):
    with pytest.raises(ValueError, match=argument):
        make()


# Variants composed from another config (a defaults list) are built by test_configs.test_loss_configs.
@pytest.mark.parametrize(
    "path",
    [path for path in sorted((CONF / "pluggable" / "loss").glob("*.yaml")) if "defaults" not in OmegaConf.load(path)],
    ids=lambda p: p.stem,
)
def test_every_loss_config_instantiates(path):
    config = OmegaConf.merge({"data": {"num_classes": 5}}, {"loss": OmegaConf.load(path)})
    loss = hydra.utils.instantiate(config.loss)
    assert isinstance(loss, Loss)
    assert loss.tasks
    if isinstance(loss, HierarchicalSoftmax):
        assert loss.num_outputs(Task("multiclass", 5)) == config.loss.in_features
