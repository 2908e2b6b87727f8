"""aekit export: every registered preset's parts as ONNX and TorchScript, equal to PyTorch, all or nothing."""

from __future__ import annotations

import builtins
import json

import numpy as np
import pytest
import torch

import aekit
from aekit.synthetic import make_faces
from helpers import error_line, run_cli, tiny_preset

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed (pip install 'aekit[onnx]')")
onnxruntime = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install 'aekit[onnx]')")

from aekit import onnx_export  # noqa: E402
from aekit_export import ExportError, export  # noqa: E402


def _faces(n: int = 4) -> np.ndarray:
    return make_faces(n, seed=3, size=32)[0]


def _run_onnx(path, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("arch", aekit.list_models())
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_every_preset_exports_its_parts_equal_to_pytorch(arch, fmt, tmp_path):
    model = tiny_preset(arch)
    manifest = export(model, fmt, "all", tmp_path / "out", _faces(), log=lambda m: None)
    expected_parts = ["encoder", "decoder", "denoiser"] if model.decodes_latents else ["encoder", "denoiser"]
    assert [entry["part"] for entry in manifest["files"].values()] == expected_parts
    assert manifest["model_id"] == aekit.model_fingerprint(model)
    assert json.loads((tmp_path / "out" / "export.json").read_text())["files"].keys() == manifest["files"].keys()
    rng = np.random.default_rng(1)
    inputs = {"encoder": rng.uniform(-1, 1, (7, 3, 32, 32)).astype(np.float32),  # a batch size never exported
              "decoder": rng.normal(size=(7, model.config.latent_dim)).astype(np.float32)}
    inputs["denoiser"] = inputs["encoder"]
    for name, entry in manifest["files"].items():
        part, x = entry["part"], inputs[entry["part"]]
        with torch.inference_mode():
            want = {"encoder": model.encoder, "decoder": model.decoder, "denoiser": model}[part](torch.from_numpy(x)).numpy()
        path = tmp_path / "out" / name
        if fmt == "onnx":
            got = _run_onnx(path, x)
            meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
            assert meta["opset"] == str(onnx_export.OPSET)
        else:
            extra = {"aekit.json": ""}
            loaded = torch.jit.load(str(path), _extra_files=extra)
            got, meta = loaded(torch.from_numpy(x)).detach().numpy(), json.loads(extra["aekit.json"])
        assert meta["aekit_model_id"] == manifest["model_id"] and meta["part"] == part
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * max(1.0, float(np.abs(want).max())))


def test_a_part_that_disagrees_is_refused_and_nothing_is_left(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "TOLERANCE", -1.0)  # no export can be that exact
    with pytest.raises(ExportError, match="encoder: the exported onnx graph differs from PyTorch"):
        export(tiny_preset("article"), "onnx", "all", tmp_path / "out", _faces(), log=lambda m: None)
    assert not (tmp_path / "out").exists()


def test_the_command_exports_and_says_what_is_wrong_in_one_line(tmp_path, monkeypatch):
    article, unet = tiny_preset("article").save_pretrained(tmp_path / "a"), tiny_preset("unet").save_pretrained(tmp_path / "u")
    result = run_cli("export", "-m", article, "--part", "encoder", "--out", tmp_path / "enc")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "enc").iterdir()) == ["encoder.onnx", "export.json"]
    assert "max difference from PyTorch" in result.stdout
    line = error_line(run_cli("export", "-m", unet, "--part", "decoder", "--out", tmp_path / "dec"), 1)
    assert "has no decoder to export" in line and not (tmp_path / "dec").exists()
    (tmp_path / "file").write_text("x")
    assert "is a file; give a folder" in error_line(run_cli("export", "-m", article, "--out", tmp_path / "file"), 2)
    line = error_line(run_cli("export", "-m", article, "--out", tmp_path / "file" / "x"), 1)
    assert "file is a file, not a folder" in line and (tmp_path / "file").read_text() == "x"

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
