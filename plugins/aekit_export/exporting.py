"""Exporting a model's parts to ONNX or TorchScript, checked against PyTorch before anything is kept.

Parts: ``encoder`` (images (N, 3, S, S) in [-1, 1] -> latents (N, latent_dim)), ``decoder`` (latents
-> images; models whose output is decoded from the latent alone) and ``denoiser`` (the whole model,
images -> images at the model's size: a denoiser's output, or a codec's reconstruction). Each is
exported from an inference copy (eval mode, BatchNorm folded into the convolutions), with a dynamic
batch dimension. Every exported file is run on random and on face inputs and must match PyTorch
within 1e-4 of the outputs' scale, or the export fails and nothing is written.

ONNX files carry ``aekit_model_id``, ``aekit_version``, ``architecture``, ``part``, ``opset`` and the
input and output ranges in their metadata; TorchScript files the same as ``aekit.json`` (an extra
file). ``DIR/export.json`` lists the files with their SHA-256. Exporting an ONNX graph and the check
against PyTorch are the core's (``aekit.onnx_export``), shared with the cache of graphs that
``--runtime onnx`` runs (``aekit.runtime``); the choice of parts, TorchScript and the folder are this plugin's.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from aekit import io, onnx_export
from aekit.inference import inference_copy
from aekit.onnx_export import PARTS, ExportError, require_onnx  # noqa: F401  (re-exported: aekit_export.ExportError)

FORMATS = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


def parts_of(model, part: str) -> list[str]:
    """The parts `part` names ("all": every part the model has)."""
    have = [p for p in PARTS if p != "decoder" or model.decodes_latents]
    if part == "all":
        return have
    if part not in PARTS:
        raise ExportError(f"unknown part {part!r} (parts: {', '.join(PARTS)}, all)")
    if part not in have:
        raise ExportError(f"--part {part}: this model has skip connections (a denoiser); its output is not decoded "
                          "from the latent alone, so it has no decoder to export (try --part encoder or denoiser)")
    return [part]


def _module(fast, part: str) -> torch.nn.Module:
    return {"encoder": fast.encoder, "decoder": fast.decoder, "denoiser": fast}[part]


def _inputs(model, part: str, faces: np.ndarray, seed: int = 0) -> list[torch.Tensor]:
    """Random and face inputs of two batch sizes for `part` (faces: uint8 (N, S, S, 3))."""
    g = torch.Generator().manual_seed(seed)
    if part == "decoder":
        latents = model.encode(faces)
        return [torch.randn(3, model.config.latent_dim, generator=g), latents[:1], latents]
    size = model.config.image_size
    x = torch.from_numpy(np.ascontiguousarray(faces)).permute(0, 3, 1, 2).float() / 127.5 - 1
    x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False) if x.shape[-1] != size else x
    return [torch.rand(3, 3, size, size, generator=g) * 2 - 1, x[:1], x]


def _export_torchscript(module, example: torch.Tensor, path: Path, meta: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, (example,), check_trace=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated upstream, and still what C++ loads
        torch.jit.save(traced, str(path), _extra_files={"aekit.json": json.dumps(meta)})


def _run_torchscript(path: Path, x: torch.Tensor) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = torch.jit.load(str(path), map_location="cpu")  # the file just written here, never a user's
    with torch.inference_mode():
        return loaded(x).numpy()


def export(model, fmt: str, part: str, out_dir, faces: np.ndarray, log=print) -> dict:
    """Export the parts `part` names into `out_dir` (atomically, each checked); returns the manifest."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
    if fmt == "onnx":
        require_onnx()
    names = parts_of(model, part)
    model = model.cpu().eval()
    fast = inference_copy(model)
    out_dir = Path(out_dir)
    made = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        return _export_parts(model, fast, fmt, names, out_dir, inputs_from=faces, written=written, log=log)
    except BaseException:  # a part that fails takes the parts already written with it: all or nothing
        for path in written:
            path.unlink(missing_ok=True)
        if made and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise


def _export_parts(model, fast, fmt, names, out_dir: Path, inputs_from, written: list, log) -> dict:
    faces = inputs_from
    manifest = {"format": fmt, "model_id": onnx_export.graph_metadata(model, names[0], fmt)["aekit_model_id"], "files": {}}
    tolerance = onnx_export.TOLERANCE
    for name in names:
        module, inputs = _module(fast, name), _inputs(model, name, faces)
        meta = onnx_export.graph_metadata(model, name, fmt)
        target = out_dir / f"{name}{SUFFIX[fmt]}"
        with io.atomic_path(target) as tmp:  # checked before it is renamed into place
            if fmt == "onnx":
                onnx_export.export_onnx(module, inputs[0], tmp, name, meta)
            else:
                _export_torchscript(module, inputs[0], tmp, meta)
            runner = onnx_export.run_onnx if fmt == "onnx" else _run_torchscript
            worst = onnx_export.difference_from(_module(model, name), lambda x: runner(tmp, x), inputs)
            if not worst <= tolerance:
                raise ExportError(f"{name}: the exported {fmt} graph differs from PyTorch by {worst:.2e} of the "
                                  f"output's scale (more than {tolerance:g}); nothing written")
            digest = hashlib.sha256(Path(tmp).read_bytes()).hexdigest()
        written.append(target)
        manifest["files"][target.name] = {"part": name, "sha256": digest, "max_difference": worst, **meta}
        log(f"{target}: {name}, max difference from PyTorch {worst:.1e} (of the output's scale)")
    io.write_json(out_dir / "export.json", manifest)
    written.append(out_dir / "export.json")
    return manifest
