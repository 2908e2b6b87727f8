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
from .bitstreams import is_bitstream_file, load_bitstreams


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@model_option(task="compress")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="The .npz to write.")
@click.option("--dtype", type=click.Choice(DTYPES), default=None,
              help="Latent models: the storage, float16 (default) is 256 bytes a 128-d face; int8 is 128 bytes plus "
                   "1 KB of scales per file. Not for a codec model, which writes bitstreams.")
@click.option("--quality", type=click.IntRange(min=1), default=None, metavar="Q",
              help="Codec models: the rate, from 1 (smallest) to the model's number of qualities (default: the "
                   "model's default_quality).")
@click.option("--bytes", "target_bytes", type=click.FloatRange(min=1, min_open=False), default=None, metavar="N",
              help="Codec models: aim at a mean of N bytes a face (bitstreams alone), choosing a quality per face "
                   "where the bytes lower the error most (each face is coded at every quality first).")
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
def compress(inputs, model_path, out, dtype, quality, target_bytes, batch_size, report, optimize_steps, strict, overwrite,
             runtime, align, quiet):
    """Encode images to a latent .npz, or with a codec model to entropy-coded bitstreams (INPUT: image files,
    folders, array files or data sources).

    A codec model (the `codec` architecture) writes one bitstream a face at --quality Q, or at a mean of
    --bytes N a face; it reports the bytes a face two ways, the bitstreams alone and the whole file, and
    `aekit decompress` reads the file with no other option; faces-64-codec is the default. A latent model
    (--model faces-64, or a run of `aekit train`) writes its latents in --dtype.

    With --align on (or auto, for photos not framed like CelebA) each face of a photo is one latent,
    named PHOTO#N (face N, largest first); the file's photo, face and box arrays say where each came
    from, and `aekit decompress` writes it as PHOTO-N.png. Photos without a face are skipped and
    listed under --align on.

    \b
    Examples:
      aekit compress faces/ --out faces.npz --report                        # faces-64-codec, quality 4
      aekit compress faces/ --bytes 200 --out faces.npz --report            # about 200 bytes a face
      aekit compress faces/ --quality 1 --out faces.npz                     # the fewest bytes
      aekit compress photos/ --align on --out faces.npz                     # a bitstream per face found
      aekit compress a.jpg b.png -m faces-64 --dtype int8 --out two.npz     # faces-64's latents, int8
      aekit compress faces/ -m faces-64 --optimize-steps 40 --out z.npz     # latents: slower, sharper
      aekit compress faces/ -m faces-64 --runtime onnx-int8 --out z.npz     # latents: int8 ONNX Runtime
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
    if quality is not None and target_bytes is not None:
        raise click.UsageError("give --quality or --bytes, not both")
    model = load_model_arg(model_path, task="compress")
    coded = getattr(model, "entropy_coded", False)
    _check_codec_options(model, coded, dtype, quality, target_bytes, optimize_steps)
    dtype = dtype or "float16"
    on_runtime = ModelOnRuntime(model, runtime)  # the encoder's graph is made and checked on the first batch
    photos = source  # the images as given; `source` is then one entry per face (--align auto / on)
    source = aligned_source(photos, align, model.config.image_size, progress=not quiet)
    skipped, names, chunks, rows, pictures = [], [], [], [], []
    # decoding runs a batch ahead of the encoder
    for batch in prefetch(iter_batches(source, model.config.image_size, batch_size, skipped, not quiet, "compressing")):
        if strict and skipped:
            raise AekitError(skipped[0])
        if coded:  # the codec's latents, in float64 by PyTorch whatever the runtime (exact symbols: aekit.codec)
            chunks.append(model.coding_latents(batch.images, batch_size=batch_size))
            if target_bytes is not None or report:
                pictures.append(batch.images)
        elif optimize_steps:  # gradient steps through the decoder: PyTorch whatever the runtime
            chunks.append(model.optimize_latents(batch.images, optimize_steps, batch_size=batch_size).numpy())
        else:
            chunks.append(on_runtime.encode(batch.images, batch_size=batch_size).numpy())
        names += batch.names
        rows += batch.indices
    if strict and skipped:
        raise AekitError(skipped[0])
    finish_skipped(skipped, len(chunks))
    placements = None
    if source is not photos:  # --align auto / on: where each face came from
        every = source.placements()
        placements = placement_columns([every[i] for i in rows])
    if coded:
        _write_bitstreams(model, on_runtime, torch.cat(chunks), pictures, names, out, quality, target_bytes, placements,
                          align, model_path, report, batch_size, skipped)
        return
    latents = np.concatenate(chunks)
    if report:  # --report's decoder graph is made and checked before the file is written, not after
        on_runtime.prepare("decoder")
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

def _check_codec_options(model, coded: bool, dtype, quality, target_bytes, optimize_steps) -> None:
    """One-line errors for options that do not fit the model: --quality / --bytes need a codec, --dtype and
    --optimize-steps a latent model."""
    from aekit.checkpoint import architecture_name

    if not coded and (quality is not None or target_bytes is not None):
        option = "--quality" if quality is not None else "--bytes"
        raise AekitError(f"{option} needs a codec model (the `codec` architecture, entropy-coded bitstreams); this "
                         f"model ({architecture_name(model)}) stores latents: use --dtype, or pass --model A_CODEC")
    if coded and dtype is not None:
        raise AekitError("--dtype is for latent models; a codec model writes bitstreams: use --quality or --bytes")
    if coded and optimize_steps:
        raise AekitError("--optimize-steps is for latent models; a codec model's symbols come from its encoder")
    if coded and quality is not None and quality > model.config.qualities:
        raise click.BadParameter(f"{quality}: this codec has qualities 1 to {model.config.qualities}",
                                 param_hint="--quality")


def _write_bitstreams(model, on_runtime, latents, pictures, names, out, quality, target_bytes, placements, align,
                      model_path, report, batch_size, skipped) -> None:
    """`aekit compress` with a codec model: code the faces, write the .npz, say its bytes a face two ways."""
    from aekit.pretrained import named_model, resolve_model

    from .bitstreams import code_faces, load_bitstreams, save_bitstreams

    if target_bytes is not None or report:
        on_runtime.prepare("decoder")  # --bytes and --report decode: a refused graph fails before anything is written
    images = np.concatenate(pictures) if pictures else None
    result = code_faces(model, images, quality, target_bytes, decode=on_runtime.decode, batch_size=batch_size,
                        latents=latents)
    if result.sizes is not None:
        lowest, highest = result.sizes[:, 0].mean(), result.sizes[:, -1].mean()
        if not lowest <= target_bytes <= highest:
            click.echo(f"note: --bytes {target_bytes:g} is outside this codec's range for these faces ({lowest:.0f} to "
                       f"{highest:.0f} bytes a face); it comes as close as it can", err=True)
    pretrained = named_model(resolve_model(model_path, "compress").spec)
    extra = {"target_bytes": target_bytes} if target_bytes is not None else {}
    if placements is not None:
        extra["align"] = str(align)
    file_bytes = save_bitstreams(out, result.streams, result.quality, names, model,
                                 model_name=pretrained.name if pretrained else "", placements=placements, extra_meta=extra)
    n = len(names)
    stream_bytes = sum(len(s) for s in result.streams)
    used = np.unique(result.quality)
    rate = f"quality {int(used[0])}" if len(used) == 1 else f"qualities {int(used.min())}-{int(used.max())}"
    click.echo(f"wrote {out}: {n} faces ({rate}; {stream_bytes / n:.1f} bytes a face in bitstreams, "
               f"{file_bytes / n:.1f} bytes a face for the whole file)" + (f", {len(skipped)} skipped" if skipped else ""))
    if report:
        from aekit.images import to_uint8_hwc
        from aekit.metrics import psnr, ssim

        coded = load_bitstreams(out)  # what decompress will see
        decoded = to_uint8_hwc(model.decompress_faces(coded.streams, coded.quality, decode=on_runtime.decode,
                                                      batch_size=batch_size))
        size = model.config.image_size
        raw = size * size * 3
        report_rows = [("faces", f"{n}"), ("bytes a face (bitstreams)", f"{stream_bytes / n:.1f}"),
                       ("bytes a face (.npz file)", f"{file_bytes / n:.1f}"),
                       (f"ratio vs raw {size}x{size} pixels ({raw} B)", f"{raw * n / max(stream_bytes, 1):.1f}x"),
                       ("qualities used", ", ".join(f"{int(q)}: {int((result.quality == q).sum())}" for q in used)),
                       ("round-trip PSNR", f"{psnr(decoded, images).mean():.2f} dB"),
                       ("round-trip SSIM", f"{ssim(decoded, images).mean():.4f}")]
        width = max(len(k) for k, _ in report_rows)
        for key, value in report_rows:
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
    """Decode a latent .npz, or a codec's bitstreams, back to one PNG per face, named after its source.

    A codec file names the model that made it: without --model, decompress uses that model when it is
    installed (or your default codec when it is the same model); another model is refused.

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
    arrays = _read_any(latent_file)
    if is_bitstream_file(arrays):
        coded = load_bitstreams(latent_file, arrays)
        model = _model_for_bitstreams(coded, latent_file, model_path)
        decoder = ModelOnRuntime(model, runtime).decode

        def decode(rows):  # the faces of a slice of the file
            return model.decompress_faces([coded.streams[i] for i in rows], coded.quality[rows], decode=decoder,
                                          batch_size=batch_size)

        names, faces = coded.names, coded.placements["face"] if coded.placements else None
    else:
        model = load_model_arg(model_path)
        stored = load_latents(latent_file, model)
        decoder = decoder_for(model, runtime)

        def decode(rows):
            return decoder(torch.from_numpy(stored.latents[rows.start : rows.stop]))

        names, faces = stored.names, stored.placements["face"] if stored.placements else None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    targets = output_names(names, faces)
    existing = [name for name in targets if (out / name).exists()]
    if existing and not overwrite:
        raise AekitError(f"{out / existing[0]}: already exists ({len(existing)} of the {len(targets)} outputs do); "
                         "add --overwrite to replace them or choose another --out")
    if targets:
        check_writable(out / targets[0])  # a folder that takes no file fails before any decoding
    bar = tqdm(total=len(targets), desc="decompressing", unit="img", disable=quiet, leave=False)
    for start in range(0, len(targets), batch_size):
        images = to_uint8_hwc(decode(range(start, min(start + batch_size, len(targets)))))
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


