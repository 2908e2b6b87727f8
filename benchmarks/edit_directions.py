"""Do attribute directions edit what they name? Measured with an independent classifier on held-out faces.

    python benchmarks/edit_directions.py                       # faces-64 and its shipped directions
    python benchmarks/edit_directions.py --amount 1.5 --attributes Smiling,Eyeglasses

On celeba-10k. The directions are the model's (``faces-64`` ships directions fitted on training
images 1-9000 with ``aekit directions fit``); this script also fits ``--method logistic`` directions
on the same training latents to compare. The judge is independent of both: one logistic regression
per attribute on PCA-256 of the *pixels* of the decoded training faces (decoded, so that it judges
the blur of a decoded face as it judged its training images), never on latents.

For each named attribute, the test faces (9001-10000) without it are moved by ``+amount`` and the
test faces with it by ``-amount``; the judge's probability of that attribute is compared on the
decoded face before (the plain reconstruction) and after the edit. Printed: the mean change of the
target attribute's probability, the share of edited faces whose predicted label flips, and the mean
absolute change of the other 39 attributes' probabilities (how much else the edit changes).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "celeba-10k"
NAMED = ("Smiling", "Eyeglasses", "Male", "Blond_Hair", "Young", "Mustache", "Wearing_Hat", "Bald")


def decode_all(model, latents: np.ndarray, batch: int = 256) -> np.ndarray:
    """uint8 (N, 3, S, S) decoded faces."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(latents), batch):
            x = model.decode(torch.from_numpy(latents[i : i + batch]))
            out.append(((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy())
    return np.concatenate(out)


class Judge:
    """Per-attribute logistic regressions on PCA-256 of decoded faces' pixels."""

    def __init__(self, faces: np.ndarray, labels: dict[str, np.ndarray], components: int = 256):
        from sklearn.decomposition import PCA
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        flat = faces.reshape(len(faces), -1).astype(np.float32) / 255.0
        self.pca = PCA(components, random_state=0).fit(flat)
        projected = self.pca.transform(flat)
        self.scaler = StandardScaler().fit(projected)
        projected = self.scaler.transform(projected)
        self.models = {}
        for name, y in labels.items():
            known = y >= 0
            self.models[name] = LogisticRegression(C=0.1, max_iter=1000).fit(projected[known], y[known])

    def probabilities(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        flat = faces.reshape(len(faces), -1).astype(np.float32) / 255.0
        projected = self.scaler.transform(self.pca.transform(flat))
        return {name: model.predict_proba(projected)[:, 1] for name, model in self.models.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="faces-64")
    parser.add_argument("--amount", type=float, default=1.0)
    parser.add_argument("--attributes", default=",".join(NAMED))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not (DATA / "attributes.csv").is_file():
        sys.exit(f"celeba-10k is not at {DATA}; this benchmark needs its images and attributes")
    torch.set_num_threads(args.threads)

    import aekit
    from aekit.data import prepare
    from aekit_edit import fit_directions, load_directions
    from aekit_generate import encode_uint8

    started = time.perf_counter()
    model = aekit.load(args.model)
    shipped = load_directions(model)
    train = prepare(f"{DATA}[:9000]", model.config.image_size, progress=False)
    test = prepare(f"{DATA}[9000:]", model.config.image_size, progress=False)
    z_train = encode_uint8(model, np.asarray(train.images))
    z_test = encode_uint8(model, np.asarray(test.images))
    logistic, _ = fit_directions(z_train, train.attributes, method="logistic", axes=0)
    judge = Judge(decode_all(model, z_train), train.attributes)
    before = judge.probabilities(decode_all(model, z_test))
    names = [n.strip() for n in args.attributes.split(",") if n.strip()]

    rows = []
    for method, directions in (("mean (shipped)", shipped), ("logistic", logistic)):
        for name in names:
            labels = test.attributes[name]
            for sign, side in ((+1, labels == 0), (-1, labels == 1)):
                if side.sum() == 0:
                    continue
                moved = directions.apply(z_test[side], {name: sign * args.amount})
                after = judge.probabilities(decode_all(model, moved))
                target_before, target_after = before[name][side], after[name]
                flipped = float(((target_after > 0.5) != (target_before > 0.5)).mean())
                others = [np.abs(after[o] - before[o][side]).mean() for o in judge.models if o != name]
                rows.append((method, f"{'+' if sign > 0 else '-'}{name}", int(side.sum()), float(target_before.mean()),
                             float(target_after.mean()), float((target_after - target_before).mean()), flipped,
                             float(np.mean(others))))

    print(f"# Latent directions judged by an independent pixel classifier ({args.model}, amount {args.amount:g})\n")
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads; "
          f"celeba-10k train 1-9000 (directions, judge), test 9001-10000 (edited); "
          f"{time.perf_counter() - started:.0f} s\n")
    print("| directions | edit | test faces | P(target) before | after | mean change | label flips | mean abs change of the other 39 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for method, edit, n, p0, p1, change, flipped, others in rows:
        print(f"| {method} | {edit} | {n} | {p0:.3f} | {p1:.3f} | {change:+.3f} | {flipped:.1%} | {others:.3f} |")
    for method in ("mean (shipped)", "logistic"):
        mine = [r for r in rows if r[0] == method]
        print(f"\n{method}: mean |change| of the target {np.mean([abs(r[5]) for r in mine]):.3f}, "
              f"of the other attributes {np.mean([r[7] for r in mine]):.3f}", end="")
    print()


if __name__ == "__main__":
    main()
