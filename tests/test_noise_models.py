"""The camera noise models of aekit_denoise: ``poisson-gaussian:A,B`` (signal-dependent) and ``jpeg:Q`` (compression).

The older models (gaussian, saltpepper, speckle, mask) are tested in test_denoise.py.
"""

import numpy as np
import pytest

from aekit.errors import NoiseSpecError
from aekit.noise import parse_noise
from aekit.plugins import get_registry

CAMERA = "poisson-gaussian:0.01,0.02+jpeg:75"
SPECS = ["poisson-gaussian", "poisson-gaussian:0.01,0.02", "poisson-gaussian:0.002-0.05,0-0.03", "jpeg", "jpeg:30",
         "jpeg:20-90", CAMERA]


def faces(n=4, size=32, seed=1):
    """Smooth random colour images in [0, 1], like photos (not white noise, which JPEG cannot keep)."""
    from PIL import Image

    coarse = (np.random.default_rng(seed).random((n, 4, 4, 3)) * 200 + 28).astype(np.uint8)
    return np.stack([np.asarray(Image.fromarray(c).resize((size, size), Image.BICUBIC)) for c in coarse]
                    ).astype(np.float32) / 255


def test_camera_noise_models_are_registered_with_help():
    registry = get_registry()
    for name in ("poisson-gaussian", "jpeg"):
        entry = registry.entry("noise_model", name)
        assert entry.plugin == "denoise" and entry.help
    assert "A*x + B^2" in registry.entry("noise_model", "poisson-gaussian").help
    assert "1-100" in registry.entry("noise_model", "jpeg").help


@pytest.mark.parametrize("spec", SPECS)
def test_shape_dtype_range_and_seeds(spec):
    noise = parse_noise(spec)
    images = faces()
    first = noise(images, np.random.default_rng(7))
    assert first.shape == images.shape and first.dtype == np.float32
    assert first.min() >= 0 and first.max() <= 1
    assert np.array_equal(first, noise(images, np.random.default_rng(7)))  # the same seed: the same noise
    assert not np.array_equal(first, images)
    if spec not in ("jpeg", "jpeg:30"):  # a fixed quality is deterministic without the rng
        assert not np.array_equal(first, noise(images, np.random.default_rng(8)))
    assert noise(images[0], np.random.default_rng(7)).shape == images[0].shape  # one (H, W, 3) image


@pytest.mark.parametrize("a, b", [(0.01, 0.02), (0.002, 0.0), (0.005, 0.04)])
def test_poisson_gaussian_variance_grows_with_the_signal_as_a_x_plus_b_squared(a, b):
    rng = np.random.default_rng(0)
    for level in (0.2, 0.45, 0.7):  # 3 standard deviations from 0 and 1, so clipping hardly biases the variance
        clean = np.full((4, 64, 64, 3), level, dtype=np.float32)
        noisy = parse_noise(f"poisson-gaussian:{a},{b}")(clean, rng)
        assert noisy.var() == pytest.approx(a * level + b * b, rel=0.05), level
        assert noisy.mean() == pytest.approx(level, abs=0.003)
    dark, bright = (parse_noise(f"poisson-gaussian:{a},{b}")(np.full((2, 64, 64, 3), v, np.float32), rng).std()
                    for v in (0.1, 0.9))
    assert bright > dark


def test_poisson_gaussian_defaults_and_partial_arguments():
    clean = np.full((4, 64, 64, 3), 0.5, dtype=np.float32)
    var = {spec: parse_noise(spec)(clean, np.random.default_rng(0)).var()
           for spec in ("poisson-gaussian", "poisson-gaussian:0.01", "poisson-gaussian:0.01,0.02",
                        "poisson-gaussian:,0.1", "poisson-gaussian:1e-3,0")}
    assert var["poisson-gaussian"] == var["poisson-gaussian:0.01"] == var["poisson-gaussian:0.01,0.02"]
    assert var["poisson-gaussian"] == pytest.approx(0.01 * 0.5 + 0.02**2, rel=0.05)
    assert var["poisson-gaussian:,0.1"] == pytest.approx(0.01 * 0.5 + 0.1**2, rel=0.05)
    assert var["poisson-gaussian:1e-3,0"] == pytest.approx(1e-3 * 0.5, rel=0.05)  # 1e-3 is a number, not a range


