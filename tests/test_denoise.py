"""The denoise plugin: noise models (statistics, seeds, arguments, combinations), `aekit noise`, `aekit denoise`."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image, ImageOps

import aekit
from helpers import run_cli
from aekit.errors import NoiseSpecError
from aekit.noise import parse_noise
from aekit.plugins import get_registry
from aekit_denoise import covered_blocks, denoise_image, model_view, open_picture
from aekit_denoise.commands import unique_names

NOISE_SPECS = ["gaussian:0.1", "saltpepper:0.05", "speckle:0.1", "mask:0.25"]


def grey(n=8, height=64, width=64, level=0.5):
    """Float images in [0, 1], all one level."""
    return np.full((n, height, width, 3), level, dtype=np.float32)


# --- noise models ------------------------------------------------------------------------------------


def test_builtin_noise_models_are_registered_with_help_on_the_unit_scale():
    registry = get_registry()
    for name in ("gaussian", "saltpepper", "speckle", "mask"):
        entry = registry.entry("noise_model", name)
        assert entry.plugin == "denoise" and entry.help
    assert "[0, 1]" in registry.entry("noise_model", "gaussian").help


@pytest.mark.parametrize("spec", NOISE_SPECS)
def test_every_noise_model_keeps_shape_dtype_and_range_and_is_seeded(spec):
    noise = parse_noise(spec)
    images = np.random.default_rng(1).random((3, 40, 56, 3), dtype=np.float32)
    first = noise(images, np.random.default_rng(7))
    assert first.shape == images.shape and first.dtype == np.float32
    assert first.min() >= 0 and first.max() <= 1
    assert np.array_equal(first, noise(images, np.random.default_rng(7)))
    assert not np.array_equal(first, noise(images, np.random.default_rng(8)))
    assert not np.array_equal(first, images)
    single = noise(images[0], np.random.default_rng(7))  # one (H, W, 3) image works too
    assert single.shape == images[0].shape


@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.2])
def test_gaussian_std_is_sigma_on_the_unit_scale(sigma):
    noisy = parse_noise(f"gaussian:{sigma}")(grey(), np.random.default_rng(0))
    assert (noisy - 0.5).std() == pytest.approx(sigma, rel=0.03)
    assert (noisy - 0.5).mean() == pytest.approx(0, abs=0.005)


def test_gaussian_default_sigma_is_0_1():
    noisy = parse_noise("gaussian")(grey(), np.random.default_rng(0))
    assert (noisy - 0.5).std() == pytest.approx(0.1, rel=0.03)


def test_saltpepper_hits_a_fraction_p_of_pixels_in_all_channels_half_each():
    noisy = parse_noise("saltpepper:0.1")(grey(), np.random.default_rng(0))
    changed = (noisy != 0.5).any(axis=-1)
    assert changed.mean() == pytest.approx(0.1, abs=0.005)
    hit = noisy[changed]
    assert np.all((hit == 0).all(axis=-1) | (hit == 1).all(axis=-1))  # whole pixels, black or white
    assert (hit[:, 0] == 1).mean() == pytest.approx(0.5, abs=0.03)
    assert np.all(noisy[~changed] == 0.5)


@pytest.mark.parametrize("spec, low, high", [("gaussian:0.02-0.25", 0.02, 0.25), ("speckle:0.05-0.3", 0.05, 0.3)])
def test_a_range_draws_one_sigma_per_image(spec, low, high):
    images = np.full((400, 16, 16, 3), 0.5, np.float32)
    noisy = parse_noise(spec)(images, np.random.default_rng(0))
    scale = 1.0 if spec.startswith("gaussian") else 0.5  # speckle multiplies by the pixel value
    sigmas = (noisy - 0.5).reshape(len(images), -1).std(axis=1) / scale
    assert sigmas.min() == pytest.approx(low, abs=0.01) and sigmas.max() == pytest.approx(high, abs=0.02)
    assert np.histogram(sigmas, bins=4, range=(low, high))[0].min() > 60  # spread over the range, not clumped
    assert np.array_equal(noisy, parse_noise(spec)(images, np.random.default_rng(0)))  # seeded


def test_a_saltpepper_range_draws_one_fraction_per_image():
    images = np.full((300, 64, 64, 3), 0.5, np.float32)
    noisy = parse_noise("saltpepper:0.02-0.2")(images, np.random.default_rng(0))
    fractions = (noisy != 0.5).any(axis=-1).reshape(len(images), -1).mean(axis=1)
    assert fractions.min() == pytest.approx(0.02, abs=0.01) and fractions.max() == pytest.approx(0.2, abs=0.02)
    assert parse_noise("saltpepper:0.1-0.1")(images[:1], np.random.default_rng(0)).shape == (1, 64, 64, 3)


def test_speckle_is_multiplicative():
    noisy = parse_noise("speckle:0.2")(grey(level=0.4), np.random.default_rng(0))
    assert (noisy - 0.4).std() == pytest.approx(0.4 * 0.2, rel=0.03)
    black = parse_noise("speckle:0.2")(grey(level=0.0), np.random.default_rng(0))
    assert np.all(black == 0)  # x * noise: nothing to multiply


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
@pytest.mark.parametrize("shape", [(64, 64), (80, 100)])
def test_mask_covers_about_the_fraction_in_blocks_set_to_zero(fraction, shape):
    images = grey(8, *shape, level=1.0)
    noisy = parse_noise(f"mask:{fraction}")(images, np.random.default_rng(0))
    blank = (noisy == 0).all(axis=-1)
    assert np.array_equal(blank, (noisy == 0).any(axis=-1))  # all channels together
    assert np.all(noisy[~blank] == 1.0)
    block = round(min(shape) / 8)
    per_image = blank.mean(axis=(1, 2))
    assert np.all(per_image >= fraction) and np.all(per_image <= fraction + block * block / (shape[0] * shape[1]) + 1e-9)
    assert per_image.std() > 0  # different blocks in each image


def test_mask_blocks_reach_the_corners_and_can_cover_almost_everything():
    mask = covered_blocks((64, 64), 0.99, np.random.default_rng(0))
    assert mask.mean() >= 0.99
    corners = np.mean([covered_blocks((32, 32), 0.5, np.random.default_rng(s))[0, 0] for s in range(200)])
    assert corners == pytest.approx(0.5, abs=0.15)  # blocks hang over the border, so corners are not spared


@pytest.mark.parametrize("spec, message", [
    ("gaussian:0", "sigma must be in (0, 1], got 0"),
    ("gaussian:1.5", "sigma must be in (0, 1], got 1.5"),
    ("gaussian:-0.1", "sigma must be in (0, 1]"),
    ("gaussian:nan", "sigma must be in (0, 1], got nan"),
    ("gaussian:inf", "sigma must be in (0, 1]"),
    ("gaussian:abc", "sigma must be a number, got 'abc'"),
    ("saltpepper:2", "p must be in (0, 1], got 2"),
    ("saltpepper:x", "p must be a number"),
    ("speckle:0", "sigma must be in (0, 1]"),
    ("mask:1", "fraction must be in (0, 1), got 1"),
    ("gaussian:0.3-0.1", "sigma range must be LOW-HIGH with 0 < LOW <= HIGH <= 1, got 0.3-0.1"),
    ("gaussian:0.1-", "sigma range must be LOW-HIGH"),
    ("gaussian:0.1-2", "sigma must be in (0, 1], got 2"),
    ("saltpepper:0-0.1", "p must be in (0, 1], got 0"),
    ("mask:0", "fraction must be in (0, 1)"),
    ("blur:3", "unknown noise model 'blur'"),
    ("poisson-gaussian:0", "Poisson gain A must be positive, got 0"),
    ("poisson-gaussian:-0.01", "Poisson gain A must be positive, got -0.01"),
    ("poisson-gaussian:5", "Poisson gain A must be at most 1"),
    ("poisson-gaussian:inf", "Poisson gain A must be at most 1"),
    ("poisson-gaussian:1e-9", "Poisson gain A must be at least 1e-06"),
    ("poisson-gaussian:x", "Poisson gain A must be a number, got 'x'"),
    ("poisson-gaussian:0.01,-1", "read-noise sigma B must be in [0, 1], got -1"),
    ("poisson-gaussian:0.01,2", "read-noise sigma B must be in [0, 1], got 2"),
    ("poisson-gaussian:0.01,b", "read-noise sigma B must be a number, got 'b'"),
    ("poisson-gaussian:0.01,0.02,3", "poisson-gaussian takes A,B (Poisson gain and read-noise sigma), got '0.01,0.02,3'"),
    ("poisson-gaussian:0.05-0.01", "Poisson gain A range must be LOW-HIGH with 1e-06 <= LOW <= HIGH <= 1, got 0.05-0.01"),
    ("poisson-gaussian:0.01,0.05-", "read-noise sigma B range must be LOW-HIGH"),
    ("jpeg:0", "JPEG quality must be from 1 to 100, got 0"),
    ("jpeg:101", "JPEG quality must be from 1 to 100, got 101"),
    ("jpeg:75.5", "JPEG quality must be a whole number from 1 to 100, got '75.5'"),
    ("jpeg:abc", "JPEG quality must be a whole number from 1 to 100, got 'abc'"),
    ("jpeg:90-50", "JPEG quality range must be LOW-HIGH with 1 <= LOW <= HIGH <= 100, got 90-50"),
    ("jpeg:50-", "JPEG quality range must be LOW-HIGH"),
])
def test_bad_arguments_are_precise_errors(spec, message):
    with pytest.raises(NoiseSpecError) as info:
        parse_noise(spec)
    assert message in str(info.value) and spec in str(info.value)


def test_make_noise_raises_value_error_directly():
    make_gaussian = get_registry().get("noise_model", "gaussian")
    with pytest.raises(ValueError, match=r"sigma must be in \(0, 1\], got 5"):
        make_gaussian("5")


def test_combination_plus_applies_both():
    noisy = parse_noise("gaussian:0.05+saltpepper:0.1")(grey(), np.random.default_rng(0))
    extreme = ((noisy == 0) | (noisy == 1)).all(axis=-1)
    assert extreme.mean() == pytest.approx(0.1, abs=0.01)
    assert (noisy[~extreme] - 0.5).std() == pytest.approx(0.05, rel=0.05)


def test_combination_or_picks_one_model_per_image_reproducibly():
    noise = parse_noise("mask:0.25|gaussian:0.1")
    images = grey(40, 32, 32)
    noisy = noise(images, np.random.default_rng(3))
    masked = (noisy == 0).all(axis=-1).mean(axis=(1, 2)) >= 0.25
    gaussian = np.abs((noisy - 0.5).std(axis=(1, 2, 3)) - 0.1) < 0.01
    assert 5 < masked.sum() < 35 and np.all(masked ^ gaussian)
    assert np.array_equal(noisy, noise(images, np.random.default_rng(3)))


# --- aekit noise ---------------------------------------------------------------------------------------


@pytest.fixture
def runner():
    return CliRunner()


def test_noise_cli_one_file_at_its_own_size(runner, tmp_path):
    Image.fromarray(np.full((80, 100, 3), 128, np.uint8)).save(tmp_path / "grey.png")
    result = run_cli("noise", tmp_path / "grey.png", "--kind", "gaussian:0.1", "--out", tmp_path / "noisy.png", "-q")
    assert result.exit_code == 0, result.output
    assert "wrote 1 noisy PNG(s) (gaussian:0.1, seed 0)" in result.stdout
    noisy = Image.open(tmp_path / "noisy.png")
    assert noisy.format == "PNG" and noisy.size == (100, 80) and noisy.mode == "RGB"
    assert (np.asarray(noisy) / 255.0 - 128 / 255).std() == pytest.approx(0.1, rel=0.05)
    again = tmp_path / "again.png"
    assert run_cli("noise", tmp_path / "grey.png", "--kind", "gaussian:0.1", "--out", again, "-q").exit_code == 0
    assert np.array_equal(np.asarray(Image.open(again)), np.asarray(noisy))  # same seed, same noise
    other = tmp_path / "other.png"
    assert run_cli("noise", tmp_path / "grey.png", "-k", "gaussian:0.1", "-o", other, "--seed", "1", "-q").exit_code == 0
    assert not np.array_equal(np.asarray(Image.open(other)), np.asarray(noisy))


def test_noise_cli_one_file_into_a_folder(runner, tmp_path):
    Image.fromarray(np.full((20, 30, 3), 99, np.uint8)).save(tmp_path / "a.jpg")
    result = run_cli("noise", tmp_path / "a.jpg", "--kind", "saltpepper:0.2", "--out", tmp_path / "out/", "-q")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "a.png").size == (30, 20)


def test_noise_cli_folder_keeps_relative_names_and_lists_bad_files(runner, tmp_path, face_folder, face_images):
    (face_folder / "sub" / "broken.png").write_bytes(b"not a png")
    result = run_cli("noise", face_folder, "--kind", "mask:0.25+gaussian:0.05", "--out", tmp_path / "noisy", "-q")
    assert result.exit_code == 0, result.output
    assert "skipped: " in result.stderr and "broken.png" in result.stderr and "12 noisy PNG(s)" in result.stdout
    _, _, names = face_images
    written = sorted(p.relative_to(tmp_path / "noisy").as_posix() for p in (tmp_path / "noisy").rglob("*.png"))
    assert written == sorted(n.rsplit(".", 1)[0] + ".png" for n in names)


def test_noise_help_lists_noise_models_and_the_unit_scale(runner):
    result = run_cli("noise", "--help")
    assert result.exit_code == 0 and "Example" in result.output
    for name in ("gaussian", "saltpepper", "speckle", "mask"):
        assert name in result.output
    assert "SIGMA is on the [0, 1]" in result.output and "[0, 1] pixel scale" in result.output


def test_noise_cli_never_overwrites_an_input(runner, tmp_path):
    path = tmp_path / "face.png"
    Image.fromarray(np.full((16, 16, 3), 50, np.uint8)).save(path)
    before = path.read_bytes()
    result = run_cli("noise", path, "--kind", "gaussian:0.1", "--out", path)
    assert result.exit_code == 1 and "would overwrite an input" in result.stderr
    result = run_cli("noise", tmp_path, "--kind", "gaussian:0.1", "--out", tmp_path)
    assert result.exit_code == 1 and "would overwrite an input" in result.stderr
    assert path.read_bytes() == before


@pytest.mark.parametrize("args, message, code", [
    (["--kind", "gaussian:2", "--out", "x.png"], "sigma must be in (0, 1], got 2", 2),
    (["--kind", "nope", "--out", "x.png"], "unknown noise model 'nope'", 2),
    (["--kind", "gaussian", "--out", "x.jpg"], "must end in .png", 2),
])
def test_noise_cli_errors_are_one_line(runner, tmp_path, monkeypatch, args, message, code):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save("in.png")
    result = run_cli("noise", "in.png", *args)
    assert result.exit_code == code and message in result.stderr and "Traceback" not in result.output


def test_noise_cli_missing_input_and_file_out_for_a_folder(runner, tmp_path, face_folder):
    result = run_cli("noise", tmp_path / "nope.png", "--kind", "gaussian", "--out", tmp_path / "x.png")
    assert result.exit_code == 1 and "none of the 1 input image(s) could be read" in result.stderr
    assert "no such file" in result.stderr
    result = run_cli("noise", face_folder, "--kind", "gaussian", "--out", tmp_path / "x.png")
    assert result.exit_code == 2 and "give a folder" in result.stderr


# --- aekit denoise: models and images -----------------------------------------------------------------


@pytest.fixture
def model_dir(tmp_path):
    """An untrained small model (enough for I/O)."""
    torch.manual_seed(0)
    return aekit.create_model("small").save_pretrained(tmp_path / "model")


@pytest.fixture
def identity_denoise(monkeypatch):
    """Make model.denoise return its input unchanged (checking the call it gets), so outputs can be compared exactly."""
    monkeypatch.setattr("aekit.runtime.onnx_available", lambda: False)  # --runtime auto: PyTorch runs the patch
    calls = []

    def denoise(self, images, method="auto", batch_size=256):
        # one image, or a stack of same-size ones (the CLI batches a folder's pictures of one size)
        assert isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim in (3, 4) and images.shape[-1] == 3
        calls.append(method)
        return images.copy()

    monkeypatch.setattr(aekit.Autoencoder, "denoise", denoise)
    return calls


def rgb_image(width=100, height=80, seed=0):
    """A smooth gradient picture with some texture, (height, width, 3) uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    return np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)


