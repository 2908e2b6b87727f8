"""ONNX Runtime as a runtime: a model's parts run by onnxruntime, each exported once into the cache.

``runtime="auto"`` picks ONNX Runtime on a CPU when onnxruntime is installed (``aekit embed`` ran 1.10x
faster with it than with PyTorch on 2 cores, ``benchmarks/embed_throughput.py``), PyTorch otherwise
and on CUDA. Each exported graph (``features-<set>``, ``encoder``, ``decoder``, ``denoiser``: the whole
model) is kept in ``$AEKIT_HOME/onnx/<model id>/<name>.onnx`` and is checked against PyTorch (within
1e-4 of the outputs' scale) when it is made; a graph that disagrees is never used. ``ModelOnRuntime``
gives a model's ``encode``, ``decode``, ``reconstruct`` and ``denoise`` on the runtime chosen.
"""

from __future__ import annotations

import numpy as np
import torch

from aekit.errors import AekitError

from .options import RUNTIMES, runtime_option  # noqa: F401  (re-exported)


class FeatureModule(torch.nn.Module):
    """images (N, 3, S, S) in [-1, 1] -> feature set `kind`, as one traceable module."""

    def __init__(self, model, kind: str):
        super().__init__()
        from aekit import feature_sets

        self.model, self.function = model, feature_sets.get(kind)

    def forward(self, x):
        from aekit.feature_sets import encoder_maps

        maps, latent = encoder_maps(self.model, x)
        return self.function(maps, latent)


def decoder_for(model, runtime: str):
    """``model.decode``, or the same computed by ONNX Runtime when `runtime` resolves to it."""
    return ModelOnRuntime(model, runtime).decode


def encoder_for(model, runtime: str):
    """``model.encode``, or the same computed by ONNX Runtime when `runtime` resolves to it."""
    return ModelOnRuntime(model, runtime).encode


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_runtime(runtime: str, device) -> str:
    """"torch" or "onnx" for `runtime` ("auto", "torch", "onnx") on `device`; an AekitError if impossible."""
    if runtime not in RUNTIMES:
        raise AekitError(f"unknown runtime {runtime!r} (runtimes: {', '.join(RUNTIMES)})")
    on_cpu = torch.device(device).type == "cpu"
    if runtime == "auto":
        return "onnx" if on_cpu and onnx_available() else "torch"
    if runtime == "onnx":
        if not on_cpu:
            raise AekitError("--runtime onnx runs on the CPU; use --device cpu, or --runtime torch on CUDA")
        if not onnx_available():
            raise AekitError("--runtime onnx needs the onnx extra: pip install 'aekit[onnx]' (onnx and onnxruntime)")
    return runtime


