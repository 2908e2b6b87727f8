"""`aekit embed`, `aekit compress` and `aekit denoise` against naive loops doing the same job, same run.

    python benchmarks/cpu_jobs.py                                  # 1,000 celeba-10k test faces, every job
    python benchmarks/cpu_jobs.py --jobs embed --models article --rounds 3
    python benchmarks/cpu_jobs.py --save benchmarks/results/DATE-cpu-jobs.md

Every job reads the same 1,000 JPEG files (celeba-10k's test faces 9001-10000, 89x109); denoise
reads the same faces made 64x64 with Gaussian noise (sigma 0.1) and saved as PNG, so that both
sides do the same work: read, run the model at 64x64, write a PNG of the same size.

The naive loops are what a script would do: PIL open + convert + bicubic resize one image at a
time, one fp32 PyTorch eager forward (eval mode, ``torch.no_grad``) per batch of 64, then

* embed: the latents in memory;
* compress: the latents as float16 in an ``.npz`` (what `aekit compress` stores by default);
* denoise: ``model(x)`` per batch, each output written as a PNG with PIL.

aekit's side is the command itself, run in this process (``--quiet``), with each ``--runtime``:
listing the inputs, loading the checkpoint, decoding, the model, writing. Before the timed rounds
every command runs once on a few files, so the ONNX graphs are exported (and quantised) into the
cache as a user's first run leaves them. Paths alternate within a round (naive first, then every
runtime) and the best of ``--rounds`` counts. Rates are images per wall-clock second and per
CPU-second of this process (all its threads).

Models: ``article`` and ``improved`` are fresh (seed 0; BatchNorm statistics randomised like a
trained model's: speed does not depend on the weights), other names are pretrained models.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import aekit
from embed_throughput import timed  # (result, wall s, CPU s); benchmarks/ is the script's folder

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = ROOT.parent / "shared" / "data" / "celeba-10k" / "images"
RUNTIMES = ("torch", "onnx", "onnx-int8")
JOB_MODELS = {"embed": "article,improved,faces-64", "compress": "article,improved,faces-64",
              "denoise": "article,faces-64-denoise"}


def _batches(paths, size, batch_size):
    for i in range(0, len(paths), batch_size):
        images = [np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BICUBIC))
                  for p in paths[i : i + batch_size]]
        yield torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def naive_embed(model, paths, out, batch_size=64):
    with torch.no_grad():
        return np.concatenate([model.encoder(x).numpy() for x in _batches(paths, model.config.image_size, batch_size)])


def naive_compress(model, paths, out, batch_size=64):
    latents = naive_embed(model, paths, out, batch_size)
    np.savez(out, latents=latents.astype(np.float16), keys=np.array([Path(p).name for p in paths]))
    return latents


def naive_denoise(model, paths, out, batch_size=64):
    out.mkdir(exist_ok=True)
    done = 0
    with torch.no_grad():
        for x in _batches(paths, model.config.image_size, batch_size):
            y = ((model(x).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
            for image in y:
                Image.fromarray(image).save(out / Path(paths[done]).name)
                done += 1
    return None


NAIVE = {"embed": naive_embed, "compress": naive_compress, "denoise": naive_denoise}


def run_cli(args):
    from aekit.cli import cli

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        cli.main(args, standalone_mode=False)


def aekit_command(job, model_dir, spec, out, runtime):
    if job == "embed":
        run_cli(["embed", spec, "--model", model_dir, "--out", str(out), "--quiet", "--overwrite", "--features", "latent",
                 "--runtime", runtime])
        with np.load(out, allow_pickle=False) as data:
            return data["features"]
    if job == "compress":
        run_cli(["compress", spec, "--model", model_dir, "--out", str(out), "--quiet", "--overwrite", "--runtime", runtime])
        return None
    run_cli(["denoise", spec, "--model", model_dir, "--out", str(out), "--quiet", "--overwrite", "--runtime", runtime])
    return None


def fresh_model(arch, folder):
    from aekit.checkpoint import save_model

    torch.manual_seed(0)
    model = aekit.create_model(arch)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.2, 2.0)
    save_model(model, folder)
    return str(folder)


def noisy_faces(paths, folder, size=64, sigma=0.1):
    folder.mkdir()
    rng = np.random.default_rng(0)
    out = []
    for p in paths:
        with Image.open(p) as im:
            x = np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC), np.float32) / 255
        noisy = np.clip(x + rng.normal(0, sigma, x.shape), 0, 1)
        target = folder / (Path(p).stem + ".png")
        Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(target)
        out.append(str(target))
    return out


def cpu_name() -> str:
    """The CPU's model name and its widest vector units, from /proc/cpuinfo (Linux), else the platform's."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    units = [label for flag, label in (("avx512f", "AVX-512"), ("avx512_vnni", "VNNI"), ("avx512_bf16", "BF16"),
                                       ("amx_tile", "AMX")) if flag in flags] or (["AVX2"] if "avx2" in flags else [])
    return f"{name} ({', '.join(units)})" if units else name


