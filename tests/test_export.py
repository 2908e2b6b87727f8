"""aekit export: every registered preset's parts as ONNX and TorchScript, equal to PyTorch, all or nothing."""

from __future__ import annotations

import builtins
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import aekit
from aekit.synthetic import make_faces
from helpers import error_line, run_cli

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed (pip install 'aekit[onnx]')")
onnxruntime = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install 'aekit[onnx]')")

from aekit_export import ExportError, export  # noqa: E402
from aekit_export import exporting  # noqa: E402


def _tiny(arch: str):
    torch.manual_seed(0)
    extra = {"convs_per_half": 1} if arch in ("article", "small") else {}
    return aekit.create_model(arch, image_size=32, widths=(8, 16), latent_dim=16, **extra).eval()


def _faces(n: int = 4) -> np.ndarray:
    return make_faces(n, seed=3, size=32)[0]


def _run_onnx(path, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("arch", aekit.list_models())
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_every_preset_exports_its_parts_equal_to_pytorch(arch, fmt, tmp_path):
    model = _tiny(arch)
    manifest = export(model, fmt, "all", tmp_path / "out", _faces(), log=lambda m: None)
    expected_parts = ["encoder", "decoder", "denoiser"] if model.decodes_latents else ["encoder", "denoiser"]
    assert [entry["part"] for entry in manifest["files"].values()] == expected_parts
    assert manifest["model_id"] == aekit.model_fingerprint(model)
    assert json.loads((tmp_path / "out" / "export.json").read_text())["files"].keys() == manifest["files"].keys()
    rng = np.random.default_rng(1)
    inputs = {"encoder": rng.uniform(-1, 1, (7, 3, 32, 32)).astype(np.float32),  # a batch size never exported
              "decoder": rng.normal(size=(7, 16)).astype(np.float32)}
    inputs["denoiser"] = inputs["encoder"]
    for name, entry in manifest["files"].items():
        part, x = entry["part"], inputs[entry["part"]]
        with torch.inference_mode():
            want = {"encoder": model.encoder, "decoder": model.decoder, "denoiser": model}[part](torch.from_numpy(x)).numpy()
        path = tmp_path / "out" / name
        if fmt == "onnx":
            got = _run_onnx(path, x)
            meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
            assert meta["opset"] == str(exporting.OPSET)
        else:
            extra = {"aekit.json": ""}
            loaded = torch.jit.load(str(path), _extra_files=extra)
            got, meta = loaded(torch.from_numpy(x)).detach().numpy(), json.loads(extra["aekit.json"])
        assert meta["aekit_model_id"] == manifest["model_id"] and meta["part"] == part
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * max(1.0, float(np.abs(want).max())))


def test_a_part_that_disagrees_is_refused_and_nothing_is_left(tmp_path, monkeypatch):
    monkeypatch.setattr(exporting, "TOLERANCE", -1.0)  # no export can be that exact
    with pytest.raises(ExportError, match="encoder: the exported onnx graph differs from PyTorch"):
        export(_tiny("article"), "onnx", "all", tmp_path / "out", _faces(), log=lambda m: None)
    assert not (tmp_path / "out").exists()


def test_the_command_exports_and_says_what_is_wrong_in_one_line(tmp_path, monkeypatch):
    article, unet = _tiny("article").save_pretrained(tmp_path / "a"), _tiny("unet").save_pretrained(tmp_path / "u")
    result = run_cli("export", "-m", article, "--part", "encoder", "--out", tmp_path / "enc")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "enc").iterdir()) == ["encoder.onnx", "export.json"]
    assert "max difference from PyTorch" in result.stdout
    line = error_line(run_cli("export", "-m", unet, "--part", "decoder", "--out", tmp_path / "dec"), 1)
    assert "has no decoder to export" in line and not (tmp_path / "dec").exists()
    (tmp_path / "file").write_text("x")
    assert "is a file; give a folder" in error_line(run_cli("export", "-m", article, "--out", tmp_path / "file"), 1)

    real_import = builtins.__import__

    def without_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_onnxruntime)
    line = error_line(run_cli("export", "-m", article, "--out", tmp_path / "none"), 1)
    assert "pip install 'aekit[onnx]'" in line and not (tmp_path / "none").exists()
    torchscript = run_cli("export", "-m", article, "--format", "torchscript", "--out", tmp_path / "ts")
    assert torchscript.exit_code == 0 and (tmp_path / "ts" / "decoder.pt").is_file()  # needs no extra


