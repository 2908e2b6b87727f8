"""Clustering methods for ``aekit cluster`` (a small registry of its own) and the contact sheet.

A method is ``function(X, k, seed) -> (N,) int cluster ids in 0..k-1``; add one with
``register_cluster_method(name, function, help)`` (the core's registry kinds are fixed, so the
plugin keeps this dict itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from aekit.errors import AekitError

AGGLOMERATIVE_LIMIT = 20_000  # Ward's method needs O(N^2) memory


@dataclass(frozen=True)
class ClusterMethod:
    name: str
    function: Callable[[np.ndarray, int, int], np.ndarray]
    help: str = ""


CLUSTER_METHODS: dict[str, ClusterMethod] = {}


def register_cluster_method(name: str, function, help: str = "") -> None:
    """Add a clustering method for ``aekit cluster --method NAME``; names are unique."""
    if name in CLUSTER_METHODS:
        raise AekitError(f"cluster method {name!r} is already registered")
    CLUSTER_METHODS[name] = ClusterMethod(name, function, help)


def _kmeans(X, k, seed):
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(X)


def _minibatch_kmeans(X, k, seed):
    from sklearn.cluster import MiniBatchKMeans

    return MiniBatchKMeans(n_clusters=k, n_init=3, random_state=seed, batch_size=2048).fit_predict(X)


def _agglomerative(X, k, seed):
    from sklearn.cluster import AgglomerativeClustering

    if len(X) > AGGLOMERATIVE_LIMIT:
        raise AekitError(f"--method agglomerative needs memory quadratic in the number of images; "
                         f"{len(X)} is over {AGGLOMERATIVE_LIMIT}: use kmeans or minibatch-kmeans")
    return AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(X)


def _gmm(X, k, seed):
    from sklearn.mixture import GaussianMixture

    return GaussianMixture(n_components=k, covariance_type="diag", random_state=seed, reg_covar=1e-4).fit_predict(X)


register_cluster_method("kmeans", _kmeans, "k-means (k-means++ starts, best of 4)")
register_cluster_method("minibatch-kmeans", _minibatch_kmeans, "mini-batch k-means: much faster on 100,000+ images")
register_cluster_method("agglomerative", _agglomerative, f"Ward agglomerative clustering (up to {AGGLOMERATIVE_LIMIT:,} images)")
register_cluster_method("gmm", _gmm, "a diagonal-covariance Gaussian mixture")


def cluster(X: np.ndarray, k: int, method: str = "kmeans", seed: int = 0, standardize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(cluster ids (N,), the matrix that was clustered)."""
    if method not in CLUSTER_METHODS:
        raise AekitError(f"unknown cluster method {method!r} (known: {', '.join(CLUSTER_METHODS)})")
    if k < 2:
        raise AekitError(f"--k must be at least 2 (got {k})")
    if k > len(X):
        raise AekitError(f"--k {k} is more than the {len(X)} images")
    if standardize:
        from sklearn.preprocessing import StandardScaler

        X = StandardScaler().fit_transform(X).astype(np.float32)
    labels = np.asarray(CLUSTER_METHODS[method].function(X, k, seed), dtype=np.int64)
    if labels.shape != (len(X),):
        raise AekitError(f"cluster method {method!r} returned {labels.shape} ids for {len(X)} images")
    return labels, X


def representatives(X: np.ndarray, labels: np.ndarray, per_cluster: int) -> dict[int, np.ndarray]:
    """For each cluster, the indices of up to `per_cluster` members closest to its mean (most typical first)."""
    out = {}
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        centre = X[members].mean(axis=0)
        distance = ((X[members] - centre) ** 2).sum(axis=1)
        out[int(c)] = members[np.argsort(distance, kind="stable")[:per_cluster]]
    return out


def silhouette(X: np.ndarray, labels: np.ndarray, seed: int = 0) -> float | None:
    """The silhouette score (on a sample of at most 5,000 images), None when undefined."""
    from sklearn.metrics import silhouette_score

    if len(np.unique(labels)) < 2 or len(np.unique(labels)) >= len(X):
        return None
    return float(silhouette_score(X, labels, sample_size=min(len(X), 5000), random_state=seed))


def read_clusters_csv(path, paths: list[str]) -> np.ndarray:
    """Cluster ids from an `aekit cluster` CSV, aligned with `paths` (every path must be in it)."""
    import csv
    from pathlib import Path

    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except FileNotFoundError:
        raise AekitError(f"{path}: no such clusters file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AekitError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    if not rows or [h.strip() for h in rows[0][:2]] != ["path", "cluster"]:
        raise AekitError(f"{path}: not a clusters CSV from `aekit cluster` (expected the header path,cluster)")
    table = {}
    for row in rows[1:]:
        if len(row) >= 2:
            try:
                table[row[0]] = int(row[1])
            except ValueError:
                raise AekitError(f"{path}: cluster {row[1]!r} of {row[0]!r} is not an integer") from None
    missing = [p for p in paths if p not in table]
    if missing:
        raise AekitError(f"{path}: {len(missing)} of the {len(paths)} images have no cluster (e.g. {missing[0]}); "
                         "run `aekit cluster` on the same features file")
    return np.asarray([table[p] for p in paths], dtype=np.int64)
