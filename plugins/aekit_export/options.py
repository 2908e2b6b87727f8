"""The ``--runtime`` option, without importing torch (commands are declared when the CLI starts)."""

from __future__ import annotations

RUNTIMES = ("auto", "torch", "onnx")


def runtime_option(what: str):
    """``--runtime auto|torch|onnx`` for a command; `what` names what it runs (e.g. "the encoder")."""
    import click

    return click.option("--runtime", type=click.Choice(RUNTIMES), default="auto", show_default=True,
                        help=f"What runs {what}: ONNX Runtime (auto: on a CPU when `aekit[onnx]` is installed; "
                             "the same outputs within 1e-4) or PyTorch.")
