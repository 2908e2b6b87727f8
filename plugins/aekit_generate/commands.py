"""The ``aekit fit-prior``, ``aekit generate`` and ``aekit interpolate`` commands."""

from __future__ import annotations

import math
import secrets
from pathlib import Path

import click
import numpy as np

from aekit.command_tools import check_output_path, echo_skipped, model_option
from aekit.io import check_writable
from aekit.runtime import runtime_option

from .fitting import encode_uint8, fit_priors, fittable_samplers, init_parameters
from .priors import FIT_SEED, NormalSampler, PriorError, fitted_priors, load_prior, prior_path

DEFAULT_ORDER = ("gmm", "gaussian")  # what `generate` uses when --sampler is not given
MAX_GENERATE = 1024


def _training_images(model, limit: int, progress: bool):
    """The images the model was trained on (as its checkpoint records them), at most `limit`, seeded subset."""
    from aekit.errors import DataSourceError
    from aekit.train import training_record

    record = training_record(model)
    if record is None:
        raise click.UsageError(f"{model.checkpoint_dir} records no training data; pass --data SOURCE")
    spec = record.data
    try:
        images = record.load(model.config.image_size, progress=progress).images
    except DataSourceError as exc:
        raise DataSourceError(f"{exc} (the training data recorded in the checkpoint; pass --data SOURCE to use other images)") from None
    keep = np.arange(len(images))
    if len(keep) > limit:
        keep = np.sort(np.random.default_rng(FIT_SEED).choice(keep, size=limit, replace=False))
    return np.asarray(images[keep]), f"{spec} (training data, {len(keep)} images)"


@click.command("fit-prior")
@model_option
@click.option("--data", default=None, metavar="SOURCE",
              help="Images to fit on (any --data source of `aekit train`); default: the training data recorded in the checkpoint.")
@click.option("--sampler", "sampler_name", default="all", show_default=True, metavar="NAME",
              help="gaussian, gmm, another registered sampler that needs fitting, or all.")
@click.option("--components", type=click.IntRange(min=1), default=None, metavar="K",
              help="Number of GMM components (default: chosen by BIC from 1, 2, 4, 8, 16).")
