"""Which encoder embeds best: a linear probe, face search and reconstruction for each model, beside PCA and pixels.

    python benchmarks/feature_objectives.py --model faces-64 --model runs/vicreg --model runs/masked
    python benchmarks/feature_objectives.py --model runs/vicreg --set latent --set multiscale --out table.md

One table for models trained with different objectives (``aekit train --objective``), on celeba-10k
(trained on images 1-9000, scored on the 1,000 test faces 9001-10000, never trained on):

- **probe**: ``benchmarks/feature_sets.py``'s standardised LogisticRegression (C 0.1) per attribute,
  fitted on the 9,000 training faces' features and scored on the test faces: the mean over CelebA's 40
  attributes and the accuracy on Male, Smiling, Eyeglasses, Young and Blond_Hair;
- **search**: ``benchmarks/face_search.py``'s recall@1: the 1,000 test faces are the index, each query
  one of them mirrored, with gaussian noise of sigma 0.1, or both, searched as ``aekit similar`` does;
- **PSNR**: the model's reconstruction of the test faces (dB, per face then the mean); none for a
  model that cannot decode its latent.

Baselines on the same split: PCA-128 of the pixels, PCA as wide as the first model's first feature
set, and the raw pixels (probe on the five named attributes only: 40 regressions on 12,288 values
take long); a PCA's PSNR is its reconstruction's.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "data" / "celeba-10k"
CHANGES = ("flip", "noise", "flip+noise")


def _script(name: str):
    """A sibling benchmark script as a module (its helpers are the same measurements, not copies)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scores_row(label, dims, train_X, test_X, query_Xs, psnr, labels, columns, probe, recall_at_1, C) -> dict:
    t0 = time.perf_counter()
    train_y, test_y = labels
    return {"label": label, "dims": dims, "probe": probe(train_X, train_y, test_X, test_y, C, columns),
            "recall": [recall_at_1(test_X, q) for q in query_Xs] if query_Xs is not None else None,
            "psnr": psnr, "seconds": time.perf_counter() - t0}


def main():
    import aekit
    from aekit import feature_sets
    from aekit.data import prepare
    from aekit.metrics import psnr
    from sklearn.decomposition import PCA

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA), help="celeba-10k: images/ and attributes.csv")
    parser.add_argument("--model", action="append", default=None,
                        help="a checkpoint folder or pretrained name; repeatable (default faces-64)")
    parser.add_argument("--set", action="append", default=None, dest="sets",
                        help=f"feature set; repeatable (default {feature_sets.DEFAULT})")
    parser.add_argument("--C", type=float, default=0.1, help="LogisticRegression's C for every row")
    parser.add_argument("--no-pixels", action="store_true", help="leave out the raw-pixel row (slow)")
    parser.add_argument("--out", help="also write the table to this Markdown file (atomically)")
    args = parser.parse_args()
    if not (Path(args.data) / "images").is_dir():
        sys.exit(f"error: no celeba-10k at {args.data} (give --data)")
    feature_table, face_search = _script("feature_sets"), _script("face_search")
    torch.set_num_threads(os.cpu_count() or 1)
    images = Path(args.data) / "images"
    train_set, test_set = (prepare(f"{images}[{part}]", 64, progress=False) for part in (":9000", "9000:"))
    train, test = np.asarray(train_set.images), np.asarray(test_set.images)  # (N, 3, 64, 64) uint8
    header, train_y = feature_table.labels_for(train_set.names, Path(args.data) / "attributes.csv")
    _, test_y = feature_table.labels_for(test_set.names, Path(args.data) / "attributes.csv")
    every, named = list(range(len(header))), [header.index(n) for n in feature_table.NAMED]
    queries = {how: face_search.changed(test, how) for how in CHANGES}
    nhwc = lambda x: np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # noqa: E731  (models take NHWC uint8)
    measure = dict(labels=(train_y, test_y), probe=feature_table.probe, recall_at_1=face_search.recall_at_1, C=args.C)

    rows, first_width = [], None
    for name in args.model or ["faces-64"]:
        model = aekit.load(name).eval()
        recon = None
        if model.decodes_latents:
            signed = torch.from_numpy(np.array(test)).float() / 127.5 - 1  # (N, 3, 64, 64) in [-1, 1]
            recon = float(psnr(model.reconstruct(signed), signed).mean())
        for kind in args.sets or [feature_sets.DEFAULT]:
            train_X = model.features(nhwc(train), kind).numpy()
            test_X = model.features(nhwc(test), kind).numpy()
            query_Xs = [model.features(nhwc(queries[how]), kind).numpy() for how in CHANGES]
            first_width = first_width or train_X.shape[1]
            rows.append(scores_row(f"{name} `{kind}`", train_X.shape[1], train_X, test_X, query_Xs, recon,
                                   columns=every, **measure))
            print(f"  {rows[-1]['label']}: done", file=sys.stderr, flush=True)

    flat = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255  # noqa: E731
    for dims in sorted({128, first_width}):
        pca = PCA(n_components=dims, random_state=0).fit(flat(train))
        back = np.clip(pca.inverse_transform(pca.transform(flat(test))), 0, 1).reshape(test.shape)
        recon = float(psnr(nhwc(np.rint(back * 255).astype(np.uint8)), nhwc(test)).mean())  # uint8 like a model's
        rows.append(scores_row(f"PCA-{dims} of the pixels", dims, pca.transform(flat(train)), pca.transform(flat(test)),
                               [pca.transform(flat(queries[how])) for how in CHANGES], recon, columns=every, **measure))
    if not args.no_pixels:
        rows.append(scores_row("raw pixels", test[0].size, flat(train), flat(test),
                               [flat(queries[how]) for how in CHANGES], None, columns=named, **measure))

    lines = [f"celeba-10k: {len(train)} training / {len(test)} test faces, {len(header)} attributes; standardised "
             f"LogisticRegression(C={args.C}); recall@1 of changed test faces among the 1,000; torch "
             f"{torch.__version__}, {os.cpu_count()} CPU(s), {platform.machine()}", "",
             "| features | dims | mean of 40 | " + " | ".join(feature_table.NAMED)
             + " | recall@1 mirrored | noisy (σ 0.1) | mirrored + noisy | PSNR dB | seconds |",
             "|---|---:|---:|" + "---:|" * (len(feature_table.NAMED) + 5)]
    for row in rows:
        scores = row["probe"]
        mean = f"{np.mean([scores[j] for j in every]):.3f}" if len(scores) == len(every) else "–"
        cells = [f"{scores[j]:.3f}" for j in named]
        recall = [f"{r:.3f}" for r in row["recall"]] if row["recall"] else ["–"] * 3
        recon = f"{row['psnr']:.2f}" if row["psnr"] is not None else "–"
        lines.append(f"| {row['label']} | {row['dims']} | {mean} | " + " | ".join(cells + recall)
                     + f" | {recon} | {row['seconds']:.0f} |")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.out:
        from aekit import io

        io.write_text(Path(args.out), text)


if __name__ == "__main__":
    main()
