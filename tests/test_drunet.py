"""The drunet denoiser: its noise-level estimate, the noise-level map, `denoise(sigma=)` and `aekit denoise --sigma`."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit.drunet import DRUNetConfig, DRUNetDenoiser, estimate_noise_sigma
from aekit.errors import AekitError
from helpers import fails, invoke, tiny_model

CELEBA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "celeba-10k" / "images"
TINY_DRUNET = {"image_size": 32, "widths": (8, 16), "blocks": 1}


def smooth_faces(count: int = 24, size: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth float images in [0.2, 0.8] (N, H, W, 3): gradients and blobs, little fine detail of their own."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    images = []
    for _ in range(count):
        cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.35)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r**2))
        channels = [0.2 + 0.3 * blob + 0.3 * rng.uniform() * (x if c % 2 else y) for c in range(3)]
        images.append(np.stack(channels, -1))
    return np.clip(np.array(images, np.float32), 0, 1)


def as_input(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2) * 2 - 1


def trained_like(model: DRUNetDenoiser, seed: int = 1) -> DRUNetDenoiser:
    """The model with its zero-initialised last conv made random, so its output depends on its input."""
    torch.manual_seed(seed)
    torch.nn.init.normal_(model.decoder.tail.weight, std=0.1)
    return model.eval()


def noisy_copy(clean: np.ndarray, sigma: float, seed: int = 3) -> np.ndarray:
    return np.clip(clean + np.random.default_rng(seed).normal(0, sigma, clean.shape), 0, 1).astype(np.float32)


@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.2, 0.3])
def test_the_noise_estimate_reads_gaussian_noise_at_its_sigma(sigma):
    # calibrated on faces (their own fine detail, their share of clipped pixels): on other images it is
    # within 20%; the smallest levels and the 10% figure are checked on real faces below
    clean = smooth_faces()
    estimate = estimate_noise_sigma(as_input(noisy_copy(clean, sigma)))
    assert estimate.shape == (len(clean),)
    assert abs(float(estimate.mean()) - sigma) < 0.2 * sigma


def test_the_noise_estimate_grows_with_the_noise():
    clean = smooth_faces()
    means = [float(estimate_noise_sigma(as_input(noisy_copy(clean, s))).mean()) for s in (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)]
    assert means == sorted(means) and means[0] < means[2] < means[3]


@pytest.mark.skipif(not CELEBA.is_dir(), reason="celeba-10k is not in ../shared/data (the calibration: aekit/denoising.py)")
def test_the_noise_estimate_on_real_faces():
    files = sorted(CELEBA.iterdir())[9000:9100]  # test faces, never used to calibrate
    clean = np.stack([np.asarray(Image.open(f).convert("RGB").resize((64, 64), Image.BICUBIC)) for f in files])
    clean = clean.astype(np.float32) / 255
    for sigma in (0.02, 0.05, 0.1, 0.2, 0.3):
        estimate = float(estimate_noise_sigma(as_input(noisy_copy(clean, sigma))).mean())
        assert abs(estimate - sigma) < 0.1 * sigma, (sigma, estimate)


def test_the_noise_estimate_of_clean_images_is_near_zero():
    assert float(estimate_noise_sigma(as_input(smooth_faces())).max()) < 0.01


def test_the_noise_estimate_refuses_what_is_not_a_batch_of_images():
    with pytest.raises(ValueError, match="N, C, H, W"):
        estimate_noise_sigma(torch.zeros(3, 8, 8))


@pytest.mark.parametrize("config", [{}, {"widths": (8, 16), "blocks": 1}, {"widths": (4, 8, 16), "blocks": 3, "noise_map": False}])
def test_tensor_count_matches_the_built_model(config):
    cfg = DRUNetConfig(**config)
    assert DRUNetDenoiser.tensor_count(cfg) == len(DRUNetDenoiser(cfg).state_dict())


def test_an_untrained_drunet_is_the_identity_and_encodes_its_bottleneck():
    model = aekit.create_model("drunet", **TINY_DRUNET).eval()
    x = as_input(smooth_faces(4, 32))
    assert torch.equal(model(x), x)
    assert model.encode(x).shape == (4, 16)
    with pytest.raises(AekitError, match="denoiser"):
        model.decode(torch.zeros(1, 16))


def test_the_noise_level_changes_the_output_and_auto_is_the_estimate():
    model = trained_like(aekit.create_model("drunet", **TINY_DRUNET))
    noisy = np.clip(smooth_faces(4, 32) + np.random.default_rng(0).normal(0, 0.1, (4, 32, 32, 3)), 0, 1)
    x = as_input(noisy.astype(np.float32))
    with torch.no_grad():
        low, high, auto = model(x, sigma=0.0), model(x, sigma=0.3), model(x)
        estimated = model(x, sigma=estimate_noise_sigma(x))
    assert not torch.allclose(low, high)
    assert torch.equal(auto, estimated)


def test_config_checks():
    with pytest.raises(ValueError, match="multiple of 4"):
        DRUNetConfig(image_size=30, widths=(8, 16, 32))
    with pytest.raises(ValueError, match="invalid"):
        DRUNetConfig(blocks=0)


def test_denoise_tiles_of_one_photo_share_the_photo_s_noise_level():
    model = trained_like(aekit.create_model("drunet", **TINY_DRUNET))
    rng = np.random.default_rng(1)
    photo = (np.clip(rng.uniform(0.3, 0.7) + rng.normal(0, 0.08, (70, 90, 3)), 0, 1) * 255).astype(np.uint8)
    level = float(estimate_noise_sigma(as_input(photo[None].astype(np.float32) / 255))[0])
    assert np.array_equal(model.denoise(photo), model.denoise(photo, sigma=level))
    assert not np.array_equal(model.denoise(photo, sigma=0.0), model.denoise(photo, sigma=0.3))


def test_denoise_refuses_a_noise_level_the_model_cannot_take():
    photo = np.full((32, 32, 3), 128, np.uint8)
    with pytest.raises(AekitError, match="takes no noise level"):
        tiny_model().denoise(photo, sigma=0.1)
    model = aekit.create_model("drunet", **TINY_DRUNET)
    for bad in (-0.1, 1.5, float("nan"), "loud", True):
        with pytest.raises(ValueError, match="sigma"):
            model.denoise(photo, sigma=bad)
    assert np.array_equal(model.denoise(photo, sigma="auto"), model.denoise(photo))


@pytest.fixture
def drunet_dir(tmp_path):
    torch.manual_seed(0)
    return trained_like(aekit.create_model("drunet", **TINY_DRUNET)).save_pretrained(
        tmp_path / "drunet", training={"settings": {"noise": "gaussian:0.05-0.2"}})


@pytest.fixture
def noisy_png(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "noisy.png"
    Image.fromarray((rng.uniform(0, 1, (40, 48, 3)) * 255).astype(np.uint8)).save(path)
    return path


def test_cli_sigma_auto_and_numbers(drunet_dir, noisy_png, tmp_path):
    invoke("denoise", noisy_png, "--model", drunet_dir, "--runtime", "torch", "--sigma", "auto", "-o", tmp_path / "auto.png")
    invoke("denoise", noisy_png, "--model", drunet_dir, "--sigma", "0", "-o", tmp_path / "low.png")
    invoke("denoise", noisy_png, "--model", drunet_dir, "--sigma", "0.3", "--runtime", "torch", "-o", tmp_path / "high.png")
    low, high = (np.asarray(Image.open(tmp_path / name)) for name in ("low.png", "high.png"))
    assert not np.array_equal(low, high)


def test_onnx_runtime_is_told_each_photos_level(drunet_dir, noisy_png, tmp_path):
    # the graph takes the level as a fourth channel: the photo's one estimate for all its tiles, or --sigma
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install 'aekit[onnx]')")
    for sigma in ("auto", "0.3"):
        for runtime in ("torch", "onnx"):
            invoke("denoise", noisy_png, "--model", drunet_dir, "--runtime", runtime, "--sigma", sigma,
                   "-o", tmp_path / f"{runtime}-{sigma}.png")
        on_torch, on_onnx = (np.asarray(Image.open(tmp_path / f"{runtime}-{sigma}.png"), dtype=np.int16)
                             for runtime in ("torch", "onnx"))
        assert np.abs(on_onnx - on_torch).max() <= 1
    tiles = np.asarray(Image.open(tmp_path / "onnx-auto.png"), dtype=np.int16)
    assert not np.array_equal(tiles, np.asarray(Image.open(tmp_path / "onnx-0.3.png"), dtype=np.int16))


@pytest.mark.parametrize("bad", ["abc", "2", "-0.1", "nan", "inf", ""])
def test_cli_sigma_refuses_bad_values_in_one_line(drunet_dir, noisy_png, tmp_path, bad):
    fails("denoise", noisy_png, "--model", drunet_dir, "--sigma", bad, "-o", tmp_path / "out.png", message="--sigma")
    assert not (tmp_path / "out.png").exists()


def test_cli_sigma_number_needs_a_model_that_takes_it(noisy_png, tmp_path):
    plain = tiny_model().save_pretrained(tmp_path / "plain")
    fails("denoise", noisy_png, "--model", plain, "--sigma", "0.1", "-o", tmp_path / "out.png", message="takes no noise level")


def test_a_drunet_checkpoint_loads_strictly(drunet_dir):
    model = aekit.load(drunet_dir)
    assert isinstance(model, DRUNetDenoiser) and model.takes_noise_level
