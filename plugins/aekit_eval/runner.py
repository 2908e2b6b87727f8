"""``aekit eval``'s work: every table of the report, computed on held-out data, and the files it writes."""

from __future__ import annotations

import os
import platform
import re
import shlex
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from aekit.errors import AekitError

from . import codecs, denoise, probe, quality, report as render, splits

FORMAT = "aekit-eval-report"
FORMAT_VERSION = 1
GRID_IMAGES = 8
PLACEMENTS_FILE = "faces.csv"  # --align auto / on: the photo, face index and box of each evaluation image


@dataclass
class EvalOptions:
    """What `aekit eval` was asked for (the CLI's options)."""

    data: str
    model: str | None = None
    train_data: str | None = None
    baselines: bool = False
    noise: list[str] = field(default_factory=list)
    labels: bool = False
    labels_csv: str | None = None
    limit: int | None = None
    train_limit: int | None = 10_000
    pixel_labels: int = 5
    out: str = "report"
    seed: int = 0
    device: str = "auto"
    batch_size: int = 128
    optimize_steps: int = 0
    runtime: str = "auto"  # what runs the encoder, decoder and denoiser: auto, torch or onnx
    align: str = "auto"  # --align: faces found in --data (and --train-data) before the model sees them: auto, on, off
    bm3d_images: int = 100  # --bm3d-images: BM3D (when installed) on the first N reported images of each noise; 0: none

    def command_line(self) -> str:
        """The `aekit eval` command that gives these options."""
        args = ["aekit", "eval"] + (["--model", self.model] if self.model else []) + ["--data", self.data]
        if self.train_data:
            args += ["--train-data", self.train_data]
        if self.baselines:
            args.append("--baselines")
        for spec in self.noise:
            args += ["--noise", spec]
        if self.labels:
            args += ["--labels"] + ([self.labels_csv] if self.labels_csv else [])
        defaults = EvalOptions(data="")
        for name in ("limit", "train_limit", "pixel_labels", "seed", "device", "batch_size", "optimize_steps", "runtime",
                     "align", "bm3d_images"):
            value = getattr(self, name)
            if value != getattr(defaults, name):
                args += [f"--{name.replace('_', '-')}", str(value)]
        args += ["--out", str(self.out)]
        return shlex.join(args)


def _log_to_stderr(message: str) -> None:
    import click

    click.echo(message, err=True)