def make_input(path, mode):
    """Write a test image of `mode` (100x80) to `path`; returns what Pillow reads back."""
    rgb = rgb_image()
    if mode == "RGB":
        image = Image.fromarray(rgb)
    elif mode == "RGBA":
        alpha = np.tile(np.linspace(0, 255, 100).astype(np.uint8), (80, 1))
        image = Image.fromarray(np.dstack([rgb, alpha]))
    elif mode == "L":
        image = Image.fromarray(rgb).convert("L")
    elif mode == "LA":
        image = Image.fromarray(rgb).convert("LA")
    elif mode == "P":
        image = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    elif mode == "I;16":
        values = (rgb[..., 0].astype(np.int64) * 257 + np.arange(100)[None, :] * 3).clip(0, 65535)
        image = Image.fromarray(values.astype(np.uint16))
    else:
        raise ValueError(mode)
    image.save(path)
    return Image.open(path)


MODES = {"RGB": ("RGB", "x.png"), "RGBA": ("RGBA", "x.png"), "L": ("L", "x.png"), "LA": ("LA", "x.png"),
         "P": ("RGB", "x.png"), "I;16": ("I;16", "x.png")}


@pytest.mark.parametrize("mode", MODES)
def test_model_view_round_trips_every_mode(mode, tmp_path):
    image = make_input(tmp_path / "x.png", mode)
    view = model_view(image)
    assert view.rgb.dtype == np.uint8 and view.rgb.shape == (80, 100, 3) and view.rgb.flags.writeable
    back = view.rebuild(view.rgb)
    assert back.mode == MODES[mode][0] and back.size == (100, 80)
    expected = image.convert("RGB") if mode == "P" else image
    assert np.array_equal(np.asarray(back), np.asarray(expected))


