"""Each regularizer against its formula written out here, against autograd, and against scikit-learn."""

import contextlib
import math
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.linear_model import ElasticNet as SklearnElasticNet
from sklearn.linear_model import Lasso, Ridge
from torch import nn

from lregloss.code_paths import accelerator_code_paths
from lregloss.regularizers import (
    L1,
    L2,
    ElasticNet,
    MaxNormPenalty,
    NoRegularizer,
    Regularizer,
    UnsupportedOptimizerError,
    select_parameters,
)
from lregloss.regularizers.l1 import soft_threshold_
from lregloss.regularizers.step_sizes import step_size, step_sizes

CONF = Path(__file__).resolve().parents[1] / "conf"


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3))


def convnet() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Conv2d(3, 2, 1, bias=False))


def embedder() -> nn.Module:
    return nn.Sequential(nn.Embedding(7, 3), nn.LayerNorm(3), nn.Linear(3, 2))


# Each module with the names the default rule must select: weights of dim >= 2 only.
MODULES = {
    "mlp": (mlp, ["0.weight", "3.weight"]),
    "conv": (convnet, ["0.weight", "2.weight"]),
    "embedding": (embedder, ["0.weight", "2.weight"]),
}


def build(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    module = MODULES[name][0]().double()
    with torch.no_grad():  # norm layers start at 1 and 0; randomise so a wrong selection shows
        for param in module.parameters():
            param.normal_()
    return module


def names_of(module: nn.Module, params: list) -> list[str]:
    by_id = {id(param): name for name, param in module.named_parameters()}
    return [by_id[id(param)] for param in params]


def values(params: list) -> list[float]:
    return [x for param in params for x in param.detach().flatten().tolist()]


# The formulas, written out over plain Python floats.
def l2_formula(params, strength):
    return strength / 2 * sum(x * x for x in values(params))


def l1_formula(params, strength):
    return strength * sum(abs(x) for x in values(params))


def elastic_formula(params, l1, l2):
    return l1_formula(params, l1) + l2_formula(params, l2)


def max_formula(params, strength):
    return strength * max(abs(x) for x in values(params))


CASES = {
    "l2": (lambda: L2(0.3), lambda p: l2_formula(p, 0.3)),
    "l1": (lambda: L1(0.2), lambda p: l1_formula(p, 0.2)),
    "l1_proximal": (lambda: L1(0.2, mode="proximal"), lambda p: l1_formula(p, 0.2)),
    "elastic": (lambda: ElasticNet(0.2, 0.3), lambda p: elastic_formula(p, 0.2, 0.3)),
    "maxnorm": (lambda: MaxNormPenalty(0.7), lambda p: max_formula(p, 0.7)),
    "none": (lambda: NoRegularizer(), lambda p: 0.0),
}
GRADIENT_CASES = ["l2", "l1", "elastic", "maxnorm"]


# ---------------------------------------------------------------- selection


@pytest.mark.parametrize("module_name", MODULES)
def test_default_selection_keeps_weights_and_drops_biases_and_norms(module_name):
    module = build(module_name)
    assert names_of(module, select_parameters(module)) == MODULES[module_name][1]


def test_default_selection_drops_frozen_and_two_dim_biases():
    module = mlp()
    module[0].weight.requires_grad_(False)
    module.register_parameter("bias", nn.Parameter(torch.zeros(2, 2)))  # timm: names ending in bias
    assert names_of(module, select_parameters(module)) == ["3.weight"]


def test_shared_parameter_selected_once():
    module = mlp()
    module[3].weight = nn.Parameter(torch.zeros(3, 4))
    module.append(module[3])
    assert names_of(module, select_parameters(module)) == ["0.weight", "3.weight"]


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        (["*.bias"], (), ["0.bias", "1.bias", "3.bias"]),  # include replaces the ndim rule
        (["1.*"], (), ["1.weight", "1.bias"]),  # norm parameters when asked for
        (["0.*", "3.weight"], ["*.bias"], ["0.weight", "3.weight"]),
        (None, ["3.*"], ["0.weight"]),
        (["*"], ["1.*"], ["0.weight", "0.bias", "3.weight", "3.bias"]),
    ],
)
def test_include_and_exclude_patterns(include, exclude, expected):
    module = mlp()
    assert names_of(module, select_parameters(module, include, exclude)) == expected
    assert names_of(module, L2(0.1, include=include, exclude=exclude).select(module)) == expected


