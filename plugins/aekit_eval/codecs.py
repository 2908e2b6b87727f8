"""The reconstruction baselines: PCA with as many components as the latent, JPEG and WebP at matched sizes."""

from __future__ import annotations

import io as stdio

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

# Pillow settings: the strongest each codec offers at a given quality (JPEG with optimised Huffman
# tables, WebP's slowest and best method), so the baselines are honest.
CODEC_SETTINGS = {"JPEG": {"optimize": True}, "WEBP": {"method": 6}}
QUALITIES = (1, 100)


def fit_pca(train_pixels: np.ndarray, components: int, seed: int = 0):
    """A scikit-learn PCA fitted on (N, D) float pixels in [0, 1] of the training split."""
    from sklearn.decomposition import PCA

    return PCA(n_components=components, random_state=seed).fit(train_pixels)


def pca_components(latent_dim: int, n_train: int, n_pixels: int) -> int:
    """As many components as the latent has dimensions, unless the training split is too small."""
    return int(min(latent_dim, n_train, n_pixels))


def pca_reconstruct(pca, images_unit: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Project float images (N, H, W, 3) in [0, 1] onto the PCA and back, clipped to [0, 1]."""
    flat = images_unit.reshape(len(images_unit), -1)
    out = np.concatenate([pca.inverse_transform(pca.transform(flat[i : i + batch_size]))
                          for i in range(0, len(flat), batch_size)]) if len(flat) else flat
    return np.clip(out, 0.0, 1.0).astype(np.float32).reshape(images_unit.shape)


def encode_size(image: np.ndarray, fmt: str, quality: int) -> bytes:
    """One uint8 (H, W, 3) image encoded by Pillow."""
    buffer = stdio.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, quality=int(quality), **CODEC_SETTINGS.get(fmt, {}))
    return buffer.getvalue()


def mean_size(images: np.ndarray, fmt: str, quality: int) -> float:
    """Mean encoded bytes per image at one quality."""
    return float(np.mean([len(encode_size(image, fmt, quality)) for image in images]))


def round_trip(images: np.ndarray, fmt: str, quality: int, progress: bool = False) -> tuple[float, np.ndarray]:
    """(mean bytes per image, decoded uint8 images) at one quality."""
    sizes, decoded = [], []
    for image in tqdm(images, desc=f"{fmt} q{quality}", unit="img", disable=not progress, leave=False):
        data = encode_size(image, fmt, quality)
        sizes.append(len(data))
        with Image.open(stdio.BytesIO(data)) as img:
            decoded.append(np.asarray(img.convert("RGB")))
    return float(np.mean(sizes)), np.stack(decoded)


def match_quality(images: np.ndarray, fmt: str, target_bytes: float, sample: int = 256) -> tuple[int, dict[int, float]]:
    """The quality (1-100) whose mean file size comes closest to `target_bytes`, and the sizes tried.

    Sizes grow with quality, so a bisection finds the first quality at or above the target and the
    one below it is the only other candidate. Sizes are measured on an evenly spaced sample of at most
    `sample` images (the reported size is then measured on every image).
    """
    if len(images) > sample:
        images = images[np.linspace(0, len(images) - 1, sample).round().astype(int)]
    tried: dict[int, float] = {}

    def size(q):
        if q not in tried:
            tried[q] = mean_size(images, fmt, q)
        return tried[q]

    low, high = QUALITIES
    if size(low) >= target_bytes:
        return low, tried
    if size(high) <= target_bytes:
        return high, tried
    while high - low > 1:  # invariant: size(low) < target <= size(high)
        middle = (low + high) // 2
        if size(middle) < target_bytes:
            low = middle
        else:
            high = middle
    best = min((low, high), key=lambda q: (abs(size(q) - target_bytes), q))
    return best, dict(sorted(tried.items()))
