"""The denoising baselines: scikit-image's NL-means and TV (Chambolle), each tuned on a separate subset."""

from __future__ import annotations

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