def test_include_pattern_that_matches_nothing_raises():
    with pytest.raises(ValueError, match="include pattern 'fc.weight'"):
        select_parameters(mlp(), include=["fc.weight"])


def test_regularizer_penalises_only_its_selection():
    module = build("mlp")
    reg = L2(0.5, include=["*.bias"], exclude=["1.*"])
    expected = l2_formula([module[0].bias, module[3].bias], 0.5)
    assert reg(module).item() == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------- formulas


@pytest.mark.parametrize("grad_enabled", [True, False], ids=["autograd", "no_grad"])
@pytest.mark.parametrize("module_name", MODULES)
@pytest.mark.parametrize("case", CASES)
def test_penalty_matches_formula(case, module_name, grad_enabled):
    make, formula = CASES[case]
    module = build(module_name)
    reg = make()
    with torch.set_grad_enabled(grad_enabled):  # no_grad is how the training loop logs it
        value = reg(module)
    assert value.requires_grad == (grad_enabled and case != "none")
    assert value.ndim == 0
    selected = [] if case == "none" else [p for n, p in module.named_parameters() if n in MODULES[module_name][1]]
    assert value.item() == pytest.approx(formula(selected), rel=1e-12)
    assert value.item() > 0 or case == "none"


@pytest.mark.parametrize("case", CASES)
def test_penalty_of_no_parameters_is_zero(case):
    value = CASES[case][0]().penalty([])
    assert value.ndim == 0 and value.item() == 0.0


def test_penalty_is_differentiable_through_module():
    module = build("mlp")
    L2(0.3)(module).backward()
    torch.testing.assert_close(module[0].weight.grad, 0.3 * module[0].weight.detach(), rtol=1e-12, atol=0)
    assert module[0].bias.grad is None  # not selected, so not in the graph


# ---------------------------------------------------------------- gradients


