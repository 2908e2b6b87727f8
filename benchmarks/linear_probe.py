"""What a model's features are worth on CelebA attributes: a linear probe beside PCA-128 and raw pixels.

    aekit embed ../shared/data/celeba-10k/images[:9000] --model M --labels ../shared/data/celeba-10k/attributes.csv --out train.npz
    aekit embed ../shared/data/celeba-10k/images[9000:] --model M --labels ../shared/data/celeba-10k/attributes.csv --out test.npz
    python benchmarks/linear_probe.py train.npz test.npz --images ../shared/data/celeba-10k/images

LogisticRegression on standardised features (aekit_embed's `linear_probe`), trained on the train
file's features and scored on the test file's: the model's latents, PCA of the 64x64 pixels with as
many components (fitted on the train images), raw pixels (12,288 values; only for the named
attributes, since it is slow), and the majority class. Prints a Markdown table.
"""

import argparse
import warnings

import numpy as np

import aekit
from aekit.data import prepare
from aekit_embed.evaluate import linear_probe

NAMED = ("Male", "Smiling", "Eyeglasses", "Young", "Blond_Hair")


def accuracy(estimator, X, y, X_test, y_test) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(X, y)
    return float((estimator.predict(X_test) == y_test).mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train")
    parser.add_argument("test")
    parser.add_argument("--images", required=True, help="the folder both feature files were made from")
    args = parser.parse_args()
    train, test = aekit.load_features(args.train), aekit.load_features(args.test)
    dims = train.X.shape[1]
    pixels_train = prepare(f"{args.images}[:9000]", 64, progress=False).images.reshape(len(train.X), -1).astype(np.float32)
    pixels_test = prepare(f"{args.images}[9000:]", 64, progress=False).images.reshape(len(test.X), -1).astype(np.float32)
    from sklearn.decomposition import PCA

    pca = PCA(n_components=dims, random_state=0).fit(pixels_train)
    pca_train, pca_test = pca.transform(pixels_train), pca.transform(pixels_test)
    rows = {"aekit features": {}, f"PCA-{dims} of pixels": {}, "raw pixels (12,288)": {}, "majority class": {}}
    for name in train.label_names:
        y, y_test = train.target(name), test.target(name)
        rows["aekit features"][name] = accuracy(linear_probe(), train.X, y, test.X, y_test)
        rows[f"PCA-{dims} of pixels"][name] = accuracy(linear_probe(), pca_train, y, pca_test, y_test)
        majority = np.bincount(y).argmax()
        rows["majority class"][name] = float((y_test == majority).mean())
        if name in NAMED:
            rows["raw pixels (12,288)"][name] = accuracy(linear_probe(max_iter=300), pixels_train / 255, y, pixels_test / 255, y_test)
    print(f"{len(train.X)} train / {len(test.X)} test faces, {len(train.label_names)} attributes\n")
    print("| features | " + " | ".join(NAMED) + f" | mean of {len(train.label_names)} |")
    print("|---|" + "---|" * (len(NAMED) + 1))
    for label, scores in rows.items():
        cells = [f"{scores[n]:.3f}" if n in scores else "–" for n in NAMED]
        mean = f"{np.mean(list(scores.values())):.3f}" if len(scores) == len(train.label_names) else "–"
        print(f"| {label} | " + " | ".join(cells) + f" | {mean} |")


if __name__ == "__main__":
    main()
