"""The denoising baselines: scikit-image's NL-means and TV (Chambolle), each tuned on a separate subset, and
BM3D when the ``bm3d`` package is installed.

BM3D (``pip install bm3d``, or aekit's ``bench`` extra) is never a dependency of aekit: its licence is
non-commercial. It is told the true sigma of a plain ``gaussian:SIGMA`` and otherwise each image's
measured one (the standard deviation of noisy - clean), takes about 2 s per image whatever its size
(on one core), and its outputs are cached under ``$AEKIT_HOME/cache/bm3d``, keyed by the noisy image's
bytes (which the clean image, the noise spec and the seed determine), the sigma and bm3d's version.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .quality import estimate_sigma, psnr

# h and weight are these multiples of each image's estimated noise sigma; the grids cover the best
# multiple for Gaussian (sigma 0.05-0.2), salt-and-pepper and speckle noise on 64x64 faces.
NL_MEANS_GRID = (0.45, 0.6, 0.8, 1.0, 1.3)
TV_GRID = (0.5, 0.75, 1.0, 1.5, 2.0)
NL_MEANS_SETTINGS = {"patch_size": 5, "patch_distance": 6, "fast_mode": True}
TUNING_IMAGES = 64


def nl_means(noisy: np.ndarray, multiple: float, sigmas: np.ndarray, progress: bool = False, desc: str = "NL-means") -> np.ndarray:
    """scikit-image denoise_nl_means per image, h = multiple * the image's estimated sigma."""
    from skimage.restoration import denoise_nl_means

    out = np.empty_like(noisy, dtype=np.float32)
    for i in tqdm(range(len(noisy)), desc=desc, unit="img", disable=not progress, leave=False):
        sigma = float(max(sigmas[i], 1e-4))
        out[i] = denoise_nl_means(noisy[i], h=multiple * sigma, sigma=sigma, channel_axis=-1, **NL_MEANS_SETTINGS)
    return np.clip(out, 0.0, 1.0)


def tv(noisy: np.ndarray, multiple: float, sigmas: np.ndarray, progress: bool = False, desc: str = "TV") -> np.ndarray:
    """scikit-image denoise_tv_chambolle per image, weight = multiple * the image's estimated sigma."""
    from skimage.restoration import denoise_tv_chambolle

    out = np.empty_like(noisy, dtype=np.float32)
    for i in tqdm(range(len(noisy)), desc=desc, unit="img", disable=not progress, leave=False):
        out[i] = denoise_tv_chambolle(noisy[i], weight=multiple * float(max(sigmas[i], 1e-4)), channel_axis=-1)
    return np.clip(out, 0.0, 1.0)


METHODS = {"NL-means": (nl_means, NL_MEANS_GRID, "h"), "TV": (tv, TV_GRID, "weight")}


def tune(method: str, noisy: np.ndarray, clean: np.ndarray, progress: bool = False) -> dict:
    """The grid multiple with the best mean PSNR on (noisy, clean), and every multiple's PSNR."""
    function, grid, parameter = METHODS[method]
    sigmas = estimate_sigma(noisy)
    tried = {}
    for multiple in grid:
        tried[multiple] = float(psnr(function(noisy, multiple, sigmas), clean).mean())
    best = max(tried, key=tried.get)
    notes = []
    if best in (grid[0], grid[-1]) and len(grid) > 1:
        notes.append(f"the best {parameter} is at the edge of the grid ({best} x sigma)")
    return {"parameter": parameter, "multiple": best, "grid_psnr": {str(k): v for k, v in tried.items()}, "notes": notes}


