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
"""

from __future__ import annotations

import inspect
import json
import math
import secrets
import time
from pathlib import Path

import click
import numpy as np

from aekit import hookimpl
from aekit.cli import model_option
from aekit.errors import AekitError

PRIOR_FORMAT = "aekit-prior"
PRIOR_FORMAT_VERSION = 1
GMM_CANDIDATES = (1, 2, 4, 8, 16)
REG_COVAR = 1e-4  # ridge added to covariances, relative to the latents' mean variance
TRAIN_END_MAX_LATENTS = 4096
FIT_SEED = 0
DEFAULT_ORDER = ("gmm", "gaussian")  # what `generate` uses when --sampler is not given
MAX_GENERATE = 1024


class PriorError(AekitError):
    """A prior is missing, damaged, or was fitted for another model."""


# --- samplers ----------------------------------------------------------------------------------------


class LatentSampler:
    """Base class for samplers: subclasses implement fit, sample, state and from_state."""

    needs_fit = True

    def fit(self, latents: np.ndarray) -> "LatentSampler":
        raise NotImplementedError

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict) -> "LatentSampler":
        raise NotImplementedError

    def summary(self) -> str:
        return type(self).__name__


def _check_latents(latents, minimum: int = 2) -> np.ndarray:
    x = np.asarray(latents, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise PriorError(f"latents must be a 2-D (N, d) array, got shape {x.shape}")
    if len(x) < minimum:
        raise PriorError(f"need at least {minimum} latents to fit a prior, got {len(x)}")
    if not np.isfinite(x).all():
        raise PriorError("latents contain NaN or infinite values; is the model broken?")
    return x


def _ridge(x: np.ndarray) -> float:
    """A small variance added to the covariance diagonal, so few (even N < d) latents still fit."""
    return float(REG_COVAR * max(float(x.var(axis=0).mean()), 1e-12))


def _gaussian_logpdf(x: np.ndarray, mean: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """log N(x; mean, L L^T) per row, with L the lower Cholesky factor."""
    d = x.shape[1]
    solved = np.linalg.solve(chol, (x - mean).T)  # L^{-1} (x - mean), (d, N)
    maha = (solved**2).sum(axis=0)
    logdet = 2.0 * np.log(np.diag(chol)).sum()
    return -0.5 * (d * math.log(2 * math.pi) + logdet + maha)


def _rng(seed):
    return np.random.default_rng(seed)


class NormalSampler(LatentSampler):
    """The article's ``torch.randn(n, latent_dim)``: N(0, I), no fitting."""

    needs_fit = False

    def __init__(self, latent_dim: int | None = None):
        self.latent_dim = latent_dim

    def fit(self, latents):
        self.latent_dim = _check_latents(latents, minimum=1).shape[1]
        return self

    def sample(self, n, seed=None):
        if not self.latent_dim:
            raise PriorError("the normal sampler needs latent_dim")
        return _rng(seed).standard_normal((int(n), self.latent_dim)).astype(np.float32)

    def log_likelihood(self, latents):
        x = np.asarray(latents, dtype=np.float64)
        return -0.5 * (x.shape[1] * math.log(2 * math.pi) + (x**2).sum(axis=1))

    def state(self):
        return {}, {"latent_dim": self.latent_dim}

    @classmethod
    def from_state(cls, arrays, meta):
        return cls(latent_dim=int(meta["latent_dim"]))

    def summary(self):
        return f"N(0, I) over {self.latent_dim} dims"


class GaussianSampler(LatentSampler):
    """One full-covariance Gaussian fitted to the latents (mean and covariance plus a small ridge)."""

    def __init__(self):
        self.mean = self.cov = self.chol = None
        self.meta: dict = {}

    def fit(self, latents):
        x = _check_latents(latents)
        ridge = _ridge(x)
        self.mean = x.mean(axis=0)
        self.cov = np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1]) + ridge * np.eye(x.shape[1])
        self.chol = np.linalg.cholesky(self.cov)
        self.meta = {"latent_dim": x.shape[1], "n_latents": len(x), "ridge": ridge,
                     "log_likelihood": float(self.log_likelihood(x).mean())}
        return self

    def sample(self, n, seed=None):
        eps = _rng(seed).standard_normal((int(n), len(self.mean)))
        return (self.mean + eps @ self.chol.T).astype(np.float32)

    def log_likelihood(self, latents):
        return _gaussian_logpdf(np.asarray(latents, dtype=np.float64), self.mean, self.chol)

    def state(self):
        return {"mean": self.mean, "cov": self.cov}, dict(self.meta)

    @classmethod
    def from_state(cls, arrays, meta):
        sampler = cls()
        sampler.mean = np.asarray(arrays["mean"], dtype=np.float64)
        sampler.cov = np.asarray(arrays["cov"], dtype=np.float64)
        sampler.chol = np.linalg.cholesky(sampler.cov)
        sampler.meta = dict(meta)
        return sampler

    def summary(self):
        return (f"full-covariance Gaussian over {self.meta.get('latent_dim')} dims, "
                f"mean log-likelihood {self.meta.get('log_likelihood', float('nan')):.2f} per latent")


