"""The built-in noise models: ``gaussian:SIGMA``, ``saltpepper:P``, ``speckle:SIGMA``, ``mask:FRACTION``,
``poisson-gaussian:A,B`` (a camera's signal-dependent noise) and ``jpeg:Q`` (JPEG compression).

Each ``make_*`` function takes the text after ``NAME:`` (``""`` for the default) and returns
``add_noise(images, rng)``: float32 images in [0, 1] of shape (N, H, W, C) (or (H, W, C)) and a
``numpy.random.Generator`` in, float32 noisy images of the same shape, clipped to [0, 1], out. All
amounts are on the [0, 1] pixel scale (``gaussian:0.1`` is about 25 grey levels of 8-bit noise).
Combine them with ``aekit.noise.parse_noise("gaussian:0.05+saltpepper:0.02")``.

Real photos: ``poisson-gaussian:A,B`` is a sensor's noise, ``A * Poisson(x / A) + N(0, B)`` (variance
``A * x + B**2``: brighter pixels are noisier), and ``jpeg:Q`` stores each image as a Pillow JPEG of
quality Q and decodes it again; ``poisson-gaussian:0.01,0.02+jpeg:75`` is a camera photo saved as JPEG.
Every amount may be ``LOW-HIGH``, drawn per image from the rng (``jpeg:30-90`` draws an integer quality).
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
POISSON_GAIN_DEFAULT = 0.01  # A: a mid-grey pixel (0.5) carries 50 photons' worth of shot noise, std about 0.07
READ_NOISE_DEFAULT = 0.02  # B: the sensor's signal-independent noise, about 5 grey levels
POISSON_GAIN_MIN = 1e-6  # smaller is no shot noise at all (and x / A overflows Poisson's rate)
JPEG_QUALITY_DEFAULT = 75  # Pillow's own default


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


def _number(text: str, name: str, default: float) -> float:
    """`text` as a float (`default` when blank); ValueError naming `name` otherwise."""
    text = text.strip()
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}") from None


def _parse_read_noise(text: str, default: float) -> float:
    """B of ``poisson-gaussian:A,B``: a number in [0, 1] (0: shot noise alone)."""
    value = _number(text, "read-noise sigma B", default)
    text = text.strip()
    if not 0 <= value <= 1:  # also refuses nan and inf
        raise ValueError(f"read-noise sigma B must be in [0, 1], got {text}")
    return value


def _parse_gain(text: str, default: float) -> float:
    """A of ``poisson-gaussian:A,B``: a number in [1e-6, 1]."""
    value = _number(text, "Poisson gain A", default)
    text = text.strip()
    if not value > 0:  # also nan
        raise ValueError(f"Poisson gain A must be positive, got {text} (for no shot noise use gaussian:B)")
    if value > 1:  # also inf
        raise ValueError(f"Poisson gain A must be at most 1 (a pixel of 1 would carry a single photon), got {text}")
    if value < POISSON_GAIN_MIN:
        raise ValueError(f"Poisson gain A must be at least {POISSON_GAIN_MIN:g} (below it there is no shot noise), got {text}")
    return value


def _parse_range(text: str, name: str, parse_one, bounds: str) -> tuple[float, float]:
    """``VALUE`` or ``LOW-HIGH`` through `parse_one` (which takes "" as its default) as (low, high); ValueError otherwise."""
    text = text.strip()
    # a leading minus is a (refused) negative amount, and 1e-3's minus an exponent: neither makes a range
    dash = next((i for i in range(1, len(text)) if text[i] == "-" and text[i - 1] not in "eE"), -1)
    if dash < 0:
        value = parse_one(text)
        return value, value
    low_text, high_text = text[:dash], text[dash + 1:]
    if not (low_text.strip() and high_text.strip()):
        raise ValueError(f"{name} range must be LOW-HIGH with {bounds}, got {text}")
    low, high = parse_one(low_text), parse_one(high_text)
    if low > high:
        raise ValueError(f"{name} range must be LOW-HIGH with {bounds}, got {text}")
    return low, high


def make_poisson_gaussian_noise(argument: str = "") -> AddNoise:
    """``poisson-gaussian:A,B``: a camera sensor's noise, ``A * Poisson(x / A) + N(0, B)`` per pixel and channel.

    The variance is ``A * x + B**2``: shot noise that grows with the signal (A, the gain: the share of
    the pixel range one photon is worth; 0.001-0.05 spans a bright day to a dim room) plus read noise
    of standard deviation B. Defaults A = 0.01, B = 0.02: ``poisson-gaussian`` alone is
    ``poisson-gaussian:0.01,0.02``, ``poisson-gaussian:0.005`` sets A only, ``poisson-gaussian:,0.05``
    B only. A is in [1e-6, 1] (never 0: that is ``gaussian:B``), B in [0, 1] (0: shot noise alone);
    either may be ``LOW-HIGH``, drawn per image (A first, then B).
    """
    text = (argument or "").strip()
    parts = text.split(",") if text else [""]
    if len(parts) > 2:
        raise ValueError(f"poisson-gaussian takes A,B (Poisson gain and read-noise sigma), got {text!r}")
    a_text, b_text = parts[0], parts[1] if len(parts) == 2 else ""
    a_low, a_high = _parse_range(a_text, "Poisson gain A", lambda t: _parse_gain(t, POISSON_GAIN_DEFAULT),
                                 f"{POISSON_GAIN_MIN:g} <= LOW <= HIGH <= 1")
    b_low, b_high = _parse_range(b_text, "read-noise sigma B", lambda t: _parse_read_noise(t, READ_NOISE_DEFAULT),
                                 "0 <= LOW <= HIGH <= 1")

    def add_poisson_gaussian_noise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        images = _as_float_images(images)
        gain = per_image_amount(images, a_low, a_high, rng)
        sigma = per_image_amount(images, b_low, b_high, rng)
        counts = rng.poisson(np.clip(images, 0.0, 1.0).astype(np.float64) / gain)  # photons, mean x / A
        noisy = (counts * gain).astype(np.float32)
        if b_high > 0:
            noisy += rng.standard_normal(images.shape, dtype=np.float32) * sigma
        return np.clip(noisy, 0.0, 1.0)

    return add_poisson_gaussian_noise


def _parse_quality(text: str) -> int:
    text = text.strip()
    if not text:
        return JPEG_QUALITY_DEFAULT
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"JPEG quality must be a whole number from 1 to 100, got {text!r}") from None
    if not 1 <= value <= 100:
        raise ValueError(f"JPEG quality must be from 1 to 100, got {text}")
    return value


def make_jpeg_noise(argument: str = "") -> AddNoise:
    """``jpeg:Q``: each image stored as a JPEG of quality Q (Pillow, its default 4:2:0 chroma) and decoded again.

    Q is a whole number from 1 to 100 (default 75); ``jpeg:LOW-HIGH`` draws each image's Q from
    LOW..HIGH (inclusive). The images are rounded to 8 bits first, as a camera's file is. Compose it
    after another model to get a photo's noise: ``poisson-gaussian:0.01,0.02+jpeg:75``.
    Images of 1 channel are stored as greyscale JPEGs, of 3 as colour ones.
    """
    low, high = _parse_range(argument or "", "JPEG quality", _parse_quality, "1 <= LOW <= HIGH <= 100")

    def add_jpeg_noise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import io

        from PIL import Image

        images = _as_float_images(images)
        batch = images if images.ndim == 4 else images[None]
        channels = batch.shape[-1]
        if channels not in (1, 3):
            raise ValueError(f"jpeg noise needs images of 1 or 3 channels, got {channels}")
        qualities = np.full(len(batch), low) if low == high else rng.integers(low, high + 1, size=len(batch))
        pixels = np.floor(np.clip(batch, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        noisy = np.empty(batch.shape, dtype=np.float32)
        mode = "L" if channels == 1 else "RGB"
        for i, quality in enumerate(qualities):
            buffer = io.BytesIO()
            Image.fromarray(pixels[i, ..., 0] if channels == 1 else pixels[i], mode).save(buffer, format="JPEG",
                                                                                          quality=int(quality))
            with Image.open(buffer) as decoded:
                noisy[i] = np.asarray(decoded.convert(mode), dtype=np.float32).reshape(batch.shape[1:]) / 255.0
        return noisy if images.ndim == 4 else noisy[0]

    return add_jpeg_noise


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
    "poisson-gaussian": (make_poisson_gaussian_noise,
                         "poisson-gaussian:A,B: a camera's signal-dependent noise A*Poisson(x/A) + N(0, B), variance "
                         f"A*x + B^2 on the [0, 1] scale (default A {POISSON_GAIN_DEFAULT}, B {READ_NOISE_DEFAULT}); "
                         "either may be LOW-HIGH, drawn per image"),
    "jpeg": (make_jpeg_noise, "jpeg:Q: stored as a Pillow JPEG of quality Q (1-100, default "
                              f"{JPEG_QUALITY_DEFAULT}) and decoded; jpeg:LOW-HIGH draws Q per image; after another "
                              "model with +, e.g. poisson-gaussian:0.01,0.02+jpeg:75"),
}
