"""The ``--runtime`` option, without importing torch (commands are declared when the CLI starts)."""

from __future__ import annotations

RUNTIMES = ("auto", "torch", "onnx", "onnx-int8")
ONNX_RUNTIMES = ("onnx", "onnx-int8")  # the runtimes ONNX Runtime runs


def runtime_option(what: str):
    """``--runtime auto|torch|onnx|onnx-int8`` for a command; `what` names what it runs (e.g. "the encoder")."""
    import click

    return click.option("--runtime", type=click.Choice(RUNTIMES), default="auto", show_default=True,
                        help=f"What runs {what}: ONNX Runtime (auto: on a CPU when `aekit[onnx]` is installed; "
                             "the same outputs within 1e-4), its int8-quantised graphs (onnx-int8: about 1.7x as fast "
                             "on a CPU; faces-64 loses 0.01 dB PSNR) or PyTorch.")