def test_poisson_gaussian_range_draws_per_image():
    clean = np.full((6, 64, 64, 3), 0.5, dtype=np.float32)
    noisy = parse_noise("poisson-gaussian:0.001-0.05,0.01")(clean, np.random.default_rng(0))
    stds = noisy.reshape(6, -1).std(1)
    assert stds.max() > 1.5 * stds.min()  # one gain per image
    assert np.all(stds >= np.sqrt(0.001 * 0.5 + 1e-4) * 0.9) and np.all(stds <= np.sqrt(0.05 * 0.5 + 1e-4) * 1.1)


def psnr(a, b):
    return 10 * np.log10(1 / np.mean((a.astype(np.float64) - b) ** 2))


def test_jpeg_quality_100_is_close_and_5_is_far():
    images = faces(size=64)
    rng = np.random.default_rng(0)
    rounded = np.floor(images * 255 + 0.5) / 255
    best, worst = (parse_noise(f"jpeg:{q}")(images, rng) for q in (100, 5))
    assert psnr(best, rounded) > 40 and psnr(worst, rounded) < psnr(best, rounded) - 12
    assert np.allclose(best * 255, np.round(best * 255), atol=1e-4)  # decoded 8-bit values


def test_jpeg_is_pillows_jpeg_and_draws_one_quality_per_image():
    import io

    from PIL import Image

    images = faces(n=2)
    noisy = parse_noise("jpeg:40")(images, np.random.default_rng(0))
    buffer = io.BytesIO()
    Image.fromarray(np.floor(images[1] * 255 + 0.5).astype(np.uint8)).save(buffer, format="JPEG", quality=40)
    assert np.array_equal(np.round(noisy[1] * 255).astype(np.uint8), np.asarray(Image.open(buffer)))
    mixed = parse_noise("jpeg:5-100")(np.repeat(images[:1], 8, axis=0), np.random.default_rng(0))
    assert len({mixed[i].tobytes() for i in range(8)}) > 2  # different qualities, different images


def test_jpeg_keeps_greyscale_and_refuses_other_channel_counts():
    grey = faces(n=2)[..., :1]
    assert parse_noise("jpeg:50")(grey, np.random.default_rng(0)).shape == grey.shape
    with pytest.raises(ValueError, match="1 or 3 channels, got 4"):
        parse_noise("jpeg:50")(np.zeros((1, 8, 8, 4), np.float32), np.random.default_rng(0))


def test_camera_composition_parses_and_applies_both():
    clean = faces(size=64)
    camera = parse_noise(CAMERA)(clean, np.random.default_rng(0))
    sensor = parse_noise("poisson-gaussian:0.01,0.02")(clean, np.random.default_rng(0))
    assert not np.array_equal(camera, sensor)
    assert np.allclose(camera * 255, np.round(camera * 255), atol=1e-4)  # JPEG last: 8-bit values
    assert psnr(camera, clean) > psnr(sensor, clean)  # JPEG at 75 smooths part of the noise away
    assert parse_noise("gaussian:0.05|" + CAMERA)(clean, np.random.default_rng(0)).shape == clean.shape


def test_a_bad_part_of_a_chain_is_named():  # the single models' bad arguments: tests/test_denoise.py
    with pytest.raises(NoiseSpecError) as info:
        parse_noise("poisson-gaussian:0.01,0.02+jpeg:0")
    assert "'jpeg:0'" in str(info.value) and "JPEG quality must be from 1 to 100, got 0" in str(info.value)


def test_make_functions_raise_value_error_directly():
    from aekit_denoise import make_jpeg_noise, make_poisson_gaussian_noise

    with pytest.raises(ValueError, match="Poisson gain A must be positive"):
        make_poisson_gaussian_noise("0")
    with pytest.raises(ValueError, match="JPEG quality must be from 1 to 100"):
        make_jpeg_noise("200")
