"""The LightningModule: every task kind trains, penalties equal autograd, logs are where users look."""

import pytest
import pytorch_lightning as pl
import torch
from functools import partial
from pytorch_lightning.callbacks import EarlyStopping
from torch import nn

from lregloss.losses import AttributeLogistic, MulticlassHinge, OrdinalLogistic, SoftmaxCrossEntropy, SquaredError
from lregloss.models.mlp import MLP
from lregloss.module import RegularizedLossModule
from lregloss.regularizers import L1, L2, ElasticNet, NoRegularizer
from lregloss.tasks import Task

from conftest import TensorDataModule


def make_trainer(**kwargs) -> pl.Trainer:
    options = dict(
        accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
    )
    options.update(kwargs)
    return pl.Trainer(**options)


def make_module(task, loss, regularizers=None, lr=0.05, hidden=(16,), level_decoding="auto"):
    model = MLP(8, loss.num_outputs(task), hidden_sizes=hidden)
    optimizer = partial(torch.optim.SGD, lr=lr)
    return RegularizedLossModule(model, loss, task, optimizer, regularizers=regularizers, level_decoding=level_decoding)


@pytest.mark.parametrize(
    "task,loss,metric,better",
    [
        (Task("multiclass", 4), SoftmaxCrossEntropy(), "val/acc", lambda v: v > 0.7),
        (Task("multiclass", 4), MulticlassHinge(), "val/acc", lambda v: v > 0.7),
        (Task("ordinal", 5), OrdinalLogistic(), "val/mae", lambda v: v < 0.6),
        (Task("ordinal", 5), SquaredError(), "val/mae", lambda v: v < 0.6),
        (Task("multilabel", 3), AttributeLogistic(), "val/hamming", lambda v: v < 0.2),
        (Task("regression", 2), SquaredError(), "val/rmse", lambda v: v < 1.0),
    ],
)
def test_every_task_kind_learns_and_reports_its_metrics(task, loss, metric, better):
    data = TensorDataModule(task, samples=256)
    module = make_module(task, loss, lr=0.1)
    trainer = make_trainer(max_epochs=15)
    trainer.fit(module, datamodule=data)
    [result] = trainer.validate(module, datamodule=data, verbose=False)
    assert better(result[metric]), result


def test_metric_names_per_task():
    names = {
        "multiclass": {"val/acc", "val/acc_top5"},
        "ordinal": {"val/mae", "val/rmse", "val/acc", "val/acc_within1", "val/ece", "val/rps", "val/nll"},
        "multilabel": {"val/hamming", "val/subset_acc", "val/f1_micro", "val/f1_macro", "val/f1/a", "val/f1/c"},
        "regression": {"val/mae", "val/rmse"},
    }
    losses = {"multiclass": SoftmaxCrossEntropy(), "ordinal": OrdinalLogistic(), "multilabel": AttributeLogistic(), "regression": SquaredError()}
    for kind, expected in names.items():
        task = Task(kind, 8 if kind == "multiclass" else 3, names=("a", "b", "c") if kind == "multilabel" else None)
        data = TensorDataModule(task)
        [result] = make_trainer().validate(make_module(task, losses[kind]), datamodule=data, verbose=False)
        assert expected <= set(result), (kind, sorted(result))


def test_hinge_on_ratings_gives_no_calibration_error():
    task = Task("ordinal", 5)
    [result] = make_trainer().validate(make_module(task, MulticlassHinge()), datamodule=TensorDataModule(task), verbose=False)
    assert not {"val/ece", "val/rps", "val/nll"} & set(result) and "val/mae" in result


def test_a_decoding_rule_needing_a_distribution_is_refused_at_construction_for_a_loss_without_one():
    with pytest.raises(ValueError, match="level_decoding=median needs a distribution.*MulticlassHinge"):
        make_module(Task("ordinal", 5), MulticlassHinge(), level_decoding="median")
    make_module(Task("multiclass", 5), MulticlassHinge(), level_decoding="median")  # no levels to decode: unused


def test_a_mismatched_loss_fails_at_construction():
    with pytest.raises(ValueError, match="losses that fit: .*AttributeHinge"):
        make_module(Task("multilabel", 3), SoftmaxCrossEntropy())


def test_fused_penalty_gradient_matches_autograd_of_the_total_loss():
    torch.manual_seed(0)
    task = Task("multiclass", 4)
    regs = {"l2": L2(strength=0.3), "l1": L1(strength=0.2)}
    module = make_module(task, SoftmaxCrossEntropy(), regs, lr=0.5)
    reference = make_module(task, SoftmaxCrossEntropy(), lr=0.5)
    reference.load_state_dict(module.state_dict())
    data = TensorDataModule(task, samples=16, batch_size=16)
    make_trainer(max_steps=1).fit(module, datamodule=data)

    x, y = data.dataset.tensors
    total = reference.loss(reference.model(x), y) + sum(reg(reference) for reg in regs.values())
    total.backward()
    with torch.no_grad():
        for p in reference.parameters():
            p -= 0.5 * p.grad
    for (name, got), want in zip(module.named_parameters(), reference.parameters()):
        torch.testing.assert_close(got, want, msg=name)


def test_proximal_l1_zeroes_weights_but_not_biases():
    task = Task("multiclass", 4)
    module = make_module(task, SoftmaxCrossEntropy(), {"l1": L1(strength=0.5, mode="proximal")}, lr=0.2)
    make_trainer(max_epochs=3).fit(module, datamodule=TensorDataModule(task))
    weights = [p for n, p in module.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in module.named_parameters() if n.endswith("bias")]
    zero_share = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zero_share > 0.5
    assert all(bool((b != 0).any()) for b in biases)


