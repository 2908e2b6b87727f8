"""The third-party example plugin (examples/aekit-plugin-example), when installed as CI installs it."""

import importlib.util

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import aekit
from aekit.cli import cli
from aekit.plugins import describe_plugins

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("aekit_plugin_example") is None,
    reason="examples/aekit-plugin-example is not installed (pip install -e examples/aekit-plugin-example)",
)


@pytest.fixture
def tiny_model_dir(tmp_path):
    torch.manual_seed(0)
    return aekit.create_model("article", image_size=32, widths=(8, 16), convs_per_half=1, latent_dim=16).save_pretrained(tmp_path / "m")


def test_it_is_discovered_through_its_entry_point():
    row = {r["name"]: r for r in describe_plugins()}["example"]
    assert row["error"] is None and row["version"] == "0.1.0"
    assert row["registered"] == {"noise_model": ["poisson"], "sampler": ["box"], "command": ["latent-stats"], "demo": ["example"],
                                 "objective": ["latent-l2"]}
    assert "example" in CliRunner().invoke(cli, ["plugins"]).output


def test_its_command_runs(tmp_path, tiny_model_dir):
    from aekit.synthetic import make_faces

    for i, image in enumerate(make_faces(3, size=32)[0]):
        Image.fromarray(image).save(tmp_path / f"f{i}.png")
    result = CliRunner().invoke(cli, ["latent-stats", str(tmp_path / "f0.png"), str(tmp_path / "f1.png"), "--model", str(tiny_model_dir)])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip().splitlines()) == 2 and "norm" in result.stdout
    assert "Using model" in result.stderr  # the core says which model, for plugin commands too


def test_its_command_prints_one_line_of_four_fields_whatever_a_file_is_named(tmp_path, tiny_model_dir):
    from aekit.synthetic import make_faces

    odd = tmp_path / "a\tb\nc.png"
    Image.fromarray(make_faces(1, size=32)[0][0]).save(odd)
    result = CliRunner().invoke(cli, ["latent-stats", str(odd), "--model", str(tiny_model_dir)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and len(lines[0].split("\t")) == 4 and lines[0].split("\t")[1].startswith("norm ")


def test_its_noise_model_and_sampler_work_through_the_registry():
    registry = aekit.plugins.get_registry()
    add_noise = registry.get("noise_model", "poisson")("20")
    clean = np.full((2000, 1, 1, 3), 0.5, dtype=np.float32)
    noisy = add_noise(clean, np.random.default_rng(0))
    assert abs(noisy.mean() - 0.5) < 0.02 and abs(noisy.var() - 0.5 / 20) < 0.005  # Poisson: var = mean / peak
    sampler = registry.get("sampler", "box")().fit(np.array([[0.0, -1.0], [1.0, 1.0]]))
    samples = sampler.sample(500, seed=3)
    assert samples.shape == (500, 2) and samples[:, 0].min() >= 0 and samples[:, 1].max() <= 1
    assert np.array_equal(samples, sampler.sample(500, seed=3))
