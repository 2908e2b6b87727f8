"""The ``aekit directions fit``, ``aekit directions list`` and ``aekit edit`` commands."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from aekit.cli import check_output_path, echo_skipped, finish_skipped, model_option
from aekit.text import printable, tsv_line
from aekit_export.options import runtime_option

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
    from aekit.cli import load_model_arg
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
    from aekit.cli import load_model_arg

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
@click.option("--out", "-o", type=click.Path(), required=True, help="Picture to write (.png).")
@click.option("--directions", "directions_file", type=click.Path(), default=None, metavar="FILE",
              help="A directions file (default: the one beside the model).")
@runtime_option("the decoder")
def edit(images, model_path, adds, sweep, steps, extent, out, directions_file, runtime):
    """Encode faces, move their latents along named directions, and decode them.

    With --add, each row shows the original, its reconstruction and the edited face. With --sweep,
    each row shows the original, then the face moved from -RANGE to +RANGE along the direction.
    Directions come from `aekit directions fit`; the pretrained faces-64 has CelebA's 40 attributes
    and 10 principal axes (`aekit directions list`). Unreadable images are skipped and listed.

    \b
    Examples:
      aekit edit face.jpg --add Smiling=1.5 --add Eyeglasses=1 --out edited.png
      aekit edit face.jpg --sweep Smiling --steps 7 --out strip.png
      aekit edit a.jpg b.jpg --sweep pc1 --range 3 --out pc1.png
      aekit edit face.jpg --model runs/celeba --add Male=-1 --sweep Young --out strip.png
    """
    from aekit.cli import load_model_arg
    from aekit.errors import ImageReadError
    from aekit.images import open_image, png_text

    edits = _parse_edits(adds)
    if not edits and not sweep:
        raise click.UsageError("nothing to do: give --add NAME=AMOUNT and/or --sweep NAME")
    if len(images) > MAX_EDIT_IMAGES:
        raise click.BadParameter(f"at most {MAX_EDIT_IMAGES} images per picture, got {len(images)}", param_hint="IMAGE")
    out = check_output_path(out)
    if out.suffix.lower() != ".png":
        raise click.BadParameter(f"{out}: must end in .png", param_hint="--out")
    if any(Path(image).exists() and Path(image).resolve() == out.resolve() for image in images):
        raise click.BadParameter(f"{out}: would overwrite an input image; choose another file name", param_hint="--out")
    model = load_model_arg(model_path)
    _require_latent_space(model)
    directions = load_directions(model, directions_file)
    for name in [n for n, _ in edits] + ([sweep] if sweep else []):
        directions.index(name)  # an unknown name fails before any image is read
    pictures, names, skipped = [], [], []
    for image in images:
        try:
            pictures.append(open_image(Path(image)))
            names.append(str(image))
        except ImageReadError as exc:
            skipped.append(str(exc))
    finish_skipped(skipped, len(pictures))
    picture = edit_picture(model, directions, pictures, names, edits, sweep, steps, extent, runtime)
    from aekit import io, model_fingerprint

    fields = {"model": str(model.checkpoint_dir), "model_fingerprint": model_fingerprint(model),
              "edits": _describe(edits), "sweep": sweep or "", "range": extent if sweep else ""}
    io.save_image(out, picture, pnginfo=png_text(fields))
    what = " and ".join(filter(None, [_describe(edits) if edits else "", f"a {steps}-step sweep of {sweep}" if sweep else ""]))
    click.echo(f"wrote {out} ({len(pictures)} face(s): {what})")


def edit_picture(model, directions, pictures, names, edits, sweep, steps, extent, runtime="torch"):
    """The picture `aekit edit` writes: one row per face (PIL images), captions under the first row."""
    from aekit.images import caption_row, image_grid, resize_rgb, to_uint8_hwc
    from aekit_export.runtime import decoder_for

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