def run_eval(options: EvalOptions, progress: bool = True, log=_log_to_stderr) -> dict:
    """Compute the report, write report.json, report.md and the PNG grids into ``options.out``; return the report."""
    from aekit import __version__, io
    from aekit.alignment import check_mode
    from aekit.checkpoint import architecture_name, model_fingerprint
    from aekit.loading import load
    from aekit.command_tools import skipped_lines
    from aekit.noise import parse_noise
    from aekit.devices import resolve_device
    from aekit.runtime import ModelOnRuntime

    started = time.time()
    timings: dict[str, float] = {}
    mark = [started]

    def lap(name: str) -> None:
        now = time.time()
        timings[name] = round(now - mark[0], 1)
        mark[0] = now

    if not options.data:
        raise AekitError("give --data SOURCE: held-out images the model never trained on, e.g. faces/[9000:]")
    for name in ("limit", "train_limit"):
        value = getattr(options, name)
        if value is not None and value < 1:
            raise AekitError(f"--{name.replace('_', '-')} must be at least 1 (got {value})")
    if options.optimize_steps < 0:
        raise AekitError(f"--optimize-steps must be zero or more (got {options.optimize_steps})")
    if options.bm3d_images < 0:
        raise AekitError(f"--bm3d-images must be zero or more (got {options.bm3d_images})")
    if options.labels_csv and not Path(options.labels_csv).is_file():
        raise AekitError(f"--labels {options.labels_csv}: no such file")
    noises = [parse_noise(spec) for spec in options.noise]  # a bad spec fails before any work
    align = check_mode(options.align)
    out = Path(options.out)
    if out.exists() and not out.is_dir():
        raise AekitError(f"--out {out}: is a file; give a folder for the report")
    io.check_writable(out / "report.json")

    device = resolve_device(options.device)
    model = load(options.model, device=device)
    on_runtime = ModelOnRuntime(model, options.runtime)  # an impossible runtime fails before any work
    size, latent_dim = model.config.image_size, model.config.latent_dim
    record = splits.recorded_training(model)
    splits.check_eval_data(options.data, options.limit, record, options.train_data)
    if options.optimize_steps and not model.decodes_latents:
        raise AekitError("--optimize-steps: this model has skip connections (a denoiser); its output is not decoded from the latent alone")
    # a codec model (the `codec` architecture) is measured by its bitstreams: a rate-distortion section instead of
    # the latent rows, and what does not apply to it (PCA at the latent's bytes, denoising, refined latents) is
    # left out with a note
    coded = bool(getattr(model, "entropy_coded", False))
    pca_asked = options.baselines and not coded
    # a model trained elsewhere (every downloaded one): what needs its training images is left out, not the report
    missing = None if options.train_data else splits.missing_training_data(record)
    fits = (pca_asked or options.labels) and missing is None
    if (pca_asked or options.labels) and missing:
        left_out = [what for what, asked in (("the PCA baseline", pca_asked), ("the linear probes", options.labels))
                    if asked]
        log(f"note: {missing}; {' and '.join(left_out)} need a training split and are left out: give --train-data "
            "SOURCE (images the evaluation data does not contain)")

    evaluation = splits.load_eval(options.data, size, options.limit, progress, align)
    clean = quality.to_unit(evaluation.images)
    # labels follow the faces: a face's are its photo's (from the source's attributes, or a CSV keyed by the photo)
    test_labels = probe.read_labels(evaluation.attributes, evaluation.photo_names, options.labels_csv) if options.labels else {}
    if options.labels and not test_labels:
        raise AekitError(f"--labels: {options.data} has no labels (a folder needs an attributes.csv at its root; "
                         "or give --labels FILE.csv)")
    if noises and coded:
        log("note: a codec model does not denoise; the denoising tables are left out")
    noises = [] if coded else noises
    if noises and len(evaluation) < 2:
        raise AekitError(f"--noise needs at least 2 evaluation images (one to tune the baselines on), got {len(evaluation)}")
    for line in skipped_lines(evaluation.skipped):
        log(line)
    faces_note = f" ({_faces_summary(evaluation, align)})" if evaluation.placements is not None else ""
    log(f"evaluating on {len(evaluation)} images of {options.data}{faces_note}")
    lap("loading")
    out.mkdir(parents=True, exist_ok=True)

    model_info = {"path": str(options.model or getattr(model, "checkpoint_dir", "")), "architecture": architecture_name(model),
                  "latent_dim": latent_dim, "image_size": size, "model_id": model_fingerprint(model),
                  "config": model.config.to_dict(), "parameters": model.num_parameters()}
    data_info = {"eval": {"source": options.data, "description": evaluation.description, "images": len(evaluation),
                          "skipped": len(evaluation.skipped)},
                 "model_training": _describe_training(record), "overlap_checked": record is not None and missing is None,
                 "training_data_missing": missing, "align": _align_info(evaluation, align)}
    if evaluation.placements is not None:  # where each evaluation image came from: one row each, in order
        _write_placements(out / PLACEMENTS_FILE, evaluation)

    # -- the training split (baselines and probes are fitted on it, never on the evaluation images) --
    train = None
    if fits:
        train = splits.load_train(model, options.train_data, size, options.train_limit, options.seed, progress, align)
        data_info["train"] = {"source": train.source, "description": train.description, "images": len(train),
                              "images_in_split": train.total, "from": "--train-data" if options.train_data else "the model's training record"}
        log(f"training split: {train.description} ({len(train)} images)")
    train_pixels = quality.to_unit(train.images).reshape(len(train), -1) if train is not None else None
    lap("training split")

    # -- reconstruction (and a codec's rate-distortion section) --
    latents, pca, rate_distortion = None, None, None
    if coded:
        reconstruction, rate_distortion = _codec_sections(model, on_runtime, evaluation, out, options, model_info, progress,
                                                          log)
        lap("rate-distortion")
    else:
        latents, pca, reconstruction = _latent_reconstruction(model, on_runtime, evaluation, clean, train, train_pixels,
                                                              missing, out, options, progress, log)
        lap("reconstruction")
    result = {"format": FORMAT, "format_version": FORMAT_VERSION, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": options.command_line(), "settings": asdict(options),
              "environment": _environment(__version__, device, on_runtime.name),
              "model": model_info, "data": data_info, "reconstruction": reconstruction}
    if rate_distortion is not None:
        result["rate_distortion"] = rate_distortion

    # -- denoising --
    if coded and options.noise:
        result["denoising_left_out"] = ("a codec model does not denoise: its output is its bitstream decoded "
                                        "(`aekit compress` / `aekit decompress`)")
    if noises:
        tune_idx, report_idx = denoise.split_tuning(len(evaluation), options.seed)
        tables = []
        for number, noise in enumerate(noises, 1):
            log(f"denoising: {noise.spec}")
            noisy = noise(clean, np.random.default_rng([options.seed, number])).astype(np.float32)
            tables.append(_denoise_table(model, on_runtime, noise.spec, number, noisy, clean, tune_idx, report_idx, out,
                                         options, progress))
        result["denoising"] = {"images": len(report_idx), "tuning_images": len(tune_idx), "tables": tables,
                               "bm3d": _bm3d_info(options),
                               "tuning": {"NL-means h / sigma": list(denoise.NL_MEANS_GRID), "TV weight / sigma": list(denoise.TV_GRID),
                                          "nl_means": denoise.NL_MEANS_SETTINGS, "sigma": "estimated per image (Immerkaer 1996)"}}
        lap("denoising")

    # -- features --
    if options.labels and train is None:
        result["features_left_out"] = f"{missing}; give --train-data SOURCE to fit the linear probes"
    elif options.labels:
        if latents is None:  # a codec's: the analysis's latents, what it rounds into symbols
            latents = _encode(on_runtime, clean, options.batch_size, progress)
        result["features"] = _features(model, on_runtime, options, evaluation, test_labels, train, latents, train_pixels, clean,
                                       pca, progress, log)
        lap("features")

    result["elapsed_s"] = round(time.time() - started, 1)
    result["timings_s"] = timings
    io.write_json(out / "report.json", result)
    io.write_text(out / "report.md", render.as_markdown(result))
    return result