class GMMSampler(LatentSampler):
    """A full-covariance Gaussian mixture (scikit-learn's GaussianMixture), components chosen by BIC.

    With ``components=None`` the candidates 1, 2, 4, 8, 16 that the data can support (at most one
    component per d+1 latents) are fitted in turn until the BIC stops improving, and the one with the
    lowest BIC is kept. Sampling uses
    only the stored weights, means and Cholesky factors, with numpy's default_rng.
    """

    def __init__(self, components: int | None = None, candidates=GMM_CANDIDATES, max_iter: int = 200, random_state: int = FIT_SEED):
        if components is not None and int(components) < 1:
            raise PriorError(f"--components must be at least 1 (got {components})")
        self.components = None if components is None else int(components)
        self.candidates = tuple(candidates)
        self.max_iter, self.random_state = max_iter, random_state
        self.weights = self.means = self.covs = self.chols = None
        self.meta: dict = {}

    def fit(self, latents):
        from sklearn.mixture import GaussianMixture
        from threadpoolctl import threadpool_limits

        x = _check_latents(latents)
        n, d = x.shape
        ridge = _ridge(x)
        if self.components is not None:
            if self.components > n:
                raise PriorError(f"--components {self.components} needs at least {self.components} latents (got {n})")
            candidates = [self.components]
        else:
            cap = max(1, n // (d + 1))
            candidates = [k for k in self.candidates if k <= cap] or [1]
        best, bics = None, {}
        # One BLAS thread: EM on small matrices gains little from threads, and oversubscribed threads
        # (e.g. beside a training run) made fitting over 10x slower.
        with threadpool_limits(limits=1, user_api="blas"):
            for k in candidates:
                gm = GaussianMixture(k, covariance_type="full", reg_covar=ridge, max_iter=self.max_iter,
                                     random_state=self.random_state)
                gm.fit(x)
                bics[str(k)] = float(gm.bic(x))
                if best is not None and bics[str(k)] >= bics[str(best.n_components)]:
                    break  # BIC got worse: more components only add parameters from here
                best = gm
        self.weights = np.asarray(best.weights_, dtype=np.float64)
        self.means = np.asarray(best.means_, dtype=np.float64)
        self.covs = np.asarray(best.covariances_, dtype=np.float64)
        self.chols = np.linalg.cholesky(self.covs)
        self.meta = {"latent_dim": d, "n_latents": n, "components": int(best.n_components),
                     "chosen_by": "given" if self.components is not None else "bic", "bic": bics,
                     "ridge": ridge, "converged": bool(best.converged_),
                     "log_likelihood": float(self.log_likelihood(x).mean())}
        return self

    def sample(self, n, seed=None):
        rng = _rng(seed)
        n = int(n)
        which = rng.choice(len(self.weights), size=n, p=self.weights / self.weights.sum())
        eps = rng.standard_normal((n, self.means.shape[1]))
        out = np.empty_like(eps)
        for c in range(len(self.weights)):
            rows = which == c
            out[rows] = self.means[c] + eps[rows] @ self.chols[c].T
        return out.astype(np.float32)

    def log_likelihood(self, latents):
        x = np.asarray(latents, dtype=np.float64)
        per = np.stack([np.log(w) + _gaussian_logpdf(x, m, c) for w, m, c in zip(self.weights, self.means, self.chols)], axis=1)
        top = per.max(axis=1, keepdims=True)
        return (top + np.log(np.exp(per - top).sum(axis=1, keepdims=True)))[:, 0]

    def state(self):
        return {"weights": self.weights, "means": self.means, "covariances": self.covs}, dict(self.meta)

    @classmethod
    def from_state(cls, arrays, meta):
        sampler = cls()
        sampler.weights = np.asarray(arrays["weights"], dtype=np.float64)
        sampler.means = np.asarray(arrays["means"], dtype=np.float64)
        sampler.covs = np.asarray(arrays["covariances"], dtype=np.float64)
        sampler.chols = np.linalg.cholesky(sampler.covs)
        sampler.meta = dict(meta)
        return sampler

    def summary(self):
        meta = self.meta
        bic = meta.get("bic", {})
        how = ("chosen by BIC: " + ", ".join(f"{k}: {v:.5g}" for k, v in bic.items())) if meta.get("chosen_by") == "bic" else "given"
        return (f"{meta.get('components')} full-covariance component(s) ({how}), "
                f"mean log-likelihood {meta.get('log_likelihood', float('nan')):.2f} per latent")


@hookimpl
def register_samplers(register):
    register("normal", NormalSampler, help="the article's decoder(randn): N(0, I), no fitting (blurry or broken faces)")
    register("gaussian", GaussianSampler, help="a full-covariance Gaussian fitted to the training latents")
    register("gmm", GMMSampler, help="a full-covariance Gaussian mixture (components by BIC, or --components K)")


# --- prior files -------------------------------------------------------------------------------------


def prior_path(directory, sampler_name: str) -> Path:
    """Where the prior for `sampler_name` lives in a checkpoint folder."""
    if "/" in sampler_name or "\\" in sampler_name or sampler_name.startswith("."):
        raise PriorError(f"sampler name {sampler_name!r} cannot be used in a file name")
    return Path(directory) / f"prior-{sampler_name}.safetensors"


def _model_dir(model) -> Path:
    directory = getattr(model, "checkpoint_dir", None)
    if directory is None:
        raise PriorError("this model was not loaded from a checkpoint folder; give the folder explicitly")
    return Path(directory)


def save_prior(sampler, sampler_name: str, model=None, directory=None, fingerprint: str | None = None, info: dict | None = None) -> Path:
    """Write a fitted sampler as ``prior-<name>.safetensors`` (atomically) beside the model's checkpoint."""
    from safetensors.numpy import save_file

    from aekit import io, model_fingerprint

    if fingerprint is None:
        fingerprint = model_fingerprint(model)
    path = prior_path(directory if directory is not None else _model_dir(model), sampler_name)
    arrays, meta = sampler.state()
    tensors = {str(k): np.ascontiguousarray(v) for k, v in arrays.items()}
    metadata = {
        "format": PRIOR_FORMAT,
        "format_version": str(PRIOR_FORMAT_VERSION),
        "sampler": sampler_name,
        "model_fingerprint": fingerprint,
        "meta": json.dumps(meta, default=io._json_default),
        "info": json.dumps(info or {}, default=io._json_default),
    }
    with io.atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def read_prior_file(path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays and string metadata of a prior file; PriorError when it is not one."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="np") as fh:
            metadata = dict(fh.metadata() or {})
            arrays = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise PriorError(f"{path}: unreadable prior file ({(str(exc).strip().splitlines() or [''])[0]})") from None
    if metadata.get("format") != PRIOR_FORMAT:
        raise PriorError(f"{path}: not an aekit prior file")
    return arrays, metadata


def load_prior(model, sampler_name: str, directory=None, fingerprint: str | None = None):
    """The fitted sampler stored beside the model; refuses a prior fitted for a different model."""
    from aekit import model_fingerprint
    from aekit.plugins import get_registry

    sampler_class = get_registry().get("sampler", sampler_name)
    folder = Path(directory) if directory is not None else _model_dir(model)
    path = prior_path(folder, sampler_name)
    if not path.is_file():
        raise PriorError(f"no fitted {sampler_name!r} prior for {folder} (no {path.name}); "
                         f"run `aekit fit-prior --model {folder}`")
    arrays, metadata = read_prior_file(path)
    expected = fingerprint or model_fingerprint(model)
    if metadata.get("model_fingerprint") != expected:
        raise PriorError(f"{path} was fitted for a different model (fingerprint {metadata.get('model_fingerprint')}, "
                         f"this model is {expected}); refit it with `aekit fit-prior --model {folder}`")
    if metadata.get("sampler") != sampler_name:
        raise PriorError(f"{path} holds a {metadata.get('sampler')!r} prior, not {sampler_name!r}")
    try:
        meta = json.loads(metadata.get("meta") or "{}")
        return sampler_class.from_state(arrays, meta)
    except (KeyError, ValueError, np.linalg.LinAlgError) as exc:
        raise PriorError(f"{path}: damaged prior ({type(exc).__name__}: {exc})") from None


def fitted_priors(directory) -> list[str]:
    """Names of the samplers with a prior file in `directory`."""
    return sorted(p.name[len("prior-"):-len(".safetensors")] for p in Path(directory).glob("prior-*.safetensors"))


# --- encoding ----------------------------------------------------------------------------------------


def encode_uint8(model, images: np.ndarray, batch_size: int = 128, progress: bool = False) -> np.ndarray:
    """Latents (N, d) float32 of uint8 (N, 3, S, S) images, in batches (with a tqdm bar when asked)."""
    import torch
    from tqdm.auto import tqdm

    out = []
    bar = tqdm(total=len(images), desc="encoding", unit="img", disable=not progress, leave=False)
    for i in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])).float() / 127.5 - 1.0
        out.append(model.encode(batch, batch_size=batch_size).float().cpu().numpy())
        bar.update(len(batch))
    bar.close()
    return np.concatenate(out).astype(np.float32) if out else np.empty((0, model.config.latent_dim), np.float32)


