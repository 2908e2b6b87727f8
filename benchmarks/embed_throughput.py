"""Embedding throughput (images/s): `aekit embed` against a naive loop, same model, same files, same run.

    python benchmarks/embed_throughput.py                                  # 1,000 celeba-10k test faces
    OMP_NUM_THREADS=1 python benchmarks/embed_throughput.py --rounds 3    # one torch thread for every side
    python benchmarks/embed_throughput.py --model runs/synth --count 500
    python benchmarks/embed_throughput.py --upscale 4     # the faces re-encoded 4x larger, like photos

Three paths over the same JPEG files, interleaved round by round so a busy machine slows all alike:

* naive loop: PIL open + convert + bicubic resize one image at a time, then one fp32 forward of the
  encoder per batch of 64 (eval mode, ``torch.no_grad``), as a script would;
* aekit before: what `aekit embed` did before the fast path (threaded decoding in `iter_batches`,
  ``model.encode`` per batch);
* aekit fast path, Python: the command's pipeline alone: threaded decoding prefetched in the
  background with JPEG draft where it applies, then ``FastEncoder`` (BatchNorm folded into the
  convolutions, channels_last, inference mode, fp32);
* aekit embed: the command itself, run in this process: the same pipeline plus listing the folder,
  loading and checking the checkpoint, labels and writing the ``.npz``.

celeba-10k's files are small (89x109), so decoding is cheap and the encoder's convolutions dominate;
``--upscale K`` first writes the faces K times larger (bicubic, JPEG quality 90) to a temporary
folder, a stand-in for camera-sized photos, where decoding dominates and Pillow's draft pays.

Each path is timed by the wall clock and by the CPU time of this process (all its threads): on a
machine that other jobs share, the CPU-time rate (images per CPU-second) is the steadier figure, the
wall-clock rate the one a user sees. The best round of each is reported, with the largest latent
difference from the naive loop. Without ``--model`` a freshly initialised model (seed 0, BatchNorm
statistics randomised like a trained model's) is saved to a temporary folder: speed does not depend
on the weights.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import aekit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = ROOT.parent / "shared" / "data" / "celeba-10k" / "images"


def naive_loop(model, paths, batch_size=64):
    model.eval()
    size = model.config.image_size
    out = []
    for i in range(0, len(paths), batch_size):
        images = [np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BICUBIC)) for p in paths[i : i + batch_size]]
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
        with torch.no_grad():
            out.append(model.encoder(x).numpy())
    return np.concatenate(out)


def aekit_before(model, spec, batch_size=128):
    from aekit.data import iter_batches
    from aekit.inputs import open_inputs

    source = open_inputs([spec])
    return np.concatenate([model.encode(b.images, batch_size=batch_size).numpy()
                           for b in iter_batches(source, model.config.image_size, batch_size, [], False)])


def aekit_pipeline(model, spec, batch_size=128, runtime="torch"):
    """The fast path without the command around it (no checkpoint loading, labels or .npz)."""
    from aekit.data import iter_batches
    from aekit.inputs import open_inputs
    from aekit_embed.commands import FastEncoder, prefetch, reduced_files

    source = open_inputs([spec])
    encoder = FastEncoder(model, runtime=runtime)
    batches = iter_batches(reduced_files(source), model.config.image_size, batch_size, [], False, reduced=True)
    return np.concatenate([encoder(b.images) for b in prefetch(batches)])


def aekit_embed(model_dir, spec, out, batch_size=128, runtime=("--runtime", "torch")):
    from aekit.cli import cli

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        cli.main(["embed", spec, "--model", str(model_dir), "--out", str(out), "--quiet", "--overwrite", "--batch-size", str(batch_size),
                  "--features", "latent", *runtime],
                 standalone_mode=False)
    with np.load(out, allow_pickle=False) as data:
        return data["features"]


def timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - w0, time.process_time() - c0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=str(DEFAULT_IMAGES), help="A folder of images (sorted by name).")
    parser.add_argument("--start", type=int, default=9000, help="First image (celeba-10k's test faces start at 9000).")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--arch", default="article")
    parser.add_argument("--model", default=None, help="A checkpoint folder (default: a fresh model of --arch).")
    parser.add_argument("--batch-size", type=int, default=64, help="The naive loop's batch.")
    parser.add_argument("--embed-batch-size", type=int, default=128, help="aekit embed's --batch-size (its default).")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-before", action="store_true", help="Leave out the 'aekit before' row.")
    parser.add_argument("--upscale", type=int, default=1, help="Re-encode the faces K times larger first (JPEG q90).")
    args = parser.parse_args()

    folder = Path(args.images)
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[args.start : args.start + args.count]
    if not paths:
        sys.exit(f"no images in {folder}[{args.start}:{args.start + args.count}]")
    spec = f"{folder}[{args.start}:{args.start + len(paths)}]"
    with tempfile.TemporaryDirectory() as tmp:
        if args.upscale > 1:
            big = Path(tmp) / f"faces-x{args.upscale}"
            big.mkdir()
            for p in paths:
                with Image.open(p) as im:
                    im.convert("RGB").resize((im.width * args.upscale, im.height * args.upscale), Image.BICUBIC).save(
                        big / (p.stem + ".jpg"), quality=90)
            paths = sorted(big.iterdir())
            spec = str(big)
            size_note = f", re-encoded {args.upscale}x larger ({Image.open(paths[0]).size[0]}x{Image.open(paths[0]).size[1]}, JPEG q90)"
        else:
            size_note = f" ({Image.open(paths[0]).size[0]}x{Image.open(paths[0]).size[1]})"
        for p in paths:  # warm the page cache so no path pays for the first read from disk
            p.read_bytes()
        os.environ.setdefault("AEKIT_HOME", str(Path(tmp) / "home"))
        if args.model:
            model_dir = args.model
            model = aekit.load(model_dir)
        else:
            torch.manual_seed(0)
            model = aekit.create_model(args.arch)
            for m in model.modules():  # trained-like BatchNorm statistics, so folding them is not a no-op
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.2, 2.0)
            from aekit.checkpoint import save_model

            model_dir = Path(tmp) / "model"
            save_model(model, model_dir)
        model.eval()
        paths = [str(p) for p in paths]
        methods = [("naive loop (PIL one by one, fp32, batch %d)" % args.batch_size, lambda: naive_loop(model, paths, args.batch_size))]
        if not args.skip_before:
            methods.append(("aekit before (iter_batches + model.encode)", lambda: aekit_before(model, spec, args.embed_batch_size)))
        methods.append(("aekit fast path, Python (reduced decode + prefetch + FastEncoder)",
                        lambda: aekit_pipeline(model, spec, args.embed_batch_size)))
        methods.append(("aekit embed --runtime torch (the command, fast path)",
                        lambda: aekit_embed(model_dir, spec, Path(tmp) / "feats.npz", args.embed_batch_size)))
        from aekit.runtime import onnx_available

        if onnx_available():  # the exported graph is made once, before timing, as the command's cache would hold it
            from aekit_embed.fast_encoder import FastEncoder

            size = model.config.image_size
            FastEncoder(model, runtime="onnx")(np.zeros((1, size, size, 3), np.uint8))
            methods.append(("aekit fast path, ONNX Runtime (reduced decode + prefetch)",
                            lambda: aekit_pipeline(model, spec, args.embed_batch_size, runtime="onnx")))
            methods.append(("aekit embed --runtime onnx (the command)",
                            lambda: aekit_embed(model_dir, spec, Path(tmp) / "feats.npz", args.embed_batch_size,
                                                ("--runtime", "onnx"))))
        best = {name: [0.0, 0.0] for name, _ in methods}
        latents = {}
        for _ in range(args.rounds):
            for name, fn in methods:
                z, wall, cpu = timed(fn)
                latents[name] = z
                best[name][0] = max(best[name][0], len(paths) / wall)
                best[name][1] = max(best[name][1], len(paths) / max(cpu, 1e-9))
    reference = methods[0][0]
    print(f"{len(paths)} images from {folder}[{args.start}:{args.start + len(paths)}]{size_note}; model {args.model or args.arch + ' (fresh)'}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch thread(s), {os.cpu_count()} CPU(s), {platform.processor() or platform.machine()}; "
          f"best of {args.rounds} interleaved rounds; load average at the end {os.getloadavg()[0]:.1f}\n")
    print("| path | images/s (wall) | vs naive | images per CPU-second | vs naive | max latent diff vs naive |")
    print("|---|---|---|---|---|---|")
    for name, _ in methods:
        wall, cpu = best[name]
        diff = float(np.abs(latents[name] - latents[reference]).max())
        print(f"| {name} | {wall:.1f} | {wall / best[reference][0]:.2f}x | {cpu:.1f} | {cpu / best[reference][1]:.2f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
