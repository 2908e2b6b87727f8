"""The ``aekit compress`` and ``aekit decompress`` commands (the file format is in the package)."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import torch

from aekit.alignment import align_option
from aekit.command_tools import (check_output_folder, check_output_path, finish_skipped, load_model_arg, model_option,
                                 refuse_existing_output)
from aekit.errors import AekitError
from aekit.runtime import ModelOnRuntime, decoder_for, runtime_option

from . import DTYPES, Report, _subset, load_latents, output_names, round_trip_quality, save_latents


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@model_option
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="The .npz to write.")
@click.option("--dtype", type=click.Choice(DTYPES), default="float16", show_default=True,
              help="Storage: float16 is 256 bytes a 128-d face; int8 is 128 bytes plus 1 KB of scales per file.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--report", is_flag=True, help="Print bytes per image, compression ratios, and round-trip PSNR/SSIM.")
@click.option("--optimize-steps", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Refine each latent with N gradient steps on its reconstruction (same size, better PSNR; "
                   "~N decoder passes per image: 40 gave +0.8 dB on CelebA faces).")
@click.option("--strict", is_flag=True, help="Fail on the first unreadable image instead of skipping it.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it already exists (refused otherwise).")
@runtime_option("the encoder and --report's decoder (--optimize-steps refines with PyTorch)")
@align_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def compress(inputs, model_path, out, dtype, batch_size, report, optimize_steps, strict, overwrite, runtime, align, quiet):
    """Encode images to a latent .npz (INPUT: image files, folders, array files or data sources).

    With --align on (or auto, for photos not framed like CelebA) each face of a photo is one latent,
    named PHOTO#N (face N, largest first); the file's photo, face and box arrays say where each came
    from, and `aekit decompress` writes it as PHOTO-N.png. Photos without a face are skipped and
    listed under --align on.

    \b
    Examples:
      aekit compress faces/ --out faces.npz --report
      aekit compress a.jpg b.png --dtype int8 --out two.npz
      aekit compress photos/ --align on --out faces.npz                   # one latent per face found
      aekit compress faces/ --optimize-steps 40 --out faces.npz --report   # slower, sharper
      aekit compress faces/ --runtime onnx-int8 --out faces.npz            # int8 ONNX Runtime: faster on a CPU
    """
    from aekit.alignment import aligned_source, placement_columns
    from aekit.data import iter_batches, prefetch, split_slice
    from aekit.inputs import open_inputs

    out = check_output_path(out)  # before any encoding, which may also export the encoder into the cache
    given = [Path(split_slice(i)[0]) for i in inputs]  # array files are inputs too, not only image names
    if any(p.exists() and p.resolve() == out.resolve() for p in given):
        raise AekitError(f"{out}: would overwrite an input; choose another --out")
    if out.suffix.lower() != ".npz":
        raise click.BadParameter(f"{out}: must end in .npz", param_hint="--out")
    refuse_existing_output(out, overwrite)  # an earlier run's latents, or another command's .npz
    source = open_inputs(inputs, skip_missing_images=True)
    if any(Path(k).resolve() == out.resolve() for k in source.keys() if Path(k).exists()):
        raise AekitError(f"{out}: would overwrite an input; choose another --out")
    model = load_model_arg(model_path)
    on_runtime = ModelOnRuntime(model, runtime)  # the encoder's graph is made and checked on the first batch
    photos = source  # the images as given; `source` is then one entry per face (--align auto / on)
    source = aligned_source(photos, align, model.config.image_size, progress=not quiet)
    skipped, names, chunks, rows = [], [], [], []
    # decoding runs a batch ahead of the encoder
    for batch in prefetch(iter_batches(source, model.config.image_size, batch_size, skipped, not quiet, "compressing")):
        if strict and skipped:
            raise AekitError(skipped[0])
        if optimize_steps:  # gradient steps through the decoder: PyTorch whatever the runtime
            chunks.append(model.optimize_latents(batch.images, optimize_steps, batch_size=batch_size).numpy())
        else:
            chunks.append(on_runtime.encode(batch.images, batch_size=batch_size).numpy())
        names += batch.names
        rows += batch.indices
    if strict and skipped:
        raise AekitError(skipped[0])
    finish_skipped(skipped, len(chunks))
    latents = np.concatenate(chunks)
    if report:  # --report's decoder graph is made and checked before the file is written, not after
        on_runtime.prepare("decoder")
    placements = None
    if source is not photos:  # --align auto / on: where each latent came from
        every = source.placements()
        placements = placement_columns([every[i] for i in rows])
    payload = save_latents(out, latents, names, model, dtype, placements=placements,
                           align=align if placements is not None else None)
    click.echo(f"wrote {out}: {len(names)} latents ({dtype}, {payload / len(names):.0f} bytes each)"
               + (f", {len(skipped)} skipped" if skipped else ""))
    if report:
        stored = load_latents(out).latents  # what decompress will see, quantisation included
        good = _subset(source, names)
        mean_psnr, mean_ssim, input_bytes = round_trip_quality(model, good, stored, batch_size, not quiet,
                                                                 decode=on_runtime.decode)
        input_files = None
        if source is not photos:  # a photo of several faces was read once: its bytes count once
            sizes = [photos.byte_size(j) for j in sorted({source.source_index(i) for i in rows})]
            input_bytes = sum(sizes) if sizes and all(n is not None for n in sizes) else None
            input_files = len(sizes)
        result = Report(len(names), payload, out.stat().st_size, input_bytes, mean_psnr, mean_ssim, model.config.image_size,
                        input_files)
        width = max(len(k) for k, _ in result.rows())
        for key, value in result.rows():
            click.echo(f"  {key:<{width}}  {value}")

@click.command()
@click.argument("latent_file", type=click.Path())
@model_option
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Folder for the PNGs (created if missing).")
@click.option("--size", type=click.IntRange(min=1, max=4096), default=None, help="Resize outputs to SIZE x SIZE (default: the model's).")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace PNGs that already exist in --out (refused otherwise).")
@runtime_option("the decoder")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def decompress(latent_file, model_path, out, size, batch_size, overwrite, runtime, quiet):
    """Decode a latent .npz back to one PNG per latent, named after its source.

    \b
    Example:
      aekit decompress faces.npz --out restored/ --size 128
    """
    from PIL import Image
    from tqdm.auto import tqdm

    from aekit import io
    from aekit.images import to_uint8_hwc
    from aekit.io import check_writable

    check_output_folder(out)  # a file in its path: one line now, not "Not a directory" after loading the model
    model = load_model_arg(model_path)
    stored = load_latents(latent_file, model)
    decode = decoder_for(model, runtime)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    targets = output_names(stored.names, stored.placements["face"] if stored.placements else None)
    existing = [name for name in targets if (out / name).exists()]
    if existing and not overwrite:
        raise AekitError(f"{out / existing[0]}: already exists ({len(existing)} of the {len(targets)} outputs do); "
                         "add --overwrite to replace them or choose another --out")
    if targets:
        check_writable(out / targets[0])  # a folder that takes no file fails before any decoding
    bar = tqdm(total=len(targets), desc="decompressing", unit="img", disable=quiet, leave=False)
    for start in range(0, len(targets), batch_size):
        images = to_uint8_hwc(decode(torch.from_numpy(stored.latents[start : start + batch_size])))
        for image, name in zip(images, targets[start : start + batch_size]):
            picture = Image.fromarray(image)
            if size and size != picture.width:
                picture = picture.resize((size, size), Image.BICUBIC)
            path = out / name
            path.parent.mkdir(parents=True, exist_ok=True)
            io.save_image(path, picture)
            bar.update()
    bar.close()
    click.echo(f"wrote {len(targets)} PNGs to {out}")
