"""The pretrained denoiser on real photos at their own size: a before/after picture and a PSNR table.

Takes celeba-10k test faces (never trained on) at their stored size (89x109) and at CelebA's full
size (178x218, upscaled x2), adds noise, and denoises them with `model.denoise` (the tile path that
`aekit denoise` uses for photos that are not 64x64), against scikit-image's NL-means with its
h tuned per noise level on other test faces (the best of a small grid, as `aekit eval` does), and BM3D
when the bm3d package is installed (`pip install bm3d`; non-commercial licence, never an aekit
dependency): `aekit eval`'s, told the true sigma of gaussian:SIGMA and each face's measured one
otherwise, cached in $AEKIT_HOME/cache/bm3d; `--bm3d-images N` limits it to the first N faces of
each row (every column is then also given on those faces), 0 leaves it out.

    python benchmarks/denoise_photos.py --data ../shared/data/celeba-10k --out docs/pretrained/denoise-photos.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import aekit
from aekit import io

NOISES = ["gaussian:0.05", "gaussian:0.1", "gaussian:0.2", "saltpepper:0.1"]
H_GRID = [0.45, 0.6, 0.8, 1.0, 1.3]  # aekit eval's grid


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2) / 255.0**2
    return float(10 * np.log10(1 / max(mse, 1e-12)))


def nl_means(noisy: np.ndarray, h_multiple: float) -> np.ndarray:
    """`aekit eval`'s NL-means (same settings and sigma estimate) on one uint8 photo."""
    from aekit_eval.denoise import nl_means as eval_nl_means
    from aekit_eval.quality import estimate_sigma

    x = noisy[None].astype(np.float32) / 255
    out = eval_nl_means(x, h_multiple, estimate_sigma(x))[0]
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


