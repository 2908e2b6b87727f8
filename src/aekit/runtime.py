"""ONNX Runtime as a runtime: a model's parts run by onnxruntime, each exported once into the cache.

``runtime="auto"`` picks ONNX Runtime on a CPU when onnxruntime is installed (with faces-64 on 2 cores,
``aekit embed`` ran 1.07x, ``compress`` 1.41x and ``denoise`` 2.05x as fast as with PyTorch,
``benchmarks/cpu_jobs.py``), PyTorch otherwise and on CUDA. Each exported graph (``features-<set>``, ``encoder``, ``decoder``, ``denoiser``: the whole
model, or ``denoiser-level`` for a model told the noise level, which takes it as a fourth channel) is kept in ``$AEKIT_HOME/onnx/<model id>/<name>.onnx`` and is checked against PyTorch (within
1e-4 of the outputs' scale) when it is made; a graph that disagrees is never used. ``runtime="onnx-int8"``
(never chosen by auto) runs ``<name>-int8w7.onnx``, quantised from it (``aekit.onnx_int8``: 7-bit weights, calibrated
on synthetic faces, checked on others on the CPU at hand; a graph that fails the check is refused in one
line, and the refusal is remembered in ``<name>-int8w7.refused`` for that CPU and ONNX Runtime). When the
cache cannot be written (a read-only or full ``$AEKIT_HOME``), the graphs are made in a temporary folder
for this process instead, with one warning line. ``ModelOnRuntime`` gives a model's ``encode``, ``decode``, ``reconstruct`` and
``denoise`` on the runtime chosen; ``runtime_option`` is the ``--runtime`` option of the commands that run a model.

The graphs are exported by ``aekit.onnx_export`` and quantised by ``aekit.onnx_int8``; onnx and onnxruntime
(the optional ``aekit[onnx]`` extra) are imported only inside the functions that use them.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import click
import numpy as np
import torch

from . import feature_sets, io, onnx_export, onnx_int8
from .checkpoint import model_fingerprint
from .denoising import denoise_any, estimate_noise_sigma
from .errors import AekitError
from .inference import inference_copy
from .model import as_model_input
from .onnx_export import ExportError
from .paths import aekit_home
from .pixels import images_to_tensor, to_signed
from .synthetic import make_faces

RUNTIMES = ("auto", "torch", "onnx", "onnx-int8")
ONNX_RUNTIMES = ("onnx", "onnx-int8")  # the runtimes ONNX Runtime runs

INT8_GAIN = ("faces-64's encoder about 1.9x and its decoder 2x as fast as onnx on a CPU with VNNI, 0.01 dB PSNR lost; "
             "7-bit weights, right on any x86 CPU")


def runtime_option(what: str, int8_gain: str = INT8_GAIN):
    """``--runtime auto|torch|onnx|onnx-int8`` for a command; `what` names what it runs (e.g. "the encoder"),
    `int8_gain` what onnx-int8 buys there (measured: benchmarks/int8_runtime.py, benchmarks/cpu_jobs.py)."""
    return click.option("--runtime", type=click.Choice(RUNTIMES), default="auto", show_default=True,
                        help=f"What runs {what}: ONNX Runtime (auto: on a CPU when `aekit[onnx]` is installed; "
                             f"the same outputs within 1e-4), its int8-quantised graphs (onnx-int8: {int8_gain}) "
                             "or PyTorch.")


class FeatureModule(torch.nn.Module):
    """images (N, 3, S, S) in [-1, 1] -> feature set `kind`, as one traceable module."""

    def __init__(self, model, kind: str):
        super().__init__()
        self.model, self.function = model, feature_sets.get(kind)

    def forward(self, x):
        maps, latent = feature_sets.encoder_maps(self.model, x)
        return self.function(maps, latent)


def decoder_for(model, runtime: str):
    """``model.decode``, or the same computed by ONNX Runtime when `runtime` resolves to it."""
    return ModelOnRuntime(model, runtime).decode


def encoder_for(model, runtime: str):
    """``model.encode``, or the same computed by ONNX Runtime when `runtime` resolves to it."""
    return ModelOnRuntime(model, runtime).encode


def onnx_available() -> bool:
    """Whether the onnx extra (onnx and onnxruntime, optional) is installed."""
    try:
        import onnx  # noqa: F401  (optional: the onnx extra)
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
    with `int8`, from ``<name>-int8w7.onnx``, quantised from that graph (``onnx_int8.quantise``) and checked too."""

    def __init__(self, model, name: str, int8: bool = False):
        self.model, self.name, self.int8 = model, name, int8
        self._place(aekit_home() / "onnx" / model_fingerprint(model))
        self.session = None

    def _place(self, folder: Path) -> None:
        self.fp32_path = folder / f"{self.name}.onnx"
        self.path = folder / f"{self.name}-{INT8_TAG}.onnx" if self.int8 else self.fp32_path
        self.refusal_path = folder / f"{self.name}-{INT8_TAG}.refused"

    def modules(self):  # (the module to export, the reference it must match, example inputs)
        raise NotImplementedError

    def _make(self) -> None:
        module, reference, inputs = self.modules()
        if _verified(self.fp32_path, warn=self.int8) is None:
            _export_checked(module, reference, inputs, self.model, self.name, self.fp32_path)
            _record_digest(self.fp32_path)
        if self.int8:
            _quantise_checked(self, reference)
            _record_digest(self.path)

    def face_inputs(self, count: int, seed: int) -> torch.Tensor:
        """The graph's input for `count` synthetic faces (what int8 graphs are calibrated and checked on)."""
        return images_to_tensor(make_faces(count, seed=seed, size=self.model.config.image_size)[0])

    def run(self, x: np.ndarray) -> np.ndarray:
        """The graph's output for float32 input `x` (images (N, 3, S, S) in [-1, 1], or latents)."""
        if self.session is None:
            self._start()
        x = np.ascontiguousarray(x, dtype=np.float32)
        return self.session.run(None, {self.input_name: x})[0].astype(np.float32, copy=False)

    def start(self) -> None:
        """Export (and quantise) the graph now if it is not cached, and open it: a graph that fails its check
        fails here, before a command writes anything."""
        if self.session is None:
            self._start()

    def _start(self):
        import onnxruntime  # optional (the onnx extra): only when a graph is run

        try:
            graph = self._load_or_make()
        except OSError as exc:
            if not _is_cache_failure(exc, self.fp32_path.parent):
                raise
            self._place(_fallback_folder(exc) / self.fp32_path.parent.name)
            graph = self._load_or_make()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # what PyTorch would use: the same cores
        # the session is made from the bytes whose digest was checked, not from the file again
        self.session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def _load_or_make(self) -> bytes:
        """The graph's bytes, as recorded when it was made; made (again) when absent or not as recorded."""
        graph = _verified(self.path)
        if graph is not None:
            return graph
        with _making(self.fp32_path.parent):
            graph = _verified(self.path, warn=False)  # another process may have made it while we waited
            if graph is None:
                if self.int8:
                    _refuse_if_refused_before(self)
                self._make()
                graph = _verified(self.path, warn=False)
            if graph is None:
                raise ExportError(f"{self.path}: changed while it was being made; try again")
            return graph


