"""``aekit demo``: train a small model (and a denoiser) on the built-in synthetic faces, offline, then run
every installed plugin's part of the demonstration and write one HTML page with all pictures and tables.

A plugin adds a part through the ``register_demos`` hook::

    import aekit
    from aekit.demo import DemoSection

    def my_demo(ctx):                                   # ctx: a DemoContext
        z = ctx.encode(ctx.images)                      # latents of the held-out faces
        ctx.save_grid("faces.png", [ctx.hwc(ctx.images[:8])], ["held out"])
        return DemoSection(title="My plugin", text="What it shows, in `code` where useful.",
                           images=[("faces.png", "eight held-out faces")],
                           tables=[("Latent norms", ["mean", "max"], [[float(z.mean()), float(z.max())]])])

    @aekit.hookimpl
    def register_demos(register):
        register("mine", my_demo, help="one line", order=100)

Parts run in ``order`` (then name); built-in ones use 10-50. A part that raises is shown on the page as a
failed section with its one-line error; the others still run. The page (``index.html``) links the PNGs
each part wrote into its own folder, with relative links, inline CSS and no scripts, so it opens from
disk in any browser with no server and no network (``aekit.demo_page`` renders it); ``summary.json``
holds the same in JSON.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

import click

from . import io
from ._version import __version__
from .checkpoint import record_latest
from .command_tools import check_output_folder
from .data import open_source, prepare
from .errors import AekitError
from .loading import load
from .noise import parse_noise
# the page is rendered there; callers and tests import render_page from here too
from .demo_page import render_page
# what a plugin's demo part uses: ``from aekit.demo import DemoSection`` (defined in demo_parts)
from .demo_parts import DemoContext, DemoSection, PartResult, demo_parts, one_line, run_parts  # noqa: F401
from .run_config import TrainConfig, training_record

MARKER = ".aekit-demo"  # marks a folder `aekit demo` wrote, so a second run may replace it
SUMMARY_FORMAT = "aekit-demo"
DENOISE_NOISE = "gaussian:0.2"  # milder noise is below the small model's own reconstruction error: no visible gain


@dataclass(frozen=True)
class DemoSizes:
    """How much data and training the demo uses."""

    train: int  # synthetic training faces
    held_out: int  # synthetic held-out faces (another seed), shown and scored by the parts
    epochs: int
    denoise_epochs: int
    batch_size: int
    lr: float
    denoise_lr: float


# batch 16: for a run this short, more steps beat bigger batches (2 epochs at 16 reach a higher held-out PSNR
# than 4 at 64); about 10,000 training images in all, under 5 minutes on 2 CPU cores with the parts included
FULL = DemoSizes(train=2000, held_out=400, epochs=4, denoise_epochs=1, batch_size=16, lr=2e-3, denoise_lr=1e-3)
QUICK = DemoSizes(train=96, held_out=48, epochs=1, denoise_epochs=1, batch_size=32, lr=2e-3, denoise_lr=1e-3)


# --- training ----------------------------------------------------------------------------------------


def noise_supported() -> tuple[bool, str]:
    """(True, "") when the trainer can train a denoiser (TrainConfig.noise and the noise model exist)."""
    if "noise" not in {f.name for f in dataclasses.fields(TrainConfig)}:
        return False, "this aekit's trainer has no noise option (TrainConfig.noise)"
    try:
        parse_noise(DENOISE_NOISE)
    except Exception as exc:
        return False, f"noise {DENOISE_NOISE!r} is not available ({one_line(exc)})"
    return True, ""


def _training_section(name: str, title: str, model_dir: Path, root: Path, text: str, elapsed_s: float = 0.0) -> PartResult:
    """A section (not a plugin part) showing a training run's metrics and its last sample grid."""
    metrics_path = model_dir / "metrics.jsonl"
    rows = []
    if metrics_path.is_file():
        for line in metrics_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows.append([row["epoch"], row["loss"], row.get("val_loss", ""), row.get("val_psnr", ""),
                             row.get("images_per_s", ""), row.get("time_s", "")])
    samples = sorted((model_dir / "samples").glob("epoch_*.png"))
    images = []
    if samples and root.resolve() in samples[-1].resolve().parents:  # only pictures inside the demo folder
        images = [(samples[-1].resolve().relative_to(root.resolve()).as_posix(),
                   "held-out faces (top), their reconstructions (middle), and the article's decoder(randn) samples "
                   "(bottom)")]
    section = DemoSection(title=title, text=text, images=[],
                          tables=[("Training, one row per epoch", ["epoch", "loss (MSE)", "held-out loss", "held-out PSNR (dB)",
                                                                   "images/s", "seconds"], rows)] if rows else [])
    return PartResult(name, "aekit", name, 0, section=section, images=images, elapsed_s=elapsed_s)