def test_sixteen_bit_gets_the_models_change_at_full_precision(tmp_path):
    image = make_input(tmp_path / "x.png", "I;16")

    class Brighter:
        def denoise(self, images, method="auto"):
            return np.clip(images.astype(int) + 10, 0, 255).astype(np.uint8)

    out, notes = denoise_image(Brighter(), image)
    values, result = np.asarray(image).astype(int), np.asarray(out).astype(int)
    unclipped = np.asarray(model_view(image).rgb[..., 0]) <= 240
    assert out.mode == "I;16" and notes == []
    assert np.array_equal(result[unclipped], values[unclipped] + 2570)  # +10 in 8-bit steps = +2570 in 16-bit


def test_grayscale_averages_the_models_channels_and_rgba_keeps_alpha(tmp_path):
    class Tinted:
        def denoise(self, images, method="auto"):
            out = images.astype(int)
            out[..., 0] += 30
            return np.clip(out, 0, 255).astype(np.uint8)

    gray = make_input(tmp_path / "l.png", "L")
    out, _ = denoise_image(Tinted(), gray)
    dark = np.asarray(gray) < 200
    assert out.mode == "L" and np.array_equal(np.asarray(out)[dark], np.asarray(gray)[dark] + 10)
    rgba = make_input(tmp_path / "rgba.png", "RGBA")
    out, _ = denoise_image(Tinted(), rgba)
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[..., 3], np.asarray(rgba)[..., 3])


