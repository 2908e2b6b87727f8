"""int8 graphs for ``--runtime onnx-int8``: an exported fp32 graph statically quantised by onnxruntime.

Convolutions and their activations run in int8: weights signed and per output channel, activations
unsigned (U8S8, the layout ONNX Runtime's x86 kernels are fastest with), in ONNX Runtime's QOperator
format. Fully connected layers (Gemm, MatMul) stay in float: they read or write the latent, whose range
a calibration on other faces would clip, and cost little. The activations' ranges are calibrated
(min-max) on ``CALIBRATION_FACES`` synthetic faces (``aekit.synthetic``: offline and the same on every
machine), a decoder's on those faces' latents, a denoiser's on them with and without noise. On
``faces-64`` and celeba-10k's test faces this costs 0.014 dB of PSNR and no linear-probe accuracy
(0.8589 against 0.8590), and runs the encoder 1.71x and the decoder 1.97x as fast as fp32 ONNX Runtime
on 2 cores with AVX-512 VNNI (``benchmarks/int8_runtime.py``). Quantising every layer instead costs
0.21 dB; ONNX Runtime's default layout (QDQ, int8 activations) and dynamic quantisation are slower than fp32.

An int8 graph cannot match PyTorch within 1e-4; it is checked on other synthetic faces instead: the
RMS of its difference from PyTorch's output must stay within ``TOLERANCE`` of the output's scale.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path

import numpy as np

CALIBRATION_FACES = 256
CHECK_FACES = 32
FLOAT_OPS = ("Gemm", "MatMul")
TOLERANCE = 0.02  # RMS difference from PyTorch, as a share of the output's scale (at least 1)


def quantise(fp32_path, out_path, calibration: np.ndarray) -> None:
    """Write the int8 graph of the fp32 ONNX graph `fp32_path` to `out_path`, calibrated on the inputs `calibration`."""
    import onnx
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
                        op_types_to_quantize=quantised_ops, calibrate_method=CalibrationMethod.MinMax)


@contextlib.contextmanager
def _without_warnings():
    """onnxruntime.quantization logs a warning on the root logger for every node it leaves in float: not for a user."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def rms_difference(run, reference, x) -> float:
    """RMS of ``run(x) - reference(x)`` as a share of the reference output's scale (at least 1)."""
    import torch

    with torch.inference_mode():
        expected = reference(x).numpy()
    scale = max(float(np.abs(expected).max()), 1.0)
    return float(np.sqrt(np.mean((run(x) - expected) ** 2))) / scale