class _CachedGraph:
    """A module of `model` run by ONNX Runtime from ``$AEKIT_HOME/onnx/<model id>/<name>.onnx``, exported on
    first use (never before: a run that computes nothing exports nothing) and checked against PyTorch."""

    def __init__(self, model, name: str):
        from aekit import model_fingerprint
        from aekit.paths import aekit_home

        self.model, self.name = model, name
        self.path = aekit_home() / "onnx" / model_fingerprint(model) / f"{name}.onnx"
        self.session = None

    def modules(self):  # (the module to export, the reference it must match, example inputs)
        raise NotImplementedError

    def run(self, x: np.ndarray) -> np.ndarray:
        """The graph's output for float32 input `x` (images (N, 3, S, S) in [-1, 1], or latents)."""
        if self.session is None:
            self._start()
        x = np.ascontiguousarray(x, dtype=np.float32)
        return self.session.run(None, {self.input_name: x})[0].astype(np.float32, copy=False)

    def _start(self):
        import onnxruntime

        if not self.path.is_file():
            _export_checked(*self.modules(), self.model, self.name, self.path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # what PyTorch would use: the same cores
        self.session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name


class OnnxFeatures(_CachedGraph):
    """uint8 (N, S, S, 3) images -> float32 features of set `kind`, computed by ONNX Runtime."""

    def __init__(self, model, kind: str = "latent"):
        super().__init__(model, f"features-{kind}")
        self.kind = kind

    def modules(self):
        from aekit.inference import inference_copy

        size, g = self.model.config.image_size, torch.Generator().manual_seed(0)
        inputs = [torch.rand(n, 3, size, size, generator=g) * 2 - 1 for n in (3, 1)]
        return FeatureModule(inference_copy(self.model.cpu()), self.kind).eval(), FeatureModule(self.model, self.kind).eval(), inputs

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Features of uint8 (N, S, S, 3) images."""
        from aekit.pixels import to_signed

        return self.run(to_signed(np.ascontiguousarray(np.asarray(images).transpose(0, 3, 1, 2))).numpy())


class OnnxDecoder(_CachedGraph):
    """latents (N, latent_dim) -> images (N, 3, S, S) in [-1, 1], computed by ONNX Runtime."""

    def __init__(self, model):
        super().__init__(model, "decoder")

    def modules(self):
        from aekit.inference import inference_copy

        g = torch.Generator().manual_seed(0)
        inputs = [torch.randn(n, self.model.config.latent_dim, generator=g) for n in (3, 1)]
        return inference_copy(self.model.cpu()).decoder.eval(), self.model.decoder, inputs

    def decode(self, latents) -> torch.Tensor:
        """Like ``model.decode``: a float tensor of images in [-1, 1]."""
        return torch.from_numpy(self.run(np.asarray(latents, dtype=np.float32)))


class OnnxEncoder(_CachedGraph):
    """images (N, 3, S, S) in [-1, 1] -> latents (N, latent_dim), computed by ONNX Runtime."""

    def __init__(self, model):
        super().__init__(model, "encoder")

    def modules(self):
        from aekit.inference import inference_copy

        return inference_copy(self.model.cpu()).encoder.eval(), self.model.encoder, _random_images(self.model)


class OnnxDenoiser(_CachedGraph):
    """images (N, 3, S, S) in [-1, 1] -> the whole model's output (a denoiser's, or a codec's reconstruction)."""

    def __init__(self, model):
        super().__init__(model, "denoiser")

    def modules(self):
        from aekit.inference import inference_copy

        return inference_copy(self.model.cpu()).eval(), self.model, _random_images(self.model)


def _random_images(model) -> list[torch.Tensor]:
    size, g = model.config.image_size, torch.Generator().manual_seed(0)
    return [torch.rand(n, 3, size, size, generator=g) * 2 - 1 for n in (3, 1)]


class ModelOnRuntime:
    """`model`'s ``encode``, ``decode``, ``reconstruct`` and ``denoise`` (same arguments, same results within
    1e-4), computed by the runtime `runtime` resolves to: ONNX Runtime's graphs (each exported on first use)
    or the model itself. ``name`` is that runtime, "onnx" or "torch"."""

    def __init__(self, model, runtime: str = "auto"):
        self.model = model
        self.name = resolve_runtime(runtime, next(model.parameters()).device)
        self._graphs: dict[str, _CachedGraph] = {}

    def _graph(self, kind: str) -> _CachedGraph:
        if kind not in self._graphs:
            self._graphs[kind] = {"encoder": OnnxEncoder, "decoder": OnnxDecoder, "denoiser": OnnxDenoiser}[kind](self.model)
        return self._graphs[kind]

    def _batched(self, kind: str, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        graph = self._graph(kind)
        outs = [torch.from_numpy(graph.run(x[i : i + batch_size].numpy())) for i in range(0, len(x), batch_size)]
        return torch.cat(outs) if outs else torch.empty(0)

    def encode(self, images, batch_size: int = 256) -> torch.Tensor:
        """Latents of images (as ``model.encode`` takes them)."""
        from aekit.model import as_model_input

        if self.name == "torch":
            return self.model.encode(images, batch_size=batch_size)
        return self._batched("encoder", as_model_input(images, self.model.config.image_size), batch_size)

    def decode(self, latents, batch_size: int = 256) -> torch.Tensor:
        """Images in [-1, 1] from latents (a skip-connection model refuses, as ``model.decode`` does)."""
        if self.name == "torch" or not self.model.decodes_latents:
            return self.model.decode(latents, batch_size=batch_size)
        z = torch.as_tensor(np.asarray(latents, dtype=np.float32))
        if z.ndim != 2 or z.shape[1] != self.model.config.latent_dim:
            raise ValueError(f"latents must have shape (N, {self.model.config.latent_dim}), got {tuple(z.shape)}")
        return self._batched("decoder", z, batch_size)

    def reconstruct(self, images, batch_size: int = 256) -> torch.Tensor:
        """The model's output for images at its own size."""
        from aekit.model import as_model_input

        if self.name == "torch":
            return self.model.reconstruct(images, batch_size=batch_size)
        return self._batched("denoiser", as_model_input(images, self.model.config.image_size), batch_size)

    def denoise(self, images, method: str = "auto", batch_size: int = 256):
        """``model.denoise``: images of any size and type, denoised by the whole model's graph."""
        from aekit.denoising import denoise_any

        if self.name == "torch":
            return self.model.denoise(images, method=method, batch_size=batch_size)

        def forward(x):  # the whole model at its own size, as denoise_any's default runs it
            return self._batched("denoiser", x, batch_size) if len(x) else x.clone()

        return denoise_any(self.model, images, method, batch_size, forward=forward)


def _export_checked(module, reference, inputs, model, name: str, path) -> None:
    """Export `module` to `path` (atomically) after checking it against `reference` on `inputs`."""
    from aekit import io

    from .exporting import OPSET, PARTS, TOLERANCE, ExportError, _export_onnx, _metadata, _run_onnx, difference_from

    path.parent.mkdir(parents=True, exist_ok=True)
    part = name if name in PARTS else "encoder"  # a feature set reads images as the encoder does
    meta = {**_metadata(model, part, "onnx"), "part": name, "opset": str(OPSET)}
    with io.atomic_path(path) as tmp:
        _export_onnx(module, inputs[0], tmp, part, meta)
        worst = difference_from(reference, lambda x: _run_onnx(tmp, x), inputs)
        if not worst <= TOLERANCE:
            raise ExportError(f"{name}: the ONNX graph differs from PyTorch by {worst:.2e}; use --runtime torch")


__all__ = ["FeatureModule", "ModelOnRuntime", "OnnxDecoder", "OnnxDenoiser", "OnnxEncoder", "OnnxFeatures", "RUNTIMES",
           "decoder_for", "encoder_for", "onnx_available", "resolve_runtime", "runtime_option"]
