"""The generate plugin: latent samplers, prior files, fit-prior / generate / interpolate, on_train_end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import aekit
import aekit.plugins
import aekit_generate as gen
from aekit.cli import cli
from aekit.images import resize_rgb, to_uint8_hwc
from aekit.synthetic import make_faces
from helpers import TINY, TINY_CLI, poke, resaved_safetensors, tiny_model

LATENT = TINY["latent_dim"]
SIZE = TINY["image_size"]
TILE = SIZE * 2 + 2  # image_grid's default scale 2 and pad 2


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def model_dir(tmp_path):
    """A tiny untrained checkpoint whose training summary names synthetic:40 as its data (like a real run's)."""
    directory = tmp_path / "model"
    settings = {"data": "synthetic:40", "skip": 0, "limit": None, "files": None, "val_fraction": 0.0, "val_data": None, "seed": 0}
    tiny_model().save_pretrained(directory, training={"data": "synthetic:40", "images": 40, "settings": settings})
    return directory


@pytest.fixture
def two_faces(tmp_path):
    """Two face images of other sizes than the model's (48x48 PNG and 80x80 JPEG)."""
    faces, _ = make_faces(2, seed=5, size=80)
    a, b = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.fromarray(faces[0]).resize((48, 48)).save(a)
    Image.fromarray(faces[1]).save(b, quality=95)
    return a, b


def one_line_error(result, message):
    assert result.exit_code != 0, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("Error")]) == 1, result.output


# --- samplers ----------------------------------------------------------------------------------------