class OnnxFeatures(_CachedGraph):
    """uint8 (N, S, S, 3) images -> float32 features of set `kind`, computed by ONNX Runtime."""

    def __init__(self, model, kind: str = "latent", int8: bool = False):
        super().__init__(model, f"features-{kind}", int8)
        self.kind = kind

    def modules(self):
        size, g = self.model.config.image_size, torch.Generator().manual_seed(0)
        inputs = [torch.rand(n, 3, size, size, generator=g) * 2 - 1 for n in (3, 1)]
        return FeatureModule(inference_copy(self.model.cpu()), self.kind).eval(), FeatureModule(self.model, self.kind).eval(), inputs

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Features of uint8 (N, S, S, 3) images."""
        return self.run(to_signed(np.ascontiguousarray(np.asarray(images).transpose(0, 3, 1, 2))).numpy())


class OnnxDecoder(_CachedGraph):
    """latents (N, latent_dim) -> images (N, 3, S, S) in [-1, 1], computed by ONNX Runtime."""

    def __init__(self, model, int8: bool = False):
        super().__init__(model, "decoder", int8)

    def modules(self):
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
        return inference_copy(self.model.cpu()).encoder.eval(), self.model.encoder, _random_images(self.model)


class OnnxDenoiser(_CachedGraph):
    """images (N, 3, S, S) in [-1, 1] -> the whole model's output (a denoiser's, or a codec's reconstruction)."""

    def __init__(self, model, int8: bool = False):
        super().__init__(model, "denoiser", int8)

    def modules(self):
        return inference_copy(self.model.cpu()).eval(), self.model, _random_images(self.model)

    def face_inputs(self, count: int, seed: int) -> torch.Tensor:
        """Synthetic faces, every other one with Gaussian noise (sigma 0.1 of the [0, 1] scale): what a denoiser sees."""
        faces = super().face_inputs(count, seed)
        noise = torch.randn(faces.shape, generator=torch.Generator().manual_seed(seed)) * 0.2  # 0.1 of [0, 1] is 0.2 of [-1, 1]
        noise[1::2] = 0
        return (faces + noise).clamp(-1, 1)