def test_a_model_without_denoise_is_a_clear_error(tmp_path):
    with pytest.raises(aekit.AekitError, match="no denoise"):
        denoise_image(object(), Image.new("RGB", (8, 8)))


def test_unique_names():
    assert unique_names(["a.png", "b/a.png", "a.png", "a.png"]) == ["a.png", "b/a.png", "a~1.png", "a~2.png"]


def test_unique_names_leave_an_input_named_like_a_repeat_its_own_name():
    """a.webp becomes a.png, like a.png; a~1.png is an input of its own and keeps its name (aekit.paths.unique_names)."""
    assert unique_names(["a.png", "a.png", "a~1.png"]) == ["a.png", "a~2.png", "a~1.png"]


def test_denoise_cli_skips_a_fifo_without_opening_it(runner, tmp_path, model_dir, monkeypatch):
    """A FIFO named like an image is listed as skipped and never opened: opening one blocks until something writes to it."""
    from corpus import make_fifo, no_fifos, watch_fifo

    if no_fifos():
        pytest.skip(no_fifos())
    photos = tmp_path / "photos"
    photos.mkdir()
    make_input(photos / "a.png", "RGB")
    watch = watch_fifo(monkeypatch, make_fifo(photos))  # a regression gets end of file here instead of hanging
    result = run_cli("denoise", photos, "-m", model_dir, "--out", tmp_path / "clean", "-q")
    assert result.exit_code == 0, result.output
    assert "wrote 1 denoised image(s)" in result.stdout and "1 skipped" in result.stdout
    assert "pipe.jpg: not a regular file (a named pipe)" in result.stderr
    assert sorted(p.name for p in (tmp_path / "clean").iterdir()) == ["a.png"] and watch.opened == 0
    result = run_cli("denoise", photos / "pipe.jpg", "-m", model_dir, "--out", tmp_path / "one.png", "-q")
    assert result.exit_code == 1 and "pipe.jpg: not a regular file (a named pipe)" in result.output and watch.opened == 0


def test_denoise_cli_writes_a_255_byte_name_among_others(runner, tmp_path, model_dir):
    """A legal 255-byte name is denoised, not refused for its temporary file's name halfway through a folder."""
    from corpus import LONG_NAME

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.png", LONG_NAME, "z.png"):
        make_input(photos / name, "RGB")
    result = run_cli("denoise", photos, "-m", model_dir, "--out", tmp_path / "clean", "-q")
    assert result.exit_code == 0 and "wrote 3 denoised image(s)" in result.stdout, result.output
    assert sorted(p.name for p in (tmp_path / "clean").iterdir()) == sorted(["a.png", LONG_NAME, "z.png"])


def test_denoise_of_one_255_byte_name_without_out_writes_a_name_that_fits(runner, tmp_path, model_dir, monkeypatch):
    from corpus import LONG_NAME

    make_input(tmp_path / LONG_NAME, "RGB")
    monkeypatch.chdir(tmp_path)
    result = run_cli("denoise", LONG_NAME, "-m", model_dir, "-q")
    assert result.exit_code == 0, result.output
    (written,) = [p for p in tmp_path.iterdir() if "-denoised" in p.name]
    assert len(os.fsencode(written.name)) <= 255 and written.name.endswith("-denoised" + Path(LONG_NAME).suffix)


# --- aekit denoise: the CLI ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", ["resize", "tile"])
def test_denoise_cli_every_mode_with_the_real_model(runner, tmp_path, model_dir, mode, method):
    make_input(tmp_path / "in.png", mode)
    out = tmp_path / "out.png"
    result = run_cli("denoise", tmp_path / "in.png", "-m", model_dir, "--out", out, "--method", method, "-q")
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stdout
    denoised = Image.open(out)
    assert denoised.format == "PNG" and denoised.size == (100, 80) and denoised.mode == MODES[mode][0]
    if mode in ("RGBA", "LA"):
        assert np.array_equal(np.asarray(denoised)[..., -1], np.asarray(Image.open(tmp_path / "in.png"))[..., -1])


@pytest.mark.parametrize("mode", MODES)
def test_denoise_cli_writes_exactly_what_the_model_returns(runner, tmp_path, model_dir, identity_denoise, mode):
    original = make_input(tmp_path / "in.png", mode)
    result = run_cli("denoise", tmp_path / "in.png", "-m", model_dir, "--out", tmp_path / "out.png", "-q")
    assert result.exit_code == 0, result.output
    expected = original.convert("RGB") if mode == "P" else original
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), np.asarray(expected))
    assert identity_denoise == ["auto"]


