"""The ordinal peers (coral-pytorch's CORN, spacecutter's cumulative link) on lregloss's contract, against their formulas and loss=ordinal."""

import logging
import math
import sys

import pytest
import torch
from coral_pytorch.dataset import corn_label_from_logits
from coral_pytorch.losses import corn_loss
from spacecutter.models import LogisticCumulativeLink

from lregloss.app.train import build_module, run
from lregloss.calibration import fit_temperature, mean_nll
from lregloss.losses import LossTaskMismatchError, OrdinalLogistic
from lregloss.losses.ordinal_peers import CoralCorn, SpacecutterCumulativeLink
from lregloss.tasks import Task

from test_temperature_scaling import overconfident
from test_train import TINY


@pytest.mark.parametrize("n,k", [(1, 3), (9, 3), (30, 5), (12, 7)])
def test_coral_corn_is_coral_pytorchs_loss_and_lreglosss_corn_objective(n, k):
    generator = torch.Generator().manual_seed(n + k)
    o = (torch.randn(n, k - 1, dtype=torch.float64, generator=generator) * 2).requires_grad_(True)
    y = torch.randint(0, k, (n,), generator=generator)
    peer, own = CoralCorn(), OrdinalLogistic("corn")
    value = peer(o, y)
    torch.testing.assert_close(value, corn_loss(o, y, num_classes=k))
    torch.testing.assert_close(value, own(o, y))
    (peer_grad,) = torch.autograd.grad(value, o)
    (own_grad,) = torch.autograd.grad(own(o, y), o)
    torch.testing.assert_close(peer_grad, own_grad)
    assert torch.equal(peer.predict(o), corn_label_from_logits(o))
    assert torch.equal(peer.predict(o), own.predict(o))
    torch.testing.assert_close(peer.predict_proba(o, 1.7), own.predict_proba(o, 1.7))


def test_the_same_model_trained_on_coral_corn_and_on_lreglosss_corn_ends_with_the_same_weights():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=generator)
    y = torch.bucketize(x[:, 0] + 0.3 * torch.randn(256, generator=generator), torch.tensor([-1.0, -0.3, 0.3, 1.0]))
    weights = {}
    for name, loss in (("peer", CoralCorn()), ("own", OrdinalLogistic("corn"))):
        torch.manual_seed(1)
        model = torch.nn.Linear(6, 4)
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
        for step in range(40):
            batch = slice(step % 4 * 64, step % 4 * 64 + 64)
            optimizer.zero_grad()
            loss(model(x[batch]), y[batch]).backward()
            optimizer.step()
        weights[name] = model.weight.detach()
    torch.testing.assert_close(weights["peer"], weights["own"])


def cumulative_link_by_formula(f: torch.Tensor, c: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """mean_i -log(sigma(c_y - f) - sigma(c_{y-1} - f)), sigma(c_{-1} - f) = 0, sigma(c_{K-1} - f) = 1, in float64."""
    total = 0.0
    for i in range(f.shape[0]):
        at_most = [0.0] + [1 / (1 + math.exp(-(float(cut) - float(f[i, 0])))) for cut in c] + [1.0]
        total -= math.log(at_most[int(y[i]) + 1] - at_most[int(y[i])])
    return torch.tensor(total / f.shape[0], dtype=torch.float64)


@pytest.mark.parametrize("n,k", [(1, 3), (9, 5), (20, 7)])
def test_spacecutter_cumulative_link_matches_its_formula_and_spacecutters_layer(n, k):
    loss = SpacecutterCumulativeLink(k).double()
    with torch.no_grad():
        loss.link.cutpoints.copy_(torch.linspace(-2, 1.5, k - 1))
    f = torch.randn(n, 1, dtype=torch.float64) * 2
    y = torch.randint(0, k, (n,))
    torch.testing.assert_close(loss(f, y), cumulative_link_by_formula(f, loss.link.cutpoints.detach(), y))
    proba = loss.predict_proba(f)
    torch.testing.assert_close(proba, LogisticCumulativeLink.forward(loss.link, f))
    torch.testing.assert_close(proba.sum(dim=1), torch.ones(n, dtype=torch.float64))
    torch.testing.assert_close(loss(f, y), -proba.gather(1, y.unsqueeze(1)).log().mean())
    assert torch.equal(loss.predict(f), loss.predict_level(f, k, "median"))


def test_spacecutter_cumulative_link_passes_gradcheck_in_its_score_and_its_cutpoints():
    loss = SpacecutterCumulativeLink(5).double()
    f = torch.randn(6, 1, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 4, 2, 1, 3, 2])

    def value(scores, cutpoints):
        return torch.func.functional_call(loss.eval(), {"link.cutpoints": cutpoints}, (scores, y))

    assert torch.autograd.gradcheck(value, (f, torch.tensor([-1.5, -0.5, 0.5, 1.5], dtype=torch.float64, requires_grad=True)))