def split_tuning(count: int, seed: int, tuning: int = TUNING_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """(tuning, reported) indices: a seeded random min(tuning, count // 4) images (at least one) are tuning-only."""
    k = max(1, min(tuning, count // 4))
    order = np.random.default_rng(seed).permutation(count)
    return np.sort(order[:k]), np.sort(order[k:])


# --- BM3D (optional: the bm3d package, non-commercial licence) ----------------------------------------------

BM3D_MISSING = "BM3D: not installed (pip install bm3d; non-commercial licence, not a dependency of aekit)"
BM3D_TRUE_SIGMA = "the true sigma of gaussian:SIGMA"
BM3D_MEASURED_SIGMA = "each image's measured sigma (std of noisy - clean)"
BM3D_MIN_SIGMA = 1e-3  # a sigma of 0 (an image the noise left alone) is no input BM3D takes
BM3D_CACHE_VERSION = 1
_DEFAULT = object()


def bm3d_version() -> str | None:
    """The version of the importable ``bm3d`` package, or None when it cannot be imported."""
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bm3d")
    except PackageNotFoundError:
        return "unknown"


def true_gaussian_sigma(spec: str) -> float | None:
    """SIGMA of a plain ``gaussian:SIGMA`` (one fixed sigma, nothing combined, the built-in model), else None."""
    name, _, argument = spec.strip().partition(":")
    if name.strip() != "gaussian" or "+" in spec or "|" in spec:
        return None
    try:
        from aekit.plugins import get_registry

        if get_registry().entry("noise_model", "gaussian").plugin != "denoise":
            return None  # another plugin's "gaussian": its argument may mean something else
        if not argument.strip():
            from aekit_denoise.noise_models import GAUSSIAN_DEFAULT

            return float(GAUSSIAN_DEFAULT)
        value = float(argument)
    except Exception:  # a range (0.05-0.2), no such model, no aekit_denoise: no single true sigma
        return None
    return value if 0 < value <= 1 else None


def measured_sigmas(noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Each image's standard deviation of (noisy - clean), on the [0, 1] scale."""
    diff = np.asarray(noisy, dtype=np.float64) - np.asarray(clean, dtype=np.float64)
    return diff.reshape(len(diff), -1).std(1)


def bm3d_sigmas(spec: str, noisy: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, str, float | None]:
    """(the sigma BM3D is told for each image, which sigma that is, the true sigma or None)."""
    sigma = true_gaussian_sigma(spec)
    if sigma is not None:
        return np.full(len(noisy), sigma), BM3D_TRUE_SIGMA, sigma
    return measured_sigmas(noisy, clean), BM3D_MEASURED_SIGMA, None


def bm3d_cache_dir() -> Path:
    """Where BM3D's outputs are kept: ``$AEKIT_HOME/cache/bm3d``."""
    from aekit.paths import aekit_home

    return aekit_home() / "cache" / "bm3d"


def bm3d_cache_key(image: np.ndarray, sigma: float, version: str | None) -> str:
    """The cache entry of BM3D on one noisy image (float32 (H, W, 3)) told `sigma`."""
    image = np.ascontiguousarray(image, dtype=np.float32)
    digest = hashlib.sha256(json.dumps([BM3D_CACHE_VERSION, version, "bm3d_rgb", repr(float(sigma)),
                                        list(image.shape)]).encode())
    digest.update(image.tobytes())
    return digest.hexdigest()[:32]


def _bm3d_one(task) -> tuple[np.ndarray, float]:
    """BM3D on one image (a worker's job): (denoised float32 in [0, 1], seconds)."""
    import bm3d as bm3d_package

    image, sigma = task
    start = time.perf_counter()
    out = bm3d_package.bm3d_rgb(image, sigma_psd=sigma)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0), time.perf_counter() - start


def _read_cached(path: Path, shape) -> np.ndarray | None:
    try:
        out = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return out if out.shape == tuple(shape) and out.dtype == np.float32 else None


def _write_cached(path: Path, image: np.ndarray) -> bool:
    from aekit import io

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with io.atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:  # np.save appends .npy to a path without it; a handle avoids that
                np.save(fh, np.asarray(image, dtype=np.float32), allow_pickle=False)
    except Exception:  # a read-only or full cache (OSError, AekitError): the run goes on without it
        return False
    return True


def bm3d(noisy: np.ndarray, sigmas, progress: bool = False, desc: str = "BM3D", cache=_DEFAULT,
         workers: int = 1) -> tuple[np.ndarray, dict]:
    """``bm3d.bm3d_rgb`` on each image of float (N, H, W, 3) in [0, 1], told ``sigma_psd = sigmas[i]``.

    Returns (denoised float32 images, {"computed", "cached", "seconds"}: how many were run and how many
    read from the cache, and the seconds BM3D itself took on those it ran). `cache` is a folder,
    None for no cache, or by default ``$AEKIT_HOME/cache/bm3d``. `workers` > 1 runs that many
    processes. ImportError when bm3d is not installed.
    """
    import bm3d as _  # noqa: F401  (fail before any work)

    version = bm3d_version()
    folder = bm3d_cache_dir() if cache is _DEFAULT else (Path(cache) if cache is not None else None)
    noisy = np.asarray(noisy, dtype=np.float32)
    sigmas = np.broadcast_to(np.asarray(sigmas, dtype=np.float64), (len(noisy),))
    out = np.empty(noisy.shape, dtype=np.float32)
    todo, paths = [], {}
    for i in range(len(noisy)):
        sigma = float(max(sigmas[i], BM3D_MIN_SIGMA))
        if folder is not None:
            key = bm3d_cache_key(noisy[i], sigma, version)
            paths[i] = folder / key[:2] / f"{key}.npy"
            cached = _read_cached(paths[i], noisy.shape[1:])
            if cached is not None:
                out[i] = cached
                continue
        todo.append((i, sigma))
    stats = {"computed": len(todo), "cached": len(noisy) - len(todo), "seconds": 0.0}
    bar = tqdm(total=len(todo), desc=desc, unit="img", disable=not progress or not todo, leave=False)
    tasks = ((noisy[i], sigma) for i, sigma in todo)
    pool = None
    if workers > 1 and len(todo) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(min(workers, len(todo)), mp_context=multiprocessing.get_context("spawn"))
        results = pool.map(_bm3d_one, tasks, chunksize=4)
    else:
        results = map(_bm3d_one, tasks)
    warned = False
    try:
        for (i, _sigma), (denoised, seconds) in zip(todo, results):
            out[i] = denoised
            stats["seconds"] += seconds
            if i in paths and not _write_cached(paths[i], denoised) and not warned:
                print(f"Warning: could not write BM3D's cache under {folder}; going on without it", file=sys.stderr)
                warned = True
            bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return out, stats
