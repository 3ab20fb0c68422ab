"""The Regularization callback in a user's own LightningModule, in every training setup, against the penalty in the loss.

The reference of each setup is the same run with the penalties added to the module's loss
and differentiated by autograd; the callback must give the same weights. CPU GradScaler and
CPU fused AdamW take the same Lightning code path as on CUDA.
"""

import contextlib
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import BaseFinetuning
from pytorch_lightning.plugins.precision import MixedPrecision
from pytorch_lightning.strategies import FSDPStrategy
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset

from lregloss.callbacks import MaxNormConstraint, Regularization
from lregloss.code_paths import accelerator_code_paths
from lregloss.losses import SoftmaxCrossEntropy
from lregloss.module import RegularizedLossModule
from lregloss.regularizers import L1, L2, ElasticNet, MaxNormPenalty, UnsupportedOptimizerError
from lregloss.tasks import Task

from conftest import TensorDataModule


def dataset(samples: int = 64, seed: int = 0) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(samples, 6, generator=generator)
    return TensorDataset(inputs, (inputs @ torch.randn(6, 3, generator=generator)).argmax(dim=1))


def sgd_momentum(module):
    return torch.optim.SGD(module.parameters(), lr=0.2, momentum=0.9)


def adamw(module):
    return torch.optim.AdamW(module.parameters(), lr=0.01, foreach=False)


def fused_adamw(module):
    return torch.optim.AdamW(module.parameters(), lr=0.01, fused=True)


def two_groups(module):
    return torch.optim.SGD(
        [{"params": module.net[0].parameters(), "lr": 0.3}, {"params": module.net[2].parameters(), "lr": 0.03}],
        momentum=0.5,
    )


def trainable_sgd(module):
    return torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.2)


class UserModule(pl.LightningModule):
    """A user's own module that knows nothing of lregloss: an MLP trained on cross-entropy.

    ``penalty``: regularizers whose penalty the reference run adds to its loss (autograd).
    """

    def __init__(self, make_optimizer=sgd_momentum, penalty=(), seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
        self.make_optimizer = make_optimizer
        self.penalty = list(penalty)  # a plain list: not submodules, not in the state dict

    def training_step(self, batch, batch_idx):
        inputs, labels = batch
        loss = F.cross_entropy(self.net(inputs), labels)
        return loss + sum(reg(self) for reg in self.penalty) if self.penalty else loss

    def configure_optimizers(self):
        return self.make_optimizer(self)


def fit(module, callbacks=(), steps: int = 6, batch_size: int = 8, samples: int = 64, sampler=None, **options) -> pl.Trainer:
    settings = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    trainer = pl.Trainer(max_steps=steps, callbacks=list(callbacks), **{**settings, **options})
    trainer.fit(module, DataLoader(dataset(samples), batch_size=batch_size, sampler=sampler))
    return trainer


def weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def gradient_penalties():
    return [L2(0.05), L1(0.01), ElasticNet(0.01, 0.02), MaxNormPenalty(0.05)]


def scaled_16_mixed():
    return {"plugins": [MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))]}


SETUPS = {
    "fp32": (sgd_momentum, dict),
    "bf16-mixed": (adamw, lambda: {"precision": "bf16-mixed"}),
    # Lightning leaves a fused optimizer's gradients scaled until its own step: the callback
    # must scale what it adds (it acted at 1/65536 of its strength before).
    "16-mixed, GradScaler, fused AdamW": (fused_adamw, scaled_16_mixed),
    "16-mixed, GradScaler, SGD": (sgd_momentum, scaled_16_mixed),
    "accumulate_grad_batches=4": (sgd_momentum, lambda: {"accumulate_grad_batches": 4}),
    "gradient_clip_val": (sgd_momentum, lambda: {"gradient_clip_val": 0.05}),
    "two param groups": (two_groups, dict),
}


CODE_PATHS = pytest.mark.parametrize("code_path", [contextlib.nullcontext, accelerator_code_paths], ids=["cpu", "accelerator"])


@CODE_PATHS
@pytest.mark.parametrize("setup", list(SETUPS))
def test_the_update_is_that_of_the_penalty_in_the_loss(setup, code_path):
    make_optimizer, options = SETUPS[setup]
    ours, reference, plain = (UserModule(make_optimizer, penalty) for penalty in ((), gradient_penalties(), ()))
    with code_path():  # the accelerator's multi-tensor forms, run on the CPU
        fit(ours, [Regularization(gradient_penalties())], **options())
    fit(reference, **options())
    fit(plain, **options())
    want, got, unregularized = weights(reference), weights(ours), weights(plain)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m}")
    # The penalties change the weights far more than the tolerance, so the test can fail.
    assert max((unregularized[name] - want[name]).abs().max().item() for name in want) > 1e-3


