"""Reference numbers for the multi-label recipes: scikit-learn's MLPClassifier and one-vs-rest logistic regression.

Both are fitted with scikit-learn's defaults (MLPClassifier: one hidden layer of 100 ReLU
units, Adam, up to 200 epochs; LogisticRegression: L2, C=1, with max_iter raised to 5000 so
that it converges) on the features that ``MultilabelDataModule`` gives (standardized on the
training split unless ``--raw``), once on its training split and once on the whole training
file (training + validation split, as the literature fits), and scored on the validation
split and on the test file with the metrics lregloss logs: hamming loss, subset accuracy,
micro and macro F1. Needs scikit-learn (``pip install -e '.[dev]'``).

    python scripts/baseline_scene.py                  # scene, split seed 0
    python scripts/baseline_scene.py --name yeast --raw
    python scripts/baseline_scene.py --train-path my-train.csv --test-path my-test.csv   # scene's layout
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, hamming_loss
from sklearn.multiclass import OneVsRestClassifier
from sklearn.neural_network import MLPClassifier

from lregloss.data.multilabel import BENCHMARKS, MultilabelDataModule


def scores(true: np.ndarray, predicted: np.ndarray) -> tuple[float, float, float, float]:
    """Hamming loss, subset accuracy, micro F1 and macro F1 of a (N, A) {0,1} prediction."""
    return (
        hamming_loss(true, predicted),
        accuracy_score(true, predicted),
        f1_score(true, predicted, average="micro", zero_division=0),
        f1_score(true, predicted, average="macro", zero_division=0),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="scene", choices=sorted(BENCHMARKS), help="the benchmark")
    parser.add_argument("--seed", type=int, default=0, help="validation split seed of MultilabelDataModule")
    parser.add_argument("--raw", action="store_true", help="fit on the raw features instead of standardized ones")
    parser.add_argument("--train-path", default=None, help="your own training file of the benchmark's layout")
    parser.add_argument("--test-path", default=None, help="your own test file, with --train-path")
    args = parser.parse_args(argv)

    data = MultilabelDataModule(
        name=args.name, train_path=args.train_path, test_path=args.test_path, seed=args.seed, standardize=not args.raw
    )
    data.setup("fit")
    features = {part: dataset.tensors[0].numpy() for part, dataset in data.datasets.items()}
    labels = {part: dataset.tensors[1].numpy() for part, dataset in data.datasets.items()}
    print(f"rows: train {len(labels['train'])}, val {len(labels['val'])}, test {len(labels['test'])}")
    fit_sets = {
        "train split": (features["train"], labels["train"]),
        "train + val": (
            np.concatenate([features["train"], features["val"]]),
            np.concatenate([labels["train"], labels["val"]]),
        ),
    }
    models = {
        "MLPClassifier": lambda: MLPClassifier(random_state=0),
        "OvR logistic": lambda: OneVsRestClassifier(LogisticRegression(max_iter=5000)),
    }

    header = ("model", "fit on", "val ham", "test ham", "subset", "F1 mic", "F1 mac", "fit s")
    print("{:<14} {:<12} {:>8} {:>8} {:>7} {:>7} {:>7} {:>6}".format(*header))
    for model_name, build in models.items():
        for fit_name, (inputs, targets) in fit_sets.items():
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # the default 200 epochs, as published
                model = build().fit(inputs, targets)
            seconds = time.perf_counter() - started
            # Validation rows are part of the second fit, so its validation score says nothing.
            val_hamming = hamming_loss(labels["val"], model.predict(features["val"]))
            val_text = f"{val_hamming:>8.4f}" if fit_name == "train split" else f"{'-':>8}"
            test = scores(labels["test"], model.predict(features["test"]))
            values = " ".join(f"{value:>{width}.4f}" for value, width in zip(test, (8, 7, 7, 7)))
            print(f"{model_name:<14} {fit_name:<12} {val_text} {values} {seconds:>6.1f}")


if __name__ == "__main__":
    main()
