"""Which features are worth a linear probe: every feature set of aekit's models beside PCA and raw pixels.

    python benchmarks/feature_sets.py                                  # faces-64 and faces-64-denoise
    python benchmarks/feature_sets.py --models faces-64 --sets latent,multiscale --C 0.1

On celeba-10k (trained on images 1-9000, scored on 9001-10000, never trained on): for each model and
feature set (``model.features(images, kind=SET)``), a standardised LogisticRegression per attribute
(40 CelebA attributes, one inverse regularisation ``--C`` for every row), fitted on the 9,000 training
faces and scored on the 1,000 test faces. Baselines on the same split: PCA-128 of the 64x64 pixels,
PCA with as many components as the default feature set, and the raw pixels (12,288 values; for the
named attributes only, since it is slow). Prints a Markdown table: accuracy for five named attributes
and the mean over all 40.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "celeba-10k"
NAMED = ("Male", "Smiling", "Eyeglasses", "Young", "Blond_Hair")


def labels_for(names, csv_path) -> tuple[list[str], np.ndarray]:
    with open(csv_path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, table = rows[0][1:], {r[0]: [int(v) > 0 for v in r[1:]] for r in rows[1:]}
    return header, np.array([table[os.path.basename(n)] for n in names], dtype=np.int64)


def probe(train_X, train_y, test_X, test_y, C: float, columns) -> dict[int, float]:
    """Test accuracy of a standardised logistic regression per label column."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_X)
    A, B = scaler.transform(train_X), scaler.transform(test_X)
    scores = {}
    for j in columns:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lbfgs may stop at max_iter on the widest sets
            clf = LogisticRegression(C=C, max_iter=300).fit(A, train_y[:, j])
        scores[j] = float((clf.predict(B) == test_y[:, j]).mean())
    return scores


def main():
    import aekit
    from aekit import feature_sets
    from aekit.data import prepare

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA), help="celeba-10k: images/ and attributes.csv")
    parser.add_argument("--models", default="faces-64,faces-64-denoise")
    parser.add_argument("--sets", default=None, help="feature sets (default: every registered one)")
    parser.add_argument("--C", type=float, default=0.1, help="LogisticRegression's C for every row")
    parser.add_argument("--no-pixels", action="store_true", help="leave out the raw-pixel row (slow)")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    images = Path(args.data) / "images"
    train = prepare(f"{images}[:9000]", 64, progress=False)
    test = prepare(f"{images}[9000:]", 64, progress=False)
    header, train_y = labels_for(train.names, Path(args.data) / "attributes.csv")
    _, test_y = labels_for(test.names, Path(args.data) / "attributes.csv")
    every, named = range(len(header)), [header.index(n) for n in NAMED]
    sets = args.sets.split(",") if args.sets else feature_sets.names()
    rows = []  # (label, dims, scores, seconds)

    for name in args.models.split(","):
        model = aekit.load(name).eval()
        for kind in sets:
            t0 = time.perf_counter()
            A = model.features(np.asarray(train.images).transpose(0, 2, 3, 1), kind).numpy()  # NCHW -> NHWC
            B = model.features(np.asarray(test.images).transpose(0, 2, 3, 1), kind).numpy()
            scores = probe(A, train_y, B, test_y, args.C, every)
            rows.append((f"{name} `{kind}`", A.shape[1], scores, time.perf_counter() - t0))
            print(f"  {rows[-1][0]}: {np.mean(list(scores.values())):.3f}", flush=True)

    pixels_train = np.asarray(train.images, dtype=np.float32).reshape(len(train), -1) / 255
    pixels_test = np.asarray(test.images, dtype=np.float32).reshape(len(test), -1) / 255
    from sklearn.decomposition import PCA

    default_dims = feature_sets.dimension(aekit.load(args.models.split(",")[0]), feature_sets.DEFAULT)
    for dims in sorted({128, default_dims}):
        t0 = time.perf_counter()
        pca = PCA(n_components=dims, random_state=0).fit(pixels_train)
        scores = probe(pca.transform(pixels_train), train_y, pca.transform(pixels_test), test_y, args.C, every)
        rows.append((f"PCA-{dims} of the pixels", dims, scores, time.perf_counter() - t0))
        print(f"  {rows[-1][0]}: {np.mean(list(scores.values())):.3f}", flush=True)
    if not args.no_pixels:
        t0 = time.perf_counter()
        scores = probe(pixels_train, train_y, pixels_test, test_y, args.C, named)
        rows.append(("raw pixels", pixels_train.shape[1], scores, time.perf_counter() - t0))
    majority = {j: float((test_y[:, j] == np.bincount(train_y[:, j]).argmax()).mean()) for j in every}
    rows.append(("majority class", 0, majority, 0.0))

    print(f"\nceleba-10k: {len(train)} training / {len(test)} test faces, {len(header)} attributes; standardised "
          f"LogisticRegression(C={args.C}); torch {torch.__version__}, {os.cpu_count()} CPU(s), {platform.machine()}\n")
    print("| features | dims | " + " | ".join(NAMED) + f" | mean of {len(header)} | seconds |")
    print("|---|---:|" + "---:|" * (len(NAMED) + 2))
    for label, dims, scores, seconds in rows:
        cells = [f"{scores[j]:.3f}" if j in scores else "–" for j in named]
        mean = f"{np.mean([scores[j] for j in every]):.3f}" if len(scores) == len(header) else "–"
        print(f"| {label} | {dims or '–'} | " + " | ".join(cells) + f" | {mean} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
