"""The feature table: a linear probe (standardised LogisticRegression) per binary label, trained on the
training split's features and scored on the evaluation images."""

from __future__ import annotations

import warnings

import numpy as np
from tqdm.auto import tqdm

from aekit.errors import AekitError

# raw pixels are slow to probe (12,288 values a face): only on a few labels, these first when present
PIXEL_LABELS_FIRST = ("Male", "Smiling", "Eyeglasses", "Young", "Blond_Hair")
PIXEL_MAX_ITER = 100


def read_labels(attributes: dict, names: list[str], labels_csv=None) -> dict[str, np.ndarray]:
    """Label columns (int64, -1 unknown) aligned with `names`: from a CSV keyed by file name, else the source's own."""
    from aekit_embed.labels import read_label_csv, source_labels

    if labels_csv:
        columns, _classes, _unmatched = read_label_csv(labels_csv, names)
        return columns
    columns, _dropped = source_labels(attributes, list(range(len(names))))
    return columns


def binary_labels(train: dict[str, np.ndarray], test: dict[str, np.ndarray]) -> tuple[list[str], dict[str, str]]:
    """The labels usable for a probe (0/1 values, both classes in the training split); reasons for the rest."""
    usable, skipped = [], {}
    for name, y_test in test.items():
        if name not in train:
            skipped[name] = "not labelled in the training split"
            continue
        y = train[name]
        known, known_test = y[y >= 0], y_test[y_test >= 0]
        values = set(np.unique(known).tolist()) | set(np.unique(known_test).tolist())
        if not values <= {0, 1}:
            skipped[name] = f"not binary (values {sorted(values)[:6]})"
        elif len(np.unique(known)) < 2:
            skipped[name] = "a single class in the training split"
        elif not len(known_test):
            skipped[name] = "no known value in the evaluation images"
        else:
            usable.append(name)
    return usable, skipped


def pixel_label_subset(labels: list[str], count: int) -> list[str]:
    """The labels raw pixels are probed on: the usual CelebA ones first, then in order."""
    first = [n for n in PIXEL_LABELS_FIRST if n in labels]
    return (first + [n for n in labels if n not in first])[:count]


def _score(estimator, X, y, X_test, y_test) -> tuple[float, float, bool]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import balanced_accuracy_score

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", ConvergenceWarning)
        predicted = estimator.fit(X, y).predict(X_test)
        balanced = balanced_accuracy_score(y_test, predicted)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return float((predicted == y_test).mean()), float(balanced), converged


def probe_table(features: list[tuple[str, int, np.ndarray, np.ndarray, list[str] | None]], y_train: dict, y_test: dict,
                labels: list[str], subset: list[str] | None = None, progress: bool = False) -> list[dict]:
    """One row per feature set: (name, dims, X_train, X_test, labels or None for all); plus the majority class.

    With `subset` (the labels raw pixels ran on), every row also gets its mean over those labels.
    """
    from sklearn.metrics import balanced_accuracy_score

    from aekit_embed.evaluate import linear_probe

    rows = []
    for name, dims, X, X_test, only in features:
        wanted = labels if only is None else [n for n in labels if n in only]
        per_label, not_converged = {}, []
        iterations = PIXEL_MAX_ITER if only is not None else 5000
        for label in tqdm(wanted, desc=f"probe: {name}", unit="label", disable=not progress, leave=False):
            train_rows, test_rows = y_train[label] >= 0, y_test[label] >= 0
            accuracy, balanced, converged = _score(linear_probe(max_iter=iterations), X[train_rows], y_train[label][train_rows],
                                                   X_test[test_rows], y_test[label][test_rows])
            per_label[label] = {"accuracy": accuracy, "balanced_accuracy": balanced}
            if not converged:
                not_converged.append(label)
        notes = []
        if only is not None:
            notes.append(f"LogisticRegression stopped after {PIXEL_MAX_ITER} iterations (raw pixels are slow); "
                         f"{len(wanted)} of {len(labels)} labels")
        if not_converged and only is None:
            notes.append(f"did not converge on {len(not_converged)} label(s): {', '.join(not_converged[:5])}")
        rows.append(_row(name, dims, per_label, notes))
    per_label = {}
    for label in labels:
        train_known, test_known = y_train[label][y_train[label] >= 0], y_test[label][y_test[label] >= 0]
        predicted = np.full(len(test_known), int(np.bincount(train_known).argmax()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a class missing from the evaluation images
            balanced = balanced_accuracy_score(test_known, predicted)
        per_label[label] = {"accuracy": float((test_known == predicted).mean()), "balanced_accuracy": float(balanced)}
    rows.append(_row("majority class", None, per_label, []))
    if subset:
        for row in rows:
            scored = [row["per_label"][n]["accuracy"] for n in subset if n in row["per_label"]]
            row["mean_accuracy_pixel_labels"] = float(np.mean(scored)) if len(scored) == len(subset) else None
    return rows


def _row(name, dims, per_label, notes) -> dict:
    if not per_label:
        raise AekitError(f"feature table: no label scored for {name}")
    return {"method": name, "dims": dims, "labels": len(per_label),
            "mean_accuracy": float(np.mean([v["accuracy"] for v in per_label.values()])),
            "mean_balanced_accuracy": float(np.mean([v["balanced_accuracy"] for v in per_label.values()])),
            "per_label": per_label, "notes": notes}
