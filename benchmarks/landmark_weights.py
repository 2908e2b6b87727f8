"""Which landmarks should the fit onto CelebA's template use? Tried on TRAINING faces only.

Training faces 8001-8600 (as they are, and re-aligned by `detect_faces` with each landmark choice) are encoded by
faces-64; a logistic probe per attribute, fitted on the latents of training faces 1-6000 as they are, scores them
(mean of 40, and Smiling, the attribute alignment costs most); PSNR is the re-aligned 64x64 input against the plain
resize. The variants: eyes and mouth corners (aekit_faces' LANDMARK_WEIGHTS), eyes and the mouth's centre (weighted
1 or 2), eyes, nose tip and the mouth's centre.

    python benchmarks/landmark_weights.py     # about 3 minutes on 2 cores
"""

import csv
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from face_align import IMAGES, load_test, psnr  # noqa: E402


def main():
    import aekit, torch
    import aekit_faces.faces as F
    from aekit.images import resize_rgb
    from sklearn.linear_model import LogisticRegression
    from aekit_generate import encode_uint8
    torch.set_num_threads(2)
    rows = list(csv.DictReader(open(IMAGES.parent / 'attributes.csv')))
    names = [k for k in rows[0] if k != 'image_id']
    Y = np.array([[int(r[n]) > 0 for n in names] for r in rows])
    model = aekit.load('faces-64').eval()
    def lat(ims):
        return np.asarray(encode_uint8(model, np.stack(ims).transpose(0, 3, 1, 2), batch_size=256, progress=False), dtype=np.float32)
    train = load_test(IMAGES, 6000, first=1)
    Ztr = lat([resize_rgb(im, 64) for im in train]); del train
    mu, sd = Ztr.mean(0), Ztr.std(0) + 1e-6
    probes = [LogisticRegression(max_iter=3000).fit((Ztr-mu)/sd, Y[:6000, j]) for j in range(40)]
    held = load_test(IMAGES, 600, first=8001)
    Yh = Y[8000:8600]
    def score(ims, idx):
        Z = (lat(ims) - mu) / sd
        acc = np.array([(probes[j].predict(Z) == Yh[idx, j]).mean() for j in range(40)])
        return acc.mean(), acc[names.index('Smiling')]
    base = score([resize_rgb(im, 64) for im in held], np.arange(600))
    print("as they are: mean %.4f smiling %.4f" % base, flush=True)
    T = F.TEMPLATE
    def variant(src_fn, w):
        def transform(landmarks):
            return F.fit_similarity(src_fn(np.asarray(landmarks)), src_fn(T), w)
        return transform
    eyes_mouthc = lambda p: np.vstack([p[0], p[1], (p[3] + p[4]) / 2])
    variants = {
        "current (eyes, mouth corners)": F.celeba_transform,
        "eyes + mouth centre (1,1,1)": variant(eyes_mouthc, np.array([1., 1., 1.])),
        "eyes + mouth centre (1,1,2)": variant(eyes_mouthc, np.array([1., 1., 2.])),
        "eyes + nose + mouth centre": variant(lambda p: np.vstack([p[0], p[1], p[2], (p[3] + p[4]) / 2]), np.array([1., 1., 1., 1.])),
    }
    orig = F.celeba_transform
    for name, fn in variants.items():
        F.celeba_transform = fn
        t = time.time(); ims, idx, ps = [], [], []
        for i, im in enumerate(held):
            faces = F.detect_faces(im)
            if not faces: continue
            a = F.align(im, faces[0], size=64); ims.append(a); idx.append(i); ps.append(psnr(a, resize_rgb(im, 64)))
        m, s = score(ims, np.array(idx))
        print(f"{name}: found {len(ims)} psnr vs own {np.mean(ps):.2f} probe mean {m:.4f} smiling {s:.4f} ({time.time()-t:.0f}s)", flush=True)
    F.celeba_transform = orig


if __name__ == "__main__":
    main()
