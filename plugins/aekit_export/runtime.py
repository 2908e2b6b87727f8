"""ONNX Runtime as a runtime: a model's parts run by onnxruntime, each exported once into the cache.

``runtime="auto"`` picks ONNX Runtime on a CPU when onnxruntime is installed (with faces-64 on 2 cores,
``aekit embed`` ran 1.07x, ``compress`` 1.41x and ``denoise`` 2.05x as fast as with PyTorch,
``benchmarks/cpu_jobs.py``), PyTorch otherwise and on CUDA. Each exported graph (``features-<set>``, ``encoder``, ``decoder``, ``denoiser``: the whole
model) is kept in ``$AEKIT_HOME/onnx/<model id>/<name>.onnx`` and is checked against PyTorch (within
1e-4 of the outputs' scale) when it is made; a graph that disagrees is never used. ``runtime="onnx-int8"``
(never chosen by auto) runs ``<name>-int8.onnx``, quantised from it (``int8``: calibrated on synthetic
faces, checked on others). ``ModelOnRuntime`` gives a model's ``encode``, ``decode``, ``reconstruct`` and
``denoise`` on the runtime chosen.
"""

from __future__ import annotations

import numpy as np
import torch

from aekit.errors import AekitError

from .options import ONNX_RUNTIMES, RUNTIMES, runtime_option  # noqa: F401  (re-exported)


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
    """"torch", "onnx" or "onnx-int8" for `runtime` (one of RUNTIMES) on `device`; an AekitError if impossible."""
    if runtime not in RUNTIMES:
        raise AekitError(f"unknown runtime {runtime!r} (runtimes: {', '.join(RUNTIMES)})")
    on_cpu = torch.device(device).type == "cpu"
    if runtime == "auto":
        return "onnx" if on_cpu and onnx_available() else "torch"
    if runtime in ONNX_RUNTIMES:
        if not on_cpu:
            raise AekitError(f"--runtime {runtime} runs on the CPU; use --device cpu, or --runtime torch on CUDA")
        if not onnx_available():
            raise AekitError(f"--runtime {runtime} needs the onnx extra: pip install 'aekit[onnx]' (onnx and onnxruntime)")
    return runtime


class _CachedGraph:
    """A module of `model` run by ONNX Runtime from ``$AEKIT_HOME/onnx/<model id>/<name>.onnx``, exported on
    first use (never before: a run that computes nothing exports nothing) and checked against PyTorch;
    with `int8`, from ``<name>-int8.onnx``, quantised from that graph (``int8.quantise``) and checked too."""

    def __init__(self, model, name: str, int8: bool = False):
        from aekit import model_fingerprint
        from aekit.paths import aekit_home

        self.model, self.name, self.int8 = model, name, int8
        self.fp32_path = aekit_home() / "onnx" / model_fingerprint(model) / f"{name}.onnx"
        self.path = self.fp32_path.with_name(f"{name}-int8.onnx") if int8 else self.fp32_path
        self.session = None

    def modules(self):  # (the module to export, the reference it must match, example inputs)
        raise NotImplementedError

    def face_inputs(self, count: int, seed: int) -> torch.Tensor:
        """The graph's input for `count` synthetic faces (what int8 graphs are calibrated and checked on)."""
        from aekit.pixels import images_to_tensor
        from aekit.synthetic import make_faces

        return images_to_tensor(make_faces(count, seed=seed, size=self.model.config.image_size)[0])

    def run(self, x: np.ndarray) -> np.ndarray:
        """The graph's output for float32 input `x` (images (N, 3, S, S) in [-1, 1], or latents)."""
        if self.session is None:
            self._start()
        x = np.ascontiguousarray(x, dtype=np.float32)
        return self.session.run(None, {self.input_name: x})[0].astype(np.float32, copy=False)

    def _start(self):
        import onnxruntime

        if not self.path.is_file():
            module, reference, inputs = self.modules()
            if not self.fp32_path.is_file():
                _export_checked(module, reference, inputs, self.model, self.name, self.fp32_path)
            if self.int8:
                _quantise_checked(self, reference)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # what PyTorch would use: the same cores
        self.session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name