class LevelDenoiser(torch.nn.Module):
    """A noise-level model with the level as a fourth input channel, so that its graph has one input:
    (N, 4, S, S), the images in [-1, 1] and a constant map of each image's sigma (the [0, 1] scale) -> (N, 3, S, S)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x[:, :3], x[:, 3, 0, 0])


def with_level(x: torch.Tensor, level=None) -> torch.Tensor:
    """Images (N, 3, S, S) in [-1, 1] with a fourth channel holding `level` (None: each image's own estimate)."""
    sigma = estimate_noise_sigma(x) if level is None else torch.as_tensor(level, dtype=torch.float32).expand(len(x))
    return torch.cat([x, sigma.reshape(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:]).to(x.dtype)], dim=1)


class OnnxLevelDenoiser(OnnxDenoiser):
    """A noise-level model (``takes_noise_level``): images with their level as a fourth channel (``with_level``)
    -> the denoised images; the level comes from outside, so all tiles of a photo share the photo's."""

    INPUT = "images (N, 4, S, S): 3 channels in [-1, 1], then a constant map of the noise sigma ([0, 1] scale)"

    def __init__(self, model, int8: bool = False):
        _CachedGraph.__init__(self, model, "denoiser-level", int8)

    def modules(self):
        g = torch.Generator().manual_seed(0)
        inputs = [with_level(x, None) for x in _random_images(self.model)]
        inputs[0][:, 3] = torch.rand(len(inputs[0]), 1, 1, generator=g) * 0.3  # levels other than the estimate too
        return LevelDenoiser(inference_copy(self.model.cpu())).eval(), LevelDenoiser(self.model).eval(), inputs

    def face_inputs(self, count: int, seed: int) -> torch.Tensor:
        """`OnnxDenoiser`'s noisy and clean synthetic faces, each with its estimated level."""
        return with_level(super().face_inputs(count, seed))


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
        if self.name == "onnx-int8" and not getattr(model, "quantises_to_int8", True):
            raise AekitError(f"--runtime onnx-int8 is not for this model ({type(model).__name__}): "
                             f"{model.int8_refusal}; use --runtime onnx or torch")
        self._graphs: dict[str, _CachedGraph] = {}

    def prepare(self, *kinds: str) -> "ModelOnRuntime":
        """Make and check the graphs of `kinds` ("encoder", "decoder", "denoiser") now, so that a graph refused
        (an int8 graph off on this CPU) fails before a command writes anything; nothing to do for "torch"."""
        if self.name != "torch":
            for kind in kinds:
                if kind != "decoder" or self.model.decodes_latents:
                    self._graph(kind).start()
        return self

    def _graph(self, kind: str) -> _CachedGraph:
        if kind not in self._graphs:
            denoiser = OnnxLevelDenoiser if getattr(self.model, "takes_noise_level", False) else OnnxDenoiser
            graph = {"encoder": OnnxEncoder, "decoder": OnnxDecoder, "denoiser": denoiser}[kind]
            self._graphs[kind] = graph(self.model, int8=self.name == "onnx-int8")
        return self._graphs[kind]

    def _batched(self, kind: str, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        graph = self._graph(kind)
        outs = [torch.from_numpy(graph.run(x[i : i + batch_size].numpy())) for i in range(0, len(x), batch_size)]
        return torch.cat(outs) if outs else torch.empty(0)

    def encode(self, images, batch_size: int = 256) -> torch.Tensor:
        """Latents of images (as ``model.encode`` takes them)."""
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
        if self.name == "torch":
            return self.model.reconstruct(images, batch_size=batch_size)
        return self._whole_model(as_model_input(images, self.model.config.image_size), batch_size)

    def denoise(self, images, method: str = "auto", batch_size: int = 256, sigma=None):
        """``model.denoise``: images of any size and type, denoised by the whole model's graph (`sigma` as there)."""
        if self.name == "torch":
            return self.model.denoise(images, method=method, batch_size=batch_size, sigma=sigma)

        def forward(x, level=None):  # the whole model at its own size, as denoise_any's default runs it
            return self._whole_model(x, batch_size, level) if len(x) else x.clone()

        return denoise_any(self.model, images, method, batch_size, forward=forward, sigma=sigma)

    def _whole_model(self, x: torch.Tensor, batch_size: int, level=None) -> torch.Tensor:
        """The whole model's graph on images (N, 3, S, S); a noise-level model's at `level` (None: estimated)."""
        if getattr(self.model, "takes_noise_level", False):
            x = with_level(x, level)
        return self._batched("denoiser", x, batch_size)


INT8_TAG = "int8w7"  # int8 graphs' file names: 7-bit weights (files of 8-bit ones, wrong without VNNI, are never read)
_FALLBACK_FOLDER: list[Path] = []  # this process's temporary folder for graphs, once the cache refused one


DIGEST_SUFFIX = ".sha256"  # beside each cached graph: the SHA-256 of the file as it was made and checked


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + DIGEST_SUFFIX)


