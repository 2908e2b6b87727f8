"""The `embed` part of `aekit demo`: a linear probe per attribute on the latents, and k-means clusters."""

from __future__ import annotations

import warnings

import numpy as np


def _probe(X, y, X_test, y_test, max_iter):
    from sklearn.exceptions import ConvergenceWarning

    from .evaluate import linear_probe

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = linear_probe(max_iter=max_iter).fit(X, y)
    return float((model.predict(X_test) == y_test).mean())


def run(ctx):
    from aekit.demo import DemoSection

    from .cluster import cluster, representatives

    limit = 512 if ctx.quick else 2000
    train_images = np.asarray(ctx.train_images[:limit])
    X, X_test = ctx.encode(train_images), ctx.encode(ctx.images)
    pixels = train_images.reshape(len(train_images), -1).astype(np.float32) / 255.0
    pixels_test = np.asarray(ctx.images).reshape(len(ctx.images), -1).astype(np.float32) / 255.0
    dims = X.shape[1]
    from sklearn.decomposition import PCA

    pca = PCA(n_components=min(dims, len(pixels) - 1), random_state=ctx.seed, svd_solver="randomized").fit(pixels)
    P, P_test = pca.transform(pixels), pca.transform(pixels_test)
    max_iter = 300 if ctx.quick else 2000
    rows, gains = [], []
    for name, y_all in ctx.train_labels.items():
        y = np.asarray(y_all)[:limit]
        y_test = np.asarray(ctx.labels.get(name, []))
        if len(y_test) != len(X_test) or len(np.unique(y)) < 2:
            continue
        majority = float((y_test == np.bincount(y).argmax()).mean())
        latent_acc = _probe(X, y, X_test, y_test, max_iter)
        pca_acc = _probe(P, y, P_test, y_test, max_iter)
        rows.append([name, f"{latent_acc:.3f}", f"{pca_acc:.3f}", f"{majority:.3f}"])
        gains.append(latent_acc - majority)
    tables = [(f"Held-out accuracy of a linear probe (StandardScaler + LogisticRegression) trained on {len(X)} faces, "
               f"scored on {len(X_test)} others",
               ["attribute", f"latents ({dims}-d)", f"PCA of pixels ({P.shape[1]}-d)", "majority class"], rows)]

    # k-means clusters of the held-out latents, with the most typical faces of each
    k = 4 if ctx.quick else 6
    labels, Z = cluster(X_test, k, method="kmeans", seed=ctx.seed)
    typical = representatives(Z, labels, 8)
    order = sorted(typical, key=lambda c: -int((labels == c).sum()))
    pictures = ctx.hwc(ctx.images)
    grid = ctx.save_grid("clusters.png", [pictures[typical[c]] for c in order],
                         [f"cluster {c} ({int((labels == c).sum())})" for c in order],
                         title=f"k-means, k={k}, on the held-out latents: the most typical faces of each cluster")
    cluster_rows = []
    for c in order:
        members = labels == c
        traits = []
        for name, values in ctx.labels.items():
            values = np.asarray(values)
            if len(values) == len(labels):
                inside, overall = values[members].mean(), values.mean()
                traits.append((abs(inside - overall), f"{name} {inside:.0%} (all: {overall:.0%})"))
        traits.sort(key=lambda t: -t[0])
        cluster_rows.append([f"cluster {c}", int(members.sum()), "; ".join(t for _, t in traits[:2])])
    tables.append(("What sets each cluster apart: its two attributes furthest from the overall rate",
                   ["cluster", "faces", "attributes"], cluster_rows))
    best = rows[int(np.argmax(gains))][0] if rows else None
    text = (f"The {dims}-d latents are features for scikit-learn. A linear probe on them predicts each attribute of "
            f"faces it never saw; the table sets it beside the same probe on {P.shape[1]} principal components of the raw "
            f"pixels and the majority-class guess"
            + (f" (the latents gain most over the guess on {best})" if best else "") + ". "
            f"k-means on the latents groups faces that look alike without any labels.\n\nFrom the command line:\n\n"
            f"`aekit embed faces/ --model {ctx.model_dir} --out feats.npz`, `aekit classify feats.npz --label Smiling` and "
            f"`aekit cluster feats.npz --k {k} --out clusters.csv --sheet clusters.png`; in Python, "
            f"`AutoencoderEmbedder` is a scikit-learn transformer for a `Pipeline`.")
    return DemoSection(title="Embed: features for scikit-learn, a linear probe and clusters", text=text,
                       images=[(grid, "one row per k-means cluster (size in brackets), its 8 faces nearest the centre")],
                       tables=tables)