class OnnxFeatures(_CachedGraph):
    """uint8 (N, S, S, 3) images -> float32 features of set `kind`, computed by ONNX Runtime."""

    def __init__(self, model, kind: str = "latent", int8: bool = False):
        super().__init__(model, f"features-{kind}", int8)
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

    def __init__(self, model, int8: bool = False):
        super().__init__(model, "decoder", int8)

    def modules(self):
        from aekit.inference import inference_copy

        g = torch.Generator().manual_seed(0)
        inputs = [torch.randn(n, self.model.config.latent_dim, generator=g) for n in (3, 1)]
        return inference_copy(self.model.cpu()).decoder.eval(), self.model.decoder, inputs

    def face_inputs(self, count: int, seed: int) -> torch.Tensor:
        """The latents of `count` synthetic faces."""
        return self.model.encode(super().face_inputs(count, seed))

    def decode(self, latents) -> torch.Tensor:
        """Like ``model.decode``: a float tensor of images in [-1, 1]."""
        return torch.from_numpy(self.run(np.asarray(latents, dtype=np.float32)))


class OnnxEncoder(_CachedGraph):
    """images (N, 3, S, S) in [-1, 1] -> latents (N, latent_dim), computed by ONNX Runtime."""

    def __init__(self, model, int8: bool = False):
        super().__init__(model, "encoder", int8)

    def modules(self):
        from aekit.inference import inference_copy

        return inference_copy(self.model.cpu()).encoder.eval(), self.model.encoder, _random_images(self.model)


class OnnxDenoiser(_CachedGraph):
    """images (N, 3, S, S) in [-1, 1] -> the whole model's output (a denoiser's, or a codec's reconstruction)."""

    def __init__(self, model, int8: bool = False):
        super().__init__(model, "denoiser", int8)

    def modules(self):
        from aekit.inference import inference_copy

        return inference_copy(self.model.cpu()).eval(), self.model, _random_images(self.model)

    def face_inputs(self, count: int, seed: int) -> torch.Tensor:
        """Synthetic faces, every other one with Gaussian noise (sigma 0.1 of the [0, 1] scale): what a denoiser sees."""
        faces = super().face_inputs(count, seed)
        noise = torch.randn(faces.shape, generator=torch.Generator().manual_seed(seed)) * 0.2  # 0.1 of [0, 1] is 0.2 of [-1, 1]
        noise[1::2] = 0
        return (faces + noise).clamp(-1, 1)


def _random_images(model) -> list[torch.Tensor]:
    size, g = model.config.image_size, torch.Generator().manual_seed(0)
    return [torch.rand(n, 3, size, size, generator=g) * 2 - 1 for n in (3, 1)]


class ModelOnRuntime:
    """`model`'s ``encode``, ``decode``, ``reconstruct`` and ``denoise`` (same arguments, same results within
    1e-4; within int8's error for "onnx-int8"), computed by the runtime `runtime` resolves to: ONNX Runtime's
    graphs (each exported on first use) or the model itself. ``name`` is that runtime: "onnx", "onnx-int8" or
    "torch"."""

    def __init__(self, model, runtime: str = "auto"):
        self.model = model
        self.name = resolve_runtime(runtime, next(model.parameters()).device)
        self._graphs: dict[str, _CachedGraph] = {}

    def _graph(self, kind: str) -> _CachedGraph:
        if kind not in self._graphs:
            graph = {"encoder": OnnxEncoder, "decoder": OnnxDecoder, "denoiser": OnnxDenoiser}[kind]
            self._graphs[kind] = graph(self.model, int8=self.name == "onnx-int8")
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


def _quantise_checked(graph: _CachedGraph, reference) -> None:
    """Write `graph`'s int8 file (atomically) from its fp32 one, after checking it against `reference` on other faces."""
    from aekit import io

    from . import int8
    from .exporting import ExportError, _run_onnx

    calibration, check = graph.face_inputs(int8.CALIBRATION_FACES, seed=0), graph.face_inputs(int8.CHECK_FACES, seed=1)
    with io.atomic_path(graph.path) as tmp:
        int8.quantise(graph.fp32_path, tmp, calibration.numpy())
        worst = int8.rms_difference(lambda x: _run_onnx(tmp, x), reference, check)
        if not worst <= int8.TOLERANCE:
            raise ExportError(f"{graph.name}: the int8 graph differs from PyTorch by {worst:.2e} (RMS, of the output's "
                              f"scale; more than {int8.TOLERANCE:g}); use --runtime onnx")


__all__ = ["FeatureModule", "ModelOnRuntime", "OnnxDecoder", "OnnxDenoiser", "OnnxEncoder", "OnnxFeatures", "RUNTIMES",
           "decoder_for", "encoder_for", "onnx_available", "resolve_runtime", "runtime_option"]