def encoder_alone(model, paths, runtimes, rounds):
    """Images/s of the encoder alone on decoded images (no files, no command): the ceiling for embed and compress."""
    from aekit_embed.fast_encoder import FastEncoder

    size = model.config.image_size
    images = np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BICUBIC)) for p in paths])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1

    def eager():
        with torch.no_grad():
            for i in range(0, len(x), 64):
                model.encoder(x[i : i + 64])

    paths_ = [("PyTorch eager, batch 64 (the naive loop's)", eager)]
    for runtime in runtimes:
        encoder = FastEncoder(model, runtime=runtime)
        encoder(images[:8])
        paths_.append((f"`--runtime {runtime}`, batch 128", lambda e=encoder: [e(images[i : i + 128]) for i in range(0, len(images), 128)]))
    best = {}
    for _ in range(rounds):
        for name, fn in paths_:
            _, wall, _ = timed(fn)
            best[name] = max(best.get(name, 0.0), len(images) / wall)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=str(DEFAULT_IMAGES))
    parser.add_argument("--start", type=int, default=9000, help="First image (celeba-10k's test faces start at 9000).")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--jobs", default="embed,compress,denoise")
    parser.add_argument("--models", default=None, help="Comma-separated (default: per job, see the docstring).")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--save", default=None, help="Also write the tables as Markdown to this file.")
    args = parser.parse_args()
    from aekit.runtime import onnx_available

    runtimes = [r for r in args.runtimes.split(",") if r == "torch" or onnx_available()]
    folder = Path(args.images)
    if not folder.is_dir():
        sys.exit(f"no folder {folder}: pass --images")
    paths = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[args.start : args.start + args.count]
    lines = ["# CPU jobs: aekit against naive loops\n",
             f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; command: "
             f"`{' '.join(['python benchmarks/cpu_jobs.py', *sys.argv[1:]])}`",
             f"- {len(paths)} images from celeba-10k [{args.start}:{args.start + len(paths)}]; torch {torch.__version__}, "
             f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs: {cpu_name()}; "
             f"best of {args.rounds} interleaved rounds\n"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("AEKIT_HOME", str(tmp / "home"))
        for p in paths:
            Path(p).read_bytes()  # page cache warm for every side
        inputs = {"embed": (paths, f"{folder}[{args.start}:{args.start + len(paths)}]"),
                  "compress": (paths, f"{folder}[{args.start}:{args.start + len(paths)}]")}
        if "denoise" in args.jobs:
            noisy = noisy_faces(paths, tmp / "noisy")
            warm = tmp / "noisy-warm"
            warm.mkdir()
            for p in noisy[:4]:
                (warm / Path(p).name).write_bytes(Path(p).read_bytes())
            inputs["denoise"] = (noisy, str(tmp / "noisy"))
        for job in args.jobs.split(","):
            job_paths, spec = inputs[job]
            warm_spec = str(tmp / "noisy-warm") if job == "denoise" else f"{folder}[{args.start}:{args.start + 16}]"
            rows = []
            for name in (args.models or JOB_MODELS[job]).split(","):
                if name in ("article", "improved", "unet"):
                    model_dir = fresh_model(name, tmp / f"model-{name}")
                    label = f"{name} (fresh)"
                else:
                    model_dir, label = name, f"{name} (pretrained)"
                model = aekit.load(model_dir).eval()
                methods = [("naive loop (fp32 eager, batch 64)", lambda: NAIVE[job](model, job_paths, tmp / f"naive-{job}.npz" if job != "denoise" else tmp / "naive-out"))]
                for runtime in runtimes:
                    aekit_command(job, model_dir, warm_spec, tmp / f"warm-{job}{'' if job == 'denoise' else '.npz'}", runtime)
                    methods.append((f"aekit {job} --runtime {runtime}",
                                    lambda runtime=runtime: aekit_command(job, model_dir, spec, tmp / (f"out-{job}" + ("" if job == "denoise" else ".npz")), runtime)))
                best = {m: [0.0, 0.0] for m, _ in methods}
                for _ in range(args.rounds):
                    for m, fn in methods:
                        _, wall, cpu = timed(fn)
                        best[m][0] = max(best[m][0], len(job_paths) / wall)
                        best[m][1] = max(best[m][1], len(job_paths) / cpu)
                        print(f"  {job} {label} {m}: {len(job_paths) / wall:.0f} images/s", flush=True)
                ref = best[methods[0][0]]
                for m, _ in methods:
                    wall, cpu = best[m]
                    rows.append(f"| {label} | {m} | {wall:.0f} | {wall / ref[0]:.2f}x | {cpu:.0f} | {cpu / ref[1]:.2f}x |")
            lines += [f"\n## {job}\n", "| model | path | images/s (wall) | vs naive | images per CPU-second | vs naive |",
                      "|---|---|---:|---:|---:|---:|", *rows]
            if job == "embed":  # what the model alone allows, same models, same run
                lines += ["\nThe encoder alone on the same faces, already decoded (images/s, wall clock):\n",
                          "| model | encoder | images/s |", "|---|---|---:|"]
                for name in (args.models or JOB_MODELS[job]).split(","):
                    model_dir = str(tmp / f"model-{name}") if name in ("article", "improved", "unet") else name
                    model = aekit.load(model_dir).eval()
                    for what, rate in encoder_alone(model, job_paths, runtimes, args.rounds).items():
                        lines.append(f"| {name} | {what} | {rate:.0f} |")
    lines.append(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    text = "\n".join(lines)
    print(text)
    if args.save:
        Path(args.save).write_text(text + "\n")


if __name__ == "__main__":
    main()