def _check_out_folder(out: Path) -> None:
    """`out` must be new, empty, or a folder an earlier `aekit demo` wrote (which is then replaced)."""
    check_output_folder(out)  # the one check: not a file, inside no file
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise AekitError(f"{out}: folder is not empty and was not written by `aekit demo`; choose another --out "
                         "(a new or empty folder, or an earlier demo's folder, which is replaced)")


def _clear_previous(out: Path, keep: set[str]) -> None:
    """Remove what an earlier demo left in `out` (except the folders in `keep`)."""
    for child in out.iterdir():
        if child.name in keep or child.name == MARKER:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _train(config, out: Path, progress: bool, log, run_hooks: bool = True):
    from .train import Trainer  # deferred: the core plugin imports this module, and `aekit embed` must not load the trainer

    if out.exists():
        shutil.rmtree(out)
    Trainer(config, out, progress=progress, log=log, run_hooks=run_hooks).run()


def run_demo(out, quick: bool = False, seed: int = 0, parts: list[str] | None = None, model_dir=None,
             denoiser_dir=None, device: str = "auto", progress: bool = True, log: Callable[[str], None] | None = None,
             sizes: DemoSizes | None = None) -> dict:
    """Everything `aekit demo` does; returns the summary (also written to `out/summary.json`)."""
    log = log or (lambda m: print(m, file=sys.stderr))
    sizes = sizes or (QUICK if quick else FULL)
    out = Path(out)
    t_start = time.perf_counter()
    entries = demo_parts(only=parts)  # unknown --parts fail before any training
    # a given --model or --denoiser that cannot be loaded fails before anything is written
    given_model = load(model_dir, device="cpu") if model_dir is not None else None
    given_denoiser = load(denoiser_dir, device="cpu") if denoiser_dir is not None else None
    train_spec = f"synthetic:{sizes.train}:{seed}"
    held_spec = f"synthetic:{sizes.held_out}:{seed + 1}"  # another seed: faces the model never saw
    open_source(train_spec)  # the faces come from the `sources` plugin: without it, fail before writing anything
    _check_out_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    io.write_text(out / MARKER, "written by `aekit demo`; a later `aekit demo --out` here replaces this folder\n")
    reuse = {p.resolve() for p in (Path(model_dir) if model_dir else None, Path(denoiser_dir) if denoiser_dir else None) if p}
    _clear_previous(out, keep={p.name for p in reuse if p.parent == out.resolve()})

    intro: list[PartResult] = []
    timings: dict[str, float] = {}
    denoiser_note = None
    noise_spec = None
    if model_dir is None:
        model_dir = out / "model"
        log(f"aekit demo: training the small model on {sizes.train} synthetic faces for {sizes.epochs} epoch(s) "
            f"(held out: {sizes.held_out} faces of another seed) -> {model_dir}")
        t0 = time.perf_counter()
        config = TrainConfig(data=train_spec, val_data=held_spec, arch="small", epochs=sizes.epochs,
                             batch_size=sizes.batch_size, lr=sizes.lr, seed=seed, sample_every=sizes.epochs, device=device)
        _train(config, model_dir, progress, log)
        timings["train_model"] = round(time.perf_counter() - t0, 1)
        intro.append(_training_section(
            "training", "The model: training on synthetic faces", model_dir, out,
            f"`aekit demo` trained the `small` preset (the article's residual design at a quarter of the width) on "
            f"{sizes.train} built-in synthetic faces for {sizes.epochs} epoch(s), Adam at {sizes.lr:g} decaying linearly "
            f"to 0, batch {sizes.batch_size}, and scored it on {sizes.held_out} held-out faces drawn with another seed. "
            f"The same run from the command line:\n\n"
            f"`aekit train --data {train_spec} --val-data {held_spec} --arch small --epochs {sizes.epochs} "
            f"--lr {sizes.lr:g} --out runs/synth`\n\nThe article's model (`--arch article`, the default) is about 7x "
            f"slower on a CPU and much sharper given the time or a GPU.", timings["train_model"]))
        if denoiser_dir is None:
            supported, why = noise_supported()
            if supported:
                denoiser_dir = out / "denoiser"
                noise_spec = DENOISE_NOISE
                log(f"aekit demo: fine-tuning it as a denoiser ({noise_spec} -> clean) for {sizes.denoise_epochs} "
                    f"epoch(s) -> {denoiser_dir}")
                t0 = time.perf_counter()
                config = TrainConfig(data=train_spec, val_data=held_spec, arch="small", epochs=sizes.denoise_epochs,
                                     batch_size=sizes.batch_size, lr=sizes.denoise_lr, seed=seed, init=str(model_dir),
                                     sample_every=sizes.denoise_epochs, device=device, noise=noise_spec)
                _train(config, denoiser_dir, progress, log, run_hooks=False)
                timings["train_denoiser"] = round(time.perf_counter() - t0, 1)
                intro.append(_training_section(
                    "training-denoiser", "The denoiser: the model fine-tuned on noisy faces", denoiser_dir, out,
                    f"Starting from the model above (`--init`), {sizes.denoise_epochs} more epoch(s) at {sizes.denoise_lr:g} "
                    f"with noisy inputs ({noise_spec}) and clean targets:\n\n`aekit train --data {train_spec} --val-data "
                    f"{held_spec} --arch small --init runs/synth --noise {noise_spec} --epochs {sizes.denoise_epochs} "
                    f"--lr {sizes.denoise_lr:g} --out runs/denoiser`", timings["train_denoiser"]))
            else:
                denoiser_note = f"no denoiser trained: {why}"
                log(f"aekit demo: {denoiser_note}")
        record_latest(model_dir)  # the demo model (not the denoiser) becomes the default --model
    else:
        log(f"aekit demo: using the model in {model_dir} (no training)")
        if (Path(model_dir) / "metrics.jsonl").is_file():
            intro.append(_training_section("training", "The model", Path(model_dir), out,
                                           f"The model in `{model_dir}`, given with `--model`; its training:"))

    model = given_model if given_model is not None else load(model_dir, device="cpu")
    model.eval()
    denoiser = None
    if denoiser_dir is not None:
        denoiser = given_denoiser if given_denoiser is not None else load(denoiser_dir, device="cpu")
        denoiser.eval()
        if noise_spec is None:  # a given --denoiser: the noise it was trained on, as its checkpoint records it
            noise_spec = training_record(denoiser, require_data=False).noise
    size = model.config.image_size
    train = prepare(train_spec, size, progress=progress)
    held = prepare(held_spec, size, progress=progress)

    def make_context(part_dir: Path) -> DemoContext:
        model.eval()
        if denoiser is not None:
            denoiser.eval()
        return DemoContext(out=part_dir, model=model, model_dir=Path(model_dir), denoiser=denoiser,
                           denoiser_dir=Path(denoiser_dir) if denoiser_dir else None, images=held.images,
                           labels={k: v.copy() for k, v in held.attributes.items()}, train_images=train.images,
                           train_labels={k: v.copy() for k, v in train.attributes.items()}, seed=seed, quick=quick,
                           root=out, noise=noise_spec, log=log)

    log(f"aekit demo: running {len(entries)} demo part(s): {', '.join(e.name for e in entries) or 'none'}")
    t0 = time.perf_counter()
    results = run_parts(entries, make_context, out, seed, log)
    timings["parts"] = round(time.perf_counter() - t0, 1)
    elapsed = round(time.perf_counter() - t_start, 1)
    shown = str(model_dir)
    info = {"aekit_version": __version__, "created": datetime.now().strftime("%Y-%m-%d %H:%M"), "seed": seed,
            "quick": quick, "elapsed_s": elapsed, "model_dir_shown": shown}
    io.write_text(out / "index.html", render_page(results, intro, info))
    summary = {
        "format": SUMMARY_FORMAT, "format_version": 1, "aekit_version": __version__, "seed": seed, "quick": quick,
        "sizes": dataclasses.asdict(sizes), "model_dir": str(model_dir),
        "denoiser_dir": str(denoiser_dir) if denoiser_dir else None, "denoiser_note": denoiser_note, "noise": noise_spec,
        "elapsed_s": elapsed, "timings_s": timings, "page": "index.html",
        "sections": [_section_summary(r) for r in intro + results],
        "failed": [r.name for r in results if r.error is not None],
    }
    io.write_json(out / "summary.json", summary)
    return summary