def _latent_reconstruction(model, on_runtime, evaluation, clean, train, train_pixels, missing, out, options, progress,
                           log) -> tuple[np.ndarray, object, dict]:
    """The reconstruction section of a latent model: its float32 and int8 latents (and refined ones), with
    ``--baselines`` PCA, JPEG and WebP at the latent's bytes; writes reconstruction.png. Returns (the latents, the
    PCA fitted or None, the section)."""
    from aekit import io
    from aekit.images import image_grid

    latent_dim = model.config.latent_dim
    skips = not model.decodes_latents
    latents, recon = _encode_decode(on_runtime, clean, options.batch_size, skips, progress)
    rows, grid_rows, grid_labels, notes = [], [evaluation.images[:GRID_IMAGES]], ["original"], []
    float_bytes = latent_dim * 4
    if skips:
        notes.append("the model has skip connections: its output does not pass through the latent alone, so it is "
                     "no codec and has no bytes per image")
    rows.append(_row("aekit" + (" (skip connections)" if skips else f" ({latent_dim}-d float32 latent)"),
                     None if skips else float_bytes, recon, clean, progress))
    grid_rows.append(_to_uint8(recon[:GRID_IMAGES]))
    grid_labels.append("aekit")
    if not skips:
        from aekit_compress import dequantize_int8, quantize_int8

        q, scale, offset = quantize_int8(latents)
        int8_recon = _decode(on_runtime, dequantize_int8(q, scale, offset), options.batch_size, progress)
        int8_bytes = latent_dim + 8 * latent_dim / len(latents)
        rows.append(_row(f"aekit ({latent_dim}-d int8 latent)", int8_bytes, int8_recon, clean, progress,
                         {"note": f"{latent_dim} bytes + a float32 scale and offset per dimension, shared by the "
                                  f"{len(latents)} images (as `aekit compress --dtype int8` stores them)"}))
        if options.optimize_steps:
            log(f"optimising every latent for {options.optimize_steps} steps (as `aekit compress --optimize-steps` does)")
            optimized = _optimize(model, clean, options.optimize_steps, options.batch_size, progress)  # PyTorch's gradients
            optimized_recon = _decode(on_runtime, optimized, options.batch_size, progress)
            rows.append(_row(f"aekit ({latent_dim}-d float32 latent, {options.optimize_steps} optimisation steps)", float_bytes,
                             optimized_recon, clean, progress,
                             {"optimize_steps": options.optimize_steps,
                              "note": "the encoder's latent refined by Adam steps on each image's own reconstruction error; "
                                      "same decoder, same bytes (as `aekit compress --optimize-steps` stores them)"}))
            grid_rows.append(_to_uint8(optimized_recon[:GRID_IMAGES]))
            grid_labels.append(f"aekit +{options.optimize_steps} steps")
    pca = None
    if options.baselines and train is None:
        notes.append(f"no PCA baseline: {missing}; give --train-data SOURCE to fit it")
    if options.baselines and train is not None:
        components = codecs.pca_components(latent_dim, len(train), train_pixels.shape[1])
        if components < latent_dim:
            notes.append(f"PCA has {components} components, not {latent_dim}: the training split has only {len(train)} images")
        log(f"fitting PCA-{components} on {len(train)} training images")
        pca = codecs.fit_pca(train_pixels, components, options.seed)
        pca_recon = codecs.pca_reconstruct(pca, clean)
        rows.append(_row(f"PCA-{components} (float32 coefficients)", components * 4, pca_recon, clean, progress,
                         {"components": components, "fitted_on": train.description, "train_images": len(train)}))
        grid_rows.append(_to_uint8(pca_recon[:GRID_IMAGES]))
        grid_labels.append(f"PCA-{components}")
    if options.baselines:
        for fmt, label in (("JPEG", "JPEG"), ("WEBP", "WebP")):
            best, tried = codecs.match_quality(evaluation.images, fmt, float_bytes)
            size_bytes, decoded = codecs.round_trip(evaluation.images, fmt, best, progress)
            rows.append(_row(f"{label} quality {best}", size_bytes, decoded, clean, progress,
                             {"format": fmt, "quality": best, "target_bytes": float_bytes, "pillow": codecs.CODEC_SETTINGS[fmt],
                              "mean_bytes_by_quality": {str(k): v for k, v in tried.items()}}))
            grid_rows.append(decoded[:GRID_IMAGES])
            grid_labels.append(f"{label} q{best}")
            if best in codecs.QUALITIES and abs(size_bytes - float_bytes) > 0.25 * float_bytes:
                notes.append(f"{label} cannot reach {float_bytes} bytes per image at any quality; quality {best} is the closest")
    grid_name = "reconstruction.png"
    io.save_image(out / grid_name, image_grid(grid_rows, grid_labels, title=f"{options.data}: original and reconstructions"),
                  optimize=True)
    return latents, pca, {"images": len(evaluation), "latent_bytes": {"float32": float_bytes, "int8": latent_dim},
                          "rows": rows, "notes": notes, "grid": grid_name}


