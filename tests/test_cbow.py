"""The CBOW recipe's parts: context windows, the data module, the model, large-vocabulary metrics,
sparse-gradient checks, the throughput callback, and a run of experiment=reviews_cbow end to end."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from lregloss.app.predict import main as predict_main
from lregloss.app.train import train
from lregloss.callbacks import Regularization, TrainingThroughput
from lregloss.data.context_windows import CbowDataModule, ContextWindows, word_vocabulary
from lregloss.losses import HierarchicalSoftmax, SoftmaxCrossEntropy
from lregloss.metrics import LARGE_VOCABULARY, VocabularyMetrics, task_metrics
from lregloss.models.text import ContextBag, bags
from lregloss.regularizers import L2
from lregloss.sparse_gradients import check_sparse_optimizer, sparse_gradient_parameters
from lregloss.tasks import Task, TaskKind
from conftest import TensorDataModule

DOCUMENTS = [["a", "b", "c", "a"], ["b", "a"], ["d"]]


def test_vocabulary_ranks_by_count_then_alphabetically_and_cuts():
    assert word_vocabulary(DOCUMENTS, 1, None) == (["a", "b", "c", "d"], [3, 2, 1, 1])
    assert word_vocabulary(DOCUMENTS, 2, None) == (["a", "b"], [3, 2])
    assert word_vocabulary(DOCUMENTS, 1, 3) == (["a", "b", "c"], [3, 2, 1])


def test_context_windows_stay_in_their_document_and_leave_unknown_words_out():
    windows = ContextWindows.of([["a", "x", "c", "a", "b"], ["b", "a"]], ["a", "b", "c"], window=2)
    # input ids: a=1, b=2, c=3, x unknown=0; centres are the known words only
    assert windows.centres.tolist() == [0, 2, 0, 1, 1, 0]
    assert windows.unknown == 1
    assert windows.positions.tolist() == [0, 2, 3, 4, 0, 1]
    assert windows.documents.tolist() == [0, 0, 0, 0, 1, 1]
    expected = [  # two words before (farthest first), two after
        [0, 0, 0, 3],  # a: -, -, x, c
        [1, 0, 1, 2],  # c: a, x, a, b
        [0, 3, 2, 0],  # a: x, c, b, -
        [3, 1, 0, 0],  # b: c, a, -, -
        [0, 0, 1, 0],  # b (2nd document): -, -, a, -
        [0, 2, 0, 0],  # a: -, b, -, -
    ]
    assert windows.contexts.tolist() == expected


def write_text_csv(path: Path, rows: int = 200, seed: int = 0, fillers: bool = False) -> Path:
    """Documents of a tiny language: 'the <colour> <thing> is <adjective>', rated by its adjective;
    with ``fillers`` each ends in a word of its own (a large vocabulary whose held-out words are unseen)."""
    generator = torch.Generator().manual_seed(seed)
    colours, things, adjectives = ["red", "blue", "green"], ["dress", "top", "skirt", "coat"], ["nice", "bad"]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["title", "body", "rating"])
        for index in range(rows):
            pick = [int(torch.randint(len(words), (1,), generator=generator)) for words in (colours, things, adjectives)]
            body = f"the {colours[pick[0]]} {things[pick[1]]} is {adjectives[pick[2]]}"
            writer.writerow(["", body + (f" x{index}" if fillers else ""), 5 if pick[2] == 0 else 1])
    return path


def test_data_module_splits_documents_and_counts_training_centres(tmp_path):
    path = write_text_csv(tmp_path / "notes.csv")
    data = CbowDataModule(path=str(path), text=["title", "body"], stratify="rating", window=2, batch_size=16)
    data.setup("fit")
    train_words = sum(len(doc) for doc in data.split_documents["train"])
    assert len(data.windows["train"].centres) == train_words  # min_count=1: every training word is a class
    assert data.task.kind is TaskKind.MULTICLASS and data.task.size == len(data.vocabulary) == data.input_size - 1
    assert data.vocabulary[:2] == ["is", "the"] or data.vocabulary[:2] == ["the", "is"]
    counts = torch.bincount(data.windows["train"].centres, minlength=data.task.size)
    assert list(data.task.class_counts) == counts.tolist()
    assert data.task.names == tuple(data.vocabulary)
    sizes = {name: len(docs) for name, docs in data.split_documents.items()}
    assert sizes == {"train": 160, "val": 20, "test": 20}
    contexts, centres = next(iter(data.train_dataloader()))
    assert contexts.shape == (16, 4) and centres.shape == (16,)


def test_data_module_refuses_a_vocabulary_too_small_in_one_line(tmp_path):
    path = write_text_csv(tmp_path / "notes.csv")
    data = CbowDataModule(path=str(path), text="body", min_count=10_000)
    with pytest.raises(ValueError, match=r"^data.min_count=10000 leaves 0 word\(s\) .*lower data.min_count"):
        data.setup("fit")
    with pytest.raises(ValueError, match="window must be an integer >= 1"):
        CbowDataModule(path=str(path), text="body", window=0)


@pytest.mark.parametrize("embed_dim, outputs, has_linear", [(8, 8, False), (8, 30, True)])
def test_context_bag_adds_an_output_layer_only_for_class_scores(embed_dim, outputs, has_linear):
    model = ContextBag(20, outputs, embed_dim)
    assert isinstance(model.output, nn.Linear) is has_linear
    ids = torch.tensor([[3, 0, 5, 0], [0, 0, 0, 0]])
    weight = model.embedding.weight
    features = model.embedding(*bags(ids))
    torch.testing.assert_close(features[0], (weight[3] + weight[5]) / 2)  # padding left out of the mean
    assert features[1].abs().sum() == 0  # no known word: h = 0
    assert model(ids).shape == (2, outputs)


def test_context_bag_sparse_gradients_hold_the_batch_rows_only():
    model = ContextBag(50, 8, 8, sparse=True)
    model(torch.tensor([[3, 4], [4, 7]])).sum().backward()
    grad = model.embedding.weight.grad
    assert grad.is_sparse and set(grad.coalesce().indices()[0].tolist()) == {3, 4, 7}


def test_context_bag_sparse_backward_equals_embedding_bags_dense_gradient_in_float64():
    torch.manual_seed(0)
    ids = torch.tensor([[3, 0, 5, 3], [0, 0, 0, 0], [7, 1, 0, 2]])
    dense, sparse = ContextBag(10, 8, 8).double(), ContextBag(10, 8, 8, sparse=True).double()
    sparse.load_state_dict(dense.state_dict())
    upstream = torch.randn(3, 8, dtype=torch.float64)
    for model in (dense, sparse):
        (model(ids) * upstream).sum().backward()
    grad = sparse.embedding.weight.grad.to_dense()
    torch.testing.assert_close(grad, dense.embedding.weight.grad)
    # the formula: row r gets g_b / |b| once for each time it stands in bag b (bag 0: 3, 5, 3)
    torch.testing.assert_close(grad[3], 2 * upstream[0] / 3)
    torch.testing.assert_close(grad[2], upstream[2] / 3)
    assert grad[0].abs().sum() == 0 and grad[4].abs().sum() == 0  # padding, and a word in no bag


def test_vocabulary_metrics_match_torchmetrics_and_cross_entropy():
    torch.manual_seed(0)
    size = LARGE_VOCABULARY
    task = Task(TaskKind.MULTICLASS, size)
    loss = SoftmaxCrossEntropy()
    metrics = task_metrics(task, loss)
    assert isinstance(metrics, VocabularyMetrics)
    scores, target = torch.randn(300, size) * 3, torch.randint(size, (300,))
    scores[:100, :].scatter_(1, target[:100, None], 20.0)  # a third sure and right
    metrics.update(scores[:150], target[:150])
    metrics.update(scores[150:], target[150:])
    values = metrics.compute()
    for k, name in ((1, "acc"), (5, "acc_top5")):
        reference = MulticlassAccuracy(size, top_k=k, average="micro")(scores, target)
        torch.testing.assert_close(values[name], reference)
    torch.testing.assert_close(values["ll"], -F.cross_entropy(scores, target))
    torch.testing.assert_close(values["perplexity"], F.cross_entropy(scores, target).exp())


def test_sparse_gradients_are_refused_by_an_optimizer_that_cannot_step_them():
    model = nn.Sequential(nn.EmbeddingBag(10, 4, sparse=True), nn.Linear(4, 3))
    loss = HierarchicalSoftmax(4, 5, sparse=True)
    holder = nn.ModuleDict({"model": model, "loss": loss})
    assert set(sparse_gradient_parameters(holder)) == {"model.0.weight", "loss.weight", "loss.bias"}
    with pytest.raises(ValueError, match=r"^optimizer: torch.optim.AdamW cannot step the sparse gradients of loss.bias"):
        check_sparse_optimizer(torch.optim.AdamW(holder.parameters()), holder)
    with pytest.raises(ValueError, match=r"SparseAdam steps sparse gradients only, and model.1.bias"):
        check_sparse_optimizer(torch.optim.SparseAdam(holder.parameters()), holder)
    check_sparse_optimizer(torch.optim.SGD(holder.parameters(), lr=0.1), holder)
    check_sparse_optimizer(torch.optim.SparseAdam([*model[0].parameters(), *loss.parameters()]), holder)


def test_a_penalty_on_sparse_gradients_is_refused_in_one_line(tmp_path):
    from lregloss.lightning import pl

    class Bag(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.embedding = nn.EmbeddingBag(8, 3, sparse=True)

        def training_step(self, batch, batch_idx):
            return self.embedding(batch[0].abs().long() % 8).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = TensorDataModule(Task(TaskKind.REGRESSION, 1), features=4)
    trainer = pl.Trainer(max_epochs=1, callbacks=[Regularization(L2(1e-3))], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    with pytest.raises(ValueError, match=r"^reg .*embedding.weight get sparse gradients.*use reg=none"):
        trainer.fit(Bag(), train_dataloaders=data.train_dataloader())


def test_training_throughput_counts_every_training_sample_and_logs_per_epoch():
    from lregloss.lightning import pl

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(8, 1)

        def training_step(self, batch, batch_idx):
            return F.mse_loss(self.layer(batch[0]), batch[1])

        def validation_step(self, batch, batch_idx):
            self.log("val/loss", F.mse_loss(self.layer(batch[0]), batch[1]))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    data = TensorDataModule(Task(TaskKind.REGRESSION, 1), samples=96, batch_size=16)
    throughput = TrainingThroughput("rows")
    trainer = pl.Trainer(max_epochs=2, callbacks=[throughput], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(Tiny(), datamodule=data)
    assert throughput.run_samples == 2 * 96 and throughput.samples == 96
    assert throughput.run_per_second > 0 and "train/rows_per_s" in trainer.callback_metrics
    with pytest.raises(ValueError, match="unit must be a single word"):
        TrainingThroughput("words per second")


def test_the_cbow_recipe_trains_hsoftmax_with_sparse_gradients_and_predicts_words(compose_config, tmp_path):
    path = write_text_csv(tmp_path / "notes.csv", rows=1300, fillers=True)  # > LARGE_VOCABULARY training words
    cfg = compose_config(
        "experiment=reviews_cbow", "data=words", f"data.path={path}", "data.text=[title,body]", "data.window=2",
        "data.batch_size=64", "model.embed_dim=16", "optimizer.lr=1.0", "trainer.max_epochs=8", "logger=none",
        "~callbacks.rich_progress_bar", "~callbacks.lr_monitor", output_dir=tmp_path / "run",
    )  # fmt: skip
    assert cfg.loss.sparse is True and cfg.loss.class_counts == "data" and cfg.loss.in_features == 16
    metrics = train(cfg)
    assert metrics["train/words_per_s"] > 0
    # C = 11 + 1,040 fillers (a uniform guess: ll = -6.96); held out, "the" and "is" are certain from their
    # positions, colour, thing and adjective are 1 of 3, 4, 2: ll = -(log 3 + log 4 + log 2) / 5 = -0.64 at best
    assert metrics["test/ll"] > -2.0 and metrics["test/acc_top5"] > 0.8
    assert json.loads((tmp_path / "run" / "results.json").read_text())["test/perplexity"] == pytest.approx(
        math.exp(-metrics["test/ll"]), rel=1e-5
    )
    new = tmp_path / "new.csv"
    new.write_text("title,body\n,the red coat is nice\n")
    assert predict_main([str(tmp_path / "run"), str(new), "-o", str(tmp_path / "out.csv")]) == 0
    with open(tmp_path / "out.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["word"] for row in rows] == ["the", "red", "coat", "is", "nice"]
    assert rows[0]["prediction"] == "the" and rows[3]["top5"].split()[0] == "is"
