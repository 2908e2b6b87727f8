"""Per-image quality on float images in [0, 1], (N, H, W, 3): MSE, PSNR (aekit.metrics) and SSIM (scikit-image)."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

# Wang et al. (2004): an 11x11 Gaussian window of sigma 1.5, population covariances. aekit.metrics.ssim
# computes the same figure in torch; scikit-image is the reference the report cites.
SSIM_SETTINGS = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 1.0}


def to_unit(images) -> np.ndarray:
    """uint8 (N, H, W, 3) -> float32 in [0, 1]; float arrays are clipped to [0, 1]."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255.0)
    return np.clip(images.astype(np.float32, copy=False), 0.0, 1.0)


def tensor_to_unit(x: torch.Tensor) -> np.ndarray:
    """Model output (N, 3, H, W) in [-1, 1] -> float32 (N, H, W, 3) in [0, 1]."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()


def unit_to_tensor(images: np.ndarray) -> torch.Tensor:
    """float (N, H, W, 3) in [0, 1] -> model input (N, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).permute(0, 3, 1, 2) * 2 - 1


def mse(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mean squared error of each image on the [0, 1] scale."""
    diff = to_unit(pred).astype(np.float64) - to_unit(target)
    return (diff**2).reshape(len(diff), -1).mean(1)


def psnr(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """PSNR (dB) of each image on the [0, 1] scale, by aekit.metrics.psnr (the trainer's val_psnr)."""
    from aekit.metrics import psnr as aekit_psnr

    return np.asarray(aekit_psnr(unit_to_tensor(to_unit(pred)), unit_to_tensor(to_unit(target))), dtype=np.float64)


def ssim(pred: np.ndarray, target: np.ndarray, progress: bool = False, desc: str = "SSIM") -> np.ndarray:
    """SSIM of each image (scikit-image's structural_similarity over the three channels)."""
    from skimage.metrics import structural_similarity

    pred, target = to_unit(pred), to_unit(target)
    return np.asarray([structural_similarity(p, t, channel_axis=-1, **SSIM_SETTINGS)
                       for p, t in tqdm(zip(pred, target), total=len(pred), desc=desc, unit="img", disable=not progress, leave=False)])


def scores(pred, target, progress: bool = False, desc: str = "SSIM") -> dict:
    """Means (and standard deviations) of MSE, PSNR and SSIM over the images."""
    values = {"mse": mse(pred, target), "psnr": psnr(pred, target), "ssim": ssim(pred, target, progress, desc)}
    out = {}
    for key, column in values.items():
        out[key] = float(np.mean(column))
        out[f"{key}_std"] = float(np.std(column))
    return out


def estimate_sigma(images: np.ndarray) -> np.ndarray:
    """Noise standard deviation of each image (Immerkaer 1996: a Laplacian-difference mask, mean absolute response).

    Blind (works on any noise), fast, and biased a little upwards by image detail; the denoisers' tuned
    multiples absorb the bias. Clean 64x64 faces read about 0.013.
    """
    x = to_unit(images).astype(np.float64)
    c = (x[:, :-2, :-2] - 2 * x[:, :-2, 1:-1] + x[:, :-2, 2:]
         - 2 * x[:, 1:-1, :-2] + 4 * x[:, 1:-1, 1:-1] - 2 * x[:, 1:-1, 2:]
         + x[:, 2:, :-2] - 2 * x[:, 2:, 1:-1] + x[:, 2:, 2:])
    return np.sqrt(np.pi / 2) / 6 * np.abs(c).reshape(len(x), -1).mean(1)