def _codec_sections(model, on_runtime, evaluation, out, options, model_info, progress, log) -> tuple[dict, dict]:
    """A codec model's reconstruction section (its default quality's real bitstreams) and rate-distortion section
    (every quality against JPEG, WebP and AVIF at the same bytes: ``rate_distortion``'s numbers, the benchmark's);
    writes reconstruction.png and rd_curve.png. A run folder's integer tables are fixed in memory first."""
    from aekit import io
    from aekit.images import image_grid

    from . import rate_distortion as rd

    cfg, images = model.config, evaluation.images
    notes, rd_notes = [], []
    tables = "stored with the model"
    if not model.tables_fixed:  # coding reads only the integer tables: fix them as packaging would, in memory
        model.fix_entropy_tables()
        tables = "fixed in memory for this report"
        rd_notes.append("the model's integer tables were not fixed yet (a run folder): they were fixed in memory for "
                        "this report, as `aekit models package` does; packaging fixes them on the float16 weights it "
                        "ships, so a packaged model's bytes can differ slightly")
        log("note: this codec's integer tables are not fixed yet (a run folder): fixed in memory for the report")
    model_info["codec"] = {"qualities": cfg.qualities, "default_quality": cfg.default_quality,
                           "latent_shape": list(cfg.latent_shape), "tables": tables}
    for flag, asked, why in (("--baselines", options.baselines, "PCA and JPEG / WebP at the latent's bytes are left out: a "
                              "codec's bytes are its bitstreams', and the rate-distortion section compares it with "
                              "JPEG, WebP and AVIF at each quality's bytes"),
                             ("--optimize-steps", options.optimize_steps, "left out: a codec's bitstream holds its "
                              "analysis's rounded symbols, not a latent to refine")):
        if asked:
            notes.append(f"{flag}: {why}")
            log(f"note: {flag} on a codec model: {why}")

    log(f"coding {len(images)} faces at qualities 1 to {cfg.qualities}")
    points = rd.codec_curve(model, images, decode=on_runtime.decode, batch_size=options.batch_size, keep=GRID_IMAGES,
                            progress=progress)
    file_bytes = rd.file_bytes(model, points, evaluation.names, evaluation.placements)
    formats = rd.pillow_formats()
    log(f"sweeping {', '.join(rd.LABELS[f] for f in formats)} over their quality settings")
    sweeps = rd.pillow_sweep(images, formats, progress)

    overheads = [f - p.bytes for p, f in zip(points, file_bytes)]
    rd_notes.append(f"container: the .npz that `aekit compress` writes for these {len(images)} faces comes to "
                    f"{_span(file_bytes, '{:,.1f}')} bytes a face over the qualities, {_span(overheads, '{:+,.1f}')} "
                    "against the bitstreams alone (its names, qualities, CRC-32s, offsets, metadata and zip headers)"
                    + ("; smaller than the streams where the file's deflate shrank them, so they are not as compact "
                       "as they could be" if min(overheads) < 0 else "")
                    + "; the other formats are read at the whole file's bytes, as benchmarks/codec_table.py does")
    for fmt in formats:
        low, high = rd.sweep_span(sweeps[fmt])
        outside = [str(p.quality) for p, f in zip(points, file_bytes) if not low <= f <= high]
        if outside:
            settings = rd.SWEEPS[fmt]
            rd_notes.append(f"{rd.LABELS[fmt]}: its sweep (quality {settings[0]} to {settings[-1]}) spans {low:,.0f} to "
                            f"{high:,.0f} bytes a face, so it is not read at codec qualit{'ies' if len(outside) > 1 else 'y'} "
                            f"{', '.join(outside)} (–)")
    if "AVIF" not in formats:
        rd_notes.append(rd.AVIF_MISSING)

    plot = "rd_curve.png"
    rd.plot_curve(out / plot, [(f, p.psnr, p.ssim) for p, f in zip(points, file_bytes)], sweeps,
                  title=f"rate-distortion on {len(images)} faces: aekit codec against Pillow's formats")
    grid = "reconstruction.png"
    grid_rows = [images[:GRID_IMAGES]] + [p.decoded for p in points]
    grid_labels = ["original"] + [f"q{p.quality}: {p.bytes:.0f} B" for p in points]
    io.save_image(out / grid, image_grid(grid_rows, grid_labels, title=f"{options.data}: original and every quality"),
                  optimize=True)

    default = points[cfg.default_quality - 1]
    notes.insert(0, f"a codec model: each face is its bitstream at the model's default quality {cfg.default_quality} "
                    "(as `aekit compress` codes it; bytes: the bitstreams alone), decoded as `aekit decompress` writes "
                    "it; every quality, against JPEG, WebP and AVIF at the same bytes, is in the rate-distortion section")
    reconstruction = {"images": len(images), "latent_bytes": None, "notes": notes, "grid": grid,
                      "rows": [{"method": f"aekit codec, quality {cfg.default_quality} (default)",
                                "bytes_per_image": default.bytes, **default.scores,
                                "settings": {"quality": cfg.default_quality, "bytes": "the bitstreams alone",
                                             "file_bytes_per_image": file_bytes[cfg.default_quality - 1]}}]}
    rows = [{"method": p.label, "quality": p.quality, "bytes_per_image": p.bytes, "file_bytes_per_image": f, **p.scores,
             "matched": rd.matched(sweeps, f)} for p, f in zip(points, file_bytes)]
    section = {"images": len(images), "qualities": cfg.qualities, "default_quality": cfg.default_quality,
               "tables": tables, "rows": rows, "formats": formats, "labels": {f: rd.LABELS[f] for f in formats},
               "pillow": {fmt: {"settings": rd.SAVE_OPTIONS[fmt], "rows": sweeps[fmt]} for fmt in formats},
               "notes": rd_notes, "plot": plot,
               "bytes": "aekit: the whole .npz over the faces, and the bitstreams alone; Pillow's formats: whole "
                        "files, headers included",
               "matched_at": "each format's PSNR and SSIM at the codec's whole-file bytes, linear between its two "
                             "nearest settings; none outside its sweep"}
    return reconstruction, section