@click.option("--limit", type=click.IntRange(min=2), default=5000, show_default=True, help="Fit on at most N images.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or auto (where to encode).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def fit_prior(model_path, data, sampler_name, components, limit, batch_size, device, quiet):
    """Fit latent priors (gaussian, gmm) to a model's latents and save them beside its checkpoint.

    The priors are written as prior-<sampler>.safetensors in the checkpoint folder; `aekit generate`
    samples from them. `aekit train` already fits gaussian and gmm at the end of a run, so this is
    for other data, more images, a fixed number of components, or an older checkpoint.

    \b
    Examples:
      aekit fit-prior --model runs/synth
      aekit fit-prior --model runs/celeba --sampler gmm --components 8 --limit 10000
      aekit fit-prior --model runs/celeba --data ../faces/
    """
    from aekit.command_tools import load_model_arg
    from aekit.data import prepare
    from aekit.plugins import get_registry
    from aekit.train import resolve_device

    registry = get_registry()
    fittable = fittable_samplers(registry)
    if sampler_name == "all":
        names = fittable
    else:
        registry.entry("sampler", sampler_name)  # unknown -> the registry's message listing known ones
        if sampler_name not in fittable:
            raise click.BadParameter(f"sampler {sampler_name!r} needs no fitting; use it directly with "
                                     f"`aekit generate --sampler {sampler_name}`", param_hint="--sampler")
        names = [sampler_name]
    if components is not None and not any("components" in init_parameters(registry.get("sampler", n)) for n in names):
        raise click.BadParameter(f"sampler {sampler_name!r} takes no number of components", param_hint="--components")
    model = load_model_arg(model_path, device=str(resolve_device(device)))
    for name in names:  # a read-only checkpoint folder fails before the encoding
        check_writable(prior_path(model.checkpoint_dir, name))
    if data:
        prepared = prepare(data, model.config.image_size, limit=limit, progress=not quiet)
        echo_skipped(prepared.skipped)
        images = np.asarray(prepared.images)
        described = f"{data} ({len(images)} images" + (f", {len(prepared.skipped)} unreadable skipped)" if prepared.skipped else ")")
    else:
        images, described = _training_images(model, limit, progress=not quiet)
    click.echo(f"encoding {described} with {model.checkpoint_dir}", err=True)
    latents = encode_uint8(model, images, batch_size=batch_size, progress=not quiet)
    fit_priors(model, latents, names, components=components, info={"source": described, "images": len(latents)},
               log=click.echo)


def _pick_sampler(model, registry, requested):
    """(name, sampler, note): the requested sampler, or gmm / gaussian if fitted, else normal with a note."""
    directory = Path(model.checkpoint_dir)
    if requested is None:
        have = fitted_priors(directory)
        for name in DEFAULT_ORDER:
            if name in have and name in registry.names("sampler"):
                return name, load_prior(model, name), None
        note = (f"note: no fitted prior in {directory}; sampling N(0, I) like the article, which gives blurry "
                f"or broken faces (run `aekit fit-prior --model {directory}` for better ones)")
        return "normal", NormalSampler(latent_dim=model.config.latent_dim), note
    sampler_class = registry.get("sampler", requested)
    if not getattr(sampler_class, "needs_fit", True):
        return requested, sampler_class(latent_dim=model.config.latent_dim), None
    return requested, load_prior(model, requested), None


def _grid_rows(images: np.ndarray) -> list[np.ndarray]:
    cols = max(1, math.ceil(math.sqrt(len(images))))
    return [images[i : i + cols] for i in range(0, len(images), cols)]


@click.command("generate")
@model_option
@click.option("--n", "n", type=click.IntRange(1, MAX_GENERATE), default=25, show_default=True, help="Number of faces.")
@click.option("--out", type=click.Path(), required=True, help="Grid picture to write (.png).")
@click.option("--sampler", "sampler_name", default=None, metavar="NAME",
              help="normal, gaussian, gmm or another registered sampler (default: gmm if fitted, else gaussian, else normal).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Random seed (default: a fresh one, printed and stored in the PNG).")
@click.option("--save-latents", "save_latents", type=click.Path(), default=None, metavar="FILE.npz",
              help="Also write the sampled latents (float32), the sampler name and the seed to an .npz.")
@runtime_option("the decoder")
def generate(model_path, n, out, sampler_name, seed, save_latents, runtime):
    """Sample latents from a fitted prior, decode them, and write a grid of new faces.

    The PNG's text metadata records the sampler, the model (path and fingerprint) and the seed.

    \b
    Examples:
      aekit generate --model runs/synth --n 25 --out grid.png
      aekit generate --model runs/synth --sampler normal --seed 1 --out article.png
      aekit generate --model runs/synth --n 64 --seed 7 --out grid.png --save-latents z.npz
    """
    from aekit import io, model_fingerprint
    from aekit.command_tools import load_model_arg
    from aekit.images import image_grid, png_text, to_uint8_hwc
    from aekit.plugins import get_registry

    out = check_output_path(out, "--out", suffixes=(".png",))
    latents_path = check_output_path(save_latents, "--save-latents", suffixes=(".npz",)) if save_latents else None
    registry = get_registry()
    if sampler_name is not None:
        registry.entry("sampler", sampler_name)  # unknown -> the registry's message listing known ones
    model = load_model_arg(model_path)
    name, sampler, note = _pick_sampler(model, registry, sampler_name)
    if note:
        click.echo(note, err=True)
    seed = secrets.randbelow(2**31) if seed is None else seed
    z = np.asarray(sampler.sample(n, seed), dtype=np.float32)
    if z.shape != (n, model.config.latent_dim):
        raise PriorError(f"sampler {name!r} returned latents of shape {z.shape}, expected {(n, model.config.latent_dim)}")
    from aekit.runtime import decoder_for

    images = to_uint8_hwc(decoder_for(model, runtime)(z))
    fingerprint = model_fingerprint(model)
    label = Path(model.checkpoint_dir).name
    grid = image_grid(_grid_rows(images), title=f"{name} samples, {label} {fingerprint[:8]}")
    fields = {"sampler": name, "model": str(model.checkpoint_dir), "model_fingerprint": fingerprint, "seed": seed, "n": n}
    io.save_image(out, grid, pnginfo=png_text(fields))
    if latents_path is not None:
        with io.atomic_path(latents_path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, latents=z, sampler=np.array(name), seed=np.array(seed, dtype=np.int64),
                     model_fingerprint=np.array(fingerprint))
    click.echo(f"wrote {out} ({n} {name} samples, seed {seed})" + (f" and {latents_path}" if latents_path else ""))


@click.command("interpolate")
@click.argument("image_a", metavar="A")
@click.argument("image_b", metavar="B")
@model_option
@click.option("--steps", type=click.IntRange(2, 64), default=8, show_default=True,
              help="Decoded images from A's latent to B's, both included.")
@click.option("--out", type=click.Path(), required=True, help="Strip picture to write (.png).")
def interpolate(image_a, image_b, model_path, steps, out):
    """Walk in a straight line through latent space from image A to image B and draw the faces.

    The strip shows original A, then the decoded latents from A's (t=0, A's reconstruction) to
    B's (t=1), then original B. Images of any size are resized to the model's input size.

    \b
    Example:
      aekit interpolate a.png b.jpg --model runs/synth --steps 8 --out strip.png
    """
    from aekit import io, model_fingerprint
    from aekit.command_tools import load_model_arg
    from aekit.images import caption_row, image_grid, open_image, png_text, resize_rgb, to_uint8_hwc

    out = check_output_path(out, "--out", suffixes=(".png",))
    if any(Path(image).exists() and Path(image).resolve() == out.resolve() for image in (image_a, image_b)):
        raise click.BadParameter(f"{out}: would overwrite an input image; choose another file name", param_hint="--out")
    pictures = [open_image(image_a), open_image(image_b)]
    model = load_model_arg(model_path)
    size = model.config.image_size
    za, zb = model.encode(pictures).float().numpy()
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    decoded = to_uint8_hwc(model.decode((1 - t) * za + t * zb))
    originals = [resize_rgb(p, size) for p in pictures]
    row = np.concatenate([originals[0][None], decoded, originals[1][None]])
    scale, pad = 2, 2
    fingerprint = model_fingerprint(model)
    title = f"A={Path(image_a).name} -> B={Path(image_b).name}, {Path(model.checkpoint_dir).name} {fingerprint[:8]}"
    strip = image_grid([row], title=title, scale=scale, pad=pad)
    captions = [("original A", "orig. A", "A")] + [(f"t={v:.2f}", f"{v:.2f}", f"{v:.1f}") for v in t[:, 0]]
    captions += [("original B", "orig. B", "B")]
    picture = caption_row(strip, captions, size * scale, pad)
    fields = {"model": str(model.checkpoint_dir), "model_fingerprint": fingerprint, "image_a": str(image_a),
              "image_b": str(image_b), "steps": steps, "interpolation": "linear"}
    io.save_image(out, picture, pnginfo=png_text(fields))
    click.echo(f"wrote {out} (A, {steps} steps from A's latent to B's, B)")
