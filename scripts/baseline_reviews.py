"""Reference numbers for the reviews recipe: TF-IDF (1-2 grams) + logistic regression.

Fits on the training split of the reviews recipe's data (``data=reviews``) and reports accuracy and mean absolute
error (in stars) on its validation and test splits, so the numbers compare directly with
a trained lregloss model. Each C (inverse L2 strength) is fitted; the one with the best
validation accuracy is marked. Needs scikit-learn (``pip install -e '.[dev]'``).

    python scripts/baseline_reviews.py                 # shipped data, split seed 0
    python scripts/baseline_reviews.py --C 1 --path my_reviews.csv
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from lregloss.app.recipes import recipe_data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default=None, help="review CSV (default: the shipped data)")
    parser.add_argument("--seed", type=int, default=0, help="split seed of the reviews recipe (data.seed)")
    parser.add_argument("--C", type=float, nargs="+", default=[1.0, 3.0, 10.0], help="inverse L2 strengths to fit")
    args = parser.parse_args(argv)

    data = recipe_data("reviews", path=args.path, seed=args.seed)
    data.setup("fit")
    levels = data.labels.numpy()
    splits = {name: rows.numpy() for name, rows in data.split_indices.items()}
    texts = {name: [data.texts[i] for i in rows] for name, rows in splits.items()}
    print(f"rows: train {len(splits['train'])}, val {len(splits['val'])}, test {len(splits['test'])}")

    # scikit-learn's own tokenizer (words of 2+ characters), as the usual baseline is run.
    vectorizer = TfidfVectorizer(ngram_range=(1, 2))
    features = {"train": vectorizer.fit_transform(texts["train"])}
    features.update({name: vectorizer.transform(texts[name]) for name in ("val", "test")})
    print(f"tf-idf features: {features['train'].shape[1]}")

    results = []
    for c in args.C:
        started = time.perf_counter()
        classifier = LogisticRegression(C=c, max_iter=3000).fit(features["train"], levels[splits["train"]])
        scores = []
        for name in ("val", "test"):
            predicted = classifier.predict(features[name])
            true = levels[splits[name]]
            scores += [float(np.mean(predicted == true)), float(np.mean(np.abs(predicted - true)))]
        results.append((c, *scores, time.perf_counter() - started))
    best = max(results, key=lambda result: result[1])
    print(f"{'C':>6} {'val acc':>8} {'val MAE':>8} {'test acc':>8} {'test MAE':>8} {'fit s':>6}")
    for result in results:
        mark = "  <- best val acc" if result is best else ""
        print("{:>6g} {:>8.4f} {:>8.4f} {:>8.4f} {:>8.4f} {:>6.1f}".format(*result) + mark)


if __name__ == "__main__":
    main()
