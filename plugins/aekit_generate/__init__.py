"""Generation: latent samplers (priors) fitted to a model's latents, ``fit-prior``, ``generate``, ``interpolate``.

The article samples new faces with ``decoder(torch.randn(n, latent_dim))``. An autoencoder's latents
are not N(0, I), so that gives blurry or broken faces; fitting a distribution to the latents of the
training images and sampling from it gives faces that look like the training set.

Samplers are registry entries (kind ``sampler``), so any plugin can add one::

    @aekit.hookimpl
    def register_samplers(register):
        register("mine", MySampler, help="what it does")

Built in: ``normal`` (the article's N(0, I); needs no fitting), ``gaussian`` (one full-covariance
Gaussian) and ``gmm`` (a full-covariance Gaussian mixture from scikit-learn, its number of components
chosen by BIC, like pythae's GaussianMixtureSampler).

The sampler interface (``LatentSampler`` below is a convenient base class, not a requirement):

``needs_fit: bool`` (class attribute, default True)
    False: the sampler is usable without a prior file and is built as ``cls(latent_dim=d)``.
``cls(**options)``
    A sampler to be fitted; ``aekit fit-prior --components K`` passes ``components=K`` to samplers
    whose ``__init__`` takes a ``components`` argument.
``fit(latents: np.ndarray) -> self``
    Fit to (N, d) float latents.
``sample(n: int, seed: int | None) -> np.ndarray``
    (n, d) float32 latents; the same seed always gives the same latents.
``state() -> (dict[str, np.ndarray], dict)``
    Arrays and JSON-able metadata that describe the fitted sampler completely.
``from_state(arrays, meta)`` (classmethod)
    Rebuild a fitted sampler from ``state()``.
``log_likelihood(latents) -> np.ndarray`` and ``summary() -> str`` (optional)
    Per-latent log-likelihood, and a one-line description that ``fit-prior`` prints.

A fitted sampler is stored beside the checkpoint as ``prior-<sampler>.safetensors``: the arrays as
tensors, and in the file's string metadata the sampler name, the JSON metadata, and the model's
fingerprint (``aekit.model_fingerprint``), so a prior fitted for another model is refused. Nothing is
pickled. ``aekit train`` fits ``gaussian`` and ``gmm`` at the end of every run (``on_train_end``).

Modules: ``priors`` (the samplers and the prior file format), ``fitting`` (encoding images and
fitting priors to their latents), ``commands`` (``fit-prior``, ``generate``, ``interpolate``) and
``demo`` (the ``aekit demo`` section); this package holds the hook implementations.
"""

from __future__ import annotations

from aekit import hookimpl

from .fitting import TRAIN_END_MAX_LATENTS, encode_uint8, fit_priors, fit_training_priors
from .priors import (FIT_SEED, GMM_CANDIDATES, PRIOR_FORMAT, PRIOR_FORMAT_VERSION, REG_COVAR, GaussianSampler,
                     GMMSampler, LatentSampler, NormalSampler, PriorError, fitted_priors, load_prior, prior_path,
                     read_prior_file, save_prior)


@hookimpl
def register_samplers(register):
    register("normal", NormalSampler, help="the article's decoder(randn): N(0, I), no fitting (blurry or broken faces)")
    register("gaussian", GaussianSampler, help="a full-covariance Gaussian fitted to the training latents")
    register("gmm", GMMSampler, help="a full-covariance Gaussian mixture (components by BIC, or --components K)")


@hookimpl
def on_train_end(model, run_dir, train_images):
    """Fit `gaussian` and `gmm` on (a seeded subset of at most 4096 of) the training latents, quietly."""
    fit_training_priors(model, run_dir, train_images)


@hookimpl
def register_commands(register):
    from .commands import fit_prior, generate, interpolate

    register(fit_prior)
    register(generate)
    register(interpolate)


@hookimpl
def register_demos(register):
    from . import demo

    register("generate", demo.run, help="faces sampled from the fitted prior, an interpolation and a latent direction", order=50)


__all__ = [
    "FIT_SEED",
    "GMM_CANDIDATES",
    "PRIOR_FORMAT",
    "PRIOR_FORMAT_VERSION",
    "REG_COVAR",
    "TRAIN_END_MAX_LATENTS",
    "GMMSampler",
    "GaussianSampler",
    "LatentSampler",
    "NormalSampler",
    "PriorError",
    "encode_uint8",
    "fit_priors",
    "fitted_priors",
    "load_prior",
    "prior_path",
    "read_prior_file",
    "save_prior",
]
