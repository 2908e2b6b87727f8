"""The built-in noise models: ``gaussian:SIGMA``, ``saltpepper:P``, ``speckle:SIGMA`` and ``mask:FRACTION``.

Each ``make_*`` function takes the text after ``NAME:`` (``""`` for the default) and returns
``add_noise(images, rng)``: float32 images in [0, 1] of shape (N, H, W, C) (or (H, W, C)) and a
``numpy.random.Generator`` in, float32 noisy images of the same shape, clipped to [0, 1], out. All
amounts are on the [0, 1] pixel scale (``gaussian:0.1`` is about 25 grey levels of 8-bit noise).
Combine them with ``aekit.noise.parse_noise("gaussian:0.05+saltpepper:0.02")``.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

AddNoise = Callable[[np.ndarray, np.random.Generator], np.ndarray]

GAUSSIAN_DEFAULT = 0.1
SALTPEPPER_DEFAULT = 0.05
SPECKLE_DEFAULT = 0.1
MASK_DEFAULT = 0.25
MASK_BLOCKS_PER_SIDE = 8  # a blanked block is about 1/8 of the image's shorter side


def parse_amount(argument: str, name: str, default: float, closed_top: bool = True) -> float:
    """A number in (0, 1] (or (0, 1) with ``closed_top=False``) from a noise argument; ValueError otherwise."""
    text = (argument or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}") from None
    in_range = 0 < value <= 1 if closed_top else 0 < value < 1
    if not in_range:  # also refuses nan and inf
        raise ValueError(f"{name} must be in (0, 1{']' if closed_top else ')'}, got {text}")
    return value


def parse_amount_range(argument: str, name: str, default: float) -> tuple[float, float]:
    """``AMOUNT`` or ``LOW-HIGH`` (each in (0, 1], LOW <= HIGH) as (low, high); ValueError otherwise."""
    text = (argument or "").strip()
    dash = text.find("-", 1)  # a leading minus is a (refused) negative amount, not a range
    if dash < 0:
        value = parse_amount(text, name, default)
        return value, value
    low_text, high_text = text[:dash], text[dash + 1:]
    low, high = parse_amount(low_text, name, default), parse_amount(high_text, name, default)
    if not (low_text.strip() and high_text.strip()) or low > high:
        raise ValueError(f"{name} range must be LOW-HIGH with 0 < LOW <= HIGH <= 1, got {text}")
    return low, high


def per_image_amount(images: np.ndarray, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """One amount per image, uniform in [low, high], shaped to broadcast over (N, H, W, C) or (H, W, C)."""
    if low == high:
        return np.float32(low)
    count = len(images) if images.ndim == 4 else 1
    amounts = rng.uniform(low, high, size=count).astype(np.float32)
    return amounts.reshape((count, 1, 1, 1) if images.ndim == 4 else (1, 1, 1))


def _as_float_images(images) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    if images.ndim not in (3, 4):
        raise ValueError(f"noise needs images of shape (N, H, W, C) or (H, W, C), got {images.shape}")
    return images


def make_gaussian_noise(argument: str = "") -> AddNoise:
    """``gaussian:SIGMA``: add N(0, SIGMA) to every pixel and channel (SIGMA in (0, 1], default 0.1).

    ``gaussian:LOW-HIGH`` draws each image's SIGMA uniformly from [LOW, HIGH] (for blind denoisers).
    """
    low, high = parse_amount_range(argument, "sigma", GAUSSIAN_DEFAULT)

    def add_gaussian_noise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        images = _as_float_images(images)
        sigma = per_image_amount(images, low, high, rng)
        noise = rng.standard_normal(images.shape, dtype=np.float32) * sigma
        return np.clip(images + noise, 0.0, 1.0)

    return add_gaussian_noise


def make_saltpepper_noise(argument: str = "") -> AddNoise:
    """``saltpepper:P``: a fraction P of the pixels (all channels together) set to 0 or 1, half each (default 0.05).

    ``saltpepper:LOW-HIGH`` draws each image's P uniformly from [LOW, HIGH].
    """
    low, high = parse_amount_range(argument, "p", SALTPEPPER_DEFAULT)

    def add_saltpepper_noise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        images = _as_float_images(images)
        pixels = images.shape[:-1]
        fraction = per_image_amount(images, low, high, rng)
        if np.ndim(fraction):
            fraction = fraction[..., 0]  # one per image, broadcast over the pixels (not the channels)
        hit = rng.random(pixels) < fraction
        salt = rng.random(pixels) < 0.5
        noisy = images.copy()
        noisy[hit] = salt[hit].astype(np.float32)[:, None]  # broadcast over the channels
        return np.clip(noisy, 0.0, 1.0)

    return add_saltpepper_noise


def make_speckle_noise(argument: str = "") -> AddNoise:
    """``speckle:SIGMA``: multiplicative noise x + x * N(0, SIGMA), per pixel and channel (default 0.1).

    ``speckle:LOW-HIGH`` draws each image's SIGMA uniformly from [LOW, HIGH].
    """
    low, high = parse_amount_range(argument, "sigma", SPECKLE_DEFAULT)

    def add_speckle_noise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        images = _as_float_images(images)
        sigma = per_image_amount(images, low, high, rng)
        noise = rng.standard_normal(images.shape, dtype=np.float32) * sigma
        return np.clip(images + images * noise, 0.0, 1.0)

    return add_speckle_noise


def make_mask_noise(argument: str = "") -> AddNoise:
    """``mask:FRACTION``: random square blocks (1/8 of the shorter side) set to 0 until about FRACTION of the area is covered.

    FRACTION is in (0, 1), default 0.25. Blocks may hang over the border (they are cut there), so
    every pixel is equally likely to be covered; each image stops at the first block that brings its
    covered share to FRACTION or above, so it overshoots by at most one block.
    """
    fraction = parse_amount(argument, "fraction", MASK_DEFAULT, closed_top=False)

    def add_mask_noise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        images = _as_float_images(images)
        batch = images if images.ndim == 4 else images[None]
        noisy = batch.copy()
        for i in range(len(noisy)):
            noisy[i][covered_blocks(noisy.shape[1:3], fraction, rng)] = 0.0
        noisy = np.clip(noisy, 0.0, 1.0)
        return noisy if images.ndim == 4 else noisy[0]

    return add_mask_noise


def covered_blocks(shape: tuple[int, int], fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A boolean (H, W) mask of random square blocks covering about `fraction` of the area."""
    height, width = shape
    block = max(1, round(min(height, width) / MASK_BLOCKS_PER_SIDE))
    mask = np.zeros((height, width), dtype=bool)
    target = math.ceil(fraction * height * width)
    covered = 0
    while covered < target:
        # top-left corners from -(block - 1): blocks hang over the border, so corners get covered too
        top, left = rng.integers(-(block - 1), [height, width])
        rows = slice(max(top, 0), top + block)
        cols = slice(max(left, 0), left + block)
        covered += int(np.count_nonzero(~mask[rows, cols]))
        mask[rows, cols] = True
    return mask


NOISE_MODELS = {
    "gaussian": (make_gaussian_noise, "gaussian:SIGMA: additive N(0, SIGMA) per pixel and channel, SIGMA on the "
                                      f"[0, 1] pixel scale (default {GAUSSIAN_DEFAULT}); gaussian:LOW-HIGH draws "
                                      "SIGMA per image"),
    "saltpepper": (make_saltpepper_noise, "saltpepper:P: a fraction P of the pixels set to black or white "
                                          f"(default {SALTPEPPER_DEFAULT}); saltpepper:LOW-HIGH draws P per image"),
    "speckle": (make_speckle_noise, "speckle:SIGMA: multiplicative x + x*N(0, SIGMA), SIGMA on the [0, 1] scale "
                                    f"(default {SPECKLE_DEFAULT}); speckle:LOW-HIGH draws SIGMA per image"),
    "mask": (make_mask_noise, "mask:FRACTION: random square blocks (1/8 of the side) blanked to black until about "
                              f"FRACTION of the image is covered (default {MASK_DEFAULT})"),
}
