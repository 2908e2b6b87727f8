"""Face search: does a changed copy of a face find its original, and how fast is search at 100k faces?

    python benchmarks/face_search.py                     # faces-64 on celeba-10k's 1,000 test faces
    python benchmarks/face_search.py --rows 100000 --queries 100

Recall@1: the index holds the 1,000 celeba-10k test faces (never trained on); each query is one of
them changed (mirrored left-right; gaussian noise of sigma 0.1 on the [0, 1] scale; both), and a hit
is the query's own original ranked first. Searched exactly as ``aekit similar`` does (standardised
features, cosine similarity; ``aekit_embed.search.FaceIndex``) for every feature set of the model,
PCA-128 of the pixels (fitted on the 9,000 training faces) and the raw pixels.

Latency: random vectors as wide as the latent and the default feature set, ``--rows`` of them, ``--queries`` queries
at once, exact search with numpy (and faiss when installed), best of three.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "data" / "celeba-10k" / "images"


def changed(images: np.ndarray, how: str, seed: int = 0) -> np.ndarray:
    """(N, 3, S, S) uint8 images mirrored and/or with gaussian noise of sigma 0.1."""
    out = images[..., ::-1] if "flip" in how else images
    if "noise" in how:
        noisy = out.astype(np.float32) + np.random.default_rng(seed).normal(0, 0.1 * 255, out.shape)
        out = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out)


def recall_at_1(index_X: np.ndarray, query_X: np.ndarray) -> float:
    from aekit_embed.search import FaceIndex

    rows, _ = FaceIndex(index_X, "numpy").search(query_X, 1)
    return float((rows[:, 0] == np.arange(len(query_X))).mean())


def main():
    import aekit
    from aekit import feature_sets
    from aekit.data import prepare
    from aekit_embed.search import FaceIndex, faiss_available

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=str(IMAGES))
    parser.add_argument("--model", default="faces-64")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    test = np.asarray(prepare(f"{args.images}[9000:]", 64, progress=False).images)
    train = np.asarray(prepare(f"{args.images}[:9000]", 64, progress=False).images)
    model = aekit.load(args.model).eval()
    changes = ("flip", "noise", "flip+noise")
    queries = {how: changed(test, how) for how in changes}

    rows = []
    nhwc = lambda images: images.transpose(0, 2, 3, 1)  # noqa: E731  (prepare gives NCHW; models take NHWC uint8)
    for kind in feature_sets.names():
        index_X = model.features(nhwc(test), kind).numpy()
        rows.append((f"{args.model} `{kind}`", index_X.shape[1],
                     [recall_at_1(index_X, model.features(nhwc(queries[how]), kind).numpy()) for how in changes]))
    from sklearn.decomposition import PCA

    pca = PCA(n_components=128, random_state=0).fit(train.reshape(len(train), -1).astype(np.float32))
    flat = lambda images: images.reshape(len(images), -1).astype(np.float32)  # noqa: E731
    rows.append(("PCA-128 of the pixels", 128,
                 [recall_at_1(pca.transform(flat(test)), pca.transform(flat(queries[how]))) for how in changes]))
    rows.append(("raw pixels", test[0].size, [recall_at_1(flat(test), flat(queries[how])) for how in changes]))

    print(f"\n{len(test)} celeba-10k test faces; torch {torch.__version__}, {os.cpu_count()} CPU(s), {platform.machine()}\n")
    print("| features | dims | recall@1, mirrored | gaussian 0.1 | mirrored + noise |")
    print("|---|---:|---:|---:|---:|")
    for label, dims, recalls in rows:
        print(f"| {label} | {dims} | " + " | ".join(f"{r:.3f}" for r in recalls) + " |")

    rng = np.random.default_rng(0)
    print(f"\n| search of {args.rows:,} vectors, {args.queries} queries at once, k=8 | dims | build (s) | ms per query |")
    print("|---|---:|---:|---:|")
    for dims in sorted({feature_sets.dimension(model, "latent"), feature_sets.dimension(model, feature_sets.DEFAULT)}):
        X = rng.normal(size=(args.rows, dims)).astype(np.float32)
        Q = rng.normal(size=(args.queries, dims)).astype(np.float32)
        for engine in ("numpy", "faiss") if faiss_available() else ("numpy",):
            t0 = time.perf_counter()
            index = FaceIndex(X, engine)
            build = time.perf_counter() - t0
            best = min(_timed(index, Q) for _ in range(3))
            print(f"| exact, {engine} | {dims} | {build:.2f} | {1000 * best / len(Q):.2f} |")


def _timed(index, Q) -> float:
    t0 = time.perf_counter()
    index.search(Q, 8)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
