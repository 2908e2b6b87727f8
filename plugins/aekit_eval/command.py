"""The ``aekit eval`` command."""

from __future__ import annotations

import click

from aekit.alignment import ALIGN_HELP, align_option
from aekit.command_tools import model_option
from aekit.runtime import runtime_option


# its help says what a face is to the report
_eval_align_option = align_option(help=ALIGN_HELP + " Applies to --data and --train-data; each face is one image with its "
                                  "photo's labels (under on, a photo of two faces counts twice).")


@click.command("eval")
@model_option
@click.option("--data", default=None, metavar="SOURCE",
              help="Held-out images to evaluate on (any --data source; never the model's training data), e.g. faces/[9000:].")
@click.option("--train-data", default=None, metavar="SOURCE",
              help="Images to fit PCA and the probes on (default: the images the model's run trained on).")
@click.option("--baselines", is_flag=True, help="Add PCA, JPEG and WebP at the latent's size to the reconstruction table.")
@click.option("--noise", "noise", multiple=True, metavar="SPEC",
              help="Add a denoising table for this noise (repeatable), e.g. --noise gaussian:0.1 --noise saltpepper:0.1.")
@click.option("--labels", "labels", is_flag=False, flag_value="", default=None, metavar="[FILE.csv]",
              help="Add the linear-probe table on the data's binary labels (its own attributes, or a CSV keyed by file name).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate on the first N images of --data.")
@click.option("--train-limit", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Fit the baselines and probes on at most N training images (a seeded random subset).")
@click.option("--pixel-labels", type=click.IntRange(min=0), default=5, show_default=True,
              help="Probe raw pixels (slow: 12,288 values a face) on at most N labels; 0: not at all.")
@click.option("--out", "-o", default="report", show_default=True, type=click.Path(),
              help="Folder for report.json, report.md and the PNG grids.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the noise, the tuning subset and PCA.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--optimize-steps", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Add a row for latents refined by N optimisation steps each (as `aekit compress --optimize-steps N`).")
@click.option("--bm3d-images", type=click.IntRange(min=0), default=100, show_default=True, metavar="N",
              help="With --noise and the bm3d package installed (pip install bm3d; non-commercial licence, never a "
                   "dependency of aekit): BM3D on the first N reported images of each noise, about 2 s an image, "
                   "cached in $AEKIT_HOME/cache/bm3d; 0: leave it out.")
@runtime_option("the encoder, the decoder and model.denoise")
@_eval_align_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def eval_(model_path, data, train_data, baselines, noise, labels, limit, train_limit, pixel_labels, out, seed, device,
          batch_size, optimize_steps, bm3d_images, runtime, align, quiet):
    """Measure a model on held-out faces and write a report (JSON, Markdown and PNG grids).

    Reconstruction MSE / PSNR / SSIM always; --baselines adds PCA (fitted on the training split),
    JPEG and WebP at the latent's bytes; --noise adds a denoising table against scikit-image's
    NL-means and TV (tuned) and BM3D when the bm3d package is installed (told the true sigma of
    gaussian:SIGMA, else each image's measured one); --labels adds linear probes against PCA, raw pixels and the majority
    class. --data must not overlap the data the model trained on.

    A codec model (the `codec` architecture) gets a rate-distortion section instead: every quality's real
    bitstreams (bytes a face of the streams alone) -> PSNR / SSIM, against JPEG (optimize=True), WebP
    (method=6) and AVIF (when Pillow has it) at the same bytes, as a table and rd_curve.png; a run folder's
    integer tables are fixed in memory first. PCA, --noise and --optimize-steps do not apply to it and are
    left out with a note.

    --align (auto by default) finds the faces in --data's images (and --train-data's) and aligns them
    before the model sees them; each face is one evaluation image, carrying its photo's labels, so
    with --align on a photo of two faces counts twice, with the same labels. --limit counts photos.
    The report names the mode, and faces.csv gives each image's photo, face index and box. The
    model's recorded training images are used as its run read them.

    \b
    Examples:
      aekit eval --model runs/synth --data synthetic:500:1 --baselines --noise gaussian:0.1 --labels
      aekit eval --model runs/celeba --data celeba/images[9000:] --baselines \\
          --labels celeba/attributes.csv --noise gaussian:0.1 --out report/
      aekit eval --model runs/celeba --data faces/[9000:] --optimize-steps 40   # + refined latents' row
      aekit eval --model runs/celeba --data faces/[9000:] --runtime torch       # PyTorch, not ONNX Runtime
      aekit eval --model runs/celeba --data photos/ --align on                  # every face of every photo
    """
    from aekit.errors import AekitError

    from .report import as_text
    from .runner import EvalOptions, run_eval

    if data is None:
        raise AekitError("give --data SOURCE: held-out images the model never trained on, e.g. faces/[9000:]")
    options = EvalOptions(data=data, model=model_path, train_data=train_data, baselines=baselines, noise=list(noise),
                          labels=labels is not None, labels_csv=labels or None, limit=limit, train_limit=train_limit,
                          pixel_labels=pixel_labels, out=out, seed=seed, device=device, batch_size=batch_size,
                          optimize_steps=optimize_steps, runtime=runtime, align=align, bm3d_images=bm3d_images)
    result = run_eval(options, progress=not quiet)
    click.echo(as_text(result))
    plot = f", {out}/{result['rate_distortion']['plot']}" if result.get("rate_distortion") else ""
    click.echo(f"\nwrote {out}/report.json, {out}/report.md{plot} and the PNG grids")
