"""A model's module as an ONNX graph, and the check of any exported graph against PyTorch.

What ``aekit.runtime`` exports into its cache of graphs and what ``aekit export`` (the ``aekit_export``
plugin) writes use the same pieces: ``export_onnx`` (the opset, a dynamic batch dimension and the
metadata ``graph_metadata`` gives: ``aekit_model_id``, ``aekit_version``, ``architecture``, ``part``,
``opset``, the input and output ranges), ``run_onnx`` and ``difference_from``, the check every graph
must pass (within ``TOLERANCE`` of the outputs' scale) before it is kept.

onnx and onnxruntime are the optional ``aekit[onnx]`` extra: they are imported inside the functions that
use them, so importing this module needs neither.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ._version import __version__
from .checkpoint import architecture_name, model_fingerprint
from .errors import AekitError

PARTS = ("encoder", "decoder", "denoiser")
OPSET = 17
TOLERANCE = 1e-4  # of the outputs' scale


class ExportError(AekitError):
    """A part cannot be exported, or its exported graph disagrees with PyTorch."""


def require_onnx() -> None:
    """An ExportError naming the extra when onnx or onnxruntime is missing."""
    try:
        import onnx  # noqa: F401  (optional: the onnx extra)
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ExportError("ONNX export needs the onnx extra: pip install 'aekit[onnx]' (onnx and onnxruntime)") from None


def graph_metadata(model, part: str, fmt: str) -> dict[str, str]:
    """What an exported file of `model`'s `part` (one of PARTS) in format `fmt` records about itself."""
    io = {"encoder": ("images (N, 3, S, S) in [-1, 1]", "latents (N, latent_dim)"),
          "decoder": ("latents (N, latent_dim)", "images (N, 3, S, S) in [-1, 1]"),
          "denoiser": ("images (N, 3, S, S) in [-1, 1]", "images (N, 3, S, S) in [-1, 1]")}[part]
    meta = {"aekit_model_id": model_fingerprint(model), "aekit_version": __version__,
            "architecture": architecture_name(model), "part": part, "format": fmt, "image_size": str(model.config.image_size),
            "latent_dim": str(model.config.latent_dim), "input": io[0], "output": io[1]}
    if fmt == "onnx":
        meta["opset"] = str(OPSET)
    return meta


def export_onnx(module, example: torch.Tensor, path: Path, part: str, meta: dict) -> None:
    """Write `module` (traced on `example`, batch dimension dynamic) to the ONNX file `path`, `meta` in its metadata."""
    import onnx  # optional (the onnx extra) and slow to import: only when a graph is made

    names = ("latents", "images") if part == "decoder" else ("images", "latents" if part == "encoder" else "output")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation notes
        torch.onnx.export(module, (example,), str(path), input_names=[names[0]], output_names=[names[1]],
                          dynamic_axes={names[0]: {0: "batch"}, names[1]: {0: "batch"}}, opset_version=OPSET,
                          dynamo=False)
    graph = onnx.load(str(path))
    for key, value in meta.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(graph, str(path))


def run_onnx(path: Path, x: torch.Tensor) -> np.ndarray:
    """The ONNX graph `path`'s output for `x`, run by ONNX Runtime on the CPU."""
    import onnxruntime  # optional (the onnx extra)

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def difference_from(reference, run, inputs) -> float:
    """The largest difference between `run(input)` and `reference(input)` over `inputs`, as a share of
    the reference output's scale (at least 1): what every exported graph is checked with."""
    worst = 0.0
    for x in inputs:
        with torch.inference_mode():
            expected = reference(x).numpy()
        scale = max(float(np.abs(expected).max()), 1.0)
        worst = max(worst, float(np.abs(run(x) - expected).max()) / scale)
    return worst
