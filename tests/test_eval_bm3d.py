"""BM3D, the optional denoising baseline of `aekit eval --noise` and benchmarks/denoise_table.py.

The bm3d package (non-commercial licence) is never a dependency of aekit: without it eval says so in one
line and goes on; with it, BM3D is told the true sigma of gaussian:SIGMA or each image's measured one,
and its outputs are cached by the noisy image's bytes and the sigma.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

import aekit
from aekit.noise import parse_noise
from aekit_eval import denoise
from aekit_eval.quality import psnr
from helpers import invoke


@pytest.fixture
def untrained(tmp_path):
    torch.manual_seed(0)
    return aekit.create_model("small", latent_dim=16).save_pretrained(tmp_path / "untrained")


@pytest.fixture
def no_bm3d(monkeypatch):
    """The bm3d package made unimportable (as on a machine without it)."""
    monkeypatch.setitem(sys.modules, "bm3d", None)


def smooth_faces(n=3, size=24, seed=0):
    from aekit.synthetic import make_faces

    images, _ = make_faces(n, seed=seed, size=size)
    return images.astype(np.float32) / 255


# --- which sigma BM3D is told (no bm3d needed) ---------------------------------------------------------------


@pytest.mark.parametrize("spec, sigma", [
    ("gaussian:0.1", 0.1), (" gaussian:0.05 ", 0.05), ("gaussian", 0.1),
    ("gaussian:0.05-0.2", None), ("gaussian:0.1+jpeg:75", None), ("gaussian:0.1|gaussian:0.2", None),
    ("poisson-gaussian:0.01,0.02", None), ("saltpepper:0.1", None), ("speckle:0.1", None),
])
def test_bm3d_gets_the_true_sigma_only_for_plain_gaussian(spec, sigma):
    assert denoise.true_gaussian_sigma(spec) == sigma


def test_other_noise_gets_each_images_measured_sigma():
    clean = smooth_faces(4)
    noisy = parse_noise("poisson-gaussian:0.01,0.02+jpeg:75")(clean, np.random.default_rng(0))
    sigmas, which, true = denoise.bm3d_sigmas("poisson-gaussian:0.01,0.02+jpeg:75", noisy, clean)
    assert true is None and which == denoise.BM3D_MEASURED_SIGMA
    assert np.allclose(sigmas, [np.std(n.astype(np.float64) - c) for n, c in zip(noisy, clean)])
    sigmas, which, true = denoise.bm3d_sigmas("gaussian:0.2", noisy, clean)
    assert true == 0.2 and which == denoise.BM3D_TRUE_SIGMA and np.all(sigmas == 0.2)


def test_the_cache_key_follows_the_image_the_sigma_and_the_version():
    image = smooth_faces(1)[0]
    key = denoise.bm3d_cache_key(image, 0.1, "4.0.3")
    assert key == denoise.bm3d_cache_key(image.copy(), 0.1, "4.0.3")
    other = image.copy()
    other[0, 0, 0] += 1 / 255
    assert len({key, denoise.bm3d_cache_key(other, 0.1, "4.0.3"), denoise.bm3d_cache_key(image, 0.1000001, "4.0.3"),
                denoise.bm3d_cache_key(image, 0.1, "4.0.4")}) == 4


# --- without bm3d ------------------------------------------------------------------------------------------


def test_eval_without_bm3d_says_so_in_one_line_and_goes_on(untrained, tmp_path, no_bm3d):
    assert denoise.bm3d_version() is None
    out = tmp_path / "r"
    result = invoke("eval", "--model", untrained, "--data", "synthetic:8:2", "--noise", "gaussian:0.1", "--out", out, "-q")
    report = json.loads((out / "report.json").read_text())
    section = report["denoising"]
    assert section["bm3d"] == {"installed": False, "line": denoise.BM3D_MISSING}
    assert not any("BM3D" in r["method"] for r in section["tables"][0]["rows"])
    assert result.output.count(denoise.BM3D_MISSING) == 1
    assert "non-commercial licence, not a dependency of aekit" in denoise.BM3D_MISSING
    assert denoise.BM3D_MISSING in (out / "report.md").read_text()


def test_bm3d_images_zero_leaves_it_out(untrained, tmp_path):
    out = tmp_path / "r"
    result = invoke("eval", "--model", untrained, "--data", "synthetic:8:2", "--noise", "gaussian:0.1",
                    "--bm3d-images", "0", "--out", out, "-q")
    report = json.loads((out / "report.json").read_text())
    assert not any("BM3D" in r["method"] for r in report["denoising"]["tables"][0]["rows"])
    line = report["denoising"]["bm3d"]["line"]
    assert line in result.output
    assert line == (denoise.BM3D_MISSING if denoise.bm3d_version() is None else "BM3D: left out (--bm3d-images 0)")
    if denoise.bm3d_version() is not None:
        assert "--bm3d-images 0" in report["command"]


# --- with bm3d ---------------------------------------------------------------------------------------------


def test_bm3d_beats_the_noisy_input_and_is_cached(tmp_path):
    pytest.importorskip("bm3d", reason="the bm3d package (non-commercial licence) is not installed: pip install bm3d")
    clean = smooth_faces(3, size=24)
    noisy = parse_noise("gaussian:0.1")(clean, np.random.default_rng(0))
    cache = tmp_path / "cache"
    first, stats = denoise.bm3d(noisy, 0.1, cache=cache)
    assert first.shape == noisy.shape and first.dtype == np.float32 and 0 <= first.min() and first.max() <= 1
    assert stats["computed"] == 3 and stats["cached"] == 0 and stats["seconds"] > 0
    assert np.all(psnr(first, clean) > psnr(noisy, clean) + 3)
    again, stats = denoise.bm3d(noisy, 0.1, cache=cache)
    assert stats == {"computed": 0, "cached": 3, "seconds": 0.0} and np.array_equal(again, first)
    assert len(list(cache.rglob("*.npy"))) == 3 and not list(cache.rglob("*.tmp"))
    # another sigma is another entry; a damaged entry is computed again
    _, stats = denoise.bm3d(noisy[:1], 0.05, cache=cache)
    assert stats["computed"] == 1
    for path in cache.rglob("*.npy"):
        path.write_bytes(b"broken")
    fresh, stats = denoise.bm3d(noisy[:1], 0.1, cache=cache)
    assert stats["computed"] == 1 and np.allclose(fresh, first[:1], atol=1e-5)  # BM3D itself is not bit-exact


def test_eval_runs_bm3d_on_the_first_images_and_says_which_sigma(untrained, tmp_path):
    pytest.importorskip("bm3d", reason="the bm3d package (non-commercial licence) is not installed: pip install bm3d")
    out = tmp_path / "r"
    result = invoke("eval", "--model", untrained, "--data", "synthetic:8:2", "--noise", "gaussian:0.1",
                    "--noise", "poisson-gaussian:0.01,0.02+jpeg:75", "--bm3d-images", "2", "--out", out, "-q")
    report = json.loads((out / "report.json").read_text())
    section = report["denoising"]
    assert section["bm3d"]["installed"] and section["bm3d"]["images"] == 2 and "bm3d" in section["bm3d"]["cache"]
    for table, parameter in zip(section["tables"], ["sigma = 0.1 (true)", "sigma = measured per image"]):
        row = table["rows"][-1]
        assert row["method"] == "BM3D (first 2 images)" and row["images"] == 2 and row["parameter"] == parameter
        same = row["same_images_psnr"]
        assert same["BM3D"] == pytest.approx(row["psnr"]) and same["BM3D"] > same["noisy"]
        assert any(note.startswith("BM3D ran on the first 2 of the 6 images") for note in table["notes"])
    assert "BM3D (first 2 images)" in result.output and "BM3D ran on the first 2" in result.output
    assert "sigma = measured per image" in (out / "report.md").read_text()
    # a second run reads BM3D from the cache
    invoke("eval", "--model", untrained, "--data", "synthetic:8:2", "--noise", "gaussian:0.1", "--bm3d-images", "2",
           "--out", tmp_path / "r2", "-q")
    again = json.loads((tmp_path / "r2" / "report.json").read_text())["denoising"]["tables"][0]["rows"][-1]
    assert again["settings"]["cached"] == 2 and again["psnr"] == section["tables"][0]["rows"][-1]["psnr"]


def test_bm3d_is_never_a_dependency_of_aekit():
    """Its licence is non-commercial: only the benchmarks-only `bench` extra names it."""
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert not any(d.lower().startswith("bm3d") for d in project["dependencies"])
    extras = project["optional-dependencies"]
    assert extras["bench"] == ["bm3d>=4"]
    assert [name for name, deps in extras.items() if any(d.lower().startswith("bm3d") for d in deps)] == ["bench"]


def test_denoise_table_benchmark_smoke(tmp_path, capsys):
    """benchmarks/denoise_table.py at its smallest: every column, the speed row, the table written atomically."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).parents[1]
    data = root.parent / "shared" / "data" / "celeba-10k"
    if not (data / "images" / "010000.jpg").is_file():
        pytest.skip(f"celeba-10k is not at {data} (benchmarks need it; tests never do)")
    spec = importlib.util.spec_from_file_location("denoise_table", root / "benchmarks" / "denoise_table.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    has_bm3d = denoise.bm3d_version() is not None
    out = tmp_path / "deep" / "table.md"
    assert bench.main(["--data", str(data), "--faces", "3", "--bm3d-images", "1" if has_bm3d else "0", "--sigmas", "0.1",
                       "--tune-faces", "2", "--speed-images", "1", "--cache", str(tmp_path / "cache"), "--runtime", "torch",
                       "--out", str(out), "-q"]) == 0
    text = out.read_text()
    assert text in capsys.readouterr().out and not list(out.parent.glob(".*"))
    assert "| gaussian:0.1 |" in text and "| poisson-gaussian:0.01,0.02+jpeg:75 |" in text
    assert "### All 3 faces" in text
    if has_bm3d:
        assert "| noise | noisy | NL-means | BM3D | faces-64-denoise | faces-64-denoise − BM3D |" in text
        assert "speed (images/s, 1 face of gaussian:0.1)" in text and len(list((tmp_path / "cache").rglob("*.npy"))) == 2
    else:
        assert denoise.BM3D_MISSING in text