def test_denoise_cli_default_output_name_and_untrained_warning(runner, tmp_path, model_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "noisy").mkdir()
    Image.fromarray(rgb_image()).save(tmp_path / "noisy" / "face.jpg", quality=90)
    Image.fromarray(rgb_image()).save(tmp_path / "noisy" / "face.bmp")
    result = run_cli("denoise", "noisy/face.jpg", "-m", model_dir, "-q")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "face-denoised.jpg").format == "JPEG"  # JPEG stays JPEG, in the current folder
    assert "not trained on noisy inputs" in result.stderr
    result = run_cli("denoise", "noisy/face.bmp", "-m", model_dir, "-q")
    assert result.exit_code == 0 and Image.open(tmp_path / "face-denoised.png").format == "PNG"  # others become PNG


def test_denoise_cli_says_which_noise_the_model_was_trained_for(runner, tmp_path):
    model = aekit.create_model("small")
    model_dir = model.save_pretrained(tmp_path / "m", training={"settings": {"noise": "gaussian:0.1"}})
    Image.fromarray(rgb_image()).save(tmp_path / "a.png")
    result = run_cli("denoise", tmp_path / "a.png", "-m", model_dir, "--out", tmp_path / "b.png", "-q")
    assert result.exit_code == 0, result.output
    assert "model trained for noise: gaussian:0.1" in result.stderr and "not trained" not in result.stderr
    assert json.loads((model_dir / "config.json").read_text())["training"]["settings"]["noise"] == "gaussian:0.1"


def test_denoise_cli_exif_rotated_jpeg_comes_back_upright(runner, tmp_path, model_dir, identity_denoise):
    stored = Image.fromarray(rgb_image(100, 80))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise
    exif[0x010F] = "aekit test camera"
    stored.save(tmp_path / "photo.jpg", quality=95, exif=exif.tobytes())
    upright = ImageOps.exif_transpose(Image.open(tmp_path / "photo.jpg"))
    assert upright.size == (80, 100)
    result = run_cli("denoise", tmp_path / "photo.jpg", "-m", model_dir, "--out", tmp_path / "clean.jpg", "-q")
    assert result.exit_code == 0, result.output
    clean = Image.open(tmp_path / "clean.jpg")
    assert clean.format == "JPEG" and clean.size == (80, 100)
    assert clean.getexif().get(0x0112, 1) == 1 and clean.getexif().get(0x010F) == "aekit test camera"
    difference = np.abs(np.asarray(clean).astype(int) - np.asarray(upright).astype(int)).mean()
    assert difference < 3  # the same upright picture, up to JPEG's loss


def test_denoise_cli_exif_rotated_jpeg_with_the_real_model_keeps_its_size(runner, tmp_path, model_dir):
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(rgb_image(100, 80)).save(tmp_path / "photo.jpg", exif=exif.tobytes())
    result = run_cli("denoise", tmp_path / "photo.jpg", "-m", model_dir, "--out", tmp_path / "o.jpg", "-q")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "o.jpg").size == (80, 100)


def test_denoise_cli_notes_what_the_output_format_cannot_hold(runner, tmp_path, model_dir):
    make_input(tmp_path / "deep.png", "I;16")
    make_input(tmp_path / "clear.png", "RGBA")
    result = run_cli("denoise", tmp_path / "deep.png", "-m", model_dir, "--out", tmp_path / "deep.jpg", "-q")
    assert result.exit_code == 0 and "saved as 8-bit" in result.stderr
    assert Image.open(tmp_path / "deep.jpg").mode == "L"
    result = run_cli("denoise", tmp_path / "clear.png", "-m", model_dir, "--out", tmp_path / "clear.jpg", "-q")
    assert result.exit_code == 0 and "composited over white" in result.stderr
    assert Image.open(tmp_path / "clear.jpg").mode == "RGB"


def test_denoise_cli_folder_keeps_names_and_lists_bad_files(runner, tmp_path, model_dir, face_folder, face_images):
    (face_folder / "sub" / "broken.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(rgb_image(20, 10)).convert("P").save(face_folder / "palette.bmp")
    result = run_cli("denoise", face_folder, "-m", model_dir, "--out", tmp_path / "clean", "-q")
    assert result.exit_code == 0, result.output
    assert "wrote 13 denoised image(s)" in result.stdout and "1 skipped" in result.stdout
    assert "skipped: " in result.stderr and "broken.jpg" in result.stderr and "1 file(s) skipped" in result.stderr
    _, _, names = face_images
    written = sorted(p.relative_to(tmp_path / "clean").as_posix() for p in (tmp_path / "clean").rglob("*.*"))
    assert written == sorted(names + ["palette.png"])
    assert Image.open(tmp_path / "clean" / "face06.jpg").format == "JPEG"
    assert Image.open(tmp_path / "clean" / "sub" / "deeper" / "face11.png").size == (32, 32)


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_denoise_cli_batches_a_folder_and_matches_one_by_one(runner, tmp_path, model_dir, monkeypatch, runtime):
    """Pictures of one size go through the model together, in chunks: the same files as one call per picture."""
    if runtime == "onnx":
        pytest.importorskip("onnxruntime")
    import aekit_denoise.commands as commands

    monkeypatch.setattr(commands, "CHUNK_IMAGES", 4)  # chunks: bad.png face0-2, face3-6, face7-8 wide.png
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(9):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / f"face{i}.png")
    Image.fromarray(rgb_image(100, 80)).save(folder / "wide.png")
    (folder / "bad.png").write_bytes(b"not a png")
    calls = []
    real = aekit.Autoencoder.denoise

    def counting(self, images, *args, **kwargs):
        calls.append(np.asarray(images).shape)
        return real(self, images, *args, **kwargs)

    monkeypatch.setattr(aekit.Autoencoder, "denoise", counting)
    result = run_cli("denoise", folder, "-m", model_dir, "--out", tmp_path / "clean", "-q", "--runtime", runtime)
    assert result.exit_code == 0, result.output
    assert "wrote 10 denoised image(s)" in result.stdout and "bad.png" in result.stderr
    if runtime == "torch":
        assert sorted(calls) == sorted([(3, 64, 64, 3), (4, 64, 64, 3), (2, 64, 64, 3), (1, 80, 100, 3)])
    model = aekit.load(model_dir)
    for name in [f"face{i}.png" for i in range(9)] + ["wide.png"]:
        alone, _ = denoise_image(model, Image.open(folder / name))
        written = np.asarray(Image.open(tmp_path / "clean" / name)).astype(int)
        assert np.abs(written - np.asarray(alone).astype(int)).max() <= (0 if runtime == "torch" else 1), name


