"""aekit's codec against JPEG, WebP and AVIF at matched bytes: the rate-distortion table and plot (issue 33).

    python benchmarks/codec_table.py --model runs/codec --faces 1000 --out docs/results/codec
    python benchmarks/codec_table.py --model runs/codec --faces 100 --latent-model none   # quick

On celeba-10k's test faces (images 9001-10000, 64x64), for a ``codec`` model (a run folder or a packaged one;
a run's integer tables are fixed in memory, as packaging would): every quality's real bitstreams (``aekit
compress --quality Q``: bytes of the streams alone, a face's mean) and a few ``--bytes`` targets, each with PSNR
(dB, the [0, 1] scale) and SSIM, mean over faces; and Pillow's JPEG (``optimize=True``), WebP (``method=6``) and
AVIF (when this Pillow has it) swept over their quality settings, read at the codec's sizes by linear
interpolation of PSNR and SSIM over bytes (the "matched bytes" columns). Also the faces-64 latent points: float16
(256 bytes) and its 128-d latent entropy-coded as benchmarks/latent_entropy.py does it (step 0.3 of each
dimension's spread, histograms of --latent-train training faces). Writes ``table.md`` and ``curve.png`` in --out.
"""

from __future__ import annotations

import argparse
import io as stdio
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, features

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "data" / "celeba-10k" / "images"
QUALITIES = {"JPEG": (1, 3, 5, 8, 10, 15, 20, 30, 40, 50, 70, 90), "WEBP": (0, 2, 5, 10, 15, 20, 30, 40, 50, 70, 90),
             "AVIF": (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90)}
SAVE_OPTIONS = {"JPEG": {"optimize": True}, "WEBP": {"method": 6}, "AVIF": {}}


def pillow_round_trip(images: np.ndarray, fmt: str, quality: int) -> tuple[float, np.ndarray]:
    """Mean bytes a face and the decoded faces for one Pillow format at one quality."""
    sizes, decoded = [], []
    for image in images:
        buffer = stdio.BytesIO()
        Image.fromarray(image).save(buffer, format=fmt, quality=quality, **SAVE_OPTIONS[fmt])
        sizes.append(buffer.tell())
        buffer.seek(0)
        decoded.append(np.asarray(Image.open(buffer).convert("RGB")))
    return float(np.mean(sizes)), np.stack(decoded)


def at_bytes(curve: list[tuple[float, float, float]], size: float) -> tuple[float, float] | None:
    """(PSNR, SSIM) of a format's sweep [(bytes, psnr, ssim)] at `size` bytes, linearly between its two nearest
    settings; None outside the sweep (no extrapolation)."""
    curve = sorted(curve)
    sizes = [c[0] for c in curve]
    if not sizes or size < sizes[0] or size > sizes[-1]:
        return None
    return float(np.interp(size, sizes, [c[1] for c in curve])), float(np.interp(size, sizes, [c[2] for c in curve]))


def latent_points(name: str, test: np.ndarray, train_count: int, images: str) -> list[tuple[str, float, float, float]]:
    """faces-64's latent as float16 (256 B) and entropy-coded at step 0.3 x each dimension's spread (ideal bytes)."""
    import aekit
    from aekit.data import prepare
    from aekit.images import to_uint8_hwc
    from aekit.metrics import psnr, ssim

    model = aekit.load(name).eval()
    z = model.encode(test)
    rows = []
    decoded = to_uint8_hwc(model.decode(z.half().float()))
    rows.append((f"{name} latent, float16", 2.0 * z.shape[1], psnr(decoded, test).mean(), ssim(decoded, test).mean()))
    train = np.ascontiguousarray(prepare(f"{images}[:{train_count}]", 64, progress=False).images.transpose(0, 2, 3, 1))
    train_z = model.encode(train)
    step = 0.3 * train_z.std(0)
    a, b = torch.round(train_z / step).long(), torch.round(z / step).long()
    bits = 0.0
    for d in range(a.shape[1]):
        low = int(min(a[:, d].min(), b[:, d].min()))
        counts = np.bincount((a[:, d] - low).numpy(), minlength=int(max(a[:, d].max(), b[:, d].max())) - low + 1) + 0.5
        bits += -np.log2(counts[(b[:, d] - low).numpy()] / counts.sum()).sum()
    decoded = to_uint8_hwc(model.decode(b.float() * step))
    rows.append((f"{name} latent, entropy-coded (ideal)", bits / len(test) / 8 + 4, psnr(decoded, test).mean(),
                 ssim(decoded, test).mean()))
    return rows