class Recorder(pl.Callback):
    def __init__(self):
        self.metrics = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.metrics.append({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")})


@pytest.mark.parametrize("regularizers", [None, {"reg": NoRegularizer()}])
def test_without_a_penalty_only_the_data_loss_is_logged(regularizers):
    task = Task("multiclass", 4)
    recorder = Recorder()
    module = make_module(task, SoftmaxCrossEntropy(), regularizers)
    make_trainer(max_steps=3, callbacks=[recorder]).fit(module, datamodule=TensorDataModule(task))
    assert set(recorder.metrics[-1]) == {"train/data_loss"}


@pytest.mark.parametrize("strength,positive", [(1e-3, True), (0.0, False)])
def test_reg_loss_is_logged_with_the_total_where_a_regularizer_selects_weights(strength, positive):
    task = Task("multiclass", 4)
    recorder = Recorder()
    module = make_module(task, SoftmaxCrossEntropy(), {"reg": ElasticNet(strength, strength)})
    make_trainer(max_steps=3, callbacks=[recorder]).fit(module, datamodule=TensorDataModule(task))
    last = recorder.metrics[-1]
    assert (last["train/reg_loss"] > 0) == positive
    assert last["train/loss"] == pytest.approx(last["train/data_loss"] + last["train/reg_loss"], rel=1e-6)


def test_several_regularizers_get_one_tag_each():
    task = Task("multiclass", 4)
    recorder = Recorder()
    regs = {"l1": L1(1e-3), "l2": L2(1e-2)}
    make_trainer(max_steps=2, callbacks=[recorder]).fit(make_module(task, SoftmaxCrossEntropy(), regs), datamodule=TensorDataModule(task))
    last = recorder.metrics[-1]
    assert last["train/reg_loss"] == pytest.approx(last["train/reg_loss/l1"] + last["train/reg_loss/l2"], rel=1e-6)


class ScriptedValidation(pl.LightningModule):
    """Reports a given sequence of validation losses, one per epoch."""

    def __init__(self, values):
        super().__init__()
        self.values = values
        self.layer = nn.Linear(1, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).sum()

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.values[self.current_epoch])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.mark.parametrize(
    "values,patience,stopped_epoch",
    [
        ([5, 4, 3, 3.5, 3.2, 3.1, 2, 1, 1, 1], 3, 5),  # best at epoch 2, three epochs without improvement
        ([5, 4, 3, 2, 1, 0.5, 0.4, 0.3, 0.2, 0.1], 2, 0),  # always improving: never stops
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 1, 1),
    ],
)
def test_early_stopping_fires_at_the_expected_epoch(values, patience, stopped_epoch):
    stopper = EarlyStopping(monitor="val/loss", mode="min", patience=patience)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(2, 1)), batch_size=2)
    trainer = make_trainer(max_epochs=len(values), callbacks=[stopper])
    trainer.fit(ScriptedValidation(values), train_dataloaders=data, val_dataloaders=data)
    assert stopper.stopped_epoch == stopped_epoch


def recipe(task: Task, loss: dict, level_decoding: str = "argmax") -> dict:
    return {
        "model": {"_target_": "lregloss.models.mlp.MLP", "_partial_": True, "hidden_sizes": [16]},
        "loss": loss,
        "optimizer": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1},
        "scheduler": None,
        "regularizers": {"reg": {"_target_": "lregloss.regularizers.L2", "strength": 1e-3}},
        "task": {"kind": task.kind.value, "size": task.size, "names": None, "class_counts": None},
        "input_size": 8,
        "level_decoding": level_decoding,
    }


@pytest.mark.parametrize(
    "task,loss,distribution",
    [
        (Task("multiclass", 4), {"_target_": "lregloss.losses.SoftmaxCrossEntropy"}, True),
        (Task("multiclass", 4), {"_target_": "lregloss.losses.MulticlassHinge"}, False),
        (Task("ordinal", 5), {"_target_": "lregloss.losses.OrdinalLogistic"}, True),
        (Task("multilabel", 3), {"_target_": "lregloss.losses.AttributeLogistic"}, True),
    ],
    ids=["softmax", "hinge", "ordinal", "attributes"],
)
def test_a_checkpoint_alone_rebuilds_the_module_and_predicts(tmp_path, task, loss, distribution):
    module = RegularizedLossModule.from_recipe(recipe(task, loss))
    data = TensorDataModule(task)
    trainer = make_trainer(max_steps=3)
    trainer.fit(module, datamodule=data)
    path = tmp_path / "trained.ckpt"
    trainer.save_checkpoint(path)
    assert torch.load(path, weights_only=True)["lregloss_recipe"]["task"]["kind"] == task.kind.value  # plain containers

    loaded = RegularizedLossModule.load_from_checkpoint(path)
    assert not loaded.training
    for name, value in module.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    batches = make_trainer().predict(loaded, data.val_dataloader())
    prediction = torch.cat([batch["prediction"] for batch in batches])
    inputs, target = data.dataset.tensors
    assert prediction.shape == target.shape
    with torch.no_grad():
        outputs = module.eval().model(inputs)
    expected = module.loss.predict_level(outputs, task.size) if task.kind.value == "ordinal" else module.loss.predict(outputs)
    assert torch.equal(prediction, expected)
    assert ("proba" in batches[0]) == distribution
    if distribution and task.kind.value != "multilabel":
        torch.testing.assert_close(torch.cat([b["proba"] for b in batches]).sum(dim=1), torch.ones(len(target)))


def test_a_checkpoint_without_a_recipe_is_refused_naming_the_fix(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="holds no lregloss_recipe: .*load_state_dict"):
        RegularizedLossModule.load_from_checkpoint(path)
