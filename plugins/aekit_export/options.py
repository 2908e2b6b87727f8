"""The ``--runtime`` option, without importing torch (commands are declared when the CLI starts)."""

from __future__ import annotations

RUNTIMES = ("auto", "torch", "onnx", "onnx-int8")
ONNX_RUNTIMES = ("onnx", "onnx-int8")  # the runtimes ONNX Runtime runs


INT8_GAIN = ("faces-64's encoder about 1.9x and its decoder 2x as fast as onnx on a CPU with VNNI, 0.01 dB PSNR lost; "
             "7-bit weights, right on any x86 CPU")


def runtime_option(what: str, int8_gain: str = INT8_GAIN):
    """``--runtime auto|torch|onnx|onnx-int8`` for a command; `what` names what it runs (e.g. "the encoder"),
    `int8_gain` what onnx-int8 buys there (measured: benchmarks/int8_runtime.py, benchmarks/cpu_jobs.py)."""
    import click

    return click.option("--runtime", type=click.Choice(RUNTIMES), default="auto", show_default=True,
                        help=f"What runs {what}: ONNX Runtime (auto: on a CPU when `aekit[onnx]` is installed; "
                             f"the same outputs within 1e-4), its int8-quantised graphs (onnx-int8: {int8_gain}) "
                             "or PyTorch.")