def main():
    import aekit
    from aekit.data import prepare
    from aekit.images import to_uint8_hwc
    from aekit.metrics import psnr, ssim
    from aekit_compress import code_faces

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a codec model: run folder, packaged folder or name")
    parser.add_argument("--faces", type=int, default=1000, help="how many of the 1,000 test faces (from 9001)")
    parser.add_argument("--images", default=str(IMAGES))
    parser.add_argument("--bytes", default="100,178,250,400", help="--bytes targets to add (comma-separated; '' none)")
    parser.add_argument("--latent-model", default="faces-64", help="the latent codec's points ('none' to skip)")
    parser.add_argument("--latent-train", type=int, default=3000, help="training faces for its latent histograms")
    parser.add_argument("--out", default=None, help="folder for table.md and curve.png")
    args = parser.parse_args()

    model = aekit.load(args.model).eval()
    if not getattr(model, "entropy_coded", False):
        parser.error(f"{args.model} is not a codec model (the `codec` architecture)")
    if not model.tables_fixed:
        model.fix_entropy_tables()  # as `aekit models package` does, in memory
    test = np.ascontiguousarray(prepare(f"{args.images}[9000:{9000 + args.faces}]", model.config.image_size,
                                        progress=False).images.transpose(0, 2, 3, 1))
    n = len(test)
    started = time.perf_counter()
    latents = model.coding_latents(test)
    encode_s = time.perf_counter() - started
    points = []  # (label, bytes, psnr, ssim)
    for q in range(1, model.config.qualities + 1):
        result = code_faces(model, test, quality=q, latents=latents)
        started = time.perf_counter()
        decoded = to_uint8_hwc(model.decompress_faces(result.streams, result.quality))
        decode_s = time.perf_counter() - started
        size = sum(map(len, result.streams)) / n
        points.append((f"aekit codec, quality {q}", size, psnr(decoded, test).mean(), ssim(decoded, test).mean()))
        print(f"quality {q}: {size:.1f} B, {points[-1][2]:.2f} dB (decode {1000 * decode_s / n:.2f} ms a face)")
    for target in [float(t) for t in args.bytes.split(",") if t.strip()]:
        result = code_faces(model, test, target_bytes=target, latents=latents)
        decoded = to_uint8_hwc(model.decompress_faces(result.streams, result.quality))
        points.append((f"aekit codec, --bytes {target:g}", sum(map(len, result.streams)) / n, psnr(decoded, test).mean(),
                       ssim(decoded, test).mean()))
    print(f"encoding (float64 analysis): {1000 * encode_s / n:.2f} ms a face")

    formats = [f for f in ("JPEG", "WEBP", "AVIF") if f != "AVIF" or features.check("avif")]
    curves = {}
    for fmt in formats:
        curves[fmt] = []
        for q in QUALITIES[fmt]:
            size, decoded = pillow_round_trip(test, fmt, q)
            curves[fmt].append((size, float(psnr(decoded, test).mean()), float(ssim(decoded, test).mean())))
    latent_rows = [] if args.latent_model == "none" else latent_points(args.latent_model, test, args.latent_train, args.images)

    lines = [f"{n} test faces of celeba-10k (64x64), codec {args.model} ({aekit.model_fingerprint(model)}); "
             f"bytes a face are the bitstreams alone; other formats read at the same bytes "
             f"(linear between their two nearest quality settings; - where their sweep does not reach)\n",
             "| method | bytes a face | PSNR dB | SSIM | " + " | ".join(f"{f} PSNR / SSIM at same bytes" for f in formats) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(formats)]
    for label, size, p, s in points + latent_rows:
        matched = [at_bytes(curves[f], size) for f in formats]
        cells = [f"{m[0]:.2f} / {m[1]:.3f}" if m else "-" for m in matched]
        lines.append(f"| {label} | {size:.1f} | {p:.2f} | {s:.3f} | " + " | ".join(cells) + " |")
    lines += ["", "| format | quality | bytes a face | PSNR dB | SSIM |", "|---|---:|---:|---:|---:|"]
    for fmt in formats:
        for q, (size, p, s) in zip(QUALITIES[fmt], curves[fmt]):
            lines.append(f"| {fmt} | {q} | {size:.1f} | {p:.2f} | {s:.3f} |")
    if not features.check("avif"):
        lines.append("\nAVIF: this Pillow has no AVIF support; left out.")
    table = "\n".join(lines)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.md").write_text(table + "\n", encoding="utf-8")
        plot(points, latent_rows, curves, out / "curve.png")
        print(f"wrote {out / 'table.md'} and {out / 'curve.png'}")


def plot(points, latent_rows, curves, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    qualities = sorted((p for p in points if "quality" in p[0]), key=lambda p: p[1])
    for axis, column, label in ((axes[0], 2, "PSNR (dB)"), (axes[1], 3, "SSIM")):
        axis.plot([p[1] for p in qualities], [p[column] for p in qualities], "o-", label="aekit codec", color="black")
        for fmt, curve in curves.items():
            curve = sorted(curve)
            axis.plot([c[0] for c in curve], [c[column - 1] for c in curve], ".--", label=fmt)
        for row in latent_rows:
            axis.plot([row[1]], [row[column]], "s", label=row[0])
        axis.set_xscale("log")
        axis.set_xlim(40, 1500)
        axis.set_xlabel("bytes a face")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.suptitle("64x64 test faces: rate-distortion")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
