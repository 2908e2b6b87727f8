"""``aekit eval``: a reproducible quality report of a model on held-out faces, against honest baselines.

    aekit eval --model runs/celeba --data celeba/images[9000:] --baselines \\
        --noise gaussian:0.1 --noise saltpepper:0.1 --labels celeba/attributes.csv --out report/

writes ``report/report.json``, ``report/report.md`` and PNG grids beside them, and prints the tables:

- reconstruction: MSE, PSNR (per image on the [0, 1] scale, then averaged) and SSIM (scikit-image) of
  the model's float32 and int8 latents; with ``--baselines`` also PCA with as many components as the
  latent (fitted on the training split) and JPEG / WebP at the quality whose mean size best matches
  the float32 latent's bytes, so every row reads "bytes per image -> PSNR / SSIM";
- ``--noise SPEC`` (repeatable): PSNR / SSIM of the noisy input, of ``model.denoise`` and of
  scikit-image's NL-means and TV, whose parameters are tuned on other images of the same data;
- ``--labels [FILE.csv]``: linear-probe accuracy on every binary label (the source's own attributes,
  or a CSV keyed by file name) for the latents, PCA of the pixels, raw pixels and the majority class;
- a codec model (the ``codec`` architecture): a rate-distortion section instead of the latent rows, always:
  every quality's real bitstreams (bytes a face of the streams alone; the ``.npz`` container's overhead
  noted) -> PSNR / SSIM, against Pillow's JPEG (``optimize=True``), WebP (``method=6``) and AVIF swept over
  their qualities and read at the same bytes, as a table and ``rd_curve.png`` (``rate_distortion.py``, the
  numbers of ``benchmarks/codec_table.py`` too). What does not apply to a codec (PCA and JPEG / WebP at the
  latent's bytes, ``--noise``, ``--optimize-steps``) is left out with a note.

Every number is computed on ``--data``, which may not overlap the model's recorded training data nor
``--train-data``. In Python: ``run_eval(EvalOptions(data=..., model=...))`` returns the report dict.
"""

from __future__ import annotations

from aekit import hookimpl

# the plugins whose modules this one imports (aekit refuses to load it without them)
AEKIT_REQUIRES = ("compress", "embed")  # int8 quantisation of latents; labels and the linear probe


@hookimpl
def register_commands(register):
    from .command import eval_

    register(eval_)


def __getattr__(name):
    if name in ("EvalOptions", "run_eval"):
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["EvalOptions", "run_eval"]
