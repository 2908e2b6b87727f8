"""aekit's codec against JPEG, WebP and AVIF at matched bytes: the rate-distortion table and plot.

    python benchmarks/codec_table.py --model runs/codec --faces 1000 --out docs/results/codec
    python benchmarks/codec_table.py --model runs/codec --faces 100 --latent-model none   # quick

On celeba-10k's test faces (images 9001-10000, 64x64), for a ``codec`` model (a run folder or a packaged one;
a run's integer tables are fixed in memory, as packaging would): every quality's real bitstreams (``aekit
compress --quality Q``: the whole .npz it writes / faces, and the streams alone) and a few ``--bytes`` targets, each with PSNR
(dB, the [0, 1] scale) and SSIM, mean over faces; and Pillow's JPEG (``optimize=True``), WebP (``method=6``) and
AVIF (when this Pillow has it) swept over their quality settings, read at the codec's sizes by linear
interpolation of PSNR and SSIM over bytes at the .npz's bytes a face (the "matched bytes" columns). Also the faces-64 latent points: float16
(256 bytes) and its 128-d latent entropy-coded as benchmarks/latent_entropy.py does it (step 0.3 of each
dimension's spread, histograms of --latent-train training faces). Writes ``table.md`` and ``curve.png`` in --out.

The numbers come from ``aekit_eval.rate_distortion``, which ``aekit eval`` uses for a codec model's rate-distortion
section too: the same faces give the same bytes, PSNR and SSIM (scikit-image's) in both.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from aekit_eval import rate_distortion as rd

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "data" / "celeba-10k" / "images"
PLOT_BYTES = (40, 1500)  # the plot's bytes axis: the codec's range and the formats' around it


def latent_points(name: str, test: np.ndarray, train_count: int, images: str) -> list[tuple[str, float, float, float]]:
    """faces-64's latent as float16 (256 B) and entropy-coded at step 0.3 x each dimension's spread (ideal bytes)."""
    import aekit
    from aekit.data import prepare
    from aekit.images import to_uint8_hwc

    model = aekit.load(name).eval()
    z = model.encode(test)
    rows = []
    decoded = to_uint8_hwc(model.decode(z.half().float()))
    scores = rd.measure(decoded, test)
    rows.append((f"{name} latent, float16", 2.0 * z.shape[1], scores["psnr"], scores["ssim"]))
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
    scores = rd.measure(decoded, test)
    rows.append((f"{name} latent, entropy-coded (ideal)", bits / len(test) / 8 + 4, scores["psnr"], scores["ssim"]))
    return rows


def main():
    import aekit
    from aekit.data import prepare

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
    qualities = rd.codec_curve(model, test, latents=latents, progress=True)
    for point in qualities:
        print(f"quality {point.quality}: {point.bytes:.1f} B, {point.psnr:.2f} dB "
              f"(decode {1000 * point.decode_s / n:.2f} ms a face)")
    targets = [rd.codec_point(model, test, target_bytes=float(t), latents=latents)
               for t in args.bytes.split(",") if t.strip()]
    # the whole .npz `aekit compress` writes (names, qualities, CRCs, offsets, metadata, zip) a face: the bytes the
    # other formats' files are compared at
    file_bytes = rd.file_bytes(model, qualities + targets, [f"{9001 + i:06d}.jpg" for i in range(n)])
    points = [(p.label, f, p.bytes, p.psnr, p.ssim) for p, f in zip(qualities + targets, file_bytes)]
    print(f"encoding (float64 analysis): {1000 * encode_s / n:.2f} ms a face")

    formats = rd.pillow_formats()
    sweeps = rd.pillow_sweep(test, formats, progress=True)
    latent_rows = [] if args.latent_model == "none" else latent_points(args.latent_model, test, args.latent_train, args.images)

    lines = [f"{n} test faces of celeba-10k (64x64), codec {args.model} ({aekit.model_fingerprint(model)}); "
             f"bytes a face: the whole .npz `aekit compress` writes for the {n} faces / {n}, and the bitstreams alone; "
             f"other formats' files read at the same bytes as the whole .npz "
             f"(linear between their two nearest quality settings; - where their sweep does not reach)\n",
             "| method | file bytes a face | bitstream bytes | PSNR dB | SSIM | "
             + " | ".join(f"{f} PSNR / SSIM at same bytes" for f in formats) + " |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(formats)]
    for label, size, stream, p, s in points + [(label, size, size, p, s) for label, size, p, s in latent_rows]:
        matched = rd.matched(sweeps, size)
        cells = [f"{m['psnr']:.2f} / {m['ssim']:.3f}" if m else "-" for m in (matched[f] for f in formats)]
        lines.append(f"| {label} | {size:.1f} | {stream:.1f} | {p:.2f} | {s:.3f} | " + " | ".join(cells) + " |")
    lines += ["", "| format | quality | bytes a face | PSNR dB | SSIM |", "|---|---:|---:|---:|---:|"]
    for fmt in formats:
        for row in sweeps[fmt]:
            lines.append(f"| {fmt} | {row['quality']} | {row['bytes_per_image']:.1f} | {row['psnr']:.2f} | {row['ssim']:.3f} |")
    if "AVIF" not in formats:
        lines.append(f"\n{rd.AVIF_MISSING}.")
    table = "\n".join(lines)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.md").write_text(table + "\n", encoding="utf-8")
        rd.plot_curve(out / "curve.png", [(f, p.psnr, p.ssim) for p, f in zip(qualities, file_bytes)], sweeps,
                      extra=latent_rows,
                      xlim=PLOT_BYTES, title="64x64 test faces: rate-distortion")
        print(f"wrote {out / 'table.md'} and {out / 'curve.png'}")


if __name__ == "__main__":
    main()
