"""Issue 31's denoising table: aekit's denoisers against NL-means and BM3D on celeba-10k's test faces at 64x64.

Rows: Gaussian noise of each ``--sigmas`` and a camera's noise (``--camera``, by default
``poisson-gaussian:0.01,0.02+jpeg:75``: signal-dependent sensor noise, then stored as a JPEG). Columns:
PSNR in dB (per face on the [0, 1] scale, then averaged) of the noisy input, NL-means, BM3D, every
``--model``, and each model minus BM3D (mean and standard error of the per-face differences).

- the faces: celeba-10k's test faces (009001-010000.jpg; ``--faces`` of them, in order), resized to
  64x64 as ``aekit eval --data`` reads them (``aekit_eval.splits.load_eval``); each face's noise is
  seeded by (``--seed``, the noise spec, the face's index), so a face's noisy copy does not depend
  on ``--faces`` or the other rows;
- NL-means: ``aekit eval``'s (``aekit_eval.denoise``: scikit-image, h a multiple of each face's
  estimated sigma), the multiple tuned per row on ``--tune-faces`` training faces (0089xx: never the
  test faces), as ``aekit eval`` tunes it on other images;
- BM3D (``pip install bm3d``; non-commercial licence, never a dependency of aekit): ``bm3d.bm3d_rgb``
  told the true sigma of ``gaussian:SIGMA``, each face's measured sigma (std of noisy - clean)
  otherwise; on the first ``--bm3d-images`` faces only (about 2 s a face on one core), and the main
  table reports every method on those same faces so the columns compare; a second table gives the
  other methods on all ``--faces``. Its outputs are cached (``--cache``, default
  ``$AEKIT_HOME/cache/bm3d``) by the noisy face's bytes and the sigma, so a rerun is quick;
- the models: ``model.denoise`` through ``--runtime`` (as ``aekit eval`` runs it), default the
  pretrained ``faces-64-denoise``;
- speed: BM3D (never from the cache, one process) and each model on the same ``--speed-images``
  noisy faces of the first row, images per second on the wall clock, in the same run.

    python benchmarks/denoise_table.py --faces 8 --bm3d-images 4 --sigmas 0.1     # smoke check, about a minute
    python benchmarks/denoise_table.py --out benchmarks/results/DATE-denoise-table.md   # 1,000 faces: hours
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np

DEFAULT_CAMERA = "poisson-gaussian:0.01,0.02+jpeg:75"
TEST_FACES = "images[9000:]"  # 009001.jpg-010000.jpg
TUNE_FACES = "images[8936:9000]"  # training faces, for NL-means' h only


def noisy_faces(noise, clean: np.ndarray, spec: str, seed: int) -> np.ndarray:
    """Each face's noisy copy from its own rng: (seed, the spec, the face's index)."""
    key = zlib.crc32(spec.encode())
    return np.stack([noise(face, np.random.default_rng([seed, key, i])) for i, face in enumerate(clean)]).astype(np.float32)


def timed(function, repeats: int = 3) -> float:
    """The best wall-clock seconds of `repeats` calls (after one warm-up call)."""
    function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def mean_se(values: np.ndarray) -> str:
    values = np.asarray(values, dtype=np.float64)
    se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return f"{values.mean():+.2f} ± {se:.2f}"


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/celeba-10k", help="celeba-10k's folder (images/ inside)")
    parser.add_argument("--model", action="append", default=None, metavar="MODEL",
                        help="an aekit model (checkpoint folder or pretrained name); repeatable (default faces-64-denoise)")
    parser.add_argument("--faces", type=int, default=1000, help="test faces (the first N of 009001-010000)")
    parser.add_argument("--bm3d-images", type=int, default=200, help="BM3D on the first N of them (0: no BM3D)")
    parser.add_argument("--sigmas", default="0.02,0.05,0.1,0.2,0.3", help="Gaussian sigmas, comma-separated")
    parser.add_argument("--camera", action="append", default=None, metavar="SPEC",
                        help=f"other noise specs, each a row with BM3D told the measured sigma (default {DEFAULT_CAMERA}; "
                             "'none' for no such row); repeatable")
    parser.add_argument("--tune-faces", type=int, default=32, help="training faces NL-means' h is tuned on")
    parser.add_argument("--speed-images", type=int, default=20, help="faces the speed row times BM3D and the models on")
    parser.add_argument("--bm3d-workers", type=int, default=1, help="processes running BM3D for the table (not the speed row)")
    parser.add_argument("--cache", default=None, help="BM3D's cache folder (default $AEKIT_HOME/cache/bm3d)")
    parser.add_argument("--no-cache", action="store_true", help="run BM3D on every face, read and write no cache")
    parser.add_argument("--runtime", default="auto", help="what runs the models: auto, torch or onnx (as aekit eval)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the tables to this Markdown file (atomically)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    import torch

    import aekit
    from aekit import io
    from aekit.noise import parse_noise
    from aekit.runtime import ModelOnRuntime
    from aekit_eval import denoise, quality, splits
    from aekit_eval.runner import model_denoise

    progress = not args.quiet
    if args.faces < 1 or args.bm3d_images < 0 or args.tune_faces < 1 or args.speed_images < 0:
        parser.error("--faces and --tune-faces must be at least 1, --bm3d-images and --speed-images at least 0")
    try:
        sigmas = [float(s) for s in args.sigmas.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sigmas: comma-separated numbers, got {args.sigmas!r}")
    cameras = [c for c in (args.camera or [DEFAULT_CAMERA]) if c.strip().lower() != "none"]
    specs = [f"gaussian:{s:g}" for s in sigmas] + cameras
    if not specs:
        parser.error("no rows: give --sigmas or --camera")
    noises = {spec: parse_noise(spec) for spec in specs}  # a bad spec fails before any work
    out = Path(args.out) if args.out else None
    if out is not None:
        io.check_writable(out)
    version = denoise.bm3d_version()
    if args.bm3d_images and version is None:
        print(denoise.BM3D_MISSING + "; the BM3D columns are left out", file=sys.stderr)
    use_bm3d = bool(args.bm3d_images) and version is not None
    cache = None if args.no_cache else (Path(args.cache) if args.cache else denoise.bm3d_cache_dir())

    data = Path(args.data)
    test = splits.load_eval(str(data / TEST_FACES), 64, args.faces, progress)
    tune = splits.load_eval(str(data / TUNE_FACES), 64, args.tune_faces, progress)
    clean, tune_clean = quality.to_unit(test.images), quality.to_unit(tune.images)
    n_bm3d = min(args.bm3d_images, len(clean)) if use_bm3d else 0
    names = args.model or ["faces-64-denoise"]
    models = []
    for name in names:
        model = aekit.load(name, task="denoise")
        if model.config.image_size != 64:
            parser.error(f"--model {name}: sees {model.config.image_size}x{model.config.image_size} images, not 64x64")
        models.append((name, model, ModelOnRuntime(model, args.runtime)))
    print(f"{len(clean)} celeba-10k test faces ({test.names[0]}-{test.names[-1]}) at 64x64; BM3D on the first {n_bm3d}"
          f"{f' (bm3d {version})' if version else ''}; NL-means tuned on {len(tune_clean)} training faces; "
          f"models: {', '.join(names)}", file=sys.stderr, flush=True)

    results = {}  # spec -> {column: per-face PSNR}
    notes = []
    first_noisy = None
    for spec in specs:
        started = time.time()
        noisy = noisy_faces(noises[spec], clean, spec, args.seed)
        first_noisy = noisy if first_noisy is None else first_noisy
        scores = {"noisy": quality.psnr(noisy, clean)}
        tuned = denoise.tune("NL-means", noisy_faces(noises[spec], tune_clean, spec, args.seed + 1), tune_clean)
        nl = denoise.nl_means(noisy, tuned["multiple"], quality.estimate_sigma(noisy), progress, f"NL-means {spec}")
        scores["NL-means"] = quality.psnr(nl, clean)
        notes += [f"{spec}: NL-means h = {tuned['multiple']:g} x sigma" + (f" ({'; '.join(tuned['notes'])})" if tuned["notes"] else "")]
        if n_bm3d:
            told, which, _ = denoise.bm3d_sigmas(spec, noisy[:n_bm3d], clean[:n_bm3d])
            bm3d_out, stats = denoise.bm3d(noisy[:n_bm3d], told, progress, f"BM3D {spec}", cache=cache, workers=args.bm3d_workers)
            scores["BM3D"] = quality.psnr(bm3d_out, clean[:n_bm3d])
            notes.append(f"{spec}: BM3D told {which}" + ("" if which == denoise.BM3D_TRUE_SIGMA else
                                                         f" (mean {np.mean(told):.4f})")
                         + f"; {stats['computed']} computed, {stats['cached']} from the cache")
        for name, model, on_runtime in models:
            denoised, _ = model_denoise(model, on_runtime, noisy, args.batch_size, progress)
            scores[name] = quality.psnr(denoised, clean)
        results[spec] = scores
        line = "  ".join(f"{k} {v[:n_bm3d].mean() if n_bm3d else v.mean():.2f}" for k, v in scores.items())
        print(f"{spec}: {line}  ({time.time() - started:.0f} s)", file=sys.stderr, flush=True)

    # the speed row: BM3D (fresh, one process) and each model on the same faces
    speed = None
    n_speed = min(args.speed_images, n_bm3d) if n_bm3d else 0
    if n_speed:
        faces = first_noisy[:n_speed]
        told, _, _ = denoise.bm3d_sigmas(specs[0], faces, clean[:n_speed])
        start = time.perf_counter()
        denoise.bm3d(faces, told, progress, "BM3D speed", cache=None)
        speed = {"BM3D": n_speed / (time.perf_counter() - start)}
        for name, model, on_runtime in models:
            def run(model=model, on_runtime=on_runtime):
                model_denoise(model, on_runtime, faces, args.batch_size)
            speed[name] = n_speed / timed(run)

    tables = []
    header = (f"celeba-10k test faces at 64x64, PSNR in dB (per face, then the mean); seed {args.seed}; "
              f"runtime {args.runtime}, torch {torch.__version__} with {torch.get_num_threads()} threads, "
              f"{os.cpu_count()} CPU cores")
    if n_bm3d:
        headers = ["noise", "noisy", "NL-means", "BM3D", *names, *[f"{n} − BM3D" for n in names]]
        rows = []
        for spec, scores in results.items():
            rows.append([spec] + [f"{scores[k][:n_bm3d].mean():.2f}" for k in ("noisy", "NL-means", "BM3D", *names)]
                        + [mean_se(scores[n][:n_bm3d] - scores["BM3D"]) for n in names])
        if speed:
            rows.append([f"speed (images/s, {n_speed} face{'s' if n_speed > 1 else ''} of {specs[0]})", "", "", f"{speed['BM3D']:.2f}",
                         *[f"{speed[n]:,.1f}" for n in names], *[f"{speed[n] / speed['BM3D']:,.0f}× BM3D" for n in names]])
        tables.append(f"### The first {n_bm3d} faces (BM3D's)\n\n{markdown(headers, rows)}\n\n"
                      f"`model − BM3D`: the mean and standard error of the per-face differences. BM3D: bm3d {version} "
                      "(`bm3d_rgb`, its default profile; non-commercial licence, not a dependency of aekit), told the "
                      "true sigma of Gaussian noise and each face's measured sigma (std of noisy − clean) otherwise; "
                      "one process. The speed row: images per second on the wall clock, BM3D one face at a time, the "
                      f"models in batches of up to {args.batch_size}, best of 3 after a warm-up.")
    if not n_bm3d or len(clean) > n_bm3d:
        headers = ["noise", "noisy", "NL-means", *names]
        rows = [[spec] + [f"{scores[k].mean():.2f}" for k in ("noisy", "NL-means", *names)] for spec, scores in results.items()]
        missing = "" if n_bm3d else (f" ({denoise.BM3D_MISSING})" if version is None else " (no BM3D: --bm3d-images 0)")
        tables.append(f"### All {len(clean)} faces{missing}\n\n{markdown(headers, rows)}")
    command = "python benchmarks/denoise_table.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n\n".join([f"`{command.strip()}`", header] + tables + ["- " + "\n- ".join(notes)]) + "\n"
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        io.write_text(out, text)
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