def _record_digest(path: Path) -> None:
    io.write_text(_digest_path(path), hashlib.sha256(path.read_bytes()).hexdigest() + "\n")


def _verified(path: Path, warn: bool = True) -> bytes | None:
    """The cached graph's bytes when they are what was recorded when it was made and checked against PyTorch;
    None when it is absent, or (with one warning line) changed since or recorded by no one: it is made again."""
    try:
        graph = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        recorded = _digest_path(path).read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        recorded = None
    if recorded == hashlib.sha256(graph).hexdigest():
        return graph
    if warn:
        why = "has no recorded SHA-256" if recorded is None else "does not match the SHA-256 recorded when it was made"
        print(f"warning: the cached ONNX graph {path} {why}; making it again", file=sys.stderr)
    return None


@contextlib.contextmanager
def _making(folder: Path):
    """An exclusive lock on a model's folder of graphs while one is made (another process making the same graph
    waits, then uses it); the temporary files of makers that were killed are removed under it."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "a+") as lock:  # beside the folder, which holds graphs only
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            io.remove_temporaries(folder)
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _is_cache_failure(exc: OSError, folder: Path) -> bool:
    """Whether `exc` is the cache folder refusing a file (read-only, full, a file in the way), not a fault of the model."""
    refusals = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EEXIST}
    if exc.errno in refusals:
        return True
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return not os.access(folder, os.W_OK)


def _fallback_folder(exc: OSError) -> Path:
    """A temporary folder for this process's graphs (removed at exit), with one warning line the first time."""
    if not _FALLBACK_FOLDER:
        _FALLBACK_FOLDER.append(Path(tempfile.mkdtemp(prefix="aekit-onnx-")))
        atexit.register(shutil.rmtree, _FALLBACK_FOLDER[0], True)
        reason = exc.strerror or type(exc).__name__
        print(f"warning: cannot write the ONNX cache in {aekit_home() / 'onnx'} ({reason}); making the graphs in a "
              "temporary folder for this run (set AEKIT_HOME to a writable folder to keep them)", file=sys.stderr)
    return _FALLBACK_FOLDER[0]