def _span(values, form: str) -> str:
    """``12.5`` or ``12.5 to 14.0``: the smallest and largest of `values` as `form` writes them."""
    low, high = form.format(min(values)), form.format(max(values))
    return low if low == high else f"{low} to {high}"


# --- pieces ----------------------------------------------------------------------------------------------


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(unit) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _chunks(count: int, batch_size: int, progress: bool, desc: str):
    bar = tqdm(total=count, desc=desc, unit="img", disable=not progress, leave=False)
    for start in range(0, count, batch_size):
        yield slice(start, start + batch_size)
        bar.update(min(batch_size, count - start))
    bar.close()


# `model` in _encode, _decode and _encode_decode: the model or its ModelOnRuntime (the same methods)


def _encode(model, unit: np.ndarray, batch_size: int, progress: bool, desc: str = "encoding") -> np.ndarray:
    parts = [model.encode(quality.unit_to_tensor(unit[s]), batch_size=batch_size).numpy()
             for s in _chunks(len(unit), batch_size, progress, desc)]
    return np.concatenate(parts).astype(np.float32)


def _optimize(model, unit: np.ndarray, steps: int, batch_size: int, progress: bool) -> np.ndarray:
    parts = [model.optimize_latents(quality.unit_to_tensor(unit[s]), steps, batch_size=batch_size).numpy()
             for s in _chunks(len(unit), batch_size, progress, f"optimising latents ({steps} steps)")]
    return np.concatenate(parts).astype(np.float32)