def test_training_forwards_keep_the_cutpoints_ascending_as_spacecutters_callback_does():
    loss = SpacecutterCumulativeLink(5)
    with torch.no_grad():
        loss.link.cutpoints.copy_(torch.tensor([0.0, -1.0, 2.0, 1.5]))
    f, y = torch.zeros(3, 1), torch.tensor([0, 2, 4])
    loss.eval()(f, y)  # evaluation leaves the parameters alone
    assert loss.link.cutpoints.tolist() == [0.0, -1.0, 2.0, 1.5]
    loss.train()(f, y)  # spacecutter's loop: c_0 to at most c_1 = -1, c_1 to at most c_2 = 2, c_2 to at most c_3 = 1.5
    assert loss.link.cutpoints.tolist() == [-1.0, -1.0, 1.5, 1.5]


def test_temperature_scaling_lowers_the_nll_of_an_overconfident_cumulative_link_and_keeps_its_median():
    loss = SpacecutterCumulativeLink(5).double()
    scores = torch.randn(3000, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    sure, target = overconfident(loss, scores)
    with torch.no_grad():
        loss.link.cutpoints.mul_(3.0)  # the cutpoints as sure as the scores: every logit f - c_j three times too large
    temperature = fit_temperature(loss, sure, target)
    assert temperature == pytest.approx(3.0, rel=0.1)
    assert mean_nll(loss, sure, target, temperature) < mean_nll(loss, sure, target) - 0.05
    assert torch.equal(loss.predict_level(sure, 5, "median", temperature), loss.predict(sure))


def test_the_peers_are_loss_config_choices_sized_by_the_task(compose_config):
    module = build_module(compose_config("loss=spacecutter"), Task("ordinal", 4), input_size=30)
    assert module.loss.num_classes == 4 and module.model.output.out_features == 1
    assert any(parameter is module.loss.link.cutpoints for parameter in module.parameters())
    module = build_module(compose_config("loss=coral_corn"), Task("ordinal", 5), input_size=30)
    assert isinstance(module.loss, CoralCorn) and module.model.output.out_features == 4


def test_a_cumulative_link_built_for_other_levels_names_the_key_to_set():
    with pytest.raises(LossTaskMismatchError, match=r"loss.num_classes=5 but the task has 3 classes or levels; set loss.num_classes=3"):
        SpacecutterCumulativeLink(5).num_outputs(Task("ordinal", 3))
    with pytest.raises(ValueError, match="num_classes must be an integer >= 3"):
        SpacecutterCumulativeLink(2)


@pytest.mark.parametrize("choice,module,name", [("coral_corn", "coral_pytorch", "coral-pytorch"),
                                                ("spacecutter", "spacecutter", "spacecutter")])  # fmt: skip
def test_a_missing_peer_library_exits_2_with_the_install_command(
    compose_config, tmp_path, tiny_reviews_csv, monkeypatch, caplog, capfd, choice, module, name
):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    for loaded in [key for key in sys.modules if key == module or key.startswith(module + ".")]:
        monkeypatch.setitem(sys.modules, loaded, None)  # import of a None entry raises ImportError
    monkeypatch.setitem(sys.modules, module, None)
    cfg = compose_config(f"loss={choice}", f"data.path={tiny_reviews_csv}", *TINY, output_dir=tmp_path)
    with caplog.at_level("ERROR", logger="lregloss.app.train"), pytest.raises(SystemExit) as exit:
        run(cfg)
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert exit.value.code == 2 and len(errors) == 1, errors
    assert f"runs {name}, which is not installed: pip install 'lregloss[ordinal-peers]'" in errors[0]
    assert "Traceback" not in "".join(capfd.readouterr())
