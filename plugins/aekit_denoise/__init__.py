"""Denoising: the noise models, ``aekit noise`` (make noisy test inputs) and ``aekit denoise``.

Noise models (registered for ``aekit train --noise SPEC``, ``aekit noise --kind SPEC`` and
``aekit.noise.parse_noise``), all on the [0, 1] pixel scale:

==========================  ===========================================================================
``gaussian:SIGMA``          additive N(0, SIGMA) per pixel and channel (default 0.1)
``saltpepper:P``            a fraction P of the pixels, all channels together, set to 0 or 1 (default 0.05)
``speckle:SIGMA``           multiplicative ``x + x * N(0, SIGMA)`` (default 0.1)
``mask:FRACTION``           random square blocks, 1/8 of the shorter side, set to 0 until about FRACTION
                            of the area is covered (default 0.25)
``poisson-gaussian:A,B``    a camera's noise ``A * Poisson(x / A) + N(0, B)``, variance ``A * x + B**2``
                            (default A 0.01, B 0.02; ``poisson-gaussian:0.005`` sets A only)
``jpeg:Q``                  stored as a Pillow JPEG of quality Q (1-100, default 75) and decoded again;
                            ``poisson-gaussian:0.01,0.02+jpeg:75`` is a camera photo saved as JPEG
==========================  ===========================================================================

Amounts may be ``LOW-HIGH`` (drawn per image; ``mask`` excepted).

``A+B`` applies A then B, ``A|B`` picks one per image (``aekit.noise``). In Python::

    from aekit.noise import parse_noise
    noisy = parse_noise("gaussian:0.1")(images, np.random.default_rng(0))   # float (N, H, W, 3) in [0, 1]

    from aekit_denoise import denoise_image, open_picture
    picture = open_picture("scan.png")                   # any mode, EXIF rotation applied
    clean, notes = denoise_image(model, picture.image)   # same mode and size (RGBA keeps its alpha)

``aekit denoise`` runs ``model.denoise(rgb_uint8, method=...)`` on every image at its own size (the
model by ONNX Runtime on a CPU with the onnx extra, as ``--runtime`` says):
``resize`` denoises a 64x64 copy and adds the removed-noise estimate back at full size, ``tile``
blends overlapping 64x64 tiles, ``auto`` picks tile for skip-connection models, resize otherwise.
"""

from __future__ import annotations

from aekit import hookimpl

from .noise_models import (NOISE_MODELS, covered_blocks, make_gaussian_noise, make_jpeg_noise, make_mask_noise,
                           make_poisson_gaussian_noise, make_saltpepper_noise, make_speckle_noise, parse_amount)
from .pictures import ModelView, Picture, denoise_image, denoise_images, model_view, open_picture, save_picture


@hookimpl
def register_noise_models(register):
    for name, (make_noise, help_text) in NOISE_MODELS.items():
        register(name, make_noise, help=help_text)


@hookimpl
def register_commands(register):
    from .commands import denoise, noise

    register(noise)
    register(denoise)


__all__ = ["ModelView", "NOISE_MODELS", "Picture", "covered_blocks", "denoise_image", "denoise_images", "make_gaussian_noise",
           "make_jpeg_noise", "make_mask_noise", "make_poisson_gaussian_noise", "make_saltpepper_noise", "make_speckle_noise",
           "model_view", "open_picture", "parse_amount", "save_picture"]


@hookimpl
def register_demos(register):
    from . import demo

    register("denoise", demo.run, help="the demo's denoiser on noisy held-out faces, against TV", order=25)