def _section_summary(result: PartResult) -> dict:
    section = result.section
    return {"name": result.name, "plugin": result.plugin, "folder": result.folder,
            "status": "failed" if result.error is not None else "ok", "error": result.error,
            "elapsed_s": result.elapsed_s, "title": section.title if section else None,
            "text": section.text if section else None,
            "images": [{"path": p, "caption": c} for p, c in result.images],
            "tables": [{"caption": c, "header": list(h), "rows": [list(r) for r in rows]}
                       for c, h, rows in (section.tables if section else [])]}


# --- the command -------------------------------------------------------------------------------------


@click.command("demo")
@click.option("--out", "-o", default="demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for index.html, the pictures and the trained models (new, empty, or an earlier demo's, which is replaced).")
@click.option("--quick", is_flag=True, help="Tiny sizes that run in seconds (for tests; the pictures are not worth looking at).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed for the faces, the training and every part.")
@click.option("--parts", "parts", default=None, metavar="NAME,NAME",
              help="Run only these demo parts (see `aekit plugins`), e.g. --parts compress,umap.")
@click.option("--model", "model_dir", type=click.Path(), default=None, metavar="DIR",
              help="Use this trained checkpoint folder instead of training one (e.g. an earlier demo's DIR/model).")
@click.option("--denoiser", "denoiser_dir", type=click.Path(), default=None, metavar="DIR",
              help="With --model: the denoiser checkpoint to show (default: none).")