def _correlated(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    mean = np.array([3.0, -2.0, 0.5])
    cov = np.array([[2.0, 0.8, 0.0], [0.8, 1.0, -0.3], [0.0, -0.3, 0.5]])
    return rng.multivariate_normal(mean, cov, size=n), mean, cov


def _fitted(name, latents):
    return aekit.plugins.get_registry().get("sampler", name)().fit(latents)


@pytest.fixture(autouse=True)
def _only_builtin_plugins(monkeypatch):
    """These tests compare exact sampler lists: third-party plugins installed here must not change them."""
    monkeypatch.setenv("AEKIT_LOAD_PLUGINS", "sources,compress,generate,testsamplers")
    aekit.plugins.reset()


def test_builtin_samplers_are_registered_by_the_generate_plugin():
    entries = {e.name: e for e in aekit.plugins.get_registry().entries("sampler")}
    assert {"normal", "gaussian", "gmm"} <= set(entries)
    assert all(entries[n].plugin == "generate" and entries[n].help for n in ("normal", "gaussian", "gmm"))


@pytest.mark.parametrize("name", ["normal", "gaussian", "gmm"])
def test_sampler_shapes_and_seeds(name):
    latents, _, _ = _correlated(500)
    sampler = gen.NormalSampler(latent_dim=3) if name == "normal" else _fitted(name, latents)
    a = sampler.sample(7, seed=1)
    assert a.shape == (7, 3) and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.array_equal(a, sampler.sample(7, seed=1))  # same seed, same latents
    assert not np.allclose(a, sampler.sample(7, seed=2))  # another seed, other latents
    assert not np.allclose(sampler.sample(7, seed=None), sampler.sample(7, seed=None))


def test_normal_sampler_is_standard_normal():
    z = gen.NormalSampler(latent_dim=4).sample(20000, seed=0)
    assert np.allclose(z.mean(0), 0, atol=0.05) and np.allclose(np.cov(z, rowvar=False), np.eye(4), atol=0.05)


@pytest.mark.parametrize("name", ["gaussian", "gmm"])
def test_fitted_samples_have_the_data_mean_and_covariance(name):
    latents, mean, cov = _correlated()
    sampler = _fitted(name, latents)
    z = sampler.sample(20000, seed=3)
    assert np.allclose(z.mean(0), mean, atol=0.1)
    assert np.allclose(np.cov(z, rowvar=False), cov, atol=0.15)
    ll = sampler.log_likelihood(latents).mean()
    assert abs(ll - sampler.state()[1]["log_likelihood"]) < 1e-6
    # a single Gaussian's exact log-likelihood: -0.5 * (d log 2 pi + log det + d) on average
    expected = -0.5 * (3 * np.log(2 * np.pi) + np.log(np.linalg.det(cov)) + 3)
    assert abs(ll - expected) < 0.1


def test_gmm_chooses_several_components_for_multimodal_data():
    rng = np.random.default_rng(0)
    centres = np.array([[-8.0, 0.0], [8.0, 0.0], [0.0, 10.0]])
    latents = np.concatenate([c + rng.standard_normal((200, 2)) for c in centres])
    sampler = gen.GMMSampler().fit(latents)
    meta = sampler.state()[1]
    assert meta["chosen_by"] == "bic" and meta["components"] > 1
    assert meta["bic"][str(meta["components"])] < meta["bic"]["1"]
    z = sampler.sample(3000, seed=0)
    nearest = np.argmin(((z[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    assert np.bincount(nearest, minlength=3).min() > 700  # every mode is sampled, about a third each
    assert gen.GaussianSampler().fit(latents).log_likelihood(latents).mean() < sampler.log_likelihood(latents).mean() - 1


def test_gmm_given_components_and_too_few_latents():
    latents, _, _ = _correlated(300)
    sampler = gen.GMMSampler(components=3).fit(latents)
    assert sampler.state()[1]["components"] == 3 and sampler.state()[1]["chosen_by"] == "given"
    assert sampler.state()[0]["means"].shape == (3, 3)
    with pytest.raises(aekit.AekitError, match="needs at least 400 latents"):
        gen.GMMSampler(components=400).fit(latents)


@pytest.mark.parametrize("name", ["gaussian", "gmm"])
def test_fitting_on_fewer_latents_than_dimensions_works(name):
    latents = np.random.default_rng(1).standard_normal((5, 32)) * 3
    z = _fitted(name, latents).sample(10, seed=0)
    assert z.shape == (10, 32) and np.isfinite(z).all()
    with pytest.raises(aekit.AekitError, match="at least 2 latents"):
        _fitted(name, latents[:1])


# --- prior files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gaussian", "gmm"])
def test_prior_round_trip_through_safetensors(model_dir, name):
    model = aekit.load(model_dir)
    latents = np.random.default_rng(0).standard_normal((200, LATENT)).astype(np.float32)
    sampler = _fitted(name, latents)
    path = gen.save_prior(sampler, name, model=model)
    assert path == model_dir / f"prior-{name}.safetensors"
    arrays, metadata = gen.read_prior_file(path)
    assert metadata["sampler"] == name and metadata["model_fingerprint"] == aekit.model_fingerprint(model)
    assert json.loads(metadata["meta"])["n_latents"] == 200
    header_size = int.from_bytes(path.read_bytes()[:8], "little")  # safetensors: a JSON header, then raw tensors
    assert json.loads(path.read_bytes()[8 : 8 + header_size])["__metadata__"]["format"] == "aekit-prior"
    loaded = gen.load_prior(model, name)
    for key, value in sampler.state()[0].items():
        assert np.array_equal(arrays[key], value) and np.array_equal(loaded.state()[0][key], value)
    assert np.array_equal(loaded.sample(9, seed=4), sampler.sample(9, seed=4))
    assert gen.fitted_priors(model_dir) == [name]
    assert not list(model_dir.glob(".*.tmp"))  # written through a temporary file


def test_prior_of_another_model_is_refused(model_dir, tmp_path, runner):
    model = aekit.load(model_dir)
    other = tiny_model(seed=1)
    other.save_pretrained(tmp_path / "other")
    sampler = gen.GaussianSampler().fit(np.random.default_rng(0).standard_normal((50, LATENT)))
    gen.save_prior(sampler, "gaussian", model=aekit.load(tmp_path / "other"), directory=model_dir)
    with pytest.raises(aekit.AekitError, match="fitted for a different model"):
        gen.load_prior(model, "gaussian")
    result = runner.invoke(cli, ["generate", "--model", str(model_dir), "--out", str(tmp_path / "g.png")])
    one_line_error(result, "was fitted for a different model")
    assert f"aekit fit-prior --model {model_dir}" in result.output
    assert not (tmp_path / "g.png").exists()


def test_missing_prior_says_how_to_fit_one(model_dir, runner, tmp_path):
    with pytest.raises(aekit.AekitError, match=r"run `aekit fit-prior --model .*model`"):
        gen.load_prior(aekit.load(model_dir), "gmm")
    result = runner.invoke(cli, ["generate", "--model", str(model_dir), "--sampler", "gmm", "--out", str(tmp_path / "g.png")])
    one_line_error(result, f"no fitted 'gmm' prior for {model_dir}")
    assert "aekit fit-prior --model" in result.output


def test_damaged_prior_file_is_one_error(model_dir):
    (model_dir / "prior-gaussian.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(aekit.AekitError, match="unreadable prior file"):
        gen.load_prior(aekit.load(model_dir), "gaussian")


BAD_PRIORS = [  # (id, sampler, arrays edit, metadata edit, what the one line must say)
    ("gaussian-nan-mean", "gaussian", poke("mean", np.nan), None, "'mean' holds NaN or infinite values"),
    ("gaussian-infinite-covariance", "gaussian", poke("cov", np.inf), None, "'cov' holds NaN or infinite values"),
    ("gmm-nan-means", "gmm", poke("means", np.nan), None, "'means' holds NaN or infinite values"),
    ("gmm-negative-weight", "gmm", lambda a: a.update(weights=-a["weights"]), None, "weights must be zero or more"),
    ("gaussian-wrong-width", "gaussian", lambda a: a.update(mean=np.zeros(LATENT + 1), cov=np.eye(LATENT + 1)), None,
     f"{LATENT + 1}-d for a {LATENT}-d model"),
    ("gaussian-bool-mean", "gaussian", lambda a: a.update(mean=a["mean"] > 0), None, "'mean' holds bool values"),
    ("newer-format-version", "gaussian", None, lambda m: m.update(format_version="999"), "written by a newer aekit"),
    ("meta-nested-too-deeply", "gaussian", None, lambda m: m.update(meta="[" * 100_000 + "]" * 100_000),
     "metadata 'meta': invalid JSON (nested too deeply to read)"),
]


@pytest.mark.parametrize("sampler, arrays, metadata, needle", [pytest.param(*row[1:], id=row[0]) for row in BAD_PRIORS])
def test_a_damaged_prior_is_refused_naming_it_instead_of_sampling_black_faces(model_dir, runner, tmp_path, sampler,
                                                                               arrays, metadata, needle):
    model = aekit.load(model_dir)
    latents = np.random.default_rng(0).standard_normal((200, LATENT))
    path = gen.save_prior(_fitted(sampler, latents), sampler, model=model)
    resaved_safetensors(path, arrays, metadata)
    with pytest.raises(gen.PriorError) as error:
        gen.load_prior(model, sampler)
    assert str(error.value).startswith(f"{path}: ") and needle in str(error.value), str(error.value)
    result = runner.invoke(cli, ["generate", "--model", str(model_dir), "--sampler", sampler, "--out", str(tmp_path / "g.png")])
    one_line_error(result, f"Error: {path}: ")
    assert needle in result.output and not (tmp_path / "g.png").exists()


# --- commands ----------------------------------------------------------------------------------------


def test_fit_prior_on_the_recorded_training_data(runner, model_dir):
    result = runner.invoke(cli, ["fit-prior", "--model", str(model_dir), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "synthetic:40 (training data, 40 images)" in result.stderr
    assert "gaussian: full-covariance Gaussian over 16 dims" in result.stdout
    assert "gmm: 1 full-covariance component(s) (chosen by BIC" in result.stdout  # 40 latents support one component
    assert "mean log-likelihood" in result.stdout
    assert gen.fitted_priors(model_dir) == ["gaussian", "gmm"]
    info = json.loads(gen.read_prior_file(model_dir / "prior-gmm.safetensors")[1]["info"])
    assert info["images"] == 40


def test_fit_prior_with_other_data_and_options(runner, model_dir, face_folder):
    result = runner.invoke(cli, ["fit-prior", "--model", str(model_dir), "--data", str(face_folder),
                                 "--sampler", "gmm", "--components", "2", "--limit", "10", "-q"])
    assert result.exit_code == 0, result.output
    assert "gmm: 2 full-covariance component(s) (given)" in result.stdout
    assert gen.fitted_priors(model_dir) == ["gmm"]
    meta = json.loads(gen.read_prior_file(model_dir / "prior-gmm.safetensors")[1]["meta"])
    assert meta["n_latents"] == 10 and meta["components"] == 2


def test_generate_writes_a_grid_with_metadata_and_latents(runner, model_dir, tmp_path):
    assert runner.invoke(cli, ["fit-prior", "--model", str(model_dir), "-q"]).exit_code == 0
    out, z_path = tmp_path / "grid.png", tmp_path / "z.npz"
    args = ["generate", "--model", str(model_dir), "--n", "10", "--seed", "7", "--out", str(out), "--save-latents", str(z_path)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "10 gmm samples, seed 7" in result.stdout
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size == (4 * TILE + 2, 20 + 3 * TILE + 2)  # 10 faces: 4 columns, 3 rows, a title
        text = dict(image.text)
        pixels = np.asarray(image.convert("RGB"))
    model = aekit.load(model_dir)
    assert text["sampler"] == "gmm" and text["seed"] == "7" and text["n"] == "10"
    assert text["model"] == str(model_dir) and text["model_fingerprint"] == aekit.model_fingerprint(model)
    with np.load(z_path, allow_pickle=False) as saved:
        latents = saved["latents"]
        assert latents.dtype == np.float32 and latents.shape == (10, LATENT)
        assert str(saved["sampler"]) == "gmm" and int(saved["seed"]) == 7
    assert np.array_equal(latents, gen.load_prior(model, "gmm").sample(10, seed=7))
    first = to_uint8_hwc(model.decode(latents[:1]))[0]
    tile = pixels[20 + 2 : 20 + 2 + 2 * SIZE : 2, 2 : 2 + 2 * SIZE : 2]  # the first face, scaled x2 nearest
    assert np.array_equal(tile, first)
    again = tmp_path / "again.png"
    assert runner.invoke(cli, args[:-4] + ["--out", str(again)]).exit_code == 0
    assert np.array_equal(np.asarray(Image.open(again).convert("RGB")), pixels)  # same seed, same picture


def test_generate_default_sampler_order(runner, model_dir, tmp_path):
    out = tmp_path / "g.png"
    result = runner.invoke(cli, ["generate", "--model", str(model_dir), "--n", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "no fitted prior" in result.stderr and "aekit fit-prior --model" in result.stderr
    assert Image.open(out).text["sampler"] == "normal"
    assert int(Image.open(out).text["seed"]) >= 0  # a fresh seed is recorded
    assert runner.invoke(cli, ["fit-prior", "--model", str(model_dir), "--sampler", "gaussian", "-q"]).exit_code == 0
    assert runner.invoke(cli, ["generate", "--model", str(model_dir), "--n", "4", "--out", str(out)]).exit_code == 0
    assert Image.open(out).text["sampler"] == "gaussian"
    assert runner.invoke(cli, ["fit-prior", "--model", str(model_dir), "--sampler", "gmm", "-q"]).exit_code == 0
    result = runner.invoke(cli, ["generate", "--model", str(model_dir), "--n", "4", "--out", str(out)])
    assert Image.open(out).text["sampler"] == "gmm" and "note" not in result.output
    result = runner.invoke(cli, ["generate", "--model", str(model_dir), "--n", "1", "--sampler", "normal", "--out", str(out)])
    assert result.exit_code == 0 and Image.open(out).text["sampler"] == "normal"
    assert Image.open(out).size == (TILE + 2, 20 + TILE + 2)


def test_interpolate_draws_originals_and_the_latent_path(runner, model_dir, two_faces, tmp_path):
    a, b = two_faces
    out = tmp_path / "strip.png"
    result = runner.invoke(cli, ["interpolate", str(a), str(b), "--model", str(model_dir), "--steps", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert image.size == (7 * TILE + 2, 20 + TILE + 2 + 14)  # A, 5 steps, B; a title; a caption row
        assert image.text["image_a"] == str(a) and image.text["steps"] == "5" and image.text["model_fingerprint"]
        pixels = np.asarray(image.convert("RGB"))
    tiles = [pixels[22 : 22 + 2 * SIZE : 2, 2 + c * TILE : 2 + c * TILE + 2 * SIZE : 2] for c in range(7)]
    model = aekit.load(model_dir)
    original_a = resize_rgb(Image.open(a).convert("RGB"), SIZE)
    original_b = resize_rgb(Image.open(b).convert("RGB"), SIZE)
    assert np.array_equal(tiles[0], original_a) and np.array_equal(tiles[6], original_b)
    za, zb = model.encode([Image.open(a).convert("RGB"), Image.open(b).convert("RGB")]).numpy()
    assert np.array_equal(tiles[1], to_uint8_hwc(model.decode(za[None]))[0])  # t=0: A's reconstruction
    assert np.array_equal(tiles[3], to_uint8_hwc(model.decode(((za + zb) / 2)[None]))[0])  # t=0.5
    assert np.array_equal(tiles[5], to_uint8_hwc(model.decode(zb[None]))[0])
    assert (pixels[-14:] < 128).any()  # the captions are drawn


def test_train_end_fits_priors_in_the_run_folder(runner, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--data", "synthetic:64", "--epochs", "1", "--batch-size", "32", "--quiet", "--out", str(run), *TINY_CLI]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.output
    assert gen.fitted_priors(run) == ["gaussian", "gmm"]
    model = aekit.load(run)
    arrays, metadata = gen.read_prior_file(run / "prior-gmm.safetensors")
    assert metadata["model_fingerprint"] == aekit.model_fingerprint(model)  # fitted for the saved weights
    assert json.loads(metadata["meta"])["n_latents"] == 64
    out = tmp_path / "g.png"
    result = runner.invoke(cli, ["generate", "--model", "latest", "--n", "4", "--seed", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert Image.open(out).text["sampler"] == "gmm" and "note" not in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "--sampler", "nope", "--out", "{tmp}/g.png"], "unknown sampler 'nope' (known: gaussian, gmm, normal)"),
        (["fit-prior", "--sampler", "nope"], "unknown sampler 'nope' (known: gaussian, gmm, normal)"),
        (["generate", "--n", "0", "--out", "{tmp}/g.png"], "0 is not in the range"),
        (["generate", "--out", "{tmp}/no/such/folder/g.png"], "does not exist"),
        (["generate", "--out", "{tmp}/g.jpg"], "must end in .png"),
        (["generate", "--out", "{tmp}/g.png", "--save-latents", "{tmp}/nowhere/z.npz"], "does not exist"),
        (["generate", "--out", "{tmp}/g.png", "--sampler", "gaussian"], "aekit fit-prior --model"),
        (["interpolate", "{tmp}/model/config.json", "{tmp}/model/config.json", "--out", "{tmp}/s.png"], "not an image Pillow can read"),
        (["interpolate", "{tmp}/none.png", "{tmp}/none.png", "--out", "{tmp}/s.png"], "no such file"),
        (["interpolate", "{tmp}/a.png", "{tmp}/b.jpg", "--steps", "1", "--out", "{tmp}/s.png"], "1 is not in the range"),
        (["fit-prior", "--sampler", "normal"], "needs no fitting"),
        (["fit-prior", "--sampler", "gaussian", "--components", "3"], "takes no number of components"),
        (["fit-prior", "--data", "/no/such/folder"], "no such file or folder"),
    ],
)
def test_bad_input_is_a_one_line_error(runner, model_dir, two_faces, tmp_path, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args] + ["--model", str(model_dir)]
    one_line_error(runner.invoke(cli, args), message)
    assert not list(tmp_path.glob("*.png.*")) and not (tmp_path / "g.png").exists() and not (tmp_path / "s.png").exists()


def test_fit_prior_without_recorded_data_asks_for_data(runner, tmp_path):
    tiny_model().save_pretrained(tmp_path / "bare")
    one_line_error(runner.invoke(cli, ["fit-prior", "--model", str(tmp_path / "bare")]), "records no training data; pass --data")


def test_every_command_has_help_with_an_example(runner):
    for command in ["fit-prior", "generate", "interpolate"]:
        result = runner.invoke(cli, [command, "--help"])
        assert result.exit_code == 0 and "Example" in result.output and f"aekit {command} " in result.output, command


# --- a third-party sampler ---------------------------------------------------------------------------

SAMPLER_PLUGIN = '''
import numpy as np

import aekit


class MeanSampler:
    """The fitted mean plus a little seeded noise."""

    needs_fit = True

    def fit(self, latents):
        self.mean = np.asarray(latents, dtype=np.float64).mean(0)
        return self

    def sample(self, n, seed=None):
        noise = np.random.default_rng(seed).standard_normal((n, len(self.mean))) * 1e-3
        return (self.mean + noise).astype(np.float32)

    def state(self):
        return {"mean": self.mean}, {"kind": "mean"}

    @classmethod
    def from_state(cls, arrays, meta):
        sampler = cls()
        sampler.mean = arrays["mean"]
        return sampler


class ZeroSampler:
    """Every latent zero; needs no fitting."""

    needs_fit = False

    def __init__(self, latent_dim):
        self.latent_dim = latent_dim

    def sample(self, n, seed=None):
        return np.zeros((n, self.latent_dim), np.float32)


@aekit.hookimpl
def register_samplers(register):
    register("meanonly", MeanSampler, help="the mean latent")
    register("zeros", ZeroSampler, help="all-zero latents")
'''


@pytest.fixture
def sampler_plugin(install_plugin):
    """Install a fake distribution whose `aekit.plugins` entry point registers two samplers."""
    install_plugin("aekit-testsamplers", "testsamplers", "aekit_testsamplers", SAMPLER_PLUGIN, version="0.3.0")


def test_a_plugin_sampler_is_listed_fitted_and_used(sampler_plugin, runner, model_dir, tmp_path):
    listing = runner.invoke(cli, ["plugins"])
    assert "testsamplers 0.3.0  (aekit_testsamplers; pip: aekit-testsamplers)" in listing.output
    assert "sampler: meanonly, zeros" in listing.output
    assert "sampler: normal, gaussian, gmm" in listing.output
    result = runner.invoke(cli, ["fit-prior", "--model", str(model_dir), "-q"])  # all: every sampler that needs fitting
    assert result.exit_code == 0, result.output
    assert gen.fitted_priors(model_dir) == ["gaussian", "gmm", "meanonly"]
    z_path = tmp_path / "z.npz"
    result = runner.invoke(cli, ["generate", "--model", str(model_dir), "--sampler", "meanonly", "--n", "3", "--seed", "1",
                                 "--out", str(tmp_path / "m.png"), "--save-latents", str(z_path)])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "m.png").text["sampler"] == "meanonly"
    gaussian = gen.load_prior(aekit.load(model_dir), "gaussian")
    with np.load(z_path) as saved:
        assert np.allclose(saved["latents"], gaussian.mean, atol=0.01)  # both fitted the same latents' mean
    result = runner.invoke(cli, ["generate", "--model", str(model_dir), "--sampler", "zeros", "--n", "2", "--seed", "0",
                                 "--out", str(tmp_path / "zero.png"), "--save-latents", str(z_path)])
    assert result.exit_code == 0, result.output
    with np.load(z_path) as saved:
        assert not saved["latents"].any()
    one_line_error(runner.invoke(cli, ["generate", "--model", str(model_dir), "--sampler", "nope", "--out", str(tmp_path / "x.png")]),
                   "(known: gaussian, gmm, meanonly, normal, zeros)")
