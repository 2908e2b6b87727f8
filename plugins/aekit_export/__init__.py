"""``aekit export``: a model's encoder, decoder or whole denoiser as ONNX or TorchScript files.

See ``exporting`` for what is exported and how it is checked; ``aekit export --help`` for the command.
The runtime that other commands' ``--runtime onnx|onnx-int8`` runs is the core's: ``aekit.runtime``.
"""

from __future__ import annotations

import click

from aekit import hookimpl
from aekit.command_tools import check_output_folder, load_model_arg, model_option

from .exporting import FORMATS, PARTS, ExportError, export, parts_of, require_onnx

__all__ = ["ExportError", "export", "export_command", "parts_of"]


@click.command("export")
@model_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="onnx", show_default=True,
              help="onnx (needs `pip install 'aekit[onnx]'`) or torchscript.")
@click.option("--part", type=click.Choice([*PARTS, "all"]), default="all", show_default=True,
              help="encoder (images -> latents), decoder (latents -> images), denoiser (the whole model) or all "
                   "that the model has.")
@click.option("--out", "-o", "out_dir", required=True, type=click.Path(), metavar="DIR",
              help="Folder for PART.onnx / PART.pt and export.json (made if missing).")
def export_command(model_path, fmt, part, out_dir):
    """Export a model's parts to ONNX or TorchScript, each checked against PyTorch.

    BatchNorm is folded into the convolutions, the batch dimension is dynamic, and every file must give
    PyTorch's outputs within 1e-4 on random and face inputs, or nothing is written. The files carry the
    aekit model id, the opset (ONNX) and the input/output ranges in their metadata.

    \b
    Examples:
      aekit export --model faces-64 --out exported/            # encoder.onnx, decoder.onnx, denoiser.onnx
      aekit export --model faces-64-denoise --part denoiser --out denoiser/
      aekit export --model runs/synth --format torchscript --part encoder --out ts/
    """
    from aekit.io import check_writable
    from aekit.synthetic import make_faces

    out = check_output_folder(out_dir)  # a file at or above --out: one line before the model is loaded
    check_writable(out / "export.json")
    if fmt == "onnx":
        require_onnx()  # before loading the model: the missing extra is the whole answer
    model = load_model_arg(model_path, device="cpu")
    parts_of(model, part)  # a part this model lacks fails before any file is made
    faces = make_faces(4, seed=0, size=model.config.image_size)[0]  # face inputs for the check, offline
    export(model, fmt, part, out, faces, log=lambda message: click.echo(message))


@hookimpl
def register_commands(register):
    register(export_command)