def _make_sampler(sampler_class, components):
    """Build a sampler to fit, passing --components to those whose __init__ takes it."""
    if components is not None and "components" in _init_params(sampler_class):
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


@hookimpl
def on_train_end(model, run_dir, train_images):
    """Fit `gaussian` and `gmm` on (a seeded subset of at most 4096 of) the training latents, quietly."""
    n = len(train_images)
    if n < 2 or not model.decodes_latents:  # a skip-connection denoiser has no latent prior to fit
        return
    rng = np.random.default_rng(FIT_SEED)
    index = np.sort(rng.choice(n, size=min(n, TRAIN_END_MAX_LATENTS), replace=False))
    latents = encode_uint8(model, np.asarray(train_images[index]))
    fit_priors(model, latents, ["gaussian", "gmm"], directory=run_dir,
               info={"source": "training images (on_train_end)", "images": len(index)})


# --- commands ----------------------------------------------------------------------------------------


def _fittable(registry) -> list[str]:
    return [name for name in registry.names("sampler") if getattr(registry.get("sampler", name), "needs_fit", True)]


def _check_out(path, suffixes: tuple[str, ...], option: str) -> Path:
    """Fail before any work when an output file cannot be written where asked."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise click.BadParameter(f"{path}: must end in {' or '.join(suffixes)}", param_hint=option)
    if path.is_dir():
        raise click.BadParameter(f"{path}: is a folder, expected a file name", param_hint=option)
    if not path.parent.is_dir():
        raise click.BadParameter(f"{path}: folder {path.parent} does not exist", param_hint=option)
    return path


def _training_images(model, limit: int, progress: bool):
    """The images the model was trained on (as its checkpoint records them), at most `limit`, seeded subset."""
    from aekit.errors import DataSourceError
    from aekit.train import training_images

    settings = (getattr(model, "training_summary", None) or {}).get("settings") or {}
    if not settings.get("data"):
        raise click.UsageError(f"{model.checkpoint_dir} records no training data; pass --data SOURCE")
    spec = settings["data"]
    try:
        images = training_images(settings, model.config.image_size, progress=progress)
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
    from aekit.cli import load_model_arg
    from aekit.data import prepare
    from aekit.plugins import get_registry
    from aekit.train import resolve_device

    registry = get_registry()
    fittable = _fittable(registry)
    if sampler_name == "all":
        names = fittable
    else:
        registry.entry("sampler", sampler_name)  # unknown -> the registry's message listing known ones
        if sampler_name not in fittable:
            raise click.BadParameter(f"sampler {sampler_name!r} needs no fitting; use it directly with "
                                     f"`aekit generate --sampler {sampler_name}`", param_hint="--sampler")
        names = [sampler_name]
    if components is not None and not any("components" in _init_params(registry.get("sampler", n)) for n in names):
        raise click.BadParameter(f"sampler {sampler_name!r} takes no number of components", param_hint="--components")
    model = load_model_arg(model_path, device=str(resolve_device(device)))
    if data:
        prepared = prepare(data, model.config.image_size, limit=limit, progress=not quiet)
        for message in prepared.skipped[:20]:
            click.echo(f"skipped: {message}", err=True)
        if len(prepared.skipped) > 20:
            click.echo(f"skipped: ... and {len(prepared.skipped) - 20} more", err=True)
        images = np.asarray(prepared.images)
        described = f"{data} ({len(images)} images" + (f", {len(prepared.skipped)} unreadable skipped)" if prepared.skipped else ")")
    else:
        images, described = _training_images(model, limit, progress=not quiet)
    click.echo(f"encoding {described} with {model.checkpoint_dir}", err=True)
    latents = encode_uint8(model, images, batch_size=batch_size, progress=not quiet)
    fit_priors(model, latents, names, components=components, info={"source": described, "images": len(latents)},
               log=click.echo)


def _init_params(cls) -> set[str]:
    try:
        return set(inspect.signature(cls).parameters)
    except (TypeError, ValueError):
        return set()


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


def _png_info(fields: dict):
    from PIL.PngImagePlugin import PngInfo

    from aekit import __version__

    info = PngInfo()
    info.add_text("Software", f"aekit {__version__}")
    for key, value in fields.items():  # file names that are not UTF-8 would make the PNG unwritable
        info.add_text(key, str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
    return info


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
def generate(model_path, n, out, sampler_name, seed, save_latents):
    """Sample latents from a fitted prior, decode them, and write a grid of new faces.

    The PNG's text metadata records the sampler, the model (path and fingerprint) and the seed.

    \b
    Examples:
      aekit generate --model runs/synth --n 25 --out grid.png
      aekit generate --model runs/synth --sampler normal --seed 1 --out article.png
      aekit generate --model runs/synth --n 64 --seed 7 --out grid.png --save-latents z.npz
    """
    from aekit import io, model_fingerprint
    from aekit.cli import load_model_arg
    from aekit.images import image_grid, to_uint8_hwc
    from aekit.plugins import get_registry

    out = _check_out(out, (".png",), "--out")
    latents_path = _check_out(save_latents, (".npz",), "--save-latents") if save_latents else None
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
    images = to_uint8_hwc(model.decode(z))
    fingerprint = model_fingerprint(model)
    label = Path(model.checkpoint_dir).name
    grid = image_grid(_grid_rows(images), title=f"{name} samples, {label} {fingerprint[:8]}")
    fields = {"sampler": name, "model": str(model.checkpoint_dir), "model_fingerprint": fingerprint, "seed": seed, "n": n}
    io.save_image(out, grid, pnginfo=_png_info(fields))
    if latents_path is not None:
        with io.atomic_path(latents_path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, latents=z, sampler=np.array(name), seed=np.array(seed, dtype=np.int64),
                     model_fingerprint=np.array(fingerprint))
    click.echo(f"wrote {out} ({n} {name} samples, seed {seed})" + (f" and {latents_path}" if latents_path else ""))


def _caption_strip(strip, captions: list[str], tile: int, pad: int):
    """Add a row of captions under an image_grid strip (one per tile)."""
    from PIL import Image, ImageDraw

    height = 14
    canvas = Image.new("RGB", (strip.width, strip.height + height), "white")
    canvas.paste(strip, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for c, options in enumerate(captions):
        options = options if isinstance(options, tuple) else (options,)
        text = next((t for t in options if draw.textlength(t) <= tile), options[-1])
        x = pad + c * (tile + pad) + max(0, (tile - draw.textlength(text)) / 2)
        draw.text((x, strip.height), text, fill="black")
    return canvas


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
    from aekit.cli import load_model_arg
    from aekit.images import image_grid, open_image, resize_rgb, to_uint8_hwc

    out = _check_out(out, (".png",), "--out")
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
    picture = _caption_strip(strip, captions, size * scale, pad)
    fields = {"model": str(model.checkpoint_dir), "model_fingerprint": fingerprint, "image_a": str(image_a),
              "image_b": str(image_b), "steps": steps, "interpolation": "linear"}
    io.save_image(out, picture, pnginfo=_png_info(fields))
    click.echo(f"wrote {out} (A, {steps} steps from A's latent to B's, B)")


@hookimpl
def register_commands(register):
    register(fit_prior)
    register(generate)
    register(interpolate)


# --- `aekit demo` ------------------------------------------------------------------------------------


def _run_demo(ctx):
    from .demo import run

    return run(ctx)


@hookimpl
def register_demos(register):
    register("generate", _run_demo, help="faces sampled from the fitted prior, an interpolation and a latent direction", order=50)
