"""int8 graphs for ``--runtime onnx-int8``: an exported fp32 graph statically quantised by onnxruntime.

Convolutions and their activations run in int8: activations unsigned, weights signed, per output
channel and in 7 bits (``reduce_range``), in ONNX Runtime's QOperator format. Seven bits make the graph
right on every x86 CPU: without AVX-512 VNNI (AVX2 only, or AVX-512 without VNNI) ONNX Runtime's U8S8
kernels multiply with ``VPMADDUBSW``, whose 16-bit pair sums saturate with 8-bit weights (255 x 127 x 2
> 32767) but not with 7-bit ones (at most 64: 255 x 64 x 2 < 32767). Measured on an AVX2-only CPU (QEMU's Haswell model) on 100 synthetic
faces: faces-64's multiscale features 15.9% off fp32 with 8-bit weights, 5.3% with 7 (the same as
with VNNI), and the tiny test models' encoder 22% against 1.9%; with VNNI 7 bits cost nothing
measurable. ONNX Runtime's U8U8 layout gave exactly the 8-bit U8S8 errors. Fully connected layers
(Gemm, MatMul) stay in float: they read or write the latent, whose range a calibration on other faces
would clip, and cost little. The activations' ranges are calibrated (min-max) on ``CALIBRATION_FACES``
synthetic faces (``aekit.synthetic``: offline and the same on every machine), a decoder's on those
faces' latents, a denoiser's on them with and without noise. Speed and quality for faces-64 are in
``benchmarks/int8_runtime.py``'s table; quantising every layer costs 0.2 dB, and ONNX Runtime's default
layout (QDQ, int8 activations) and dynamic quantisation are slower than fp32.

An int8 graph cannot match PyTorch within 1e-4; it is checked on ``CHECK_FACES`` other synthetic faces
on the CPU at hand before it is used (`relative_error`): its error relative to the output's own size,
over all faces (``TOLERANCE``) and on the worst face (``FACE_TOLERANCE``).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

CALIBRATION_FACES = 256
CHECK_FACES = 32
FLOAT_OPS = ("Gemm", "MatMul")
# Relative error ||int8 - fp32|| / ||fp32|| allowed over the check faces, and on any one of them. With 7-bit
# weights the graphs measured stay under 0.055 and 0.11 (faces-64's multiscale features, the noisiest);
# the saturating 8-bit graphs of an AVX2 CPU were at 0.16-0.22 and 0.25-0.34.
TOLERANCE = 0.1
FACE_TOLERANCE = 0.2


def quantise(fp32_path, out_path, calibration: np.ndarray, weight_bits: int = 7) -> None:
    """Write the int8 graph of the fp32 ONNX graph `fp32_path` to `out_path`, calibrated on the inputs `calibration`
    (`weight_bits` 8 only for benchmarks: such a graph is wrong on CPUs without VNNI)."""
    if weight_bits not in (7, 8):
        raise ValueError(f"weight_bits must be 7 or 8, got {weight_bits}")
    import onnx  # optional (the onnx extra) and slow to import: only when a graph is quantised
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self, name: str, batch: int = 32):
            self.batches = iter([{name: calibration[i : i + batch]} for i in range(0, len(calibration), batch)])

        def get_next(self):
            return next(self.batches, None)

    calibration = np.ascontiguousarray(calibration, dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="aekit-int8-") as folder, _without_warnings():
        prepared = Path(folder) / "prepared.onnx"
        # ONNX Runtime's advice before quantising: shape inference and graph optimisation (its symbolic
        # shape inference cannot follow a decoder's Reshape of a dynamic batch; ONNX's own can)
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared)).graph
        quantised_ops = sorted({node.op_type for node in graph.node} - set(FLOAT_OPS))
        quantize_static(str(prepared), str(out_path), Batches(graph.input[0].name), quant_format=QuantFormat.QOperator,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=quantised_ops, calibrate_method=CalibrationMethod.MinMax,
                        reduce_range=weight_bits == 7)  # 7-bit weights: no saturation without VNNI (see above)


@contextlib.contextmanager
def _without_warnings():
    """onnxruntime.quantization logs a warning on the root logger for every node it leaves in float: not for a user."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def relative_error(run, reference, x) -> tuple[float, float]:
    """How far ``run(x)`` is from ``reference(x)``, relative to the reference's own size: (over all of `x`, on its
    worst item), each ``||run - reference|| / ||reference||``. Unlike an error measured against the output's
    largest value, a 26% error on features of small values cannot hide under it."""
    with torch.inference_mode():
        expected = reference(x).numpy().astype(np.float64)
    got = np.asarray(run(x), dtype=np.float64)
    if got.shape != expected.shape:
        return float("inf"), float("inf")
    difference = (got - expected).reshape(len(got), -1)
    size = expected.reshape(len(expected), -1)
    tiny = np.finfo(np.float32).tiny  # an all-zero output (a dead channel) counts as absolute error
    overall = float(np.linalg.norm(difference) / max(np.linalg.norm(size), tiny))
    per_item = np.linalg.norm(difference, axis=1) / np.maximum(np.linalg.norm(size, axis=1), tiny)
    worst = float(per_item.max()) if len(per_item) else 0.0
    return (overall, worst) if np.isfinite(got).all() else (float("inf"), float("inf"))


def within_tolerance(error: tuple[float, float]) -> bool:
    """Whether `relative_error`'s (overall, worst item) is good enough to use the int8 graph."""
    return error[0] <= TOLERANCE and error[1] <= FACE_TOLERANCE