def _decode(model, latents: np.ndarray, batch_size: int, progress: bool) -> np.ndarray:
    parts = [quality.tensor_to_unit(model.decode(torch.from_numpy(latents[s]), batch_size=batch_size))
             for s in _chunks(len(latents), batch_size, progress, "decoding")]
    return np.concatenate(parts)


def _encode_decode(model, clean, batch_size, skips, progress):
    latents = _encode(model, clean, batch_size, progress)
    if skips:
        recon = np.concatenate([quality.tensor_to_unit(model.reconstruct(quality.unit_to_tensor(clean[s]), batch_size=batch_size))
                                for s in _chunks(len(clean), batch_size, progress, "reconstructing")])
    else:
        recon = _decode(model, latents, batch_size, progress)
    return latents, recon


def _row(method: str, bytes_per_image, pred, clean, progress, settings: dict | None = None) -> dict:
    return {"method": method, "bytes_per_image": None if bytes_per_image is None else float(bytes_per_image),
            **quality.scores(pred, clean, progress, f"SSIM {method}"), "settings": settings or {}}


def model_denoise(model, on_runtime, noisy: np.ndarray, batch_size: int, progress: bool = False) -> tuple[np.ndarray, str]:
    """What the denoising table measures: ``model.denoise`` (its reconstruction for a model without one) by
    `on_runtime` (the model's ModelOnRuntime) on float (N, H, W, 3) in [0, 1] -> (float outputs, the row's name)."""
    use_denoise = callable(getattr(model, "denoise", None))
    method = "aekit model.denoise" if use_denoise else "aekit reconstruct (model has no denoise)"
    function = on_runtime.denoise if use_denoise else on_runtime.reconstruct
    outputs = [quality.tensor_to_unit(function(quality.unit_to_tensor(noisy[s]), batch_size=batch_size))
               for s in _chunks(len(noisy), batch_size, progress, "aekit denoising")]
    return np.concatenate(outputs), method