def bm3d(spec: str, noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """`aekit eval`'s BM3D (cached) on one uint8 photo, told the sigma `aekit eval` would tell it."""
    from aekit_eval.denoise import bm3d as eval_bm3d, bm3d_sigmas

    x, target = noisy[None].astype(np.float32) / 255, clean[None].astype(np.float32) / 255
    out = eval_bm3d(x, bm3d_sigmas(spec, x, target)[0])[0][0]
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/celeba-10k")
    parser.add_argument("--model", default="faces-64-denoise")
    parser.add_argument("--faces", type=int, default=20, help="test faces per size and noise")
    parser.add_argument("--out", default="docs/pretrained/denoise-photos.png")
    parser.add_argument("--bm3d-images", type=int, default=None, metavar="N",
                        help="BM3D on the first N faces of each row (default all --faces; 0: none)")
    args = parser.parse_args()

    from aekit.noise import parse_noise
    from aekit_eval import denoise as eval_denoise

    bm3d_version = eval_denoise.bm3d_version()
    n_bm3d = 0 if bm3d_version is None else min(args.faces, args.faces if args.bm3d_images is None else args.bm3d_images)
    if bm3d_version is None:
        print(eval_denoise.BM3D_MISSING)

    model = aekit.load(args.model, task="denoise")
    files = sorted((Path(args.data) / "images").glob("*.jpg"))[9000:]
    tune, test = files[-10:], files[: args.faces]  # tune NL-means on faces the table does not use
    sizes = {"89x109 (stored)": 1, "178x218 (x2)": 2}
    rng = np.random.default_rng(0)
    rows, picture_rows = [], []
    for size_name, scale in sizes.items():
        def load(path):
            image = Image.open(path).convert("RGB")
            return np.asarray(image.resize((image.width * scale, image.height * scale), Image.LANCZOS)) if scale > 1 else np.asarray(image)

        for spec in NOISES:
            noise = parse_noise(spec)

            def noisy_of(clean):
                return (noise(clean.astype(np.float32) / 255, rng) * 255).round().astype(np.uint8)

            tuned = [(clean, noisy_of(clean)) for clean in map(load, tune[:4])]
            best_h = max(H_GRID, key=lambda h: np.mean([psnr(nl_means(n, h), c) for c, n in tuned]))
            scores = {"noisy": [], "aekit": [], "nl": [], "bm3d": []}
            for index, path in enumerate(test):
                clean = load(path)
                noisy = noisy_of(clean)
                denoised = np.asarray(model.denoise(Image.fromarray(noisy), method="tile"))
                scores["noisy"].append(psnr(noisy, clean))
                scores["aekit"].append(psnr(denoised, clean))
                scores["nl"].append(psnr(nl_means(noisy, best_h), clean))
                by_bm3d = bm3d(spec, noisy, clean) if index < n_bm3d else None
                if by_bm3d is not None:
                    scores["bm3d"].append(psnr(by_bm3d, clean))
                if index == 0 and spec in ("gaussian:0.1", "saltpepper:0.1") and scale == 2:
                    panels = [(noisy, f"{spec} {scores['noisy'][-1]:.1f} dB"), (denoised, f"aekit {scores['aekit'][-1]:.1f} dB")]
                    if by_bm3d is not None:
                        panels.append((by_bm3d, f"BM3D {scores['bm3d'][-1]:.1f} dB"))
                    picture_rows.append(panels + [(clean, "clean")])
            rows.append((size_name, spec, *(np.mean(scores[k]) for k in ("noisy", "aekit", "nl")), best_h,
                         *(np.mean(scores[k][:n_bm3d]) if n_bm3d else None for k in ("noisy", "aekit", "nl", "bm3d"))))
            print(f"{size_name:16s} {spec:15s} noisy {rows[-1][2]:6.2f}  aekit {rows[-1][3]:6.2f}  "
                  f"NL-means {rows[-1][4]:6.2f} (h {best_h} x sigma)"
                  + (f"  BM3D {rows[-1][9]:6.2f} (first {n_bm3d})" if n_bm3d else ""), flush=True)

    print(f"\n{args.faces} celeba-10k test faces per row, PSNR dB (model {args.model}, method tile)\n")
    print("| size | noise | noisy | aekit | NL-means (tuned) |")
    print("|---|---|---:|---:|---:|")
    for size_name, spec, noisy, ours, nl, *_ in rows:
        best = max(ours, nl)
        cells = [f"**{v:.2f}**" if v == best else f"{v:.2f}" for v in (ours, nl)]
        print(f"| {size_name} | {spec} | {noisy:.2f} | {cells[0]} | {cells[1]} |")
    if n_bm3d:
        print(f"\nThe first {n_bm3d} faces of each row, with BM3D (bm3d {bm3d_version}, told the true sigma of "
              "gaussian noise and each face's measured sigma otherwise; non-commercial licence)\n")
        print("| size | noise | noisy | aekit | NL-means (tuned) | BM3D |")
        print("|---|---|---:|---:|---:|---:|")
        for size_name, spec, *_, noisy, ours, nl, by_bm3d in rows:
            best = max(ours, nl, by_bm3d)
            cells = [f"**{v:.2f}**" if v == best else f"{v:.2f}" for v in (ours, nl, by_bm3d)]
            print(f"| {size_name} | {spec} | {noisy:.2f} | {' | '.join(cells)} |")

    pad, label = 6, 18
    height, width = picture_rows[0][0][0].shape[:2]
    columns = max(len(panels) for panels in picture_rows)
    sheet = Image.new("RGB", (columns * width + (columns + 1) * pad, len(picture_rows) * (height + label + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for r, panels in enumerate(picture_rows):  # noisy, aekit, BM3D (when run), clean
        top = pad + r * (height + label + pad)
        for c, (image, text) in enumerate(panels):
            left = pad + c * (width + pad)
            sheet.paste(Image.fromarray(image), (left, top + label))
            draw.text((left, top + 3), text, fill="black")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    io.save_image(out, sheet)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
