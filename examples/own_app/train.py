"""A Hydra + Lightning app of your own that picks lregloss's losses and regularizers on its command line.

Its data module, LightningModule and train.yaml are its own; conf/train.yaml adds lregloss's
pluggable config groups (``loss``, ``reg``, ``callbacks/max_norm``) to its search path:

    python train.py loss=hinge reg=l1 reg.mode=proximal callbacks.max_norm.max_norm=3
"""

import hydra
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

from lregloss.callbacks import Regularization
from lregloss.tasks import Task


class BlobsData(pl.LightningDataModule):
    """``classes`` Gaussian clusters in ``features`` dimensions, 80% for training and 20% for validation."""

    def __init__(self, classes: int, features: int, samples: int, batch_size: int, seed: int = 0) -> None:
        super().__init__()
        self.classes, self.features, self.samples, self.batch_size, self.seed = classes, features, samples, batch_size, seed

    def setup(self, stage: str | None = None) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        centres = 0.6 * torch.randn(self.classes, self.features, generator=generator)
        labels = torch.randint(0, self.classes, (self.samples,), generator=generator)
        inputs = centres[labels] + torch.randn(self.samples, self.features, generator=generator)
        train = int(0.8 * self.samples)
        self.train_set, self.val_set = random_split(
            TensorDataset(inputs, labels), [train, self.samples - train], generator=generator
        )

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size)


class Classifier(pl.LightningModule):
    """An MLP trained on whatever loss the config picks: an lregloss loss is an ``nn.Module`` that also decodes."""

    def __init__(self, loss: nn.Module, features: int, classes: int, lr: float) -> None:
        super().__init__()
        self.loss = loss
        outputs = loss.num_outputs(Task("multiclass", classes))
        self.net = nn.Sequential(nn.Linear(features, 64), nn.ReLU(), nn.Linear(64, outputs))
        self.lr = lr

    def training_step(self, batch, batch_idx):
        inputs, labels = batch
        loss = self.loss(self.net(inputs), labels)
        self.log("train/data_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        inputs, labels = batch
        self.log("val/acc", (self.loss.predict(self.net(inputs)) == labels).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    pl.seed_everything(cfg.seed)
    model = Classifier(instantiate(cfg.loss), cfg.data.features, cfg.data.classes, cfg.lr)
    callbacks = [Regularization(instantiate(cfg.reg)), *(instantiate(entry) for entry in cfg.callbacks.values())]
    trainer = pl.Trainer(**cfg.trainer, callbacks=callbacks)
    trainer.fit(model, datamodule=BlobsData(**cfg.data, seed=cfg.seed))
    print(f"val/acc={float(trainer.callback_metrics['val/acc']):.3f}")


if __name__ == "__main__":
    main()