def test_denoise_cli_leaves_its_own_output_folder_out_of_the_inputs(runner, tmp_path, model_dir, face_folder):
    clean = face_folder / "clean"
    for _ in range(2):  # the second run must not denoise the first run's outputs again
        result = run_cli("denoise", face_folder, "-m", model_dir, "--out", clean, "--overwrite", "-q")
        assert result.exit_code == 0 and "wrote 12 denoised image(s)" in result.stdout, result.output
    assert not (clean / "clean").exists()


def write_png16_rgb(path, array):
    """A 16-bit colour PNG written by hand (Pillow cannot write one)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    height, width, _ = array.shape
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in array)
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_denoise_cli_sixteen_bit_colour_png_is_saved_as_8_bit_with_a_note(runner, tmp_path, model_dir):
    write_png16_rgb(tmp_path / "deep.png", rgb_image().astype(np.uint16) * 257)
    result = run_cli("denoise", tmp_path / "deep.png", "-m", model_dir, "--out", tmp_path / "o.png", "-q")
    assert result.exit_code == 0, result.output
    assert "16-bit colour PNG" in result.stderr and "saved as 8-bit" in result.stderr
    out = Image.open(tmp_path / "o.png")
    assert out.mode == "RGB" and out.size == (100, 80)


def test_denoise_cli_never_overwrites_inputs_unless_asked(runner, tmp_path, model_dir, face_folder):
    path = tmp_path / "a.png"
    Image.fromarray(rgb_image()).save(path)
    before = path.read_bytes()
    result = run_cli("denoise", path, "-m", model_dir, "--out", path)
    assert result.exit_code == 1 and "would overwrite an input" in result.stderr and "--overwrite" in result.stderr
    result = run_cli("denoise", face_folder, "-m", model_dir, "--out", face_folder)
    assert result.exit_code == 1 and "would overwrite an input" in result.stderr
    assert path.read_bytes() == before
    result = run_cli("denoise", path, "-m", model_dir, "--out", path, "--overwrite", "-q")
    assert result.exit_code == 0 and path.read_bytes() != before
    assert Image.open(path).size == (100, 80)


def test_denoise_cli_refuses_existing_outputs_without_overwrite(runner, tmp_path, model_dir):
    Image.fromarray(rgb_image()).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"keep me")
    result = run_cli("denoise", tmp_path / "a.png", "-m", model_dir, "--out", tmp_path / "b.png")
    assert result.exit_code == 1 and "already exists" in result.stderr
    assert (tmp_path / "b.png").read_bytes() == b"keep me"


@pytest.mark.parametrize("args, message, code", [
    (["faces"], "--out DIR is needed", 2),
    (["faces", "--out", "clean.png"], "looks like a file name", 2),
    (["a.png", "--out", "a.xyz"], "cannot write images with extension '.xyz'", 2),
    (["a.png", "--out", "missing/b.png"], "does not exist", 1),
    (["nope.png"], "(first problem: nope.png: no such file or folder)", 1),
    (["nope.png", "--out", "b.png"], "none of the 1 input image(s) could be read (first problem: nope.png: no such file", 1),
    (["broken.png", "--out", "b.png"], "not an image Pillow can read", 1),
    (["empty"], "no image files", 1),
    (["a.png", "--method", "blur"], "Invalid value for '--method'", 2),
])
def test_denoise_cli_errors_are_one_line(runner, tmp_path, model_dir, monkeypatch, face_folder, args, message, code):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(rgb_image()).save("a.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "empty").mkdir()
    result = run_cli("denoise", *args, "-m", model_dir)
    assert result.exit_code == code and message in result.stderr, result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.stderr.splitlines() if line.startswith("Error")]) == 1


def test_denoise_cli_bad_model_is_one_line(runner, tmp_path):
    Image.fromarray(rgb_image()).save(tmp_path / "a.png")
    result = run_cli("denoise", tmp_path / "a.png", "-m", tmp_path / "no-model", "--out", tmp_path / "b.png")
    assert result.exit_code == 1 and "no such checkpoint folder" in result.stderr and "Traceback" not in result.output


def test_denoise_help_has_an_example(runner):
    result = run_cli("denoise", "--help")
    assert result.exit_code == 0 and "Example" in result.output and "resize" in result.output and "tile" in result.output


def test_open_picture_keeps_mode_and_reports_bad_files(tmp_path):
    make_input(tmp_path / "x.png", "I;16")
    picture = open_picture(tmp_path / "x.png")
    assert picture.image.mode == "I;16" and picture.bit_depth == 16 and picture.format == "PNG"
    (tmp_path / "bad.png").write_bytes(b"junk")
    with pytest.raises(aekit.ImageReadError, match="not an image Pillow can read"):
        open_picture(tmp_path / "bad.png")


def test_one_bad_file_is_said_once_before_any_model_work(runner, tmp_path, model_dir):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 cut short")
    result = run_cli("denoise", broken, "-m", model_dir)
    assert result.exit_code == 1
    assert result.stderr.count("broken.jpg") == 1 and result.stderr.startswith("Error: ")
    assert "Using model" not in result.stderr and "denoising" not in result.stderr and "skipped" not in result.stderr


# --- aekit denoise: bounded memory for any image -------------------------------------------------------


def unbounded_tile(forward, x, size, overlap=16):
    """The tiling as it was: the padded image, every tile and every output tile at once (the reference)."""
    import torch.nn.functional as F

    from aekit.denoising import _window

    _, _, height, width = x.shape
    padded = F.pad(x, (0, max(size - width, 0), 0, max(size - height, 0)), mode="replicate")
    H, W = padded.shape[-2:]
    ys = sorted({*range(0, H - size + 1, size - overlap), H - size})
    xs = sorted({*range(0, W - size + 1, size - overlap), W - size})
    corners = [(y, x0) for y in ys for x0 in xs]
    denoised = forward(torch.cat([padded[:, :, y : y + size, x0 : x0 + size] for y, x0 in corners]))
    total, norm = torch.zeros_like(padded), torch.zeros((1, 1, H, W))
    for tile, (y, x0) in zip(denoised, corners):
        total[0, :, y : y + size, x0 : x0 + size] += tile * _window(size)
        norm[0, 0, y : y + size, x0 : x0 + size] += _window(size)
    return (total / norm)[:, :, :height, :width].clamp(-1, 1)


def unbounded_resize(forward, x, size):
    """The resize method as it was: full-size float copies of the image, its correction and their sum (the reference)."""
    import torch.nn.functional as F

    small = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True).clamp(-1, 1)
    removed = forward(small) - small
    return (x + F.interpolate(removed, size=x.shape[-2:], mode="bicubic", align_corners=False)).clamp(-1, 1)


@pytest.fixture
def tiny_unet():
    """A tiny skip-connection model (32x32) and its forward function, which records how many images each call gets."""
    torch.manual_seed(0)
    model = aekit.create_model("unet", widths=(8, 16), image_size=32, latent_dim=8).eval()
    calls = []

    def forward(x):
        calls.append(len(x))
        with torch.no_grad():
            return model(x)

    return model, forward, calls


@pytest.mark.parametrize("shape", [(150, 110), (110, 150), (20, 130), (130, 7), (33, 33), (12, 9)])
def test_tiles_go_through_the_model_a_batch_at_a_time_and_match_the_unbounded_algorithm(tiny_unet, shape):
    from aekit.denoising import denoise_tensor

    model, forward, calls = tiny_unet
    x = torch.rand(1, 3, *shape, generator=torch.Generator().manual_seed(1)) * 2.2 - 1.1  # out of range: clamped
    expected = unbounded_tile(forward, x.clamp(-1, 1), 32)
    tiles = calls.pop()
    out = denoise_tensor(model, x, "tile", batch_size=5, forward=forward)
    assert out.shape == x.shape and (out - expected).abs().max() <= 1e-5
    assert max(calls) <= 5 and sum(calls) == tiles  # the same tiles, never more than batch_size at once
    if shape[1] <= shape[0]:  # bands of rows, in the reference's order: the very same numbers
        assert torch.equal(out, expected)


@pytest.mark.parametrize("shape", [(300, 200), (200, 300), (3000, 2), (1, 3000)])
def test_resize_matches_the_unbounded_algorithm_and_reads_the_image_in_bands(shape, monkeypatch):
    import torch.nn.functional as F

    import aekit.denoising
    from aekit.denoising import denoise_tensor

    torch.manual_seed(0)
    model = aekit.create_model("article", widths=(8, 16), image_size=32, latent_dim=8, convs_per_half=1).eval()
    x = torch.rand(2, 3, *shape, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        expected = unbounded_resize(model, x, 32)
    largest, interpolate = [], F.interpolate

    def recording(input, *args, **kwargs):
        largest.append(input[0].numel())
        return interpolate(input, *args, **kwargs)

    monkeypatch.setattr(aekit.denoising, "BAND_PIXELS", 2**10)
    monkeypatch.setattr(F, "interpolate", recording)
    out = denoise_tensor(model, x, "resize")
    assert (out - expected).abs().max() <= 1e-5
    height, width = shape
    assert max(largest) <= 3 * max(2**10 + max(height, width), 32 * min(height, width), 32 * 32)  # bands, never the image


@pytest.mark.parametrize("shape", [(3000, 1), (1, 3000), (2, 2000)])
def test_a_thin_image_is_tiled_a_few_tiles_at_a_time(tiny_unet, shape):
    """A 1-pixel-thin picture is padded to the model's size band by band, never as a whole padded copy."""
    from aekit.denoising import TILE_BATCH, denoise_any
    from aekit.pixels import images_to_tensor

    model, forward, calls = tiny_unet
    image = np.random.default_rng(3).integers(0, 256, (*shape, 3), dtype=np.uint8)
    expected = unbounded_tile(forward, images_to_tensor(image), 32)[0].permute(1, 2, 0)
    tiles = calls.pop()
    out = denoise_any(model, image, "tile", batch_size=16, forward=forward)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert max(calls) <= 16 and sum(calls) == tiles == len({*range(0, max(shape) - 32 + 1, 16), max(shape) - 32})
    assert np.abs(out.astype(int) - ((expected + 1) * 127.5).round().numpy().astype(int)).max() <= 1
    calls.clear()
    assert np.array_equal(denoise_any(model, image, "tile", forward=forward), out)  # batch_size 256: still 64 tiles at most
    assert max(calls) == TILE_BATCH and sum(calls) == tiles