def _denoise_table(model, on_runtime, spec, number, noisy, clean, tune_idx, report_idx, out, options, progress) -> dict:
    from aekit import io
    from aekit.images import image_grid

    target = clean[report_idx]
    rows = [{"method": "noisy input", "parameter": "", **quality.scores(noisy[report_idx], target, progress)}]
    aekit_out, method = model_denoise(model, on_runtime, noisy[report_idx], options.batch_size, progress)
    rows.append({"method": method, "parameter": "", **quality.scores(aekit_out, target, progress)})
    grid_rows, labels = [_to_uint8(noisy[report_idx[:GRID_IMAGES]]), _to_uint8(aekit_out[:GRID_IMAGES])], ["noisy", "aekit"]
    notes = []
    sigmas = quality.estimate_sigma(noisy[report_idx])
    for name, (function_, _grid, parameter) in denoise.METHODS.items():
        tuned = denoise.tune(name, noisy[tune_idx], clean[tune_idx], progress)
        denoised = function_(noisy[report_idx], tuned["multiple"], sigmas, progress, name)
        rows.append({"method": f"scikit-image {name}", "parameter": f"{parameter} = {tuned['multiple']:g} x sigma",
                     **quality.scores(denoised, target, progress), "tuning": tuned})
        notes += [f"{name}: {n}" for n in tuned["notes"]]
        grid_rows.append(_to_uint8(denoised[:GRID_IMAGES]))
        labels.append(name)
    bm3d = _bm3d_row(spec, noisy, clean, report_idx, aekit_out, options, progress)
    if bm3d is not None:
        row, denoised, note = bm3d
        rows.append(row)
        notes += [note] if note else []
        if len(denoised) >= min(GRID_IMAGES, len(report_idx)):
            grid_rows.append(_to_uint8(denoised[:GRID_IMAGES]))
            labels.append("BM3D")
    grid_rows.append(_to_uint8(target[:GRID_IMAGES]))
    labels.append("clean")
    grid = f"denoise-{number}-{re.sub(r'[^A-Za-z0-9.]+', '-', spec).strip('-')}.png"
    io.save_image(out / grid, image_grid(grid_rows, labels, title=f"{spec}: noisy / denoised / clean"), optimize=True)
    return {"noise": spec, "rows": rows, "grid": grid, "notes": notes,
            "estimated_sigma": float(sigmas.mean())}


def _bm3d_info(options) -> dict:
    """The report's ``denoising.bm3d``: whether BM3D ran, on how many images, and the line that says so."""
    version = denoise.bm3d_version()
    if version is None:
        return {"installed": False, "line": denoise.BM3D_MISSING}
    if not options.bm3d_images:
        return {"installed": True, "version": version, "images": 0, "line": "BM3D: left out (--bm3d-images 0)"}
    return {"installed": True, "version": version, "images": options.bm3d_images, "function": "bm3d.bm3d_rgb",
            "sigma": f"{denoise.BM3D_TRUE_SIGMA}; otherwise {denoise.BM3D_MEASURED_SIGMA}",
            "cache": str(denoise.bm3d_cache_dir()),
            "line": f"BM3D: bm3d {version} (non-commercial licence, not a dependency of aekit), on the first "
                    f"{options.bm3d_images} reported images of each table at most, told {denoise.BM3D_TRUE_SIGMA} and "
                    f"otherwise {denoise.BM3D_MEASURED_SIGMA}"}


def _bm3d_row(spec, noisy, clean, report_idx, aekit_out, options, progress):
    """(BM3D's row, its outputs, a note or "") on the first --bm3d-images reported images; None when it does not run."""
    if not options.bm3d_images or denoise.bm3d_version() is None:
        return None
    count = min(options.bm3d_images, len(report_idx))
    subset = report_idx[:count]
    sigmas, which, true_sigma = denoise.bm3d_sigmas(spec, noisy[subset], clean[subset])
    denoised, stats = denoise.bm3d(noisy[subset], sigmas, progress, desc=f"BM3D {spec}")
    parameter = f"sigma = {true_sigma:g} (true)" if true_sigma is not None else "sigma = measured per image"
    row = {"method": "BM3D" if count == len(report_idx) else f"BM3D (first {count} images)", "parameter": parameter,
           **quality.scores(denoised, clean[subset], progress), "images": count,
           "settings": {"function": "bm3d.bm3d_rgb", "sigma": which, "mean_sigma": float(np.mean(sigmas)),
                        "computed": stats["computed"], "cached": stats["cached"],
                        "seconds_per_image": stats["seconds"] / stats["computed"] if stats["computed"] else None}}
    note = ""
    if count < len(report_idx):
        same = {name: float(quality.psnr(images, clean[subset]).mean())
                for name, images in (("noisy", noisy[subset]), ("aekit", aekit_out[:count]), ("BM3D", denoised))}
        row["same_images_psnr"] = same
        note = (f"BM3D ran on the first {count} of the {len(report_idx)} images (--bm3d-images); on those, PSNR noisy "
                f"{same['noisy']:.2f}, aekit {same['aekit']:.2f}, BM3D {same['BM3D']:.2f} dB")
    return row, denoised, note


