"""scikit-learn's logistic regression on TF-IDF 1-2 grams of the reviews' own split: the reference point."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from lregloss.data.labelled_text import TextDataModule

L1_C = 2.0  # inverse strength; the best validation accuracy of C = 1, 2, 3, 5
L2_C = 3.0  # the best validation accuracy of C = 1, 3, 10 (scripts/baseline_reviews.py)
SAGA_TOLERANCE = 1e-3  # stopping tolerance; scikit-learn's 1e-4 takes 3-5x longer for the same accuracy to 3 digits
# scikit-learn 1.8 deprecated ``penalty="l1"`` for ``l1_ratio=1``, which earlier versions ignore without it.
L1_PENALTY = (
    {"penalty": "l1"} if tuple(int(part) for part in sklearn.__version__.split(".")[:2]) < (1, 8) else {"l1_ratio": 1.0}
)


@dataclass(frozen=True)
class ReferenceFit:
    """One fitted reference: its name, accuracies, share of exact-zero coefficients, features, seconds."""

    name: str
    val_acc: float
    test_acc: float
    zero_fraction: float
    features: int
    seconds: float


def reference_fits(data: TextDataModule) -> list[ReferenceFit]:
    """L1 (saga) and L2 (lbfgs) multinomial logistic regression on TF-IDF (1-2 grams) of ``data``'s split.

    ``data`` must be set up. The vectorizer is scikit-learn's own (words of 2+ characters,
    every 1-2 gram of the training split), as the usual baseline is run.
    """
    rows = {name: data.split_indices[name].tolist() for name in ("train", "val", "test")}
    levels = data.labels.numpy()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2))
    features = {"train": vectorizer.fit_transform([data.texts[i] for i in rows["train"]])}
    features.update({name: vectorizer.transform([data.texts[i] for i in rows[name]]) for name in ("val", "test")})
    models = {
        f"scikit-learn L1, saga, C={L1_C:g}": LogisticRegression(
            C=L1_C, solver="saga", max_iter=1000, tol=SAGA_TOLERANCE, random_state=0, **L1_PENALTY
        ),
        f"scikit-learn L2, lbfgs, C={L2_C:g}": LogisticRegression(C=L2_C, max_iter=3000),  # L2 is the default
    }
    fits = []
    for name, model in models.items():
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # smoke-size data; the full fit converges
            model.fit(features["train"], levels[rows["train"]])
        seconds = time.perf_counter() - started
        accuracy = {
            split: float(np.mean(model.predict(features[split]) == levels[rows[split]])) for split in ("val", "test")
        }
        zeros = float(np.mean(model.coef_ == 0))
        fits.append(ReferenceFit(name, accuracy["val"], accuracy["test"], zeros, features["train"].shape[1], seconds))
    return fits