class ManualModule(UserModule):
    """Two optimizers stepped by hand (``automatic_optimization = False``), one per layer."""

    def __init__(self, penalty=()) -> None:
        super().__init__(penalty=penalty)
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        first, second = self.optimizers()
        loss = super().training_step(batch, batch_idx)
        first.zero_grad()
        second.zero_grad()
        self.manual_backward(loss)
        first.step()
        second.step()

    def configure_optimizers(self):
        return [
            torch.optim.SGD(self.net[0].parameters(), lr=0.3, momentum=0.9),
            torch.optim.SGD(self.net[2].parameters(), lr=0.03),
        ]


def test_manual_optimization_penalises_each_optimizers_own_parameters_once():
    ours, reference = ManualModule(), ManualModule(penalty=gradient_penalties())
    fit(ours, [Regularization(gradient_penalties())])
    fit(reference)
    want = weights(reference)
    for name, value in weights(ours).items():
        torch.testing.assert_close(value, want[name], rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m}")


@CODE_PATHS
def test_manual_optimization_takes_the_proximal_step_after_each_optimizers_step(code_path):
    # The same update as one optimizer holding both layers as two groups, in automatic mode.
    def as_groups(module):
        return torch.optim.SGD(
            [
                {"params": module.net[0].parameters(), "lr": 0.3, "momentum": 0.9},
                {"params": module.net[2].parameters(), "lr": 0.03},
            ]
        )

    manual, automatic = ManualModule(), UserModule(as_groups)
    with code_path():
        fit(manual, [Regularization(L1(0.05, mode="proximal"))], steps=12)  # global_step counts both optimizers' steps
    fit(automatic, [Regularization(L1(0.05, mode="proximal"))], steps=6)
    want = weights(automatic)
    for name, value in weights(manual).items():
        torch.testing.assert_close(value, want[name], rtol=1e-6, atol=1e-7)
    assert (manual.net[0].weight == 0).float().mean() > 0.2  # exact zeros (none before: the step never ran)


class FreezeFirstLayer(BaseFinetuning):
    """The first layer frozen for epoch 0, then unfrozen into a new param group."""

    def __init__(self) -> None:
        super().__init__()
        self.first_layer_after_epoch_0: torch.Tensor | None = None

    def freeze_before_training(self, pl_module) -> None:
        self.freeze(pl_module.net[0])

    def finetune_function(self, pl_module, epoch, optimizer) -> None:
        if epoch == 1:
            self.unfreeze_and_add_param_group(pl_module.net[0], optimizer, lr=0.1)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 0:
            self.first_layer_after_epoch_0 = pl_module.net[0].weight.detach().clone()


def test_a_frozen_layer_is_left_alone_and_regularized_once_unfrozen():
    steps = 8  # two epochs of 4 batches
    ours, reference = UserModule(trainable_sgd), UserModule(trainable_sgd, gradient_penalties())
    start = ours.net[0].weight.detach().clone()
    fit(ours, [Regularization(gradient_penalties()), FreezeFirstLayer()], steps=steps, samples=32)
    fit(reference, [FreezeFirstLayer()], steps=steps, samples=32)
    want = weights(reference)
    for name, value in weights(ours).items():
        torch.testing.assert_close(value, want[name], rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m}")

    frozen = FreezeFirstLayer()
    proximal = UserModule(trainable_sgd)
    fit(proximal, [Regularization(L1(0.05, mode="proximal")), MaxNormConstraint(0.5), frozen], steps=steps, samples=32)
    assert torch.equal(frozen.first_layer_after_epoch_0, start)  # frozen: no decay, no shrink, no projection
    assert (proximal.net[0].weight == 0).any()  # unfrozen: shrunk to exact zeros
    assert (proximal.net[0].weight.detach().norm(dim=1) <= 0.5 + 1e-6).all()


class InfiniteLossAt(UserModule):
    """A loss of inf at one batch, so that GradScaler finds inf gradients and skips that step."""

    def __init__(self, make_optimizer, batch: int) -> None:
        super().__init__(make_optimizer)
        self.inf_batch = batch

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss * float("inf") if batch_idx == self.inf_batch else loss