def _features(model, on_runtime, options, evaluation, test_labels, train, latents, train_pixels, clean, pca, progress,
              log) -> dict:
    train_labels = probe.read_labels(train.attributes, train.photo_names, options.labels_csv)
    usable, skipped = probe.binary_labels(train_labels, test_labels)
    if not usable:
        reasons = "; ".join(f"{k}: {v}" for k, v in list(skipped.items())[:3])
        raise AekitError(f"--labels: no binary label to probe ({reasons})")
    log(f"linear probes on {len(usable)} labels")
    train_latents = _encode(on_runtime, quality.to_unit(train.images), options.batch_size, progress, "encoding training split")
    if pca is None:
        components = codecs.pca_components(model.config.latent_dim, len(train), train_pixels.shape[1])
        pca = codecs.fit_pca(train_pixels, components, options.seed)
    test_pixels = clean.reshape(len(clean), -1)
    subset = probe.pixel_label_subset(usable, options.pixel_labels)
    features = [("aekit latents", latents.shape[1], train_latents, latents, None),
                (f"PCA-{pca.n_components_} of pixels", int(pca.n_components_), pca.transform(train_pixels), pca.transform(test_pixels), None)]
    if subset:
        features.append(("raw pixels", train_pixels.shape[1], train_pixels, test_pixels, subset))
    rows = probe.probe_table(features, train_labels, test_labels, usable, subset if len(subset) < len(usable) else None, progress)
    return {"train_images": len(train), "test_images": len(evaluation), "labels": usable,
            "label_source": options.labels_csv or "the data source's own attributes",
            "pixel_labels": subset if len(subset) < len(usable) else [], "skipped_labels": skipped, "rows": rows}


def _faces_summary(images, align: str) -> str:
    """``--align on: 3 faces of 2 photos`` (and how many were used whole) for the log and the report."""
    faces = sum(p.aligned for p in images.placements)
    whole = len(images.placements) - faces
    parts = [f"{faces} face(s) of {len({p.photo for p in images.placements if p.aligned})} image(s)"] if faces else []
    parts += [f"{whole} image(s) as they are"] if whole else []
    return f"--align {align}: " + (", ".join(parts) or "no image")


def _align_info(images, align: str) -> dict:
    """The report's ``data.align``: the --align mode, and under auto / on how the images became faces."""
    info = {"mode": align}
    if images.placements is not None:
        from aekit.alignment import get_aligner

        faces = sum(p.aligned for p in images.placements)
        info.update({"aligner": getattr(get_aligner(), "name", ""), "images_read": images.photos, "faces": faces,
                     "whole_images": len(images.placements) - faces, "placements": PLACEMENTS_FILE,
                     "summary": _faces_summary(images, align),
                     "note": "each face is one evaluation image, with its photo's labels: a photo of two faces "
                             "counts twice"})
    return info


def _write_placements(path, images) -> None:
    """faces.csv: for each evaluation image (in order) its name, photo, face index (-1: the whole image) and box."""
    import csv
    import io as text_io

    from aekit import io
    from aekit.alignment import placement_columns

    columns = placement_columns(images.placements)
    buffer = text_io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", "name", "photo", "face", "box_x", "box_y", "box_w", "box_h"])
    for i, (name, photo, face, box) in enumerate(zip(images.names, columns["photo"], columns["face"], columns["box"])):
        writer.writerow([i, name, str(photo), int(face)] + ["" if not np.isfinite(v) else f"{float(v):.1f}" for v in box])
    io.write_text(path, buffer.getvalue())


def _describe_training(record) -> str:
    if record is None:
        return "not recorded in the checkpoint (no overlap check was possible)"
    cfg = record.config
    text = f"`{record.data}`"
    extra = [f"{k.replace('_', '-')} {getattr(cfg, k)}" for k in ("skip", "limit", "files") if getattr(cfg, k)]
    if cfg.val_fraction:
        extra.append(f"validation share {cfg.val_fraction:g}")
    if cfg.val_data:
        extra.append(f"validation data `{cfg.val_data}`")
    return text + (f" ({', '.join(extra)})" if extra else "")


def _environment(version: str, device, runtime: str) -> dict:
    name = str(device)
    if device.type == "cuda":
        name = f"cuda ({torch.cuda.get_device_name(device)})"
    return {"aekit": version, "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": name, "runtime": runtime}