def test_denoise_refuses_images_over_its_pixel_limit_in_one_line(runner, tmp_path, model_dir, monkeypatch):
    import aekit_denoise.commands as commands

    assert f"{commands.MAX_PIXELS // 10**6} million pixels" in " ".join(run_cli("denoise", "--help").output.split())
    monkeypatch.setattr(commands, "MAX_PIXELS", 5000)  # 100x80 = 8000 pixels is over it; a cheap stand-in for 9400x9400
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(rgb_image(100, 80)).save(folder / "big.png")
    Image.fromarray(rgb_image(60, 40)).save(folder / "small.png")
    result = run_cli("denoise", folder / "big.png", "-m", model_dir, "--out", tmp_path / "out.png")
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert result.exit_code == 1 and len(errors) == 1 and "Traceback" not in result.output, result.output
    assert "big.png: image too large to denoise (100x80 = 8,000 pixels; the limit is 5,000)" in errors[0]
    assert not (tmp_path / "out.png").exists()
    result = run_cli("denoise", folder, "-m", model_dir, "--out", tmp_path / "clean", "-q")
    assert result.exit_code == 0 and "wrote 1 denoised image(s)" in result.stdout and "1 skipped" in result.stdout
    assert "skipped: " in result.stderr and "big.png: image too large to denoise" in result.stderr
    assert sorted(p.name for p in (tmp_path / "clean").iterdir()) == ["small.png"]


