"""Fitting priors: encode images with a model, fit the registered samplers to the latents, save them."""

from __future__ import annotations

import inspect
import time

import numpy as np

from .priors import FIT_SEED, save_prior

TRAIN_END_MAX_LATENTS = 4096


def encode_uint8(model, images: np.ndarray, batch_size: int = 128, progress: bool = False) -> np.ndarray:
    """Latents (N, d) float32 of uint8 (N, 3, S, S) images, in batches (with a tqdm bar when asked)."""
    from tqdm.auto import tqdm

    from aekit.pixels import to_signed

    out = []
    bar = tqdm(total=len(images), desc="encoding", unit="img", disable=not progress, leave=False)
    for i in range(0, len(images), batch_size):
        batch = to_signed(images[i : i + batch_size])  # already (N, 3, S, S): the layout is kept
        out.append(model.encode(batch, batch_size=batch_size).float().cpu().numpy())
        bar.update(len(batch))
    bar.close()
    return np.concatenate(out).astype(np.float32) if out else np.empty((0, model.config.latent_dim), np.float32)


def init_parameters(cls) -> set[str]:
    """The names of the arguments `cls(...)` takes (empty when its signature cannot be read)."""
    try:
        return set(inspect.signature(cls).parameters)
    except (TypeError, ValueError):
        return set()


def fittable_samplers(registry) -> list[str]:
    """The registered samplers that need fitting (``needs_fit``, True unless a sampler says otherwise)."""
    return [name for name in registry.names("sampler") if getattr(registry.get("sampler", name), "needs_fit", True)]


def _make_sampler(sampler_class, components):
    """Build a sampler to fit, passing --components to those whose __init__ takes it."""
    if components is not None and "components" in init_parameters(sampler_class):
        return sampler_class(components=components)
    return sampler_class()


def fit_priors(model, latents: np.ndarray, names, components: int | None = None, directory=None, info: dict | None = None, log=None):
    """Fit each named sampler to `latents` and save it beside the model; returns {name: (sampler, path)}."""
    from aekit import model_fingerprint
    from aekit.plugins import get_registry

    registry = get_registry()
    fingerprint = model_fingerprint(model)
    done = {}
    for name in names:
        t0 = time.perf_counter()
        sampler = _make_sampler(registry.get("sampler", name), components).fit(latents)
        path = save_prior(sampler, name, model=model, directory=directory, fingerprint=fingerprint, info=info)
        done[name] = (sampler, path)
        if log:
            summary = sampler.summary() if hasattr(sampler, "summary") else type(sampler).__name__
            log(f"{name}: {summary} ({time.perf_counter() - t0:.1f} s) -> {path}")
    return done


def fit_training_priors(model, run_dir, train_images) -> None:
    """Fit `gaussian` and `gmm` on (a seeded subset of at most 4096 of) the training latents, quietly."""
    n = len(train_images)
    if n < 2 or not model.decodes_latents:  # a skip-connection denoiser has no latent prior to fit
        return
    rng = np.random.default_rng(FIT_SEED)
    index = np.sort(rng.choice(n, size=min(n, TRAIN_END_MAX_LATENTS), replace=False))
    latents = encode_uint8(model, np.asarray(train_images[index]))
    fit_priors(model, latents, ["gaussian", "gmm"], directory=run_dir,
               info={"source": "training images (on_train_end)", "images": len(index)})
