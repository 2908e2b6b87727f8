"""The ``aekit noise`` and ``aekit denoise`` commands."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import click
import numpy as np

from aekit.command_tools import check_output_folder, check_output_path, cli_device, finish_skipped, model_option, nothing_read
from aekit.errors import AekitError, ImageReadError, NoiseSpecError
from aekit.paths import NAME_MAX, cut_to_bytes, why_missing
from aekit.text import printable
from aekit.runtime import runtime_option

METHODS = ("auto", "resize", "tile")
KEPT_SUFFIXES = (".png", ".jpg", ".jpeg")  # denoise keeps PNG and JPEG; every other format becomes PNG
METHOD_HELP = ("How an image larger than the model's 64x64 is denoised: resize = denoise a 64x64 copy and add "
               "the upsampled noise estimate it removed back at full size; tile = overlapping 64x64 tiles, "
               "blended; auto = tile for skip-connection models, resize otherwise.")


# --- inputs and outputs ----------------------------------------------------------------------------


@dataclass
class InputFile:
    """One image to process: its path and its name relative to what was given (for outputs in a folder)."""

    path: Path
    name: str


def collect_inputs(inputs, out: str | None = None) -> tuple[list[InputFile], list[str], bool]:
    """Image files under the given files and folders; returns (files, missing inputs, one input that is no folder).

    Folders are walked recursively (jpg, png, webp, bmp; hidden files and folders left out, and so is
    the `out` folder when it lies inside one, so a second run does not take its own outputs as
    inputs); with several inputs, a folder's images are named under the folder's own name. Only
    regular files are inputs: a FIFO, socket or device (named or in a folder) is listed as missing,
    "not a regular file", and never opened.
    """
    from aekit.images import IMAGE_EXTENSIONS
    from aekit.paths import why_not_regular

    files, missing = [], []
    out_folder = Path(out).resolve() if out is not None and names_a_folder(out) else None
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            found = sorted(_walk_images(path, IMAGE_EXTENSIONS, out_folder))
            if not found:
                raise AekitError(f"{path}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
            prefix = PurePosixPath(path.resolve().name) if len(inputs) > 1 else PurePosixPath()
            for f in found:
                if special := why_not_regular(f):  # opening a FIFO would block until something writes to it
                    missing.append(f"{f}: {special}")
                else:
                    files.append(InputFile(f, str(prefix / f.relative_to(path).as_posix())))
        elif path.is_file():
            files.append(InputFile(path, path.name))
        else:
            missing.append(f"{path}: {why_missing(path)}")
    single = len(inputs) == 1 and not Path(inputs[0]).is_dir()
    return files, missing, single


def _walk_images(root: Path, extensions, leave_out: Path | None = None):
    # os.walk does not follow directory symlinks, so symlink loops cannot trap it
    if leave_out is not None and leave_out == root.resolve():
        leave_out = None  # --out is the input folder itself: its files are the inputs
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and (leave_out is None or (Path(dirpath) / d).resolve() != leave_out))
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(extensions):
                yield Path(dirpath) / name


def names_a_folder(out: str) -> bool:
    """An --out that is an existing folder, ends with a slash, or has no extension means a folder."""
    return Path(out).is_dir() or out.endswith(("/", os.sep)) or not Path(out).suffix


def unique_names(names: list[str]) -> list[str]:
    """Names made unique by adding ~1, ~2... before the extension of repeats, each short enough for the file
    system (``aekit.paths.unique_names``: never the same name twice, ``a~1.png`` among the inputs included)."""
    from aekit.paths import unique_names as unique

    return unique(names)


def plan_outputs(files: list[InputFile], single: bool, out: str | None, rename, default_single=None) -> list[Path]:
    """Where each input goes: `--out FILE` for one file, else `--out DIR` / its renamed relative name."""
    if single and out is not None and not names_a_folder(out):
        return [check_output_path(out)]
    if single and out is None and default_single is not None:
        return [Path(default_single(files[0]))]
    if out is None:
        raise click.UsageError("--out DIR is needed for a folder or several inputs")
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise click.BadParameter(f"{out}: is a file; give a folder for a folder or several inputs", param_hint="--out")
    if not single and not folder.exists() and not names_a_folder(out) and _image_suffix(out):
        # a folder may have any name (results.v2); one ending like an image file was most likely meant as one
        raise click.BadParameter(f"{out}: looks like a file name ({_image_suffix(out)} is an image format); give a "
                                 "folder for a folder or several inputs (end it with / for a folder of this name)",
                                 param_hint="--out")
    check_output_folder(folder)  # a file in its path fails now, not with "Not a directory" after the first image
    return [folder / name for name in unique_names([rename(f.name) for f in files])]


def _image_suffix(out: str) -> str:
    """`out`'s extension when Pillow knows it as an image format's, else ''."""
    from PIL import Image

    Image.init()
    suffix = Path(out).suffix.lower()
    return suffix if suffix in Image.registered_extensions() else ""


def refuse_overwriting_inputs(files: list[InputFile], outputs: list[Path], hint: str = "") -> None:
    """AekitError before any work when an output would replace one of the inputs."""
    inputs = {Path(os.path.realpath(f.path)) for f in files}  # realpath: a symlink loop is no error here
    for output in outputs:
        if output.resolve() in inputs:
            raise AekitError(f"{output}: would overwrite an input; choose another --out{hint}")


def refuse_existing_outputs(outputs: list[Path]) -> None:
    """AekitError before any work when an output file already exists."""
    existing = [output for output in outputs if output.exists()]
    if existing:
        raise AekitError(f"{existing[0]}: already exists ({len(existing)} of the {len(outputs)} outputs do); "
                         "add --overwrite to replace them or choose another --out")


def _with_suffix(name: str, suffix: str) -> str:
    path = PurePosixPath(name)
    return str(path.with_name(path.stem + suffix)) if path.stem else name + suffix


def _progress(total: int, desc: str, quiet: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=quiet, leave=False)


# --- aekit noise -------------------------------------------------------------------------------------


def describe_noise_models() -> list[tuple[str, str]]:
    """(name, help) of every registered noise model, for help texts."""
    from aekit.plugins import get_registry

    return [(entry.name, entry.help) for entry in get_registry().entries("noise_model")]


class NoiseModelsHelp(click.Command):
    """A command whose --help ends with the noise models registered when it is shown (plugins included)."""

    def format_epilog(self, ctx, formatter):
        super().format_epilog(ctx, formatter)
        rows = describe_noise_models()
        if rows:
            with formatter.section("Registered noise models (amounts on the [0, 1] pixel scale)"):
                formatter.write_dl(rows)


def parse_kind(spec: str):
    """The parsed `--kind` noise spec, or a usage error naming what is wrong."""
    from aekit.noise import parse_noise

    try:
        return parse_noise(spec)
    except NoiseSpecError as exc:
        raise click.BadParameter(str(exc), param_hint="--kind") from None


def add_noise_to_image(image: np.ndarray, noise, rng: np.random.Generator) -> np.ndarray:
    """Noise on a uint8 (H, W, 3) image at its own size, applied as float in [0, 1]; uint8 back."""
    noisy = noise(image[None].astype(np.float32) / 255.0, rng)[0]
    return np.clip(np.rint(noisy * 255.0), 0, 255).astype(np.uint8)


@click.command("noise", cls=NoiseModelsHelp)
@click.argument("inputs", nargs=-1, required=True, metavar="IN...")
@click.option("--kind", "-k", "spec", required=True, metavar="SPEC",
              help="Noise spec NAME:ARG; A+B applies both, A|B picks one per image. SIGMA is on the [0, 1] "
                   "pixel scale (gaussian:0.1 is about 25 of 255 grey levels).")
@click.option("--out", "-o", required=True, metavar="FILE|DIR",
              help="A .png file (one input), or a folder (created if missing) that keeps the inputs' relative names.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="The same seed gives the same noise (each image draws from SEED and its position in the input order).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def noise(inputs, spec, out, seed, quiet):
    """Add noise to images at their own size and save them as lossless PNGs (test inputs for `aekit denoise`).

    Outputs are RGB PNGs (transparency composited over white). Inputs are never overwritten; earlier
    outputs are. Unreadable files are skipped and listed.

    \b
    Examples:
      aekit noise face.jpg --kind gaussian:0.1 --out face-noisy.png
      aekit noise faces/ --kind "gaussian:0.05+saltpepper:0.02" --out noisy/ --seed 1
    """
    from PIL import Image

    from aekit import io
    from aekit.images import open_image

    noise_model = parse_kind(spec)
    files, skipped, single = collect_inputs(inputs, out)
    if not files:
        raise nothing_read(skipped)
    if single and not names_a_folder(out) and Path(out).suffix.lower() != ".png":
        raise click.BadParameter(f"{out}: must end in .png (lossless, so the noise survives)", param_hint="--out")
    outputs = plan_outputs(files, single, out, lambda name: _with_suffix(name, ".png"))
    refuse_overwriting_inputs(files, outputs)
    written = 0
    bar = _progress(len(files), "adding noise", quiet)
    for index, (item, target) in enumerate(zip(files, outputs)):
        bar.update()
        try:
            image = np.asarray(open_image(item.path))
        except ImageReadError as exc:
            skipped.append(str(exc))
            continue
        rng = np.random.default_rng([seed, index])
        noisy = add_noise_to_image(image, noise_model, rng)
        target.parent.mkdir(parents=True, exist_ok=True)
        io.save_image(target, Image.fromarray(noisy), format="PNG")
        written += 1
    bar.close()
    finish_skipped(skipped, written)
    where = outputs[0] if single and not names_a_folder(out) else Path(out)
    click.echo(f"wrote {written} noisy PNG(s) ({noise_model.spec}, seed {seed}) to {where}"
               + (f", {len(skipped)} skipped" if skipped else ""))


# --- aekit denoise -----------------------------------------------------------------------------------


def _denoised_name(stem: str, suffix: str) -> str:
    """STEM-denoised.EXT, the stem cut so that a legal 255-byte input name gives a legal output name."""
    tail = f"-denoised{suffix}"
    return cut_to_bytes(stem, NAME_MAX - len(os.fsencode(tail))) + tail


def denoised_suffix(name: str) -> str:
    """The output extension: PNG and JPEG keep theirs, every other format becomes .png."""
    suffix = PurePosixPath(name).suffix
    return suffix if suffix.lower() in KEPT_SUFFIXES else ".png"


class NoiseLevel(click.ParamType):
    """``auto`` or a number in [0, 1] (a noise sigma on the [0, 1] pixel scale)."""

    name = "auto|SIGMA"

    def convert(self, value, param, ctx):
        if isinstance(value, float) or value == "auto":
            return value
        text = str(value).strip().lower()
        if text == "auto":
            return "auto"
        try:
            number = float(text)
        except ValueError:
            self.fail(f"expected auto or a number in [0, 1], got {printable(value)!r}", param, ctx)
        if not 0 <= number <= 1:  # also refuses nan and inf
            self.fail(f"expected auto or a number in [0, 1] (the [0, 1] pixel scale), got {printable(value)}", param, ctx)
        return number


def training_noise(model) -> str | None:
    """The noise spec the model was trained for, from its config.json (None when it records none)."""
    from aekit.checkpoint import read_config
    from aekit.run_config import training_record

    directory = getattr(model, "checkpoint_dir", None)
    source = read_config(directory).get("training") if directory else model  # a "training" dict, or the model's own
    return training_record(source, require_data=False).noise


@click.command("denoise")
@click.argument("inputs", nargs=-1, required=True, metavar="NOISY...")
@model_option(task="denoise")
@click.option("--out", "-o", default=None, metavar="FILE|DIR",
              help="Output file (one input; default STEM-denoised.EXT in the current folder), or a folder "
                   "(required for a folder or several inputs; keeps their relative names).")
@click.option("--method", type=click.Choice(METHODS), default="auto", show_default=True, help=METHOD_HELP)
@click.option("--overwrite", is_flag=True, help="Replace existing files, the inputs themselves included.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@runtime_option("the model", int8_gain="faces-64-denoise about 2.5x as fast as onnx on a CPU with VNNI, but 0.1-2.5 dB "
                                       "lost (benchmarks/denoise_table.py --runtime onnx-int8); 7-bit weights, right on any x86 CPU")
@click.option("--sigma", type=NoiseLevel(), default="auto", show_default=True, metavar="auto|SIGMA",
              help="The noise level a noise-level-conditioned model (drunet) is told, on the [0, 1] pixel scale: "
                   "auto estimates each image's; a number sets it (lower keeps more detail, higher removes more).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def denoise(inputs, model_path, out, method, overwrite, device, runtime, sigma, quiet):
    """Denoise images with a model (best one trained with `aekit train --noise ...`), at their own size.

    Any image works: RGB, RGBA (alpha kept), grayscale (stays grayscale), palette (saved as RGB),
    16-bit PNG (stays 16-bit), JPEG with EXIF rotation (saved upright). JPEG stays JPEG (quality
    95), PNG stays PNG, other formats become PNG. Inputs are never overwritten unless --overwrite;
    unreadable files are skipped and listed. Images of up to 50 million pixels (7071x7071) are
    denoised in bounded memory; larger ones are refused (in a folder: skipped and listed).

    \b
    Examples:
      aekit denoise noisy.png --model runs/denoiser               # writes noisy-denoised.png
      aekit denoise photos/ --model runs/denoiser --out clean/ --method tile
      aekit denoise photos/ --out clean/ --runtime torch           # PyTorch instead of ONNX Runtime
      aekit denoise noisy.png --sigma 0.05                         # tell the model the noise level
    """
    from aekit.command_tools import load_model_arg

    from .pictures import denoise_images, format_for_path, open_picture, save_picture

    files, skipped, single = collect_inputs(inputs, out)
    if not files:
        raise nothing_read(skipped)
    outputs = plan_outputs(files, single, out, lambda name: _with_suffix(name, denoised_suffix(name)),
                           default_single=lambda item: _denoised_name(item.path.stem, denoised_suffix(item.name)))
    for target in outputs[:1] if single else []:
        try:
            format_for_path(target)
        except AekitError as exc:
            raise click.BadParameter(str(exc), param_hint="--out") from None
    if not overwrite:
        refuse_overwriting_inputs(files, outputs, hint=" or add --overwrite")
        refuse_existing_outputs(outputs)
    opened = {}
    if single and len(files) == 1:  # one bad file: its reason once, before any model is loaded
        opened[0] = open_picture(files[0].path, max_pixels=MAX_PIXELS)
    model = load_model_arg(model_path, device=cli_device(device), task="denoise")
    if sigma != "auto" and not getattr(model, "takes_noise_level", False):
        raise click.BadParameter(f"this model ({type(model).__name__}) takes no noise level; leave it at auto "
                                 "or use a noise-level-conditioned model (drunet)", param_hint="--sigma")
    denoiser = _on_runtime(model, runtime)
    noise = training_noise(model)
    if noise:
        click.echo(f"model trained for noise: {noise}", err=True)
    else:
        where = getattr(model, "checkpoint_dir", None) or "the model"
        click.echo(f"warning: {where} was not trained on noisy inputs (its config.json records no training "
                   "noise), so it can only smooth; train one with aekit train --init MODEL --noise gaussian:0.1",
                   err=True)
    written = 0
    bar = _progress(len(files), "denoising", quiet or len(files) == 1)
    saving: deque = deque()  # (input, notes, future) in input order

    def finish_saves(keep: int) -> None:
        nonlocal written
        while len(saving) > keep:
            item, notes, future = saving.popleft()
            for note in notes + future.result():
                click.echo(printable(f"note: {item.path}: {note}"), err=True)  # a file name must not forge a line
            written += 1

    # the next chunk is read, and finished pictures written (atomically, so each waits on fsync), while the model works
    with ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(2) as writer:
        chunks = _chunks(files)
        indices, pixels = next(chunks, ([], 0))
        pending = reader.submit(_open_chunk, indices, files, opened)
        last_chunk_saves = 0
        while True:
            chunk, alone = pending.result(), pixels > CHUNK_PIXELS
            if not chunk:
                break
            indices, pixels = next(chunks, ([], 0))
            if alone:  # one picture larger than a chunk is denoised with no other in memory: earlier ones are written first
                finish_saves(keep=0)
            else:
                pending = reader.submit(_open_chunk, indices, files, opened)
            readable = [(i, p) for i, p in chunk if not isinstance(p, ImageReadError)]
            results = dict(zip([i for i, _ in readable],
                               denoise_images(denoiser, [p.image for _, p in readable], method, sigma=sigma)))
            finish_saves(keep=last_chunk_saves)  # bounded: the pictures of at most two chunks wait to be written
            waiting = len(saving)
            for index, picture in chunk:
                bar.update()
                item, target = files[index], outputs[index]
                if isinstance(picture, ImageReadError):
                    skipped.append(str(picture))
                    continue
                result = results[index]
                if isinstance(result, ValueError):  # an image the model cannot take (e.g. too small to tile)
                    skipped.append(f"{item.path}: cannot denoise ({result})")
                    continue
                denoised, notes = result
                target.parent.mkdir(parents=True, exist_ok=True)
                saving.append((item, picture.notes + notes, writer.submit(save_picture, target, denoised, picture.metadata)))
            last_chunk_saves = len(saving) - waiting
            if alone:  # the next chunk is read only now, after this one's pictures are let go (their results are being written)
                chunk = readable = results = picture = result = None
                pending = reader.submit(_open_chunk, indices, files, opened)
        finish_saves(keep=0)
    bar.close()
    finish_skipped(skipped, written)
    if single and len(outputs) == 1:
        click.echo(f"wrote {outputs[0]}")
    else:
        click.echo(f"wrote {written} denoised image(s) to {out}" + (f", {len(skipped)} skipped" if skipped else ""))


# The largest image `aekit denoise` takes (documented in its --help): denoising itself holds a bounded amount
# (aekit.denoising streams tiles and bands), but the decoded picture, the model's view of it, the result and the
# picture rebuilt from it are whole (about 14 bytes a pixel), so 50 Mpx stays under 1.5 GB with the model and runtime.
MAX_PIXELS = 50_000_000
CHUNK_IMAGES, CHUNK_PIXELS = 64, 2**24  # read at once: a batch of faces, or about 17 Mpx of photos (~64 MB decoded)


def _chunks(files):
    """(indices, pixels) of `files` in consecutive chunks of at most CHUNK_IMAGES files and about CHUNK_PIXELS pixels.

    Pixels are width x height from each file's header (not its size on disk: a PNG of one colour may
    be a thousandth of its pixels); a picture larger than CHUNK_PIXELS is a chunk of its own.
    """
    chunk, budget = [], 0
    for index, item in enumerate(files):
        pixels = _header_pixels(item.path)
        if chunk and (len(chunk) == CHUNK_IMAGES or budget + pixels > CHUNK_PIXELS):
            yield chunk, budget
            chunk, budget = [], 0
        chunk.append(index)
        budget += pixels
    if chunk:
        yield chunk, budget


def _header_pixels(path) -> int:
    """Width x height from the image file's header (no pixel is decoded); 0 for a file that cannot be read
    (it is skipped, with its reason, when the chunk is opened)."""
    from aekit.images import open_checked, read_errors

    try:
        with read_errors(path), open_checked(path) as image:
            return image.width * image.height
    except ImageReadError:
        return 0


def _open_chunk(indices, files, opened):
    """[(index, Picture or ImageReadError)] for `indices` (a picture already in `opened` is taken from there)."""
    from .pictures import open_picture

    out = []
    for index in indices:
        try:
            out.append((index, opened.pop(index, None) or open_picture(files[index].path, max_pixels=MAX_PIXELS)))
        except ImageReadError as exc:
            out.append((index, exc))
    return out


def _on_runtime(model, runtime: str):
    """What `denoise_images` runs: the model, or its ``denoise`` by ONNX Runtime (fp32 or int8) when `runtime` resolves to that."""
    from aekit.runtime import ModelOnRuntime

    on_runtime = ModelOnRuntime(model, runtime)
    # a model without denoise() keeps its own one-line refusal in denoise_images
    if on_runtime.name == "torch" or not callable(getattr(model, "denoise", None)):
        return model
    return on_runtime  # its graph is made and checked on the first chunk, before that chunk is written
