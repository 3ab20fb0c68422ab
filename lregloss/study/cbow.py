"""Hierarchical softmax where it matters: a CBOW language model of the review words, beside gensim.

The recipe ``experiment=reviews_cbow`` (each word predicted from the mean of the vectors of
the +-5 words around it, a vocabulary of every training word) with each output layer, every
seed: full softmax, hsoftmax on the Huffman tree of the word counts and on a balanced tree,
and torch's adaptive softmax. The peer is gensim's ``Word2Vec(sg=0, hs=1, negative=0)`` with the
same window, dimension, vocabulary, epochs and training reviews on the same cores; its
trained vectors and tree are copied into lregloss's layers (`lregloss.study.gensim_cbow`) and
scored by the same code on the same held-out words: mean log-likelihood per word (and
perplexity), top-1 and top-5 accuracy of the centre word (`lregloss.metrics.VocabularyMetrics`).
Speed is training words per second: lregloss's from `TrainingThroughput` (training steps only,
Lightning's loop included), gensim's over its ``train`` call (vocabulary build excluded).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from hydra.utils import instantiate
from matplotlib.figure import Figure
from rich.console import Console

from lregloss.losses import HierarchicalSoftmax
from lregloss.metrics import VocabularyMetrics
from lregloss.models.text import bags
from lregloss.study.gensim_cbow import as_lregloss, train_gensim
from lregloss.study.plots import save
from lregloss.study.runs import compose_config, train_run
from lregloss.study.settings import StudyOutcome, StudySettings
from lregloss.study.summary import format_mean_std, markdown_table, mean_std
from lregloss.tasks import Task, TaskKind

RECIPE = ("experiment=reviews_cbow",)
DENSE_ADAM = ("model.sparse=false", "optimizer=adamw")  # output layers with dense gradients: Adam, not SparseAdam
SETTINGS = {  # row -> overrides of the recipe (hsoftmax on the Huffman tree, SparseAdam, 4,096 words a step)
    "softmax": ("loss=softmax", *DENSE_ADAM),
    "hsoftmax, Huffman tree": (),
    "hsoftmax, balanced tree": ("loss=hsoftmax",),
    "hsoftmax, Huffman tree, SGD": (
        "optimizer=sgd", "optimizer.lr=25", "optimizer.momentum=0", "optimizer.nesterov=false", "data.batch_size=1024",
    ),
    "adaptive softmax": ("loss=adaptive_softmax", "loss.class_counts=data", *DENSE_ADAM),
}
TINY_SETTINGS = ("softmax", "hsoftmax, Huffman tree", "adaptive softmax")
TINY_TRAINING = ("+trainer.limit_train_batches=20",)  # on top of the smoke size's one epoch and two eval batches
GENSIM = "gensim Word2Vec (hs)"
HUFFMAN, SOFTMAX = "hsoftmax, Huffman tree", "softmax"
SPEED_TARGET = 5.0  # hsoftmax (Huffman) words/s over softmax's (issue 16)
LL_TOLERANCE = 0.05  # hsoftmax's held-out log-likelihood within 5% of softmax's
GENSIM_SPEED_TARGET = 0.5  # lregloss's hsoftmax words/s over gensim's
COLUMNS = {  # results key -> column
    "train/words_per_s": "training words/s",
    "test/ll": "test log-likelihood / word",
    "test/perplexity": "test perplexity",
    "test/acc": "test top-1",
    "test/acc_top5": "test top-5",
}
PLOT = "cbow.png"


def run(settings: StudySettings, console: Console) -> StudyOutcome:
    """Train every setting over the seeds, train and score gensim, write the plot; the page's Markdown."""
    labels = TINY_SETTINGS if settings.tiny else tuple(SETTINGS)
    extra = (*settings.training, *(TINY_TRAINING if settings.tiny else ()), *settings.reviews_overrides)
    results: dict[str, list[dict[str, float]]] = {}
    for label in labels:
        results[label] = []
        for seed in settings.seeds:
            slug = label.replace(", ", "_").replace(" ", "_")
            job = train_run(settings.conf_dir, [*RECIPE, *SETTINGS[label], f"seed={seed}", *extra],
                            settings.work_dir / "cbow" / f"{slug}_seed{seed}")  # fmt: skip
            results[label].append(scored(job.results))
            console.print(f"  {label}, seed {seed}: {summary_line(results[label][-1])}", highlight=False)
    config = compose_config(settings.conf_dir, [*RECIPE, *extra], settings.work_dir / "cbow" / "gensim")
    datamodule = instantiate(config.data)
    datamodule.setup("fit")
    epochs = 1 if settings.tiny else int(config.trainer.max_epochs)
    results[GENSIM] = []
    for seed in settings.seeds:
        scores = gensim_scores(datamodule, int(config.model.embed_dim), epochs, seed, settings.tiny)
        results[GENSIM].append(scores)
        console.print(f"  {GENSIM}, seed {seed}: {summary_line(scores)}", highlight=False)
    plot(results, settings.output / PLOT)
    headline = findings(results)
    title = f"Hierarchical softmax on a {len(datamodule.vocabulary):,}-word vocabulary: CBOW on the reviews, beside gensim"
    return StudyOutcome("cbow", title, page(results, datamodule, epochs), [PLOT], headline)


