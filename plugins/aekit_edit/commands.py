"""The ``aekit directions fit``, ``aekit directions list`` and ``aekit edit`` commands."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from aekit.alignment import align_option
from aekit.command_tools import (check_output_folder, check_output_path, echo_skipped, load_model_arg, model_option,
                                 refuse_existing_output)
from aekit.text import printable, tsv_line
from aekit.runtime import decoder_for, runtime_option

from .directions import (DEFAULT_AXES, METHODS, PRINCIPAL, DirectionsError, directions_path, fit_directions,
                         load_directions, parse_edit)

MAX_EDIT_IMAGES = 64
MAX_STEPS = 25


@click.group("directions")
def directions_group():
    """Latent directions of a model: one per labelled attribute, plus its principal axes.

    \b
    Examples:
      aekit directions fit --model runs/celeba --data faces/     # faces/attributes.csv gives the labels
      aekit directions fit --model runs/synth --data synthetic:4000
      aekit directions list --model faces-64
    """


@directions_group.command("fit")
@model_option
@click.option("--data", required=True, metavar="SOURCE",
              help="Labelled images (any --data source of `aekit train`: a folder with attributes.csv, synthetic, "
                   "celeba, an .npz with attribute arrays); `[START:STOP]` picks a window, e.g. faces/[:9000].")
@click.option("--method", type=click.Choice(METHODS), default="mean", show_default=True,
              help="mean: the difference of the two classes' mean latents; logistic: a linear classifier's normal, "
                   "scaled to the same gap.")
@click.option("--axes", type=click.IntRange(0, 512), default=DEFAULT_AXES, show_default=True,
              help="Also store this many principal axes of the latents (pc1, pc2, ...), each one standard deviation long.")
@click.option("--limit", type=click.IntRange(min=2), default=20000, show_default=True, help="Fit on at most N images.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def fit(model_path, data, method, axes, limit, batch_size, quiet):
    """Fit attribute directions and principal axes; save them beside the checkpoint.

    Every 0/1 attribute of the data with at least 5 faces on each side gets a direction. An amount
    of 1 moves a face's latent by the gap between the mean latent of faces with the attribute and
    of those without it. The result is `directions.safetensors` in the model's folder, tied to the
    model: `aekit edit` refuses another model's file.

    \b
    Examples:
      aekit directions fit --model runs/celeba --data faces/[:9000]
      aekit directions fit --model runs/synth --data synthetic:4000 --method logistic
    """
    from aekit import model_fingerprint
    from aekit.data import prepare
    from aekit.io import check_writable
    from aekit_generate import encode_uint8

    from .directions import save_directions

    model = load_model_arg(model_path)
    _require_latent_space(model)
    target = directions_path(model.checkpoint_dir)
    check_writable(target)  # a read-only model folder fails before the encoding
    prepared = prepare(data, model.config.image_size, limit=limit, progress=not quiet)
    echo_skipped(prepared.skipped)
    if not prepared.attributes:
        click.echo(f"note: {data} has no attributes (no attributes.csv or label arrays); storing principal axes only",
                   err=True)
    latents = encode_uint8(model, np.asarray(prepared.images), batch_size=batch_size, progress=not quiet)
    directions, left_out = fit_directions(latents, prepared.attributes, method=method, axes=axes,
                                          info={"source": str(data)})
    save_directions(directions, target, model_fingerprint(model))
    for name, why in left_out.items():
        click.echo(printable(f"left out {name}: {why}"), err=True)  # attribute names come from the data's CSV
    click.echo(_table(directions))
    named = directions.named("attribute")
    click.echo(f"wrote {target} ({len(named)} attribute direction(s), {len(directions.named(PRINCIPAL))} principal axes, "
               f"from {len(latents)} images)")


def _require_latent_space(model) -> None:
    if not model.decodes_latents:
        raise DirectionsError(f"{model.checkpoint_dir}: this model has no latent space to edit (a skip-connection denoiser)")


def _table(directions) -> str:
    lines = [tsv_line(["direction", "kind", "details"])]
    for name, kind, detail in zip(directions.names, directions.kinds, directions.details):
        if kind == PRINCIPAL:
            text = f"std {detail.get('std', 0):.3f}, {100 * detail.get('explained_variance', 0):.1f}% of the variance"
        else:
            text = (f"{detail.get('with', '?')} with, {detail.get('without', '?')} without, "
                    f"separates {100 * detail.get('separation_accuracy', 0):.1f}%, length {detail.get('norm', 0):.3f}")
        lines.append(tsv_line([name, kind, text]))  # names come from the data's CSV: one line each, whatever they hold
    return "\n".join(lines)


@directions_group.command("list")
@model_option
@click.option("--directions", "directions_file", type=click.Path(), default=None, metavar="FILE",
              help="A directions file (default: the one beside the model).")
def list_directions(model_path, directions_file):
    """List a model's directions: the attributes (faces with/without, how well the direction separates them)
    and the principal axes (standard deviation, share of the variance).

    \b
    Example:
      aekit directions list --model faces-64
    """
    model = load_model_arg(model_path)
    directions = load_directions(model, directions_file)
    click.echo(_table(directions))
    source = directions.info.get("source")
    click.echo(f"{len(directions.names)} directions" + (f", fitted on {directions.info.get('images')} images of {source}"
                                                       if source else ""), err=True)


def _parse_edits(values) -> list[tuple[str, float]]:
    edits = []
    for value in values:
        try:
            edits.append(parse_edit(value))
        except DirectionsError as exc:
            raise click.BadParameter(str(exc), param_hint="--add") from None
    return edits


def _describe(edits) -> str:
    return ", ".join(f"{name}{amount:+g}" for name, amount in edits)


PHOTO_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}  # what --out may end in
PHOTO_QUALITY = 95  # JPEG and WebP
EDITED_SUFFIX = "-edited"  # several images: each edited photo is --out/STEM-edited.EXT


def _format_of(path) -> str | None:
    return PHOTO_FORMATS.get(Path(path).suffix.lower())


def _is_input(path: Path, inputs: list[Path]) -> bool:
    import os

    real = os.path.realpath(path)
    return any(p.exists() and os.path.realpath(p) == real for p in inputs)


def _picture_path(value, option: str, inputs: list[Path]) -> Path:
    """A .png picture to write (the --sweep strip, --grid): checked before any work."""
    path = check_output_path(value, option)
    if path.suffix.lower() != ".png":
        raise click.BadParameter(f"{path}: must end in .png", param_hint=option)
    if _is_input(path, inputs):
        raise click.BadParameter(f"{path}: would overwrite an input image; choose another file name", param_hint=option)
    return path


def _photo_outputs(out: str, inputs: list[Path], overwrite: bool) -> tuple[list[Path], bool]:
    """Where each edited photo goes, and whether --out is a folder (several images, or an existing folder):
    checked before any work, never an input, an existing file only with --overwrite."""
    import os

    from aekit.io import check_writable
    from aekit.paths import unique_names

    folder = len(inputs) > 1 or Path(out).is_dir() or str(out).endswith(("/", os.sep))
    if not folder:
        path = check_output_path(out)
        if _format_of(path) is None:
            raise click.BadParameter(f"{path}: must end in .png, .jpg, .jpeg or .webp (the edited photo's format); "
                                     "several images go to a folder", param_hint="--out")
        outputs = [path]
    else:
        root = Path(out)
        if not root.exists() and _format_of(root) is not None:
            raise click.BadParameter(f"{out}: looks like a file name; several images go to a folder (end it with / "
                                     "for a folder of this name)", param_hint="--out")
        check_output_folder(root)
        names = []
        for path in inputs:
            suffix = path.suffix if _format_of(path) else ".png"  # JPEG stays JPEG, PNG PNG, WebP WebP; others PNG
            stem = path.stem.replace("\0", "_") or "photo"
            names.append(f"{stem}{EDITED_SUFFIX}{suffix}")
        outputs = [root / name for name in unique_names(names)]
        check_writable(outputs[0])  # a folder that takes no file fails before any work
    for path in outputs:
        if _is_input(path, inputs):
            raise click.BadParameter(f"{path}: would overwrite an input image; choose another file name",
                                     param_hint="--out")
        refuse_existing_output(path, overwrite)
    return outputs, folder


def _save_photo(path: Path, image: np.ndarray, picture, fields: dict) -> None:
    """The edited photo, atomically, in the format of its extension (JPEG and WebP at quality 95); the input's
    colour profile is kept, and a PNG records how it was made."""
    from PIL import Image

    from aekit import io
    from aekit.images import png_text

    fmt = _format_of(path) or "PNG"
    params = {"pnginfo": png_text(fields)} if fmt == "PNG" else {"quality": PHOTO_QUALITY}
    icc = getattr(picture, "info", {}).get("icc_profile")
    if icc:
        params["icc_profile"] = icc
    path.parent.mkdir(parents=True, exist_ok=True)
    io.save_image(path, Image.fromarray(image), format=fmt, **params)


@click.command("edit")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@model_option
@click.option("--add", "adds", multiple=True, metavar="NAME=AMOUNT",
              help="Move along a direction (repeatable): Smiling=1.5, Eyeglasses=-1, pc1=2. 1 is the typical gap "
                   "between faces with and without the attribute (pcN: one standard deviation).")
@click.option("--sweep", default=None, metavar="NAME", help="Draw a strip along one direction (after any --add).")
@click.option("--steps", type=click.IntRange(2, MAX_STEPS), default=7, show_default=True, help="Faces in a --sweep strip.")
@click.option("--range", "extent", type=click.FloatRange(0, 100, min_open=True), default=2.0, show_default=True,
              help="A --sweep goes from -RANGE to +RANGE.")
@click.option("--out", "-o", type=click.Path(), required=True, metavar="FILE|DIR",
              help="The edited photo: .png, .jpg, .jpeg or .webp, its format; with several images a folder, where "
                   f"each is written as STEM{EDITED_SUFFIX}.EXT. With --sweep: the strip (.png).")
@click.option("--grid", "grid_file", type=click.Path(), default=None, metavar="FILE.png",
              help="Also write the comparison picture: each face as the model sees it, its reconstruction and the "
                   "edited face.")
@align_option
@click.option("--largest", is_flag=True, help="Edit only the largest face of each photo.")
@click.option("--overwrite", is_flag=True, help="Replace edited photos that already exist (refused otherwise; never an input).")
@click.option("--directions", "directions_file", type=click.Path(), default=None, metavar="FILE",
              help="A directions file (default: the one beside the model).")
@runtime_option("the decoder")
def edit(images, model_path, adds, sweep, steps, extent, out, grid_file, align, largest, overwrite, directions_file,
         runtime):
    """Edit the faces in photos: move their latents along named directions, and put the change back.

    Each face is found and aligned as the model's training faces were (--align), encoded, moved, and
    the difference between the moved face's decoding and its reconstruction is carried back into the
    photo under a soft mask around the face: the photo keeps its resolution and its own detail, and
    everything outside the mask is untouched. A picture already framed like CelebA (faces-64's own
    64x64 inputs, say) is edited the same way; one where no face is found (--align auto), or any with
    --align off, has the change added to the whole picture. Images without a face under --align on,
    and unreadable ones, are skipped and listed.

    With --sweep, --out is a strip instead: each face as the model sees it, then the face moved from
    -RANGE to +RANGE along the direction. --grid also writes the comparison of each face, its
    reconstruction and the edited face. Directions come from `aekit directions fit`; the pretrained
    faces-64 has CelebA's 40 attributes and 10 principal axes (`aekit directions list`).

    \b
    Examples:
      aekit edit photo.jpg --add Smiling=1.5 --add Eyeglasses=1 --out edited.jpg
      aekit edit group.png --add Young=1 --largest --out edited.png --grid faces.png
      aekit edit a.jpg b.png --add Male=-1 --out edited/         # edited/a-edited.jpg, edited/b-edited.png
      aekit edit face.jpg --sweep Smiling --steps 7 --out strip.png
      aekit edit a.jpg b.jpg --sweep pc1 --range 3 --out pc1.png
      aekit edit face.jpg --model runs/celeba --add Male=-1 --sweep Young --out strip.png
    """
    from aekit.errors import AekitError, ImageReadError
    from aekit.images import open_image

    from .photos import decoded_changes, photo_faces, put_changes

    edits = _parse_edits(adds)
    if not edits and not sweep:
        raise click.UsageError("nothing to do: give --add NAME=AMOUNT and/or --sweep NAME")
    if grid_file is not None and not edits:
        raise click.UsageError("--grid shows the --add edits: give --add NAME=AMOUNT")
    inputs = [Path(image) for image in images]
    if (sweep or grid_file) and len(images) > MAX_EDIT_IMAGES:
        raise click.BadParameter(f"at most {MAX_EDIT_IMAGES} images per picture, got {len(images)}", param_hint="IMAGE")
    targets, in_folder = (None, False) if sweep else _photo_outputs(out, inputs, overwrite)
    strip = _picture_path(out, "--out", inputs) if sweep else None
    grid = _picture_path(grid_file, "--grid", inputs) if grid_file is not None else None
    if grid is not None and any(grid.resolve() == p.resolve() for p in [strip, *(targets or [])] if p is not None):
        raise click.BadParameter(f"{grid}: is also --out; choose another file name", param_hint="--grid")
    model = load_model_arg(model_path)
    _require_latent_space(model)
    directions = load_directions(model, directions_file)
    for name in [n for n, _ in edits] + ([sweep] if sweep else []):
        directions.index(name)  # an unknown name fails before any image is read
    from aekit import model_fingerprint
    from aekit.alignment import aligner_for

    aligner = aligner_for(align)  # auto with no aligner installed: every image as it is (noted)
    align = align if aligner is not None else "off"
    size = model.config.image_size
    decode = decoder_for(model, runtime)
    fields = {"model": str(model.checkpoint_dir), "model_fingerprint": model_fingerprint(model),
              "edits": _describe(edits), "sweep": sweep or "", "range": extent if sweep else "", "align": align}
    skipped, crops, names, written, photos = [], [], [], [], 0
    for index, path in enumerate(inputs):
        try:
            picture = open_image(path)
        except ImageReadError as exc:
            skipped.append(str(exc))
            continue
        faces, why = photo_faces(np.asarray(picture, dtype=np.uint8), str(path), align, size, aligner, largest)
        if why is not None:
            skipped.append(why)
            continue
        photos += 1
        crops += [face.pixels for face in faces]
        names += [face.placement.key() for face in faces]
        if align == "auto" and not any(face.masked for face in faces):
            click.echo(printable(f"note: {path}: no face found; the change is added to the whole picture"), err=True)
        if targets is None:
            continue
        pixels = np.stack([face.pixels for face in faces])
        latents = model.encode(pixels).float().numpy()
        _, _, changes = decoded_changes(decode, latents, directions.apply(latents, edits))
        edited = put_changes(np.asarray(picture, dtype=np.uint8), faces, changes, aligner)
        _save_photo(targets[index], edited, picture, fields)
        written.append(targets[index])
    if not photos:
        if len(skipped) > 1:
            echo_skipped(skipped)
        first = f" (first problem: {skipped[0]})" if skipped else ""
        raise AekitError(f"none of the {len(inputs)} image(s) could be edited{first}; nothing written")
    echo_skipped(skipped)
    what = " and ".join(filter(None, [_describe(edits) if edits else "", f"a {steps}-step sweep of {sweep}" if sweep else ""]))
    if len(crops) > MAX_EDIT_IMAGES and (strip or grid):
        click.echo(f"note: the picture shows the first {MAX_EDIT_IMAGES} of the {len(crops)} faces", err=True)
    shown, shown_names = np.stack(crops[:MAX_EDIT_IMAGES]), names[:MAX_EDIT_IMAGES]
    if strip is not None:
        picture = edit_picture(model, directions, shown, shown_names, edits, sweep, steps, extent, runtime)
        _save_picture(strip, picture, fields)
        click.echo(f"wrote {strip} ({len(crops)} face(s): {what})")
    elif in_folder:
        where = Path(out)
        click.echo(f"wrote {len(written)} edited photo(s) to {where} ({len(crops)} face(s): {what})")
    else:
        click.echo(f"wrote {written[0]} ({len(crops)} face(s): {what})")
    if grid is not None:
        picture = edit_picture(model, directions, shown, shown_names, edits, None, steps, extent, runtime)
        _save_picture(grid, picture, {**fields, "sweep": "", "range": ""})
        click.echo(f"wrote {grid} (each face, its reconstruction and the edited face)")


def _save_picture(path: Path, picture, fields: dict) -> None:
    """A picture of faces (the strip, the grid), atomically, as a PNG recording how it was made."""
    from aekit import io
    from aekit.images import png_text

    io.save_image(path, picture, pnginfo=png_text(fields))


def edit_picture(model, directions, pictures, names, edits, sweep, steps, extent, runtime="torch"):
    """The picture `aekit edit` draws (the --sweep strip, the --grid): one row per face (model inputs: arrays of the
    model's size, or PIL images, resized), captions under the first row."""
    from aekit.images import caption_row, image_grid, resize_rgb, to_uint8_hwc

    size = model.config.image_size
    decode = decoder_for(model, runtime)
    latents = model.encode(pictures).float().numpy()
    originals = np.stack([resize_rgb(p, size) for p in pictures])
    edited = directions.apply(latents, edits) if edits else latents
    rows, captions = [], ["original"]
    if sweep:
        amounts = np.linspace(-extent, extent, steps).tolist()
        moved = np.concatenate([directions.sweep(z, sweep, amounts) for z in edited])
        faces = to_uint8_hwc(decode(moved)).reshape(len(pictures), steps, size, size, 3)
        rows = [np.concatenate([o[None], row]) for o, row in zip(originals, faces)]
        captions += [f"{sweep} {a:+.2g}" for a in amounts]
        title = f"{sweep} from -{extent:g} to +{extent:g}" + (f" after {_describe(edits)}" if edits else "")
    else:
        decoded = to_uint8_hwc(decode(np.concatenate([latents, edited])))
        rows = [np.stack([o, r, e]) for o, r, e in zip(originals, decoded[: len(latents)], decoded[len(latents):])]
        captions += ["reconstructed", "edited"]
        title = _describe(edits)
    scale, pad = 2, 2
    grid = image_grid(rows, title=f"{title}, {Path(str(model.checkpoint_dir)).name}", scale=scale, pad=pad)
    return caption_row(grid, captions, size * scale, pad)