def _cpu_signature() -> dict:
    """What an int8 graph's check depends on besides the model: the CPU's int8 instructions and ONNX Runtime."""
    import onnxruntime  # optional (the onnx extra)

    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        pass
    int8_flags = sorted({f for f in flags.split() if "vnni" in f or f in ("avx2", "avx512bw", "amx_int8")})
    return {"machine": platform.machine(), "cpu_int8": int8_flags, "onnxruntime": onnxruntime.__version__}


def _refuse_if_refused_before(graph: _CachedGraph) -> None:
    """Refuse at once (not after another 10 s of quantising) an int8 graph that failed its check on this CPU."""
    try:
        record = json.loads(graph.refusal_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(record, dict) and record.get("cpu") == _cpu_signature() and isinstance(record.get("error"), str):
        raise ExportError(f"{record['error']} (remembered in {graph.refusal_path}; delete it to try again)")


def _export_checked(module, reference, inputs, model, name: str, path) -> None:
    """Export `module` to `path` (atomically) after checking it against `reference` on `inputs`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # a feature set reads images as the encoder does; denoiser-level is the denoiser told the level
    part = name if name in onnx_export.PARTS else "denoiser" if name.startswith("denoiser") else "encoder"
    meta = {**onnx_export.graph_metadata(model, part, "onnx"), "part": name, "opset": str(onnx_export.OPSET)}
    if name == "denoiser-level":
        meta["input"] = OnnxLevelDenoiser.INPUT
    with io.atomic_path(path) as tmp:
        onnx_export.export_onnx(module, inputs[0], tmp, part, meta)
        worst = onnx_export.difference_from(reference, lambda x: onnx_export.run_onnx(tmp, x), inputs)
        # a model may allow more (the codec's synthesis: its inverse GDN amplifies float32's rounding)
        if not worst <= getattr(model, "onnx_tolerance", onnx_export.TOLERANCE):
            raise ExportError(f"{name}: the ONNX graph differs from PyTorch by {worst:.2e}; use --runtime torch")


def _quantise_checked(graph: _CachedGraph, reference) -> None:
    """Write `graph`'s int8 file (atomically) from its fp32 one, after checking it against `reference` on other faces."""
    calibration, check = graph.face_inputs(onnx_int8.CALIBRATION_FACES, seed=0), graph.face_inputs(onnx_int8.CHECK_FACES, seed=1)
    with io.atomic_path(graph.path) as tmp:
        onnx_int8.quantise(graph.fp32_path, tmp, calibration.numpy())
        error = onnx_int8.relative_error(lambda x: onnx_export.run_onnx(tmp, x), reference, check)
        if not onnx_int8.within_tolerance(error):
            message = (f"{graph.name}: the int8 graph is {error[0]:.1%} off PyTorch on this CPU ({error[1]:.1%} on its "
                       f"worst face; allowed {onnx_int8.TOLERANCE:.0%} and {onnx_int8.FACE_TOLERANCE:.0%}); use --runtime onnx")
            try:  # a later run refuses at once instead of quantising again
                io.write_json(graph.refusal_path, {"error": message, "cpu": _cpu_signature()})
            except (OSError, AekitError):
                pass
            raise ExportError(message)


__all__ = ["FeatureModule", "LevelDenoiser", "ModelOnRuntime", "OnnxDecoder", "OnnxDenoiser", "OnnxEncoder", "OnnxFeatures",
           "OnnxLevelDenoiser", "RUNTIMES", "with_level",
           "decoder_for", "encoder_for", "onnx_available", "resolve_runtime", "runtime_option"]
