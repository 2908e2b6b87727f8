"""What the features are worth: a linear probe on them beside PCA of pixels, raw pixels and the majority class."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from aekit.errors import AekitError


@dataclass
class Score:
    """One row of the `aekit classify` table."""

    name: str
    dims: int | None
    accuracy: float
    balanced_accuracy: float
    accuracy_std: float | None = None
    balanced_accuracy_std: float | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"name": self.name, "dims": self.dims, "accuracy": self.accuracy, "accuracy_std": self.accuracy_std,
                "balanced_accuracy": self.balanced_accuracy, "balanced_accuracy_std": self.balanced_accuracy_std,
                "notes": self.notes}


def linear_probe(max_iter: int = 5000, C: float = 1.0, pca: int | None = None, seed: int = 0):
    """StandardScaler -> LogisticRegression (after PCA to `pca` dimensions, when given)."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [PCA(n_components=pca, random_state=seed)] if pca else []
    return make_pipeline(*steps, StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))


def majority():
    from sklearn.dummy import DummyClassifier

    return DummyClassifier(strategy="most_frequent")


def cross_validated(estimator, X, y, cv: int, seed: int, n_jobs: int = 1) -> tuple[dict, list[str]]:
    """Stratified k-fold accuracy and balanced accuracy (mean, std); notes on convergence."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, cross_validate

    splitter = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        result = cross_validate(estimator, X, y, cv=splitter, scoring=("accuracy", "balanced_accuracy"), n_jobs=n_jobs)
    notes = ["did not converge in some folds; raise --max-iter"] if any(issubclass(w.category, ConvergenceWarning) for w in caught) else []
    return {"accuracy": (float(result["test_accuracy"].mean()), float(result["test_accuracy"].std())),
            "balanced_accuracy": (float(result["test_balanced_accuracy"].mean()), float(result["test_balanced_accuracy"].std()))}, notes


def held_out(estimator, X, y, X_test, y_test) -> tuple[dict, list[str]]:
    """Fit on (X, y), score on (X_test, y_test)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore", UserWarning)  # balanced accuracy with classes missing from the test set
        warnings.simplefilter("always", ConvergenceWarning)  # (a UserWarning: this filter must come last)
        predicted = estimator.fit(X, y).predict(X_test)
        balanced = balanced_accuracy_score(y_test, predicted)
    notes = ["did not converge; raise --max-iter"] if any(issubclass(w.category, ConvergenceWarning) for w in caught) else []
    return {"accuracy": (float(accuracy_score(y_test, predicted)), None), "balanced_accuracy": (float(balanced), None)}, notes


def check_label(y: np.ndarray, label: str, cv: int | None) -> None:
    """Refuse labels that cannot be classified (one class, or classes too small for the folds)."""
    values, counts = np.unique(y, return_counts=True)
    if len(values) < 2:
        raise AekitError(f"label {label!r} has a single class ({values[0] if len(values) else 'no known values'}); nothing to classify")
    if cv is not None and counts.min() < cv:
        raise AekitError(f"label {label!r}: class {values[counts.argmin()]} has only {counts.min()} image(s), "
                         f"fewer than --cv {cv}; lower --cv")


def pixels(source, size: int, count: int, progress: bool) -> np.ndarray:
    """(count, size*size*3) float32 pixels in [0, 1] of a source aligned with the features' rows."""
    from aekit.data import iter_batches

    out = np.empty((count, size * size * 3), dtype=np.float32)
    skipped, seen = [], 0
    for batch in iter_batches(source, size, 256, skipped, progress, "reading pixels"):
        out[batch.indices] = batch.images.reshape(len(batch.images), -1) / np.float32(255.0)
        seen += len(batch.indices)
    if skipped or seen != count:
        raise AekitError(f"{len(skipped) or count - seen} image(s) could not be read again (e.g. {skipped[0] if skipped else '?'})")
    return out


def table(scores: list[Score], held_out_mode: bool) -> list[str]:
    """The printed table."""
    def cell(mean, std):
        return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"

    rows = [("features", "dims", "accuracy", "balanced accuracy")]
    for s in scores:
        rows.append((s.name, "-" if s.dims is None else str(s.dims), cell(s.accuracy, s.accuracy_std),
                     cell(s.balanced_accuracy, s.balanced_accuracy_std)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(r[i].ljust(widths[i]) if i == 0 else r[i].rjust(widths[i]) for i in range(4)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for s in scores:
        for note in s.notes:
            lines.append(f"note: {s.name}: {note}")
    return lines


def label_values(feats, label):
    """(known-row mask, y) of a features file's `label`, with class names where the label has them."""
    codes = feats.target(label)
    values = feats.target(label, as_names=True) if label in feats.classes else codes
    return codes >= 0, values


def baseline_pixels(feats, images, keep, size: int, quiet: bool, what: str,
                    align: str | None = None) -> tuple[np.ndarray | None, str | None]:
    """The `keep` rows of the pixels behind `feats` (at `images` when given), or (None, why not).

    Images found where `aekit embed` read them but unreadable now skip the baselines; given ones raise.
    Rows that are faces of photos are their faces, aligned again (`align`: ``lookup.rows_source``).
    """
    from .lookup import images_for

    source, why = images_for(feats, images, align)
    if source is None:
        return None, f"pixel baselines skipped for {what}: {why}"
    try:
        return pixels(source, size, len(feats), not quiet)[keep], None
    except AekitError as exc:
        if images:
            raise
        return None, f"pixel baselines skipped for {what}: {exc}"