def _read_any(path) -> dict:
    """The arrays of a latent or codec .npz (a LatentFileError for what is neither readable)."""
    from aekit.arrays import read_npz

    from . import LatentFileError

    return read_npz(Path(path), "latent .npz", LatentFileError)


def _model_for_bitstreams(coded, path, model_path):
    """The model that made a codec file: --model when given (refused unless it is that model); else the installed
    pretrained model the file names, your default codec, or any installed codec, whichever has the file's fingerprint."""
    from aekit import load, model_fingerprint
    from aekit.pretrained import pretrained_models, resolve_model

    from .bitstreams import BitstreamFileError, check_model

    if model_path is not None:
        model = load_model_arg(model_path)
        check_model(coded, model, path)
        return model
    candidates = []
    if coded.model_name:
        candidates.append((coded.model_name, "the model the file names"))
    try:
        candidates.append((resolve_model(None, "compress").spec, "your default codec"))
    except AekitError:
        pass
    candidates += [(m.name, "an installed codec") for m in pretrained_models() if {"compress", "codec"} & set(m.tasks)]
    tried = set()
    for spec, why in candidates:
        if str(spec) in tried:
            continue
        tried.add(str(spec))
        try:
            model = load(spec)
        except AekitError:
            continue  # a name no longer installed: the next candidate
        if getattr(model, "entropy_coded", False) and model_fingerprint(model) == coded.model_id:
            check_model(coded, model, path)
            click.echo(f"Using model {spec} ({why}: it made {Path(path).name})", err=True)
            return model
    named = f" ({coded.model_name})" if coded.model_name else ""
    raise BitstreamFileError(f"{path}: made by model {coded.model_id}{named}, which is not installed; pass "
                             "--model with the model that compressed it")