def random_params(seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    shapes = [(3, 4), (2, 3, 2, 2), (5, 2)]
    return [torch.randn(s, dtype=torch.float64, generator=generator).requires_grad_() for s in shapes]


@pytest.mark.parametrize("case", [c for c in CASES if c != "none"])
def test_gradcheck(case):
    reg = CASES[case][0]()
    assert torch.autograd.gradcheck(lambda *params: reg.penalty(list(params)), tuple(random_params()))


def autograd_gradient(reg: Regularizer, params: list[torch.Tensor]) -> list[torch.Tensor]:
    return list(torch.autograd.grad(reg.penalty(params), params))


@pytest.mark.parametrize("start", ["random", "none"])
@pytest.mark.parametrize("case", GRADIENT_CASES)
def test_add_gradient_equals_autograd_of_penalty(case, start):
    reg = CASES[case][0]()
    params = [nn.Parameter(p.detach()) for p in random_params(seed=1)]
    with torch.no_grad():
        params[0][0, 0] = 0.0  # where the L1 subgradient is 0
    expected = autograd_gradient(reg, params)
    if start == "random":
        generator = torch.Generator().manual_seed(2)
        for param in params:
            param.grad = torch.randn(param.shape, dtype=param.dtype, generator=generator)
        expected = [e + p.grad for e, p in zip(expected, params)]
    reg.add_gradient_(params)
    for param, want in zip(params, expected):
        torch.testing.assert_close(param.grad, want, rtol=1e-12, atol=1e-15)


def test_max_norm_penalty_shares_ties_evenly_across_parameters():
    # The maximum 2 is reached three times: twice in the first tensor, once in the second.
    first = nn.Parameter(torch.tensor([[2.0, -2.0], [1.0, 0.5]], dtype=torch.float64))
    second = nn.Parameter(torch.tensor([[-2.0, 1.5]], dtype=torch.float64))
    reg = MaxNormPenalty(0.6)
    expected = [
        torch.tensor([[0.2, -0.2], [0.0, 0.0]], dtype=torch.float64),
        torch.tensor([[-0.2, 0.0]], dtype=torch.float64),
    ]
    for got, want in zip(autograd_gradient(reg, [first, second]), expected):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    reg.add_gradient_([first, second])
    torch.testing.assert_close(first.grad, expected[0], rtol=1e-12, atol=0)
    torch.testing.assert_close(second.grad, expected[1], rtol=1e-12, atol=0)


def test_gradient_mode_l1_adds_strength_times_sign():
    weight = nn.Parameter(torch.tensor([[1.5, -0.2, 0.0], [-3.0, 0.0, 4e-9]], dtype=torch.float64))
    weight.grad = torch.full_like(weight, 0.25)
    L1(0.1).add_gradient_([weight])
    expected = torch.tensor([[0.35, 0.15, 0.25], [0.15, 0.25, 0.35]], dtype=torch.float64)
    torch.testing.assert_close(weight.grad, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("make,l1,l2", [(lambda: L1(0.1), 0.1, 0.0), (lambda: ElasticNet(0.1, 0.3), 0.1, 0.3)])
def test_sign_gradients_of_large_and_non_contiguous_weights(make, l1, l2, dtype):
    # On CPU the sign term is added block by block (blocks of 1 MiB); tensors spanning several
    # blocks, a ragged last block and non-contiguous layouts must give the whole-tensor result.
    generator = torch.Generator().manual_seed(3)
    shapes = [(700, 1000), (3, 5), (40, 30, 3, 3)]
    params = [nn.Parameter(torch.randn(shape, dtype=dtype, generator=generator)) for shape in shapes]
    params[2] = nn.Parameter(params[2].detach().to(memory_format=torch.channels_last))  # not contiguous
    with torch.no_grad():
        params[0][0, :10] = 0.0
    grads = [torch.randn(p.shape, dtype=dtype, generator=generator) for p in params]
    grads[1] = grads[1].t().contiguous().t()  # a gradient laid out unlike its parameter
    # Over whole tensors, with the same ops (add with alpha may fuse the multiply-add).
    expected = [g.clone().add_(p.detach(), alpha=l2).add_(p.detach().sign(), alpha=l1) for g, p in zip(grads, params)]
    for param, grad in zip(params, grads):
        param.grad = grad.clone()
    make().add_gradient_(params)
    for param, want in zip(params, expected):
        assert torch.equal(param.grad, want)


@pytest.mark.parametrize("make", [lambda: L1(0.1, mode="proximal"), lambda: ElasticNet(0.1, 0.0, mode="proximal")])
def test_proximal_adds_no_gradient_and_soft_thresholds_to_exact_zeros(make):
    reg = make()
    weight = nn.Parameter(torch.tensor([[0.5, -0.03, 0.02], [-0.4, 0.05, 0.0]], dtype=torch.float64))
    other = nn.Parameter(torch.tensor([[0.5, -0.03]], dtype=torch.float64))
    weight.grad = torch.zeros_like(weight)
    reg.add_gradient_([weight, other])
    assert torch.equal(weight.grad, torch.zeros_like(weight))
    assert other.grad is None or torch.equal(other.grad, torch.zeros_like(other))  # ElasticNet's L2 part at 0
    # Two groups with their own lr: thresholds 0.5 * 0.1 = 0.05 and 0.1 * 0.1 = 0.01.
    optimizer = torch.optim.SGD([{"params": [weight], "lr": 0.5}, {"params": [other], "lr": 0.1}])
    reg.after_optimizer_step(optimizer, [weight, other])
    expected = torch.tensor([[0.45, 0.0, 0.0], [-0.35, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(weight.detach(), expected, rtol=0, atol=1e-15)
    assert (weight[:, 1:] == 0).all()  # exact zeros, not merely small
    torch.testing.assert_close(other.detach(), torch.tensor([[0.49, -0.02]], dtype=torch.float64), rtol=0, atol=1e-15)


@pytest.mark.parametrize("code_path", [contextlib.nullcontext, accelerator_code_paths], ids=["cpu", "accelerator"])
@pytest.mark.parametrize("optimizer_class, options", [
    (torch.optim.Adam, {}), (torch.optim.AdamW, {"amsgrad": True, "weight_decay": 0.0}), (torch.optim.Adam, {"fused": True}),
])  # fmt: skip
def test_proximal_after_an_adam_step_thresholds_each_entry_by_its_own_step_size(optimizer_class, options, code_path):
    lr, strength, eps = 0.1, 0.02, 1e-8
    start = torch.tensor([[0.5, -0.03, 0.02], [-0.4, 0.05, 0.3]], dtype=torch.float64)
    grad = torch.tensor([[0.2, -0.004, 0.001], [0.0, 0.01, -0.5]], dtype=torch.float64)
    weight = nn.Parameter(start.clone())
    weight.grad = grad.clone()
    optimizer = optimizer_class([weight], lr=lr, eps=eps, **options)
    optimizer.step()
    with code_path():  # the accelerator's path reads the step count as a tensor (no host sync)
        L1(strength, mode="proximal").after_optimizer_step(optimizer, [weight])
    # First Adam step: m_hat = g, v_hat = g^2, so x moves by lr g / (|g| + eps), and the
    # proximal step in the same metric shrinks it by lr * strength / (|g| + eps).
    # An entry with no gradient yet (v = 0) has not moved, and keeps its value.
    stepped = start - lr * grad / (grad.abs() + eps)
    threshold = torch.where(grad != 0, lr * strength / (grad.abs() + eps), 0.0)
    expected = stepped.sign() * (stepped.abs() - threshold).clamp(min=0)
    torch.testing.assert_close(weight.detach(), expected, rtol=1e-12, atol=1e-15)
    assert weight[1, 0] == start[1, 0]  # lr * strength / eps would have zeroed it at once
    assert weight[0, 1] == 0 and weight[0, 0] != 0  # small steady gradients lose, large ones keep their weight


def test_gradient_mode_after_optimizer_step_changes_nothing():
    weight = nn.Parameter(torch.tensor([[0.5, -0.03]], dtype=torch.float64))
    before = weight.detach().clone()
    L1(0.1).after_optimizer_step(torch.optim.SGD([weight], lr=1.0), [weight])
    assert torch.equal(weight.detach(), before)


# ---------------------------------------------------------------- scikit-learn


def regression_problem(n: int = 100, d: int = 8) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(0)
    x = generator.standard_normal((n, d))
    coef = np.array([3.0, -2.0, 0.0, 0.0, 1.5, 0.0, 0.0, 0.5])
    return x, x @ coef + 0.7 + 0.5 * generator.standard_normal(n)


def fit_linear(
    reg: Regularizer,
    x: np.ndarray,
    y: np.ndarray,
    extra_curvature: float = 0.0,
    steps: int = 500,
    make_optimizer=None,
    gamma: float = 1.0,
):
    """Full-batch (proximal) gradient descent on mean squared error + penalty, lr = 1 / Lipschitz.

    The data loss (1/n) ||y - Xw - b||^2 has Hessian (2/n) A^T A with A = [X, 1]; an L2 part adds
    its strength. The training loop the plugin uses: backward, add_gradient_, step, after_step.
    ``make_optimizer(params, lr)`` replaces plain SGD; ``gamma`` decays the rate every step.
    """
    n, d = x.shape
    a = np.hstack([x, np.ones((n, 1))])
    lipschitz = 2 / n * np.linalg.eigvalsh(a.T @ a).max() + extra_curvature
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    model = nn.Linear(d, 1).double()
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    params = reg.select(model)
    assert params == [model.weight]  # the bias is not penalised
    optimizer = (make_optimizer or torch.optim.SGD)(model.parameters(), lr=1 / lipschitz)
    reg.check_optimizer(optimizer)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)
    for _ in range(steps):
        optimizer.zero_grad()
        F.mse_loss(model(inputs).squeeze(-1), targets).backward()
        reg.add_gradient_(params)
        optimizer.step()
        reg.after_optimizer_step(optimizer, params)
        scheduler.step()
    return model.weight.detach().squeeze(0).numpy(), model.bias.item()


def test_l1_proximal_converges_to_sklearn_lasso():
    # Ours: (1/n)||y - Xw - b||^2 + s ||w||_1. Halved, this is Lasso's (1/2n)||y - Xw - b||^2
    # + alpha ||w||_1 with alpha = s / 2; the minimiser is the same.
    x, y = regression_problem()
    strength = 0.4
    coef, intercept = fit_linear(L1(strength, mode="proximal"), x, y)
    lasso = Lasso(alpha=strength / 2, fit_intercept=True, tol=1e-12, max_iter=1_000_000).fit(x, y)
    np.testing.assert_allclose(coef, lasso.coef_, rtol=0, atol=1e-8)
    assert intercept == pytest.approx(lasso.intercept_, abs=1e-8)
    assert np.array_equal(coef == 0, lasso.coef_ == 0)  # exact zeros in the same places
    assert 0 < (coef == 0).sum() < len(coef)


OPTIMIZERS = {
    # name: (optimizer(params, lr) with lr = 1 / Lipschitz, steps, per-step rate decay)
    "sgd_momentum": (lambda params, lr: torch.optim.SGD(params, lr=lr / 4, momentum=0.9), 3000, 1.0),
    "sgd_nesterov_dampening": (
        lambda params, lr: torch.optim.SGD(params, lr=lr / 4, momentum=0.8, nesterov=True), 3000, 1.0
    ),
    "sgd_dampening": (lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.5, dampening=0.5), 3000, 1.0),
    "adam": (lambda params, lr: torch.optim.Adam(params, lr=0.05), 6000, 0.999),
    "adamw_amsgrad": (lambda params, lr: torch.optim.AdamW(params, lr=0.05, weight_decay=0, amsgrad=True), 6000, 0.999),
    "rmsprop": (lambda params, lr: torch.optim.RMSprop(params, lr=0.01), 6000, 0.999),
    "rmsprop_momentum": (lambda params, lr: torch.optim.RMSprop(params, lr=0.01, momentum=0.5), 6000, 0.999),
    "adagrad": (lambda params, lr: torch.optim.Adagrad(params, lr=0.5, lr_decay=1e-3), 6000, 1.0),
}


GROUP_OPTIMIZERS = {
    **{name: make for name, (make, _, _) in OPTIMIZERS.items()},
    "adam_fused": lambda params, lr: torch.optim.Adam(params, lr=0.05, fused=True),
    "adagrad_no_decay": lambda params, lr: torch.optim.Adagrad(params, lr=0.5),
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr),
}


@pytest.mark.parametrize("name", list(GROUP_OPTIMIZERS))
def test_group_step_sizes_are_the_per_parameter_ones_and_the_group_soft_threshold_the_same(name):
    generator = torch.Generator().manual_seed(0)
    shapes = [(3, 4), (5,), (2, 2)]
    params = [nn.Parameter(torch.randn(shape, dtype=torch.float64, generator=generator)) for shape in shapes]
    masks = [torch.rand(shape, dtype=torch.float64, generator=generator) > 0.3 for shape in shapes]  # some entries get no gradient
    optimizer = GROUP_OPTIMIZERS[name](params, 0.1)
    for _ in range(3):
        optimizer.zero_grad()
        sum((param * mask).square().sum() for param, mask in zip(params[:2], masks)).backward()  # params[2]: never
        optimizer.step()
    group = optimizer.param_groups[0]
    with accelerator_code_paths():
        stepped, sizes = step_sizes(optimizer, group, params)
        per_parameter = {id(param): step_size(optimizer, group, param) for param in params}
    assert {id(param) for param in stepped} == {id(p) for p in params if not isinstance(per_parameter[id(p)], float)
                                                 or per_parameter[id(p)] != 0.0}  # fmt: skip
    for index, param in enumerate(stepped):
        expected = per_parameter[id(param)]
        found = sizes if isinstance(sizes, float) else sizes[index]
        torch.testing.assert_close(torch.as_tensor(found, dtype=torch.float64), torch.as_tensor(expected, dtype=torch.float64),
                                   rtol=1e-12, atol=0)  # fmt: skip
    # the group's soft threshold moves the weights as the per-parameter one does
    before = [param.detach().clone() for param in params]
    soft_threshold_(optimizer, params, 5.0)
    per_parameter_result = [param.detach().clone() for param in params]
    with torch.no_grad():
        torch._foreach_copy_(params, before)
    with accelerator_code_paths():
        soft_threshold_(optimizer, params, 5.0)
    for param, expected in zip(params, per_parameter_result):
        torch.testing.assert_close(param.detach(), expected, rtol=1e-12, atol=1e-15)
    assert any((param == 0).any() for param in params[:2])  # the threshold reached some entries


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_l1_proximal_converges_to_sklearn_lasso_with_every_supported_optimizer(name):
    # The threshold follows each optimizer's own step per unit of gradient, so the fixed point
    # is the Lasso's: a plain lr * strength would settle at strength / 10 with momentum 0.9.
    make_optimizer, steps, gamma = OPTIMIZERS[name]
    x, y = regression_problem()
    strength = 0.4
    coef, intercept = fit_linear(L1(strength, mode="proximal"), x, y, steps=steps, make_optimizer=make_optimizer, gamma=gamma)
    lasso = Lasso(alpha=strength / 2, fit_intercept=True, tol=1e-12, max_iter=1_000_000).fit(x, y)
    np.testing.assert_allclose(coef, lasso.coef_, rtol=0, atol=2e-3)
    assert np.array_equal(coef == 0, lasso.coef_ == 0)  # exact zeros in the same places


@pytest.mark.parametrize("code_path", [contextlib.nullcontext, accelerator_code_paths], ids=["cpu", "accelerator"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_proximal_l1_on_one_weight_settles_at_the_penalised_optimum(name, code_path):
    # min 1/2 (x - 1)^2 + 0.5 |x| is at x = 0.5 (the case: momentum ended at 0.95,
    # RMSprop at 1.0018, Adagrad at 0.0).
    make_optimizer, steps, gamma = OPTIMIZERS[name]
    weight = nn.Parameter(torch.zeros(1, 1, dtype=torch.float64))
    optimizer = make_optimizer([weight], 0.5)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)
    reg = L1(0.5, mode="proximal")
    for _ in range(steps):
        optimizer.zero_grad()
        (0.5 * (weight - 1).square().sum()).backward()
        optimizer.step()
        with code_path():
            reg.after_optimizer_step(optimizer, [weight])
        scheduler.step()
    assert weight.item() == pytest.approx(0.5, abs=2e-3)


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda p: torch.optim.Adamax(p),
        lambda p: torch.optim.NAdam(p),
        lambda p: torch.optim.SGD(p, lr=0.1, maximize=True),
        lambda p: torch.optim.RMSprop(p, centered=True),
    ],
)
def test_proximal_l1_refuses_an_optimizer_it_has_no_step_size_for(optimizer):
    weight = nn.Parameter(torch.zeros(2, 2))
    with pytest.raises(UnsupportedOptimizerError, match="mode='gradient'") as error:
        L1(0.1, mode="proximal").check_optimizer(optimizer([weight]))
    assert "\n" not in str(error.value)
    L1(0.1).check_optimizer(optimizer([weight]))  # gradient mode works with any optimizer
    ElasticNet(0.1, 0.1).check_optimizer(optimizer([weight]))
    with pytest.raises(UnsupportedOptimizerError):
        ElasticNet(0.1, 0.1, mode="proximal").check_optimizer(optimizer([weight]))


def test_l1_gradient_mode_gives_no_exact_zeros():
    x, y = regression_problem()
    coef, _ = fit_linear(L1(0.4), x, y, steps=200)
    assert (coef != 0).all()  # the subgradient makes weights oscillate around zero instead


def test_l2_gradient_converges_to_sklearn_ridge():
    # Ours: (1/n)||y - Xw - b||^2 + (s/2)||w||^2. Times n, this is Ridge's ||y - Xw - b||^2
    # + alpha ||w||^2 with alpha = n s / 2; the minimiser is the same.
    x, y = regression_problem()
    strength = 0.3
    coef, intercept = fit_linear(L2(strength), x, y, extra_curvature=strength)
    ridge = Ridge(alpha=len(y) * strength / 2, fit_intercept=True).fit(x, y)
    np.testing.assert_allclose(coef, ridge.coef_, rtol=0, atol=1e-8)
    assert intercept == pytest.approx(ridge.intercept_, abs=1e-8)


def test_elastic_proximal_converges_to_sklearn_elastic_net():
    # Ours halved: (1/2n)||y - Xw - b||^2 + (l1/2)||w||_1 + (l2/4)||w||^2, and scikit-learn's
    # alpha * l1_ratio ||w||_1 + alpha (1 - l1_ratio) / 2 ||w||^2 gives
    # alpha = (l1 + l2) / 2, l1_ratio = l1 / (l1 + l2).
    x, y = regression_problem()
    l1, l2 = 0.4, 0.5
    coef, intercept = fit_linear(ElasticNet(l1, l2, mode="proximal"), x, y, extra_curvature=l2)
    reference = SklearnElasticNet(
        alpha=(l1 + l2) / 2, l1_ratio=l1 / (l1 + l2), fit_intercept=True, tol=1e-12, max_iter=1_000_000
    ).fit(x, y)
    np.testing.assert_allclose(coef, reference.coef_, rtol=0, atol=1e-8)
    assert intercept == pytest.approx(reference.intercept_, abs=1e-8)
    assert np.array_equal(coef == 0, reference.coef_ == 0)
    assert 0 < (coef == 0).sum() < len(coef)


# ---------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: L2(-1.0), "strength"),
        (lambda: L2(math.nan), "strength"),
        (lambda: L2(math.inf), "strength"),
        (lambda: L1(-0.1), "strength"),
        (lambda: L1(0.1, mode="prox"), "mode"),
        (lambda: ElasticNet(-0.1, 0.1), "l1_strength"),
        (lambda: ElasticNet(0.1, math.nan), "l2_strength"),
        (lambda: ElasticNet(0.1, 0.1, mode="soft"), "mode"),
        (lambda: MaxNormPenalty(-math.inf), "strength"),
        (lambda: L2(0.1, include="*.weight"), "include"),
        (lambda: L1(0.1, exclude=[3]), "exclude"),
    ],
)
def test_invalid_arguments_raise_naming_the_argument(make, argument):
    with pytest.raises(ValueError, match=rf"^{argument}\b"):
        make()


def test_zero_strength_is_allowed():
    assert L2(0.0)(build("mlp")).item() == 0.0


# ---------------------------------------------------------------- configs


def test_every_reg_config_instantiates_and_gives_a_finite_penalty():
    paths = sorted((CONF / "pluggable" / "reg").glob("*.yaml"))
    assert {p.stem for p in paths} >= {"none", "l1", "l2", "elastic", "maxnorm"}
    module = build("conv")
    for path in paths:
        reg = hydra.utils.instantiate(OmegaConf.load(path))
        assert isinstance(reg, Regularizer), path.name
        value = reg(module)
        assert value.ndim == 0 and math.isfinite(value.item()), path.name
        reg.add_gradient_(reg.select(module))
