"""`aekit compress` / `aekit decompress` of 1,000 faces: the codec's bitstreams against faces-64's latents, same run.

    python benchmarks/codec_speed.py --codec faces-64-codec                  # 1,000 celeba-10k test faces
    python benchmarks/codec_speed.py --codec runs/codec --rounds 3 --count 200

Both sides are the whole command run in this process (``--quiet``): listing and decoding the JPEGs (celeba-10k's
test faces 9001-10000), loading the model, the model, writing the ``.npz`` (compress) or the PNGs (decompress).
The reference is what `aekit compress` stored before the codec: ``--model faces-64`` (float16 latents, its
default ``--runtime``). The codec runs at its default quality, at ``--quality 1`` and with ``--bytes N``
(``--bytes`` codes and decodes every face at every quality to choose). Every command runs once on a few faces
first (ONNX graphs exported into the cache as a user's first run leaves them); the best of ``--rounds`` counts.
Prints a table: images per second, and each codec row's time relative to the latents'.
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

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = ROOT.parent / "shared" / "data" / "celeba-10k" / "images"


def run_cli(args: list[str]) -> None:
    from aekit.cli import cli

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        cli.main(args, standalone_mode=False)


def best_time(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", required=True, help="The codec model: a pretrained name or a packaged folder.")
    parser.add_argument("--latents", default="faces-64", help="The latent model it is compared with.")
    parser.add_argument("--images", default=str(DEFAULT_IMAGES))
    parser.add_argument("--start", type=int, default=9000, help="First image (celeba-10k's test faces start at 9000).")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--bytes", type=float, default=200, help="The --bytes row's target.")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    files = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    files = files[args.start : args.start + args.count]
    if not files:
        sys.exit(f"no images in {args.images}[{args.start}:{args.start + args.count}]")
    work = Path(tempfile.mkdtemp(prefix="codec-speed-"))
    inputs = work / "faces"
    inputs.mkdir()
    for path in files:  # links: the commands read a folder of exactly these faces
        os.symlink(path.resolve(), inputs / path.name)
    warm = work / "warm"
    warm.mkdir()
    for path in files[:8]:
        os.symlink(path.resolve(), warm / path.name)

    cases = [("faces-64 latents (float16)", args.latents, []),
             ("codec, default quality", args.codec, []),
             ("codec, --quality 1", args.codec, ["--quality", "1"]),
             (f"codec, --bytes {args.bytes:g}", args.codec, ["--bytes", f"{args.bytes:g}"])]
    rows = []
    for label, model, extra in cases:
        npz, restored = work / "faces.npz", work / "restored"

        def compress(folder=inputs):
            run_cli(["compress", str(folder), "--model", model, "--out", str(npz), "--overwrite", "--quiet", *extra])

        def decompress():
            run_cli(["decompress", str(npz), "--out", str(restored), "--overwrite", "--quiet"])

        compress(warm)
        decompress()
        encode_s = best_time(compress, args.rounds)
        size = npz.stat().st_size
        decode_s = best_time(decompress, args.rounds)
        written = len(list(restored.glob("*.png")))
        if written != len(files):  # a fast command that skipped faces would be no result
            sys.exit(f"{label}: decompress wrote {written} PNGs for {len(files)} faces")
        rows.append((label, encode_s, decode_s, size / len(files)))
        print(f"{label}: compress {encode_s:.2f} s, decompress {decode_s:.2f} s, {size / len(files):.1f} bytes/face",
              flush=True)

    base_encode, base_decode = rows[0][1], rows[0][2]
    import torch

    print(f"\n{len(files)} faces, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, best of {args.rounds}\n")
    print("| command, model | compress images/s | × latents' time | decompress images/s | × latents' time | file bytes/face |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, encode_s, decode_s, per_face in rows:
        print(f"| {label} | {len(files) / encode_s:.0f} | {encode_s / base_encode:.2f} | {len(files) / decode_s:.0f} | "
              f"{decode_s / base_decode:.2f} | {per_face:.1f} |")


if __name__ == "__main__":
    main()
