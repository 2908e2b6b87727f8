"""Latent samplers (``normal``, ``gaussian``, ``gmm``) and the prior file format (save, load, list).

The sampler interface and the file layout are described in the package docstring (``aekit_generate``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from aekit.errors import AekitError, first_line
from aekit.validate import parse_json

PRIOR_FORMAT = "aekit-prior"
PRIOR_FORMAT_VERSION = 1
GMM_CANDIDATES = (1, 2, 4, 8, 16)
REG_COVAR = 1e-4  # ridge added to covariances, relative to the latents' mean variance
FIT_SEED = 0


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
        d = sampler.mean.shape[-1] if sampler.mean.ndim == 1 else -1
        if sampler.mean.ndim != 1 or sampler.cov.shape != (d, d):
            raise ValueError(f"mean {sampler.mean.shape} and covariance {sampler.cov.shape} do not fit together")
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
        k, d = sampler.means.shape if sampler.means.ndim == 2 else (-1, -1)
        if sampler.weights.shape != (k,) or sampler.covs.shape != (k, d, d) or k < 1:
            raise ValueError(f"weights {sampler.weights.shape}, means {sampler.means.shape} and covariances "
                             f"{sampler.covs.shape} do not fit together")
        if (sampler.weights < 0).any() or not sampler.weights.sum() > 0:
            raise ValueError("the component weights must be zero or more, and not all zero")
        sampler.chols = np.linalg.cholesky(sampler.covs)
        sampler.meta = dict(meta)
        return sampler

    def summary(self):
        meta = self.meta
        bic = meta.get("bic", {})
        how = ("chosen by BIC: " + ", ".join(f"{k}: {v:.5g}" for k, v in bic.items())) if meta.get("chosen_by") == "bic" else "given"
        return (f"{meta.get('components')} full-covariance component(s) ({how}), "
                f"mean log-likelihood {meta.get('log_likelihood', float('nan')):.2f} per latent")


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
        "meta": json.dumps(meta, default=io.json_default),
        "info": json.dumps(info or {}, default=io.json_default),
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
        raise PriorError(f"{path}: unreadable prior file ({first_line(exc)})") from None
    if metadata.get("format") != PRIOR_FORMAT:
        raise PriorError(f"{path}: not an aekit prior file")
    version = metadata.get("format_version", str(PRIOR_FORMAT_VERSION))
    if not version.isdigit() or int(version) < 1:
        raise PriorError(f"{path}: damaged prior (format_version {version[:20]!r})")
    if int(version) > PRIOR_FORMAT_VERSION:
        raise PriorError(f"{path}: written by a newer aekit (prior format {version}, this aekit reads up to "
                         f"{PRIOR_FORMAT_VERSION}); upgrade aekit, or refit it with `aekit fit-prior`")
    # a NaN mean or covariance samples NaN latents: every generated face would be black
    for name, array in arrays.items():
        if array.dtype.kind not in "fiu":
            raise PriorError(f"{path}: damaged prior ({name!r} holds {array.dtype} values, not numbers); "
                             f"refit it with `aekit fit-prior --model {path.parent}`")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise PriorError(f"{path}: damaged prior ({name!r} holds NaN or infinite values); "
                             f"refit it with `aekit fit-prior --model {path.parent}`")
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
    # the fit's summary (a log-likelihood may be -inf): informational, so NaN is let through
    meta = parse_json(metadata.get("meta") or "{}", f"{path}: damaged prior: metadata 'meta'", PriorError, allow_nan=True,
                      hint=f"refit it with `aekit fit-prior --model {folder}`")
    if not isinstance(meta, dict):
        raise PriorError(f"{path}: damaged prior (metadata 'meta' is not a JSON object)")
    try:
        sampler = sampler_class.from_state(arrays, meta)
    except (KeyError, ValueError, TypeError, np.linalg.LinAlgError) as exc:
        raise PriorError(f"{path}: damaged prior ({type(exc).__name__}: {first_line(exc)}); "
                         f"refit it with `aekit fit-prior --model {folder}`") from None
    latent_dim = getattr(getattr(model, "config", None), "latent_dim", None)
    sampled_dim = _prior_dim(sampler)
    if latent_dim is not None and sampled_dim is not None and sampled_dim != latent_dim:
        raise PriorError(f"{path}: damaged prior ({sampled_dim}-d for a {latent_dim}-d model); "
                         f"refit it with `aekit fit-prior --model {folder}`")
    return sampler


def _prior_dim(sampler) -> int | None:
    """The latent size a loaded sampler draws (None when it does not say)."""
    for name in ("mean", "means"):
        value = getattr(sampler, name, None)
        if isinstance(value, np.ndarray) and value.ndim >= 1:
            return int(value.shape[-1])
    dim = getattr(sampler, "latent_dim", None)
    return dim if isinstance(dim, int) else None


def fitted_priors(directory) -> list[str]:
    """Names of the samplers with a prior file in `directory`."""
    return sorted(p.name[len("prior-"):-len(".safetensors")] for p in Path(directory).glob("prior-*.safetensors"))