class WeightsAround(pl.Callback):
    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.before = self.after = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.batch:
            self.before = weights(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == self.batch:
            self.after = weights(pl_module)


@CODE_PATHS
@pytest.mark.parametrize("make_optimizer", [sgd_momentum, fused_adamw], ids=["SGD", "fused AdamW"])
def test_a_step_that_gradscaler_skips_moves_no_weight(make_optimizer, code_path):
    # SGD's step is not called at all; a fused AdamW's is, with GradScaler's found_inf set.
    module, around = InfiniteLossAt(make_optimizer, batch=2), WeightsAround(batch=2)
    callbacks = [Regularization([L1(0.05, mode="proximal"), L2(0.01)]), MaxNormConstraint(0.3), around]
    with code_path():
        fit(module, callbacks, **scaled_16_mixed())
    for name, value in around.before.items():
        assert torch.equal(around.after[name], value), name
    assert (module.net[0].weight == 0).any()  # the other steps did shrink
    assert (module.net[0].weight.detach().norm(dim=1) <= 0.3 + 1e-6).all()


def test_a_users_own_module_gets_exact_zeros_and_capped_rows():
    cap = 0.4
    module = UserModule()
    with torch.no_grad():
        module.net[0].weight.mul_(4)  # rows start above the cap
    assert (module.net[0].weight.norm(dim=1) > cap).any()
    fit(module, [Regularization({"l1": L1(0.02, mode="proximal"), "l2": L2(1e-3)}), MaxNormConstraint(cap)], steps=16)
    for layer in (module.net[0], module.net[2]):
        assert (layer.weight == 0).float().mean() > 0.1
        assert (layer.weight.detach().norm(dim=1) <= cap + 1e-6).all()
        assert (layer.bias != 0).all()  # biases are not selected


class Metrics(pl.Callback):
    def __init__(self) -> None:
        self.logged: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.logged.append({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")})


def test_penalties_are_logged_on_logging_steps_whatever_the_module_logs():
    metrics = Metrics()
    fit(UserModule(), [Regularization([L1(1e-2), L2(1e-2)]), metrics], steps=3, log_every_n_steps=1)
    last = metrics.logged[-1]
    assert set(last) == {"train/reg_loss", "train/reg_loss/l1", "train/reg_loss/l2"}
    assert last["train/reg_loss"] == pytest.approx(last["train/reg_loss/l1"] + last["train/reg_loss/l2"], rel=1e-6)


def test_log_every_n_steps_0_trains_and_logs_no_penalty():
    metrics = Metrics()
    module = UserModule()
    start = weights(module)
    fit(module, [Regularization(L2(0.1)), metrics], steps=3, log_every_n_steps=0)
    assert all(not logged for logged in metrics.logged)
    assert not torch.equal(weights(module)["net.0.weight"], start["net.0.weight"])
    # The module of lregloss's own CLI, which raised ZeroDivisionError on every step.
    task = Task("multiclass", 3)
    own = RegularizedLossModule(
        nn.Linear(8, 3), SoftmaxCrossEntropy(), task, optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
        regularizers={"reg": L2(0.1)},
    )
    trainer = pl.Trainer(max_steps=3, log_every_n_steps=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(own, datamodule=TensorDataModule(task))
    assert trainer.global_step == 3


def test_the_module_gets_its_penalties_from_the_same_callback():
    task = Task("multiclass", 3)
    module = RegularizedLossModule(
        nn.Linear(8, 3), SoftmaxCrossEntropy(), task, optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
        regularizers={"reg": L2(0.1)},
    )
    trainer = pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(module, datamodule=TensorDataModule(task))
    assert [cb for cb in trainer.callbacks if isinstance(cb, Regularization)] == [module.regularization]
    # A second one in the Trainer would silently be replaced by Lightning: refused.
    trainer = pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[Regularization(L1(0.1))])
    with pytest.raises(ValueError, match="give the regularizers to one of them"):
        trainer.fit(module, datamodule=TensorDataModule(task))


def adamax(module):
    return torch.optim.Adamax(module.parameters())


def test_an_optimizer_without_a_proximal_rule_is_refused_when_fit_starts():
    with pytest.raises(UnsupportedOptimizerError, match=r"no step-size rule for Adamax.*SGD.*mode='gradient'") as error:
        fit(UserModule(adamax), [Regularization(L1(0.1, mode="proximal"))])
    assert "\n" not in str(error.value)
    fit(UserModule(adamax), [Regularization(L1(0.1))])  # gradient mode: any optimizer


def test_sharding_strategies_are_refused_in_setup():
    # FSDP needs a GPU to build a Trainer; the check reads trainer.strategy alone.
    trainer = SimpleNamespace(strategy=FSDPStrategy())
    for callback in (Regularization(L2(0.1)), MaxNormConstraint(3.0)):
        with pytest.raises(ValueError, match="does not support FSDPStrategy.*strategy='ddp'"):
            callback.setup(trainer, UserModule(), "fit")


def test_an_entry_that_is_not_a_regularizer_is_refused():
    with pytest.raises(TypeError, match=r"regularizers\['cap'\] is a MaxNormConstraint.*MaxNormConstraint callback"):
        Regularization({"cap": MaxNormConstraint(3.0)})
    with pytest.raises(ValueError, match="regularizers is empty"):
        Regularization([])


class CountHostReads(pl.Callback):
    """Counts ``aten::_local_scalar_dense`` (``.item()``, ``bool(tensor)``: a host sync on a GPU) over steps 2-5."""

    def __init__(self) -> None:
        self.reads = 0
        self._profiler = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 2:
            self._profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self._profiler.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == 5:
            self._profiler.__exit__(None, None, None)
            self.reads = sum(e.count for e in self._profiler.key_averages() if e.key == "aten::_local_scalar_dense")


@pytest.mark.parametrize("make_optimizer, code_path", [
    (sgd_momentum, contextlib.nullcontext), (sgd_momentum, accelerator_code_paths), (fused_adamw, accelerator_code_paths),
], ids=["SGD", "SGD, accelerator paths", "fused AdamW, accelerator paths"])  # fmt: skip
def test_the_callbacks_read_nothing_back_from_the_device_between_logging_steps(make_optimizer, code_path):
    # Under a GradScaler: with fused AdamW the proximal step and the projection read its skip flag, on the device.
    counts = []
    for callbacks in ([], [Regularization([L1(0.01, mode="proximal"), L2(0.01), MaxNormPenalty(0.01)]),
                           MaxNormConstraint(0.5)]):  # fmt: skip
        counter = CountHostReads()
        with code_path():
            fit(UserModule(make_optimizer), [*callbacks, counter], steps=6, log_every_n_steps=50, **scaled_16_mixed())
        counts.append(counter.reads)
    assert counts[1] == counts[0]


class RankWeights(pl.Callback):
    """Each rank writes its weights to ``<folder>/rank<k>.pt`` when fitting ends."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_fit_end(self, trainer, pl_module) -> None:
        torch.save(weights(pl_module), self.folder / f"rank{trainer.global_rank}.pt")


class EveryOtherSample(Sampler):
    """Rank r of n takes samples r, r + n, r + 2n, ...: in a step, the ranks hold consecutive samples together."""

    def __init__(self, samples: int) -> None:
        self.samples = samples

    def __iter__(self):
        distributed = torch.distributed.is_initialized()
        rank, ranks = (torch.distributed.get_rank(), torch.distributed.get_world_size()) if distributed else (0, 1)
        return iter(range(rank, self.samples, ranks))

    def __len__(self) -> int:
        return self.samples // 2


def ddp_callbacks():
    return [Regularization([L2(0.05), L1(0.01, mode="proximal")]), MaxNormConstraint(0.5)]


def test_ddp_on_two_processes_gives_every_rank_the_single_process_weights(tmp_path):
    # Each rank trains on every other sample, 8 a step: the all-reduced gradient is that of the
    # 16 consecutive samples one process takes in a step.
    ddp = {"devices": 2, "strategy": "ddp_spawn", "use_distributed_sampler": False}
    fit(UserModule(), [*ddp_callbacks(), RankWeights(tmp_path)], steps=4, sampler=EveryOtherSample(64), **ddp)
    single = UserModule()
    fit(single, ddp_callbacks(), steps=4, batch_size=16)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(2)]
    for name, want in weights(single).items():
        assert torch.equal(ranks[0][name], ranks[1][name]), name
        torch.testing.assert_close(ranks[0][name], want, rtol=1e-5, atol=1e-6)
    assert (ranks[0]["net.0.weight"] == 0).any()
