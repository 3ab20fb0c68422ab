"""Test hook, loaded by DDP runs that tests start: what each rank trained, evaluated and ended with."""

from pathlib import Path

import torch
from pytorch_lightning.callbacks import Callback


class RankRecord(Callback):
    """Write ``<run dir>/rank<k>.pt`` on every rank k: its weights and buffers after fitting, and its batches.

    Holds ``state_dict`` and ``buffers`` (non-persistent ones included, as the hierarchical
    softmax's tree tables) taken when fitting ends, ``train_batches`` (the number of training
    batches of each epoch) and ``validated`` (the samples of the last validation). Written at
    the end of every stage, so the file has them all once the run ends.
    """

    def __init__(self) -> None:
        self.record: dict = {"train_batches": [], "validated": 0}

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.record["train_batches"].append(0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.record["train_batches"][-1] += 1

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.record["validated"] = 0

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.record["validated"] += len(batch[1])

    def on_fit_end(self, trainer, pl_module) -> None:
        self.record["state_dict"] = {name: value.detach().clone() for name, value in pl_module.state_dict().items()}
        self.record["buffers"] = {name: value.detach().clone() for name, value in pl_module.named_buffers()}

    def teardown(self, trainer, pl_module, stage) -> None:
        torch.save(self.record, Path(trainer.default_root_dir) / f"rank{trainer.global_rank}.pt")