@torch.no_grad()
def held_out_scores(embedding: torch.Tensor, loss: HierarchicalSoftmax, datamodule, split: str = "test",
                    batches: int | None = None) -> dict[str, float]:  # fmt: skip
    """``<split>/ll``, ``/perplexity``, ``/acc``, ``/acc_top5`` of a CBOW model given as its input vectors and output layer.

    The same metrics (`VocabularyMetrics`) on the same windows as lregloss's runs: h = mean of the
    context's input vectors (id 0 left out), then the loss's log-likelihood and top-k.
    """
    metrics = VocabularyMetrics(Task(TaskKind.MULTICLASS, loss.num_classes), loss)
    dataset = datamodule.datasets[split]
    size = datamodule.eval_batch_size or datamodule.batch_size
    for number, start in enumerate(range(0, len(dataset), size)):
        if batches is not None and number >= batches:
            break
        contexts, centres = dataset[start : start + size]
        flat, offsets = bags(contexts)
        features = torch.nn.functional.embedding_bag(flat, embedding, offsets, mode="mean")
        metrics.update(features, centres)
    return {f"{split}/{name}": float(value) for name, value in metrics.compute().items()}


def gensim_scores(datamodule, dimension: int, epochs: int, seed: int, tiny: bool) -> dict[str, float]:
    """Train gensim on the training reviews (2 workers), score it on the test words; its words/s included."""
    sentences = datamodule.split_documents["train"]
    model, seconds = train_gensim(
        sentences, vector_size=dimension, window=datamodule.window, epochs=epochs, seed=seed, words=datamodule.vocabulary
    )
    embedding, loss = as_lregloss(model, datamodule.vocabulary)
    scores = held_out_scores(embedding, loss, datamodule, batches=2 if tiny else None)
    return {**scores, "train/words_per_s": len(datamodule.windows["train"].centres) * epochs / seconds}


def scored(results: dict[str, float]) -> dict[str, float]:
    """A run's results with ``test/ll`` and ``test/perplexity`` from its test loss, the negative log-likelihood
    of every output layer here (also below `lregloss.metrics.LARGE_VOCABULARY` words, where no ``test/ll`` is logged)."""
    return {**results, "test/ll": -results["test/loss"], "test/perplexity": math.exp(results["test/loss"])}


def summary_line(results: dict[str, float]) -> str:
    """words/s, test log-likelihood and top-5 of one run."""
    return (
        f"{results['train/words_per_s']:,.0f} words/s, test ll {results['test/ll']:.3f}, "
        f"top-5 {results['test/acc_top5']:.3f}"
    )


def values(runs: Sequence[dict[str, float]], key: str) -> list[float]:
    return [run[key] for run in runs]


