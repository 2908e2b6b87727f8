"""What commands share, core and plugins alike: the ``--model`` option and loading the model it names,
``--device``, the checks of output paths made before any work, and the listing of skipped inputs.

Below the CLI (``aekit.cli`` imports from here, never the other way) and below the trainer, which lists
the images it skipped with ``skipped_lines``.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from .devices import resolve_device
from .errors import ENCODER_ONLY_MESSAGE, AekitError, DeviceError, NoDecoderError
from .io import check_writable
from .loading import load
from .pretrained import resolve_model
from .text import printable

__all__ = ["check_output_folder", "check_output_path", "cli_device", "echo_skipped", "file_above", "finish_skipped",
           "load_model_arg", "model_option", "nothing_read", "refuse_existing_output", "skipped_lines"]


# --- the model and the device -----------------------------------------------------------------------


def model_option(function=None, *, task: str = "codec"):
    """``--model NAME_OR_DIR`` for commands; ``@model_option`` or ``@model_option(task="denoise")`` (a task of
    ``aekit.pretrained.TASKS``: which default model the command uses)."""
    default = {"denoise": "the pretrained denoiser", "features": "the pretrained feature extractor (or the codec when "
               "none is installed)", "compress": "the pretrained bitstream codec (or the faces codec's latents when none is "
               "installed)"}.get(task, "the pretrained faces codec")

    def decorate(command_function):
        return click.option("--model", "-m", "model_path", metavar="NAME_OR_DIR", default=None,
                            help=f"A pretrained model's name (`aekit models`), checkpoint folder, Hugging Face hub id "
                                 f"(USER/REPO, or hf:USER/REPO) or `latest` (the most recent `aekit train` run); a "
                                 f"name means the pretrained model even beside a folder of that name: write such a "
                                 f"folder as ./NAME. Default: your `aekit models default`, else {default}.")(command_function)

    return decorate(function) if function is not None else decorate


def load_model_arg(model_path, device: str = "cpu", task: str = "codec"):
    """Load the model a command was given (or the default for its task), saying on stderr which one."""
    choice = resolve_model(model_path, task)
    click.echo(choice.describe(), err=True)
    if choice.note:
        click.echo(choice.note, err=True)
    model = load(choice.spec, device=device)
    if getattr(model, "encoder_only", False) and task != "features":
        raise NoDecoderError(f"{choice.spec}: {ENCODER_ONLY_MESSAGE}")  # before any work, not at the first decode
    return model


def cli_device(name: str):
    """``--device`` resolved by the one core rule; a bad value is a usage error (exit status 2)."""
    try:
        return resolve_device(name)
    except DeviceError as exc:
        raise click.UsageError(str(exc)) from None


# --- outputs, checked before any work ---------------------------------------------------------------


def check_output_path(path, option: str = "--out", suffixes: tuple[str, ...] = ()) -> Path:
    """An output file path whose folder exists, which is not a folder itself, and which can be written (and, given
    `suffixes`, ends in one of them): checked before any work, so that a bad output never costs a run or leaves
    half the outputs behind."""
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise click.BadParameter(f"{path}: must end in {' or '.join(suffixes)}", param_hint=option)
    if path.is_dir():
        raise click.UsageError(f"{option} {path}: is a folder; give a file name")
    _refuse_a_file_above(path, option)
    if not path.parent.is_dir():
        raise AekitError(f"{option} {path}: folder {path.parent} does not exist")
    check_writable(path)
    return path


def check_output_folder(path, option: str = "--out") -> Path:
    """An output folder (made later when missing) that is no file and lies in no file: checked before any work."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise click.BadParameter(f"{path}: is a file; give a folder", param_hint=option)
    _refuse_a_file_above(path, option)
    return path


def file_above(path) -> Path | None:
    """The nearest existing one of `path`'s parents when it is a file (so no folder can be there), else None."""
    for parent in Path(path).parents:
        if parent.is_dir():
            return None
        if parent.exists():
            return parent
    return None


def refuse_existing_output(path, overwrite: bool, option: str = "--out") -> None:
    """AekitError before any work when an output file exists and --overwrite was not given."""
    if not overwrite and os.path.lexists(path):  # lexists: a link is replaced too
        raise AekitError(f"{path}: already exists; add --overwrite to replace it or choose another {option}")


def _refuse_a_file_above(path: Path, option: str) -> None:
    # else the error would be "folder does not exist" or, after the work, "Not a directory"
    blocking = file_above(path)
    if blocking is not None:
        raise AekitError(f"{option} {path}: {blocking} is a file, not a folder; choose another {option}")


# --- inputs that were skipped -----------------------------------------------------------------------


def skipped_lines(skipped: list[str], shown: int = 20, count: bool = True) -> list[str]:
    """The listing of skipped inputs: one ``skipped:`` line each (the first `shown`), then (with `count`) how many;
    control characters in the messages (file names) are escaped, so a name cannot forge a line."""
    lines = [f"skipped: {printable(message)}" for message in skipped[:shown]]
    if len(skipped) > shown:
        lines.append(f"skipped: ... and {len(skipped) - shown} more")
    if skipped and count:
        lines.append(f"{len(skipped)} file(s) skipped")
    return lines


def echo_skipped(skipped: list[str], shown: int = 20) -> None:
    """List skipped inputs on stderr (``skipped_lines``)."""
    for line in skipped_lines(skipped, shown):
        click.echo(line, err=True)


def nothing_read(skipped: list[str]) -> AekitError:
    """The error of a batch command none of whose inputs could be read, naming the first problem."""
    first = f" (first problem: {skipped[0]})" if skipped else ""
    return AekitError(f"none of the {len(skipped)} input image(s) could be read{first}; nothing written")


def finish_skipped(skipped: list[str], done: int) -> None:
    """After a batch: list the skipped inputs, or, when none was done, fail saying why (a single bad
    input's reason once, in the error line alone)."""
    if done == 0:
        if len(skipped) > 1:
            echo_skipped(skipped)
        raise nothing_read(skipped)
    echo_skipped(skipped)
