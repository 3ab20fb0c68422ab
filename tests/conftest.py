"""Shared fixtures: small in-memory data modules for every task kind, and Hydra composition."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from torch.utils.data import DataLoader, TensorDataset

from lregloss.tasks import Task

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"


class TensorDataModule(pl.LightningDataModule):
    """A learnable synthetic problem of a given task kind: targets from a fixed linear map."""

    def __init__(self, task: Task, samples: int = 96, features: int = 8, batch_size: int = 16, seed: int = 0):
        super().__init__()
        self.task = task
        self.input_size = features
        self.batch_size = batch_size
        generator = torch.Generator().manual_seed(seed)
        inputs = torch.randn(samples, features, generator=generator)
        mixing = torch.randn(features, task.size, generator=generator)
        scores = inputs @ mixing
        if task.kind.value == "multiclass":
            target = scores.argmax(dim=1)
        elif task.kind.value == "ordinal":
            target = torch.bucketize(scores[:, 0], scores[:, 0].quantile(torch.linspace(0, 1, task.size + 1)[1:-1]))
        elif task.kind.value == "multilabel":
            target = (scores > 0).long()
        else:
            target = scores
        self.dataset = TensorDataset(inputs, target)

    def train_dataloader(self):
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.dataset, batch_size=self.batch_size)

    test_dataloader = val_dataloader


@pytest.fixture
def compose_config():
    """Compose ``conf/train.yaml`` with overrides, as the entry point would (no run dir)."""

    def _compose(*overrides: str, output_dir: Path | None = None):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            extra = [f"paths.output_dir={output_dir}"] if output_dir else ["paths.output_dir=unused"]
            return compose(config_name="train", overrides=[*overrides, *extra])

    yield _compose
    GlobalHydra.instance().clear()


MOODS = {1: "awful", 2: "poor", 3: "okay", 4: "good", 5: "great"}
WORDS = "top dress fit size color fabric soft love return small large nice".split()


def write_reviews_csv(path: Path, rows: int = 300, seed: int = 0) -> Path:
    """A review CSV in the shipped format whose rating is learnable from one mood word per review."""
    chooser = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["", "Title", "Review Text", "Rating"])
        for index in range(rows):
            rating = index % 5 + 1
            text = " ".join(chooser.choices(WORDS, k=8) + [MOODS[rating]] + chooser.choices(WORDS, k=4))
            writer.writerow([index, "title", text, rating])
    return path


@pytest.fixture(scope="session")
def tiny_reviews_csv(tmp_path_factory) -> Path:
    """300 short reviews, 60 per rating: training runs on it take well under a second."""
    return write_reviews_csv(tmp_path_factory.mktemp("reviews") / "reviews.csv")