def findings(results: dict[str, list[dict[str, float]]]) -> list[str]:
    """The issue's targets: hsoftmax (Huffman) against softmax (speed, log-likelihood) and against gensim."""
    lines = []
    speed = {label: mean_std(values(runs, "train/words_per_s"))[0] for label, runs in results.items()}
    ll = {label: mean_std(values(runs, "test/ll"))[0] for label, runs in results.items()}
    if HUFFMAN in results and SOFTMAX in results:
        ratio = speed[HUFFMAN] / speed[SOFTMAX]
        gap = (ll[SOFTMAX] - ll[HUFFMAN]) / abs(ll[SOFTMAX])
        lines.append(
            f"hsoftmax (Huffman) trains {ratio:.1f}x as many words/s as softmax (target >= {SPEED_TARGET:g}x: "
            f"{'met' if ratio >= SPEED_TARGET else 'missed'}); its test log-likelihood per word {ll[HUFFMAN]:.3f} is "
            f"{abs(gap):.1%} {'below' if gap > 0 else 'above'} softmax's {ll[SOFTMAX]:.3f} (target: at most {LL_TOLERANCE:.0%} below: "
            f"{'met' if gap <= LL_TOLERANCE else 'missed'})"
        )
    if HUFFMAN in results and GENSIM in results:
        ratio = speed[HUFFMAN] / speed[GENSIM]
        lines.append(
            f"against gensim: {ratio:.2f}x its words/s ({speed[HUFFMAN]:,.0f} against {speed[GENSIM]:,.0f}; target >= "
            f"{GENSIM_SPEED_TARGET}x: {'met' if ratio >= GENSIM_SPEED_TARGET else 'missed'}), test log-likelihood "
            f"{ll[HUFFMAN]:.3f} against {ll[GENSIM]:.3f} ({'equal or better' if ll[HUFFMAN] >= ll[GENSIM] else 'worse'})"
        )
    return lines


def table(results: dict[str, list[dict[str, float]]]) -> str:
    """One row per output layer: each column's mean ± std over seeds."""
    rows = []
    for label, runs in results.items():
        speed, spread = mean_std(values(runs, "train/words_per_s"))
        cells = [f"{speed:,.0f} ± {spread:,.0f}"]
        cells += [format_mean_std(values(runs, key), 1 if key == "test/perplexity" else 3) for key in list(COLUMNS)[1:]]
        rows.append([label, *cells])
    return markdown_table(["output layer", *COLUMNS.values()], rows)


def page(results: dict[str, list[dict[str, float]]], datamodule, epochs: int) -> str:
    """The study's Markdown: setup, table, findings, plot."""
    windows = datamodule.windows
    intro = (
        f"CBOW on the {sum(len(w.centres) for w in windows.values()):,} words of the shipped clothing reviews: "
        f"{len(datamodule.vocabulary):,} classes (every word of the {len(datamodule.split_documents['train']):,} "
        f"training reviews, C), +-{datamodule.window} context words, d = 100, {epochs} epoch(s), split by review as "
        f"the ratings recipe splits them; {len(windows['test'].centres):,} test words scored "
        f"({windows['test'].unknown:,} unseen in training left out). lregloss: `lregloss-train "
        "experiment=reviews_cbow` with each `loss=`: 4,096 words a step, the learning rate falling linearly to "
        "0.4% of its start as word2vec's; hsoftmax with sparse gradients for the word vectors and the nodes on "
        "the batch's paths and SparseAdam (lr 0.01), or SGD (lr 25 on the batch-mean loss, 1,024 words a step, "
        "the fastest update torch has for them); softmax and adaptive softmax, whose output layers take dense "
        "gradients, with AdamW (lr 0.01, no weight decay) and dense word vectors. gensim: "
        "`Word2Vec(sg=0, hs=1, negative=0, cbow_mean=1, sample=0, shrink_windows=False, min_count=1, window=5, "
        "vector_size=100, workers=2)` on the same training reviews, its vectors and Huffman tree copied into "
        "lregloss's layers and scored by the same code. Mean ± std over the seeds; words/s count training only "
        "(lregloss: its training steps with Lightning's loop, data and optimizer; gensim: its `train` call)."
    )
    return "\n\n".join([intro, table(results), *(line + "." for line in findings(results)), f"![Words/s against log-likelihood]({PLOT})"])


def plot(results: dict[str, list[dict[str, float]]], path) -> None:
    """Test log-likelihood per word against training words/s (log scale), mean ± std of each output layer."""
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    axes = figure.subplots()
    for label, runs in results.items():
        (speed, speed_std), (ll, ll_std) = mean_std(values(runs, "train/words_per_s")), mean_std(values(runs, "test/ll"))
        axes.errorbar(speed, ll, xerr=speed_std, yerr=ll_std, marker="o", capsize=3, label=label)
    axes.set(xscale="log", xlabel="training words / s (2 cores)", ylabel="test log-likelihood per word (nats)")
    axes.legend(fontsize="small")
    save(figure, path)
