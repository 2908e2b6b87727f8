"""Image-quality metrics on the [0, 1] scale: per-image PSNR and SSIM (Wang et al. 2004, 11x11 Gaussian window)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _as_unit_float(images) -> torch.Tensor:
    """uint8 (N, H, W, 3) arrays -> float (N, 3, H, W) in [0, 1]; tensors in [-1, 1] -> [0, 1]."""
    if isinstance(images, np.ndarray) and images.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    x = torch.as_tensor(images).float()
    return (x + 1) / 2


def psnr(pred, target) -> np.ndarray:
    """PSNR in dB of each image, on the [0, 1] scale (uint8 NHWC arrays, or tensors in [-1, 1])."""
    a, b = _as_unit_float(pred), _as_unit_float(target)
    mse = (a - b).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return (10 * torch.log10(1 / mse)).numpy()


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(3, 1, size, size).contiguous()


def ssim(pred, target) -> np.ndarray:
    """Mean SSIM of each image over its three channels (valid-region Gaussian filtering, data range 1)."""
    a, b = _as_unit_float(pred), _as_unit_float(target)
    window = _gaussian_window()
    c1, c2 = 0.01**2, 0.03**2
    filt = lambda x: F.conv2d(x, window, groups=3)  # noqa: E731
    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ssim_map.flatten(1).mean(1).numpy()