def test_denoise_chunks_are_budgeted_by_header_pixels_not_file_size(tmp_path, monkeypatch):
    """A PNG of one colour is a few hundred bytes for a million pixels: its header, not its file size, counts."""
    import aekit_denoise.commands as commands
    from aekit_denoise.commands import InputFile, _chunks

    monkeypatch.setattr(commands, "CHUNK_PIXELS", 25_000)
    sizes = [(100, 100), (100, 100), (100, 100), (1000, 1000), (100, 50), (10, 10)]
    files = []
    for i, (width, height) in enumerate(sizes):
        Image.new("RGB", (width, height), (90, 120, 200)).save(tmp_path / f"{i}.png")
        files.append(InputFile(tmp_path / f"{i}.png", f"{i}.png"))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    files.append(InputFile(tmp_path / "bad.png", "bad.png"))
    assert (tmp_path / "3.png").stat().st_size < 10_000  # 3 MB decoded, compressed 300-fold: a budget by file size misses it
    assert list(_chunks(files)) == [([0, 1], 20_000), ([2], 10_000), ([3], 1_000_000), ([4, 5, 6], 5_100)]


def test_a_picture_larger_than_a_chunk_is_denoised_alone_with_the_same_result(runner, tmp_path, model_dir, monkeypatch):
    import aekit_denoise.commands as commands

    monkeypatch.setattr(commands, "CHUNK_PIXELS", 5000)  # 100x80 pictures are each larger than a chunk
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(rgb_image(100, 80, seed=i)).save(folder / f"big{i}.png")
        Image.fromarray(rgb_image(30, 20, seed=i)).save(folder / f"small{i}.png")
    result = run_cli("denoise", folder, "-m", model_dir, "--out", tmp_path / "clean", "-q")
    assert result.exit_code == 0 and "wrote 6 denoised image(s)" in result.stdout, result.output
    model = aekit.load(model_dir)
    for path in sorted(folder.iterdir()):
        alone, _ = denoise_image(model, Image.open(path))
        assert np.array_equal(np.asarray(Image.open(tmp_path / "clean" / path.name)), np.asarray(alone)), path.name


@pytest.mark.parametrize("mode", ["I;16", "I", "L", "LA", "F"])
def test_mode_conversions_a_block_of_rows_at_a_time_match_the_whole_picture(mode, monkeypatch):
    import aekit_denoise.pictures as pictures

    values = rgb_image(100, 80)[..., 0].astype(np.float64)
    image = {"I;16": lambda: Image.fromarray((values * 257 + 7).astype(np.uint16)),
             "I": lambda: Image.fromarray((values * 300 - 500).astype(np.int32)),
             "F": lambda: Image.fromarray((values / 255).astype(np.float32)),
             "L": lambda: Image.fromarray(values.astype(np.uint8)),
             "LA": lambda: Image.fromarray(np.dstack([values, values[::-1]]).astype(np.uint8), "LA")}[mode]()
    whole = model_view(image)
    denoised = np.clip(whole.rgb.astype(int) + np.arange(3) * 5 - 4, 0, 255).astype(np.uint8)
    monkeypatch.setattr(pictures, "BLOCK_PIXELS", 300)  # 3 rows of 100 at a time
    blocks = model_view(image)
    assert np.array_equal(blocks.rgb, whole.rgb) and blocks.notes == whole.notes
    monkeypatch.setattr(pictures, "BLOCK_PIXELS", 2**20)
    expected = np.asarray(whole.rebuild(denoised))
    monkeypatch.setattr(pictures, "BLOCK_PIXELS", 300)
    assert np.array_equal(np.asarray(blocks.rebuild(denoised)), expected)
    if mode in ("I;16", "I"):  # and the same values as before blocks: float64 arithmetic on the 16-bit values
        change = (denoised.astype(np.float32).mean(axis=-1) - whole.rgb[..., 0]) * 257.0
        reference = np.clip(np.asarray(image).astype(np.float64), 0, 65535)
        assert np.array_equal(expected, np.clip(np.rint(reference + change), 0, 65535).astype(np.uint16))


# --- examples/denoiser_crops.py: the photo-scale training data of faces-64-denoise --------------------


def test_denoiser_crops_writes_whole_faces_and_seeded_photo_scale_crops(tmp_path):
    import subprocess
    import sys

    from aekit.synthetic import make_faces

    source = tmp_path / "faces"
    source.mkdir()
    for i, face in enumerate(make_faces(6, seed=3, size=96)[0]):
        Image.fromarray(face).resize((89, 109)).save(source / f"{i:06d}.png")
    script = Path(__file__).resolve().parents[1] / "examples" / "denoiser_crops.py"
    for out in ("a", "b"):
        done = subprocess.run([sys.executable, str(script), str(source), str(tmp_path / out), "--count", "5"],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    whole, crops = sorted((tmp_path / "a" / "whole").iterdir()), sorted((tmp_path / "a" / "crops").iterdir())
    assert [p.name for p in whole] == [f"{i:06d}.png" for i in range(5)]  # the first --count only
    assert all(p.is_symlink() and p.resolve() == (source / p.name).resolve() for p in whole)
    assert len(crops) == 5 and all(Image.open(p).size == (64, 64) for p in crops)
    assert {p.name.rsplit("-x", 1)[1] for p in crops} <= {"1.png", "1.5.png", "2.png"}
    again = sorted((tmp_path / "b" / "crops").iterdir())  # seeded: the same crops again
    assert [p.name for p in again] == [p.name for p in crops]
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(crops, again))