def test_embed_with_onnx_runtime_gives_pytorchs_features(tmp_path, face_folder):
    from aekit_export.runtime import resolve_runtime

    model_dir = _tiny("improved").save_pretrained(tmp_path / "m")
    for runtime in ("torch", "onnx"):
        for features in ("latent", "multiscale"):
            result = run_cli("embed", face_folder, "-m", model_dir, "--runtime", runtime, "--features", features,
                             "--out", tmp_path / f"{runtime}-{features}.npz", "-q")
            assert result.exit_code == 0, result.output
    for features in ("latent", "multiscale"):
        by_torch = aekit.load_features(tmp_path / f"torch-{features}.npz")
        by_onnx = aekit.load_features(tmp_path / f"onnx-{features}.npz")
        assert by_onnx.meta["runtime"] == "onnx" and by_torch.meta["runtime"] == "torch"
        np.testing.assert_allclose(by_onnx.X, by_torch.X, rtol=0, atol=1e-4 * max(1.0, float(np.abs(by_torch.X).max())))
    exported = sorted(p.name for p in (Path(os.environ["AEKIT_HOME"]) / "onnx").rglob("*.onnx"))
    assert exported == ["features-latent.onnx", "features-multiscale.onnx"]  # made once, kept in the cache
    assert resolve_runtime("auto", "cpu") == "onnx"
    with pytest.raises(aekit.AekitError, match="--runtime onnx runs on the CPU"):
        resolve_runtime("onnx", "meta")


def test_the_sklearn_transformer_runs_on_onnx_runtime_with_pytorchs_features(tmp_path):
    from aekit_embed import AutoencoderEmbedder, EmbedderError

    model_dir = str(_tiny("improved").save_pretrained(tmp_path / "m"))
    images = _faces(6)
    for features in ("latent", "multiscale"):
        by_torch = AutoencoderEmbedder(model_dir, features=features, runtime="torch").fit(images).transform(images)
        by_onnx = AutoencoderEmbedder(model_dir, features=features, runtime="onnx").fit(images).transform(images)
        by_auto = AutoencoderEmbedder(model_dir, features=features).fit(images).transform(images)  # onnx here
        np.testing.assert_allclose(by_onnx, by_torch, rtol=0, atol=1e-4 * max(1.0, float(np.abs(by_torch).max())))
        np.testing.assert_array_equal(by_auto, by_onnx)
    with pytest.raises(EmbedderError, match="runtime must be 'auto', 'torch' or 'onnx'"):
        AutoencoderEmbedder(model_dir, runtime="tpu").fit(images)


def test_decompress_and_generate_with_onnx_runtime_draw_pytorchs_pictures(tmp_path, face_folder):
    from PIL import Image

    model_dir = _tiny("improved").save_pretrained(tmp_path / "m")
    assert run_cli("compress", face_folder, "-m", model_dir, "-o", tmp_path / "z.npz", "-q").exit_code == 0
    pictures = {}
    for runtime in ("torch", "onnx"):
        result = run_cli("decompress", tmp_path / "z.npz", "-m", model_dir, "-o", tmp_path / runtime, "--runtime", runtime, "-q")
        assert result.exit_code == 0, result.output
        pictures[runtime] = {p.relative_to(tmp_path / runtime): np.asarray(Image.open(p), dtype=int)
                             for p in sorted((tmp_path / runtime).rglob("*.png"))}
        result = run_cli("generate", "-m", model_dir, "--sampler", "normal", "--seed", "3", "--n", "4",
                         "--out", tmp_path / f"g-{runtime}.png", "--runtime", runtime)
        assert result.exit_code == 0, result.output
    assert pictures["torch"].keys() == pictures["onnx"].keys() and len(pictures["torch"]) > 0
    for name, image in pictures["torch"].items():
        assert np.abs(image - pictures["onnx"][name]).max() <= 1, name  # a rounding step at most
    grids = [np.asarray(Image.open(tmp_path / f"g-{r}.png"), dtype=int) for r in ("torch", "onnx")]
    assert np.abs(grids[0] - grids[1]).max() <= 1
    assert sorted(p.name for p in (Path(os.environ["AEKIT_HOME"]) / "onnx").rglob("*.onnx")) == ["decoder.onnx"]