@click.option("--device", default="auto", show_default=True, help="Where to train: auto, cpu or cuda.")
@click.option("--strict", is_flag=True, help="Exit with status 1 when any demo part failed.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def demo_command(out, quick, seed, parts, model_dir, denoiser_dir, device, strict, quiet):
    """Train a small model on built-in synthetic faces and show what every plugin does, in one HTML page.

    Offline, a few minutes on a laptop CPU: trains the `small` model (and a denoiser) on synthetic faces,
    runs each installed plugin's demo part (compression, denoising, features, UMAP, generation, and any
    third-party plugin's), and writes OUT/index.html, which opens in a browser from disk.

    \b
    Examples:
      aekit demo --out demo/                 # then open demo/index.html
      aekit demo --out demo-test/ --quick    # seconds, tiny sizes
      aekit demo --out demo2/ --model demo/model --parts umap   # reuse a model, one part
    """
    if denoiser_dir and not model_dir:
        raise click.UsageError("--denoiser goes with --model (without --model the demo trains both)")
    names = [p.strip() for p in parts.split(",") if p.strip()] if parts else None
    log = lambda m: click.echo(m, err=True)  # noqa: E731
    summary = run_demo(out, quick=quick, seed=seed, parts=names, model_dir=model_dir, denoiser_dir=denoiser_dir,
                       device=device, progress=not quiet, log=log)
    failed = summary["failed"]
    if failed:
        click.echo(f"{len(failed)} demo part(s) failed: {', '.join(failed)} (shown on the page; add --debug for tracebacks)", err=True)
    click.echo(f"wrote {Path(out) / 'index.html'} in {summary['elapsed_s']:.0f} s: open it in a browser")
    if strict and failed:
        click.get_current_context().exit(1)
