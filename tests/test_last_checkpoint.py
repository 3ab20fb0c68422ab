"""last.ckpt every N steps, or about every T seconds with the step interval following the steps' time."""

import pytest
import pytorch_lightning as pl
import torch

from lregloss.callbacks import LastCheckpoint
from lregloss.callbacks import last_checkpoint as last_checkpoint_module
from lregloss.losses import SoftmaxCrossEntropy
from lregloss.models import MLP
from lregloss.module import RegularizedLossModule
from lregloss.tasks import Task

from conftest import TensorDataModule


class RecordedSaves(LastCheckpoint):
    """A LastCheckpoint that notes the optimizer step of each save."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.saved_at: list[int] = []

    def _save(self, trainer) -> None:
        super()._save(trainer)
        self.saved_at.append(trainer.global_step)


class Tick(pl.Callback):
    """A clock that advances by ``seconds_per_step`` at the end of every training batch."""

    def __init__(self, clock: dict, seconds_per_step: float) -> None:
        self.clock, self.seconds_per_step = clock, seconds_per_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.clock["now"] += self.seconds_per_step


def fit(tmp_path, saver: LastCheckpoint, *callbacks, steps: int = 40) -> None:
    data = TensorDataModule(Task("multiclass", 3), samples=steps * 4, batch_size=4)
    module = RegularizedLossModule(MLP(data.input_size, 3, hidden_sizes=[]), SoftmaxCrossEntropy(), data.task,
                                   lambda params: torch.optim.SGD(params, lr=0.1))  # fmt: skip
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, callbacks=[*callbacks, saver])  # fmt: skip
    trainer.fit(module, datamodule=data)


def test_time_based_saves_space_the_steps_by_the_time_they_take(tmp_path, monkeypatch):
    clock = {"now": 0.0}
    monkeypatch.setattr(last_checkpoint_module, "monotonic", lambda: clock["now"])
    saver = RecordedSaves(str(tmp_path), every_n_train_steps=5, train_time_interval=10.0)
    fit(tmp_path, saver, Tick(clock, seconds_per_step=1.0))
    # the first save after 5 steps (5 s): 10 s is 10 steps from then on; the last at the end
    assert saver.saved_at == [5, 15, 25, 35, 40]
    assert (tmp_path / "last.ckpt").is_file()


def test_slower_steps_space_the_time_based_saves_by_fewer_steps(tmp_path, monkeypatch):
    clock = {"now": 0.0}
    monkeypatch.setattr(last_checkpoint_module, "monotonic", lambda: clock["now"])
    saver = RecordedSaves(str(tmp_path), every_n_train_steps=10, train_time_interval=10.0)
    fit(tmp_path, saver, Tick(clock, seconds_per_step=2.5))
    assert saver.saved_at == [10, 14, 18, 22, 26, 30, 34, 38, 40]  # 10 s is 4 steps of 2.5 s


def test_auto_counts_steps_on_the_cpu(tmp_path):
    saver = RecordedSaves(str(tmp_path), every_n_train_steps=15, train_time_interval="auto")
    fit(tmp_path, saver)
    assert saver.saved_at == [15, 30, 40]


@pytest.mark.parametrize("interval", [0, -1.0, "soon"])
def test_a_bad_time_interval_names_itself(tmp_path, interval):
    with pytest.raises(ValueError, match="train_time_interval must be a number of seconds > 0, 'auto' or None"):
        LastCheckpoint(str(tmp_path), train_time_interval=interval)
