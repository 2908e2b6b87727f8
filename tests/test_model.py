"""The article's architecture: parameter counts, shapes, the normalisation, the presets and the encode/decode API."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit.model import ARTICLE, Autoencoder, AutoencoderConfig, Block, FeatureNorm


def test_article_parameter_counts_equal_the_article():
    model = aekit.create_model("article")
    counts = model.num_parameters()
    assert counts["encoder"] == 4_989_224
    assert counts["decoder"] == 5_221_568


def test_article_is_the_default_config():
    assert Autoencoder().config == ARTICLE == AutoencoderConfig()
    assert ARTICLE.encoder_grid == 3  # 64 -> 31 -> 15 -> 7 -> 3, so Linear(256*3*3 = 2304, 128)
    assert aekit.create_model().encoder[-1].in_features == 2304


def test_shapes_through_encoder_and_decoder():
    torch.manual_seed(0)
    model = aekit.create_model("article").eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    z = model.encoder(x)
    assert z.shape == (2, 128)
    # the transposed blocks grow 4 -> 9 -> 19 -> 39 -> 79 before the nearest resize to 64
    assert model.decoder[:7](z).shape == (2, 3, 79, 79)
    y = model(x)
    assert y.shape == (2, 3, 64, 64)
    assert y.min() >= -1 and y.max() <= 1  # Tanh


def test_block_layers_match_the_article():
    block = Block(8, 16, is_encoder=False)
    convs = [m for m in block.s if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(convs) == 9
    assert [c.stride[0] for c in convs] == [1, 1, 1, 1, 2, 1, 1, 1, 1]
    assert convs[4].padding == (0, 0) and convs[0].padding == (1, 1)
    assert isinstance(block.res, torch.nn.ConvTranspose2d) and block.res.stride == (2, 2)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in block.s) == 9
    assert sum(isinstance(m, torch.nn.LeakyReLU) for m in block.s) == 9


def test_feature_norm_is_instance_norm_1d_on_2d_input_without_the_warning():
    x = torch.randn(5, 4096) * 3 + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = torch.nn.InstanceNorm1d(4096)(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = FeatureNorm(4096)(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert got[0].mean().abs() < 1e-5  # each sample normalised over its own features


def test_presets_are_registered_and_overridable():
    assert {"article", "small"} <= set(aekit.list_models())
    small = aekit.create_model("small")
    assert small.num_parameters()["total"] < aekit.create_model().num_parameters()["total"] / 5
    tiny = aekit.create_model("article", image_size=32, widths=(4, 8), latent_dim=16)
    assert tiny.encode(torch.zeros(3, 3, 32, 32)).shape == (3, 16)
    with pytest.raises(aekit.CheckpointError, match="no config field"):
        aekit.create_model("article", depth=3)
    with pytest.raises(aekit.RegistryError, match="unknown model 'nope'.*article"):
        aekit.create_model("nope")


def _tiny():
    torch.manual_seed(0)
    return aekit.create_model("article", image_size=32, widths=(4, 8), convs_per_half=1, latent_dim=16)


def test_encode_accepts_tensors_arrays_and_pil_images():
    model = _tiny()
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    from_array = model.encode(array)
    from_tensor = model.encode(torch.from_numpy(array).permute(0, 3, 1, 2).float() / 127.5 - 1)
    from_pil = model.encode([Image.fromarray(a) for a in array])
    torch.testing.assert_close(from_array, from_tensor)
    torch.testing.assert_close(from_array, from_pil)
    big = model.encode(np.repeat(np.repeat(array, 2, axis=1), 2, axis=2))  # resized to 32x32
    assert big.shape == (2, 16)
    assert model.training  # encode switches to eval mode and back


def test_model_input_from_uint8_pixels_is_exact_at_size_and_clamped_when_resized():
    from aekit.model import as_model_input
    from aekit.pixels import images_to_tensor

    rng = np.random.default_rng(0)
    edges = np.where(rng.random((2, 40, 40, 3)) < 0.5, 0, 255).astype(np.uint8)  # bicubic overshoots on these
    assert torch.equal(as_model_input(edges, 40), images_to_tensor(edges))
    resized = as_model_input(edges, 32)
    assert resized.shape == (2, 3, 32, 32) and resized.min() >= -1 and resized.max() <= 1


def test_decode_and_reconstruct_shapes_and_errors():
    model = _tiny()
    images = model.decode(torch.zeros(4, 16))
    assert images.shape == (4, 3, 32, 32)
    assert model.reconstruct(images).shape == (4, 3, 32, 32)
    with pytest.raises(ValueError, match=r"\(N, 16\)"):
        model.decode(torch.zeros(4, 15))
    with pytest.raises(ValueError, match="NaN"):
        model.encode(torch.full((1, 3, 32, 32), float("nan")))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        model.encode(np.zeros((2, 32, 32), dtype=np.uint8))


# --- the improved and unet presets ---------------------------------------------------------------


def test_improved_preset_keeps_the_latent_and_decodes_exactly_64x64():
    model = aekit.create_model("improved").eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    z = model.encode(x)
    assert z.shape == (2, 128)
    out = model.decode(z)
    assert out.shape == (2, 3, 64, 64) and out.abs().max() <= 1
    assert torch.allclose(model.reconstruct(x), out, atol=1e-6)  # a bottleneck: the output is decode(encode(x))
    assert torch.allclose(model(x), out, atol=1e-6)
    counts = model.num_parameters()
    assert counts["total"] == sum(p.numel() for p in model.parameters()) == counts["encoder"] + counts["decoder"]


def test_improved_preset_round_trips_through_a_checkpoint(tmp_path):
    model = aekit.create_model("improved", widths=(8, 16, 32), image_size=32, latent_dim=24).eval()
    model.save_pretrained(tmp_path / "m")
    loaded = aekit.load(tmp_path / "m")
    assert type(loaded).__name__ == "ResNetAutoencoder" and loaded.config == model.config
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize("refine", [False, True])
def test_improved_starts_at_pca_of_its_training_images(refine):
    from sklearn.decomposition import PCA

    torch.manual_seed(0)
    model = aekit.create_model("improved", widths=(8, 16), image_size=16, latent_dim=12, refine=refine).eval()
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(20, 3 * 16 * 16))  # images near a 20-d subspace, so the top 12 components are well defined
    pixels = np.clip(127.5 + rng.normal(size=(200, 20)) * np.linspace(30, 3, 20) @ basis / 8, 0, 255)
    images = pixels.astype(np.uint8).reshape(200, 3, 16, 16)
    model.initialize_from_data(images)
    x = torch.from_numpy(images[:10]).float() / 127.5 - 1
    pca = PCA(12).fit(images.reshape(200, -1).astype(np.float64) / 127.5 - 1)
    expected = pca.inverse_transform(pca.transform(x.flatten(1).double().numpy())).clip(-1, 1)
    got = model(x).detach().flatten(1).double().numpy()
    assert np.abs(got - expected).max() < 2e-3  # the convolutional paths add nothing until trained
    assert torch.allclose(model.decode(model.encode(x)), model(x), atol=1e-6)  # decoded from the latent alone


def test_refine_decoder_depends_on_the_latent_alone():
    torch.manual_seed(0)
    model = aekit.create_model("improved", widths=(8, 16), image_size=32, latent_dim=8, refine=True).eval()
    with torch.no_grad():  # a trained-like state: every path contributes
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    z = model.encode(x)
    assert torch.allclose(model(x), model.decode(z), atol=1e-5)
    assert not torch.allclose(model.decode(z), model.decode(z.flip(0)), atol=1e-3)
    assert model.num_parameters()["total"] == sum(p.numel() for p in model.parameters())
    with pytest.raises(aekit.CheckpointError, match="refine needs linear_path"):
        aekit.create_model("improved", linear_path=False, refine=True)


def test_unet_output_uses_the_image_and_refuses_to_decode_latents():
    model = aekit.create_model("unet", widths=(8, 16), image_size=32, latent_dim=8).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert model(x).shape == x.shape
    with torch.no_grad():
        model.decoder.head.weight.zero_()
        model.decoder.head.bias.zero_()
    assert torch.equal(model(x), x)  # residual output: an all-zero correction returns the input
    with pytest.raises(aekit.AekitError, match="skip connections"):
        model.decode(torch.zeros(1, 8))


def test_improved_config_is_validated():
    with pytest.raises(aekit.CheckpointError, match="multiple of 16"):
        aekit.create_model("improved", image_size=40)


@pytest.mark.parametrize("arch", ["improved", "unet"])
def test_denoise_keeps_type_and_size_for_every_input_kind(arch):
    model = aekit.create_model(arch, widths=(8, 16), image_size=32, latent_dim=8).eval()
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (2, 50, 70, 3), dtype=np.uint8)
    out = model.denoise(batch)
    assert out.shape == batch.shape and out.dtype == np.uint8
    single = model.denoise(batch[0])
    assert single.shape == batch[0].shape
    assert np.array_equal(single, out[0])
    tensor = torch.rand(1, 3, 20, 90) * 2 - 1  # smaller than the model on one side, larger on the other
    for method in ("resize", "tile"):
        assert model.denoise(tensor, method=method).shape == tensor.shape
    image = Image.fromarray(batch[0])
    assert model.denoise(image).size == image.size
    assert [im.size for im in model.denoise([image, image.resize((33, 31))])] == [(70, 50), (33, 31)]
    with pytest.raises(ValueError, match="method"):
        model.denoise(batch, method="crop")
    with pytest.raises(TypeError, match="uint8"):
        model.denoise(batch.astype(np.float64))


def test_denoise_at_model_size_is_the_forward_pass_and_tiles_cover_larger_images():
    model = aekit.create_model("unet", widths=(8, 16), image_size=32, latent_dim=8).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.allclose(model.denoise(x), model(x))
    with torch.no_grad():  # an identity denoiser must give the image back exactly, whatever the tiling
        model.decoder.head.weight.zero_()
        model.decoder.head.bias.zero_()
    big = torch.rand(1, 3, 77, 100) * 2 - 1
    assert torch.allclose(model.denoise(big, method="tile"), big, atol=1e-6)
    assert torch.allclose(model.denoise(big, method="resize"), big, atol=1e-6)
