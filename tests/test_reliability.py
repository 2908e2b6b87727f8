"""Every command against bad input: the bad-input matrix, and the meta-tests that keep it complete.

``MATRIX`` maps every command aekit has (the registry's, and a group's sub-commands such as
``models default``) to the bad inputs tried on it, by kind: images, image arrays, latent files,
checkpoints, the priors and directions fitted beside them ("sidecars"), and features files (made at
test time by corpus.py), option values, output paths, source
names that collide once made into file names, images whose size is the problem (thin and huge PNGs for
denoise), and, for the commands that read many files, a batch with bad files among good ones. Each bad input must
give exactly one ``Error:`` line naming the file and the problem, exit status 1 or 2 (2: a usage
error), no traceback (``--debug`` shows one), and no new file anywhere (no partial output, no
temporary ``.*.tmp``); a batch skips and lists its bad files and still writes the good results.

The meta-tests, in tests/test_docs.py, fail when a registered command has no row in the matrix (so a new
command fails until it is covered), when a row is run by no test, and when a command's ``--help`` shows no example.
Commands that misbehave today are marked in ``KNOWN_PROBLEMS`` (strict xfail: fixing one fails the
test until its mark is removed).

"Unsupported" means a file Pillow cannot decode (an SVG or a PDF named like an image). Pillow decodes
by content, so a valid TIFF, ICO or TGA named ``.png`` is read, not refused: those are in the corpus of
edge inputs that must be accepted, with the image modes, EXIF rotation, a 1x1 image and a file name
that is not UTF-8.

How many bad inputs each command is tried with: ``python tests/test_reliability.py``, or
``python -m pytest tests/test_docs.py -q -rA -k counts`` (the table is in the captured output).
"""

from __future__ import annotations

import io as _io
import json
import os
import shutil
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import click
import numpy as np
import pytest
import torch
from PIL import Image

import aekit
import aekit.plugins
from aekit.cli import cli
from aekit.synthetic import make_faces
from corpus import (ACCEPTED_IMAGES, BAD_ARRAYS, BAD_CHECKPOINTS, BAD_FEATURES, BAD_IMAGES, BAD_LATENTS, COLLIDING_NAMES, LAT, apply, encoded,
                    face, faces, listed_once, mixed_folder, root_reason, save_npz, write)
from corpus import SIZED_IMAGES
from corpus import BAD_SIDECARS
from helpers import TINY, TINY_CLI, error_line, run_cli, stray_temporaries

ROOT = Path(__file__).resolve().parents[1]


# --- what each command is run with: good inputs, and the bad one in its place ----------------------------------


@dataclass
class Given:
    """A command's inputs: the shared good ones, with the bad one put in its place."""

    tmp: Path  # outputs go here
    model: Path
    image: Path
    other: Path  # a second good image
    data: Any  # a --data source; None: the command's own default
    latents: Path
    feats: Path


BASE_ARGS: dict[str, Callable[[Given], list]] = {
    "train": lambda g: ["train", "--data", g.data or "synthetic:8", "--epochs", "1", "--batch-size", "2", "--quiet",
                        "--sample-every", "0", "--out", g.tmp / "run", *TINY_CLI],
    "fit-prior": lambda g: ["fit-prior", "-m", g.model, "--data", g.data or g.image.parent, "-q"],
    "compress": lambda g: ["compress", g.image, "-m", g.model, "-o", g.tmp / "out.npz", "-q"],
    "decompress": lambda g: ["decompress", g.latents, "-m", g.model, "-o", g.tmp / "restored", "-q"],
    "interpolate": lambda g: ["interpolate", g.image, g.other, "-m", g.model, "--out", g.tmp / "strip.png"],
    "generate": lambda g: ["generate", "-m", g.model, "--out", g.tmp / "grid.png", "--sampler", "normal", "--seed", "1"],
    "info": lambda g: ["info", g.model],
    "embed": lambda g: ["embed", g.image, "-m", g.model, "-o", g.tmp / "feats.npz", "-q"],
    "latent-stats": lambda g: ["latent-stats", g.image, "-m", g.model],
    "noise": lambda g: ["noise", g.image, "-k", "gaussian:0.1", "-o", g.tmp / "noisy.png", "-q"],
    "denoise": lambda g: ["denoise", g.image, "-m", g.model, "-o", g.tmp / "clean.png", "-q"],
    "eval": lambda g: ["eval", "-m", g.model, "--data", g.data or "synthetic:8:1", "-o", g.tmp / "report", "-q"],
    "classify": lambda g: ["classify", g.feats, "--label", "Male", "--no-pixels", "--cv", "2", "-q"],
    "cluster": lambda g: ["cluster", g.feats, "--k", "2", "-o", g.tmp / "clusters.csv"],
    "umap": lambda g: ["umap", g.feats, "-o", g.tmp / "umap.png", "-q"],
    "export": lambda g: ["export", "-m", g.model, "--format", "torchscript", "--part", "encoder", "--out", g.tmp / "exported"],
    "similar": lambda g: ["similar", g.image, "--index", g.feats, "-m", g.model, "--k", "2", "-o", g.tmp / "nb.png"],
    "directions": lambda g: ["directions", "list", "-m", g.model],
    "directions fit": lambda g: ["directions", "fit", "-m", g.model, "--data", g.data or g.image.parent, "-q"],
    "directions list": lambda g: ["directions", "list", "-m", g.model],
    "edit": lambda g: ["edit", g.image, "-m", g.model, "--add", "pc1=1", "--out", g.tmp / "edited.png"],
    "models": lambda g: ["models"],
    "models default": lambda g: ["models", "default", g.model],
    "models package": lambda g: ["models", "package", g.model, "--name", "tiny", "--task", "codec", "--out", g.tmp / "pkg" / "tiny"],
    "plugins": lambda g: ["plugins"],
    # with --model the demo trains nothing: a bad input that slipped through would cost seconds, not minutes
    "demo": lambda g: ["demo", "--out", g.tmp / "demo", "--quick", "-q", "--model", g.model, "--parts", "compress"],
    # --check loads and checks everything, then exits: a bad input that slipped through never starts a server
    "serve": lambda g: ["serve", "-m", g.model, "--features", g.feats, "--denoiser", "none", "--port", "0", "--check"],
}


def command_args(command: str, shared: dict, tmp: Path, **bad) -> list:
    """`command`'s arguments with the good inputs of `shared`, except those given in `bad` (image=, data=, ...)."""
    given = Given(tmp, shared["model"], shared["good"][0], shared["good"][1], None, shared["latents"], shared["feats"])
    return BASE_ARGS[command](replace(given, **bad))


# --- the bad option values and output paths ------------------------------------------------------------------


@dataclass(frozen=True)
class Opt:
    """A bad option value: `extra` replaces an option the base arguments give once (else is appended).

    In `extra` and `positional`, {tmp} is the test's folder, {model} the good model, {good} a good image;
    `drop` leaves options (and their values) out; `positional` replaces the first argument after the
    command's words; `writes` are (name, text) files made in {tmp} first.
    """

    command: str
    extra: tuple[str, ...]
    problem: str
    drop: tuple[str, ...] = ()
    positional: str | None = None
    writes: tuple[tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        parts = list(self.extra) + [f"without{d}" for d in self.drop]
        if self.positional:
            parts.append("input=" + Path(self.positional).name)
        return "_".join(parts)


def _opts(command: str, *rows) -> list[Opt]:
    return [Opt(command, tuple(row[0]), row[1], **(row[2] if len(row) > 2 else {})) for row in rows]


BAD_OPTIONS = [
    *_opts("embed", (["--runtime", "x"], "'x' is not one of"), (["--features", "x"], "unknown feature set 'x'")),
    *_opts("decompress", (["--runtime", "x"], "'x' is not one of")),
    *_opts("generate", (["--runtime", "x"], "'x' is not one of")),
    *_opts("compress", (["--runtime", "x"], "'x' is not one of")),
    *_opts("denoise", (["--runtime", "x"], "'x' is not one of")),
    *_opts("eval", (["--runtime", "x"], "'x' is not one of")),
    *_opts("export", (["--format", "x"], "'x' is not one of"), (["--part", "x"], "'x' is not one of"),
           ([], "Missing option '--out'", {"drop": ("--out",)})),
    *_opts("similar", (["--k", "0"], "0 is not in the range"), (["--engine", "x"], "'x' is not one of"),
           ([], "Missing option '--index'", {"drop": ("--index",)})),
    *_opts("train",
           (["--epochs", "-1"], "--epochs must be at least 1"), (["--epochs", "0"], "--epochs must be at least 1"),
           (["--epochs", "many"], "'many' is not a valid integer"), (["--batch-size", "0"], "--batch-size must be at least 1"),
           (["--batch-size", "-8"], "--batch-size must be at least 1"), (["--lr", "-1"], "--lr must be a positive number"),
           (["--lr", "nan"], "--lr must be a positive number"), (["--weight-decay", "-1"], "--weight-decay must be zero or more"),
           (["--shift", "-2"], "--shift must be zero or more pixels"), (["--color-jitter", "1.5"], "--color-jitter must be in [0, 1)"),
           (["--val-fraction", "1.5"], "--val-fraction must be in [0, 1)"), (["--sample-every", "-1"], "--sample-every must be zero"),
           (["--limit", "-1"], "--skip and --limit must be zero or more"), (["--precision", "fp8"], "'fp8' is not one of"),
           (["--on-nan", "ignore"], "'ignore' is not one of"), (["--device", "tpu"], "unknown device 'tpu'"),
           (["--arch", "nope"], "unknown model 'nope'"), (["--model-config", "latent_dim=big"], "'big' is not a number"),
           (["--model-config", "depth=3"], "no config field(s) depth"),
           (["--objective", "nope"], "unknown training objective 'nope'"),
           (["--objective", "vicreg=-1"], "the weight after '=' must be a positive number, got '-1'"),
           (["--objective", "infonce:0"], "infonce's temperature must be in (0, 10), got 0")),
    *_opts("generate",
           (["--n", "0"], "0 is not in the range"), (["--n", "100000"], "100000 is not in the range"),
           (["--sampler", "nope"], "unknown sampler 'nope'"), (["--seed", "-1"], "-1 is not in the range"),
           (["--out", "{tmp}/grid.jpg"], "must end in .png")),
    *_opts("fit-prior",
           (["--sampler", "nope"], "unknown sampler 'nope'"), (["--sampler", "normal"], "needs no fitting"),
           (["--components", "0"], "0 is not in the range"), (["--limit", "1"], "1 is not in the range"),
           (["--batch-size", "0"], "0 is not in the range")),
    *_opts("compress",
           (["--dtype", "int4"], "'int4' is not one of"), (["--batch-size", "0"], "0 is not in the range"),
           (["--quality", "0"], "0 is not in the range"), (["--bytes", "-5"], "-5.0 is not in the range"),
           (["--bytes", "lots"], "'lots' is not a valid float"),
           (["--quality", "2", "--bytes", "100"], "give --quality or --bytes, not both"),
           (["--quality", "2"], "needs a codec model"), (["--bytes", "100"], "needs a codec model"),
           (["--out", "{tmp}/latents.txt"], "must end in .npz"),
           ([], "no such file or folder", {"positional": "{tmp}/nothing.png"})),
    *_opts("decompress",
           (["--size", "0"], "0 is not in the range"), (["--batch-size", "0"], "0 is not in the range"),
           ([], "nothing.npz", {"positional": "{tmp}/nothing.npz"})),
    *_opts("interpolate",
           (["--steps", "1"], "1 is not in the range"), (["--steps", "65"], "65 is not in the range"),
           ([], "nothing.png", {"positional": "{tmp}/nothing.png"})),
    *_opts("info", (["--nope"], "No such option")),
    *_opts("embed",
           (["--batch-size", "0"], "0 is not in the range"), (["--labels", "{tmp}/none.csv"], "--labels"),
           (["--label-column", "nosuch"], "the input has no such attribute"), (["--device", "tpu"], "unknown device 'tpu'"),
           ([], "no such file or folder", {"positional": "{tmp}/nothing.png"})),
    *_opts("latent-stats",
           (["--nope"], "No such option"), (["-m", "{tmp}/nowhere"], "no such checkpoint folder"),
           ([], "no such file or folder", {"positional": "{tmp}/nothing.png"})),
    *_opts("noise",
           (["-k", "nope"], "unknown noise model 'nope'"), (["-k", "gaussian:abc"], "sigma must be a number"),
           (["-k", "poisson-gaussian:0"], "Poisson gain A must be positive"),
           (["-k", "poisson-gaussian:0.01,0.02+jpeg:101"], "JPEG quality must be from 1 to 100, got 101"),
           (["--seed", "-1"], "-1 is not in the range"), (["-o", "{tmp}/noisy.jpg"], "must end in .png"),
           ([], "no such file or folder", {"positional": "{tmp}/nothing.png"})),
    *_opts("denoise",
           (["--method", "nope"], "'nope' is not one of"), (["--device", "tpu"], "unknown device 'tpu'"),
           ([], "no such file or folder", {"positional": "{tmp}/nothing.png"})),
    *_opts("eval",
           ([], "give --data SOURCE", {"drop": ("--data",)}), (["--data", "{tmp}/nowhere"], "not a known data source"),
           (["--limit", "0"], "0 is not in the range"), (["--noise", "nope"], "unknown noise model 'nope'"),
           (["--labels", "{tmp}/none.csv"], "--labels"), (["--device", "tpu"], "unknown device 'tpu'"),
           (["--batch-size", "0"], "0 is not in the range"), (["--bm3d-images", "-1"], "-1 is not in the range"),
           (["--noise", "jpeg:0"], "JPEG quality must be from 1 to 100, got 0")),
    *_opts("classify",
           (["--cv", "1"], "1 is not in the range"), (["--label", "nosuch"], "no label 'nosuch'"),
           (["--pixel-size", "2"], "2 is not in the range"), (["--max-iter", "5"], "5 is not in the range"),
           (["--test", "{tmp}/none.npz"], "no such file")),
    *_opts("cluster",
           (["--k", "1"], "must be at least 2"), (["--k", "100"], "more than the 12 images"),
           (["--method", "nope"], "unknown method 'nope'"), (["--per-cluster", "0"], "0 is not in the range"),
           (["--sheet", "{tmp}/sheet.gif"], "use a .png, .jpg or .webp name")),
    *_opts("umap",
           ([], "nothing to write", {"drop": ("-o",)}), (["-o", "{tmp}/umap.gif"], "use a .png, .jpg or .pdf name"),
           (["--color-by", "cluster"], "needs --clusters"), (["--color-by", "nosuch"], "no label 'nosuch' to colour by"),
           (["--clusters", "{tmp}/none.csv"], "no such clusters file"),
           (["--clusters", "{tmp}/notes.csv"], "not a clusters CSV", {"writes": (("notes.csv", "hello\n"),)}),
           (["--clusters", "{tmp}/partial.csv"], "have no cluster", {"writes": (("partial.csv", "path,cluster\nx,1\n"),)}),
           (["--n-neighbors", "1"], "1 is not in the range"), (["--thumbnails", "-1"], "-1 is not in the range")),
    *_opts("models", (["--nope"], "No such option"), (["nosuch"], "No such command 'nosuch'")),
    *_opts("models default",
           (["--clear"], "give either NAME_OR_DIR or --clear"), (["--task", "nope"], "'nope' is not one of"),
           ([], "not an installed pretrained model", {"positional": "nosuch-model"})),
    *_opts("models package",
           (["--metric", "bad"], "expected NAME=VALUE"), (["--task", "nope"], "'nope' is not one of"),
           (["--dtype", "int8"], "'int8' is not one of"), ([], "Missing option '--name'", {"drop": ("--name",)}),
           ([], "no such checkpoint folder", {"positional": "{tmp}/nowhere"})),
    *_opts("plugins", (["--nope"], "No such option"), (["extra"], "unexpected extra argument")),
    *_opts("directions", ([], "No such command 'nosuch'", {"positional": "nosuch"})),
    *_opts("directions fit",
           (["--method", "x"], "'x' is not one of"), (["--axes", "-1"], "-1 is not in the range"),
           (["--limit", "1"], "1 is not in the range"), ([], "Missing option '--data'", {"drop": ("--data",)}),
           (["--data", "synthetic:x"], "synthetic")),
    *_opts("directions list", (["--directions", "{tmp}/none.safetensors"], "no such file"),
           (["--directions", "{tmp}/notes.safetensors"], "unreadable directions file",
            {"writes": (("notes.safetensors", "hello"),)})),
    *_opts("edit",
           (["--add", "pc1"], "expected NAME=AMOUNT"), (["--add", "pc1=inf"], "expected NAME=AMOUNT"),
           (["--add", "Nope=1"], "no direction 'Nope'"), (["--sweep", "Nope"], "no direction 'Nope'"),
           (["--steps", "1"], "1 is not in the range"), (["--range", "0"], "--range"),
           ([], "nothing to do", {"drop": ("--add",)}), (["--out", "{tmp}/edited.gif"], "must end in .png"),
           (["--directions", "{tmp}/none.safetensors"], "no such file"), (["--runtime", "x"], "'x' is not one of")),
    *_opts("demo",
           (["--seed", "-1"], "-1 is not in the range"), (["--parts", "nosuch"], "unknown demo part(s) 'nosuch'"),
           (["--denoiser", "{model}"], "--denoiser goes with --model", {"drop": ("--model",)}),
           (["--model", "{tmp}/nowhere"], "no such checkpoint folder")),
    *_opts("serve",
           (["--port", "70000"], "70000 is not in the range"), (["--max-upload-mb", "0"], "0 is not in the range"),
           (["--denoiser", "{tmp}/nowhere"], "no such checkpoint folder"), (["--gallery", "{tmp}/nowhere"], "does not exist"),
           (["--host", "no.such.host.invalid"], "not an address of this machine"), (["--nope"], "No such option")),
]

OUT_OPTION = {"edit": "--out", "train": "--out", "compress": "-o", "decompress": "-o", "generate": "--out", "interpolate": "--out",
              "embed": "-o", "noise": "-o", "denoise": "-o", "eval": "-o", "cluster": "-o", "umap": "-o", "similar": "-o", "export": "--out",
              "models package": "--out", "demo": "--out"}

# (command, case): where the output would go wrong; see _output_case
BAD_OUTPUTS = [
    ("train", "read-only-folder"), ("train", "read-only-simulated"), ("train", "out-is-the-init-checkpoint"),
    ("train", "out-inside-the-data-folder"), ("train", "out-is-a-file"),
    ("compress", "missing-folder"), ("compress", "read-only-folder"), ("compress", "read-only-simulated"),
    ("compress", "overwrites-the-input-image"), ("compress", "overwrites-the-input-array"),
    ("decompress", "read-only-folder"), ("decompress", "read-only-simulated"), ("decompress", "out-is-a-file"),
    ("generate", "missing-folder"), ("generate", "read-only-folder"), ("generate", "read-only-simulated"),
    ("generate", "latents-in-a-missing-folder"),
    ("interpolate", "missing-folder"), ("interpolate", "read-only-folder"), ("interpolate", "read-only-simulated"),
    ("interpolate", "overwrites-the-input-image"),
    ("fit-prior", "read-only-folder"), ("fit-prior", "read-only-simulated"),
    ("embed", "missing-folder"), ("embed", "read-only-simulated"), ("embed", "overwrites-the-input-image"),
    ("noise", "missing-folder"), ("noise", "read-only-simulated"), ("noise", "overwrites-the-input-image"),
    ("denoise", "missing-folder"), ("denoise", "read-only-simulated"), ("denoise", "overwrites-the-input-image"),
    ("eval", "read-only-simulated"), ("eval", "out-is-a-file"),
    ("cluster", "missing-folder"), ("cluster", "read-only-simulated"), ("cluster", "sheet-in-a-missing-folder"),
    ("cluster", "sheet-read-only-simulated"),
    ("umap", "missing-folder"), ("umap", "read-only-simulated"), ("umap", "coords-in-a-missing-folder"),
    ("umap", "html-in-a-missing-folder"), ("umap", "coords-and-html-then-a-read-only-picture"),
    ("models package", "read-only-simulated"), ("models package", "out-is-a-file"), ("models package", "out-is-the-run-folder"),
    ("models default", "read-only-home-simulated"),
    ("similar", "missing-folder"), ("similar", "read-only-simulated"),
    ("edit", "missing-folder"), ("edit", "read-only-simulated"), ("edit", "overwrites-the-input-image"),
    ("directions fit", "read-only-folder"), ("directions fit", "read-only-simulated"),
    ("export", "read-only-simulated"), ("export", "out-is-a-file"),
    ("demo", "read-only-simulated"), ("demo", "out-is-a-file"), ("demo", "out-is-a-foreign-folder"),
]


# --- the matrix: every command -> the bad inputs tried on it ----------------------------------------------------

IMAGE_COMMANDS = ["train", "fit-prior", "compress", "interpolate", "embed", "latent-stats", "noise", "denoise", "eval",
                  "similar", "directions fit", "edit"]
FOLDER_COMMANDS = {"train", "fit-prior", "eval", "directions fit"}  # read the bad image from a --data folder holding only it
COUNTING_COMMANDS = {"train", "fit-prior", "compress", "noise", "eval", "directions fit"}  # "none of N ... could be read (first problem: ...)"
ARRAY_COMMANDS = ["train", "fit-prior", "compress", "embed", "latent-stats", "eval", "directions fit"]
LATENT_COMMANDS = ["decompress"]
NAME_COMMANDS = ["decompress"]  # names that collide once made into file names (corpus.COLLIDING_NAMES)
SIZE_COMMANDS = ["denoise"]  # thin images it must denoise a few tiles at a time, huge ones it refuses (corpus.SIZED_IMAGES)
CHECKPOINT_COMMANDS = ["info", "generate", "compress", "decompress", "interpolate", "fit-prior", "train", "embed",
                       "latent-stats", "denoise", "eval", "models default", "models package", "demo", "similar", "export",
                       "directions fit", "directions list", "edit", "serve"]
FEATURE_COMMANDS = ["classify", "cluster", "umap", "similar", "serve"]
# the files fitted beside a checkpoint, by reader (corpus.BAD_SIDECARS); serve reads both but only notes a bad one
SIDECAR_COMMANDS = {"prior": ["generate"], "directions": ["directions list", "edit"]}
BATCH_COMMANDS = ["compress", "train", "fit-prior", "embed", "latent-stats", "noise", "denoise", "eval", "directions fit"]
OPTIONAL_COMMANDS = {"latent-stats": "examples/aekit-plugin-example"}  # rows for commands of plugins CI installs

# `aekit faces` (aekit_faces), its rows in one place: photos in, aligned faces and faces.csv into an --out folder
BASE_ARGS["faces"] = lambda g: ["faces", g.image, "--out", g.tmp / "faces", "-q"]
BAD_OPTIONS += _opts("faces", (["--size", "0"], "expected N or WIDTHxHEIGHT"), (["--size", "big"], "expected N or WIDTHxHEIGHT"),
                     (["--min-score", "2"], "is not in the range 0<=x<=1"), (["--min-size", "-1"], "is not in the range x>=0"),
                     ([], "Missing option '--out'", {"drop": ("--out",)}),
                     ([], "no such file or folder", {"positional": "{tmp}/nothing.png"}))
OUT_OPTION["faces"] = "--out"
BAD_OUTPUTS += [("faces", "read-only-folder"), ("faces", "read-only-simulated"), ("faces", "out-is-a-file")]
IMAGE_COMMANDS.append("faces")
COUNTING_COMMANDS.add("faces")
BATCH_COMMANDS.append("faces")

KINDS = ("images", "arrays", "latents", "checkpoints", "features", "options", "outputs", "batch", "names", "sizes",
         "sidecars")

# What misbehaves today, outside the plugins these tests may change: (command, kind, case id or "*") -> why.
# Each is a strict xfail; when it is fixed the test fails until its entry is removed.
KNOWN_PROBLEMS: dict[tuple[str, str, str], str] = {}


@dataclass(frozen=True)
class Row:
    """One bad input tried on one command."""

    command: str
    kind: str
    case: Any

    @property
    def case_id(self) -> str:
        return self.case if isinstance(self.case, str) else self.case.id

    def __str__(self) -> str:
        return f"{self.command.replace(' ', '-')}:{self.kind}:{self.case_id}"


def _build_matrix() -> dict[str, list[Row]]:
    matrix: dict[str, list[Row]] = {command: [] for command in BASE_ARGS}
    by_kind = [("images", IMAGE_COMMANDS, BAD_IMAGES), ("arrays", ARRAY_COMMANDS, BAD_ARRAYS),
               ("latents", LATENT_COMMANDS, BAD_LATENTS), ("checkpoints", CHECKPOINT_COMMANDS, BAD_CHECKPOINTS),
               ("features", FEATURE_COMMANDS, BAD_FEATURES), ("batch", BATCH_COMMANDS, ["mixed-folder"]),
               ("names", NAME_COMMANDS, COLLIDING_NAMES), ("sizes", SIZE_COMMANDS, SIZED_IMAGES)]
    for kind, commands, cases in by_kind:
        for command in commands:
            matrix[command] += [Row(command, kind, case) for case in cases]
    for case in BAD_SIDECARS:
        for command in SIDECAR_COMMANDS["prior" if case.sampler else "directions"]:
            matrix[command].append(Row(command, "sidecars", case))
    for option in BAD_OPTIONS:
        matrix[option.command].append(Row(option.command, "options", option))
    for command, case in BAD_OUTPUTS:
        matrix[command].append(Row(command, "outputs", case))
    return matrix


MATRIX = _build_matrix()


def rows(kind: str) -> list:
    """The matrix's rows of one kind as pytest params, with the known problems marked."""
    params = []
    for command_rows in MATRIX.values():
        for row in command_rows:
            if row.kind != kind:
                continue
            reason = KNOWN_PROBLEMS.get((row.command, kind, row.case_id)) or KNOWN_PROBLEMS.get((row.command, kind, "*"))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(row, id=str(row), marks=marks))
    return params


def bad_input_counts() -> dict[str, dict[str, int]]:
    """Bad inputs tried per command, by kind: counted from MATRIX, the rows the tests below are parametrised with."""
    return {command: {kind: Counter(r.kind for r in command_rows)[kind] for kind in KINDS}
            for command, command_rows in MATRIX.items()}


def format_counts() -> str:
    counts = bad_input_counts()
    lines = [f"{'command':<16}" + "".join(f"{k:>12}" for k in KINDS) + f"{'total':>8}"]
    for command, row in counts.items():
        lines.append(f"{command:<16}" + "".join(f"{row[k]:>12}" for k in KINDS) + f"{sum(row.values()):>8}")
    total = sum(sum(row.values()) for row in counts.values())
    lines.append(f"{len(counts)} commands: {total} bad inputs tried; plus {len(ACCEPTED_IMAGES)} edge images that must be accepted")
    return "\n".join(lines)


def registered_commands() -> list[str]:
    """Every command `aekit` has: the registry's, and (recursively) the sub-commands of groups, e.g. `models default`."""
    found = []

    def walk(group: click.Group, prefix: str) -> None:
        context = click.Context(group)
        for name in group.list_commands(context):
            command = group.get_command(context, name)
            found.append(prefix + name)
            if isinstance(command, click.Group):
                walk(command, f"{prefix}{name} ")

    walk(cli, "")
    return found


def uncovered_commands() -> list[str]:
    """The registered commands the matrix has no bad input for."""
    return [command for command in registered_commands() if not MATRIX.get(command)]


# --- fixtures and checks --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory, module_home):
    """A tiny checkpoint, two readable faces, a latent file and a features file with labels, made once (never changed)."""
    from aekit_compress import save_latents

    root = tmp_path_factory.mktemp("shared")
    torch.manual_seed(0)
    model = aekit.create_model("article", **TINY)
    settings = {"data": "synthetic:40", "seed": 0}
    model_dir = model.save_pretrained(root / "model", training={"data": "synthetic:40", "images": 40, "settings": settings})
    (root / "good").mkdir()
    for i, image in enumerate(make_faces(2, seed=4, size=40)[0]):
        Image.fromarray(image).save(root / "good" / f"good{i}.png")
    save_latents(root / "z.npz", np.zeros((2, LAT), np.float32), ["a.png", "b.png"], aekit.load(model_dir))
    result = run_cli("directions", "fit", "-m", model_dir, "--data", "synthetic:40", "--axes", "3", "-q")  # for `edit`
    assert result.exit_code == 0, result.output
    result = run_cli("embed", "synthetic:12", "-m", model_dir, "-o", root / "feats.npz", "-q")
    assert result.exit_code == 0, result.output
    return {"model": model_dir, "good": sorted((root / "good").iterdir()), "latents": root / "z.npz", "feats": root / "feats.npz"}


@pytest.fixture
def model_dir(shared):
    yield shared["model"]
    assert not list(shared["model"].glob("prior-*")), "a test wrote into the shared model folder"


@pytest.fixture
def good_images(shared):
    """Two readable faces, for the commands that need other inputs than the bad one."""
    return shared["good"]


def _files(roots) -> set[Path]:
    found = set()
    for root in roots:
        for folder, _, names in os.walk(root):  # never follows symbolic links (the corpus has loops)
            found.update(Path(folder) / name for name in names)
    return found


def check_fails(args, tmp: Path, *needles: str, not_said: tuple[str, ...] = ()) -> str:
    """Run a command that must fail on a bad input: one error line naming `needles`, status 1 or 2, no new file."""
    watched = [tmp, Path(os.environ["AEKIT_HOME"])]
    before = _files(watched)
    result = run_cli(*args)
    line = error_line(result)
    assert result.exit_code in (1, 2), result.output
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    for word in not_said:
        assert word not in line, f"{word!r} in {line!r}"
    written = sorted(str(p) for p in _files(watched) - before)
    assert written == [], f"left behind after the failure: {written}\n{result.output}"
    assert stray_temporaries(tmp) == []
    return line


def _case_skip(case) -> None:
    if reason := case.skip():
        pytest.skip(reason)


def _skip_unregistered(command: str) -> None:
    if command.split()[0] not in aekit.plugins.get_registry().names("command"):
        pytest.skip(f"`aekit {command}` is not installed ({OPTIONAL_COMMANDS.get(command, 'its plugin is missing')})")


# --- bad images, arrays, latents, checkpoints and features, command by command ---------------------------------


@pytest.mark.parametrize("row", rows("images"))
def test_bad_image(row, tmp_path, shared, monkeypatch):
    case, command = row.case, row.command
    _skip_unregistered(command)
    _case_skip(case)
    data = tmp_path / "data"  # train, fit-prior and eval read a folder holding only the bad file
    path = case.make(data)
    apply(case, monkeypatch, path)
    if command in FOLDER_COMMANDS:
        args = command_args(command, shared, tmp_path, data=data)
    else:
        args = command_args(command, shared, tmp_path, image=path)
    if case.is_dir:
        if command in FOLDER_COMMANDS:
            needles = [data.name, "no image files"]
        else:
            needles = [path.name, "is a directory" if command in ("interpolate", "similar", "edit") else "no image files"]
    else:
        needles = [case.shown(path), case.problem]
        if command in COUNTING_COMMANDS:
            needles.append("could be read (first problem:")
    check_fails(args, tmp_path, *needles)


@pytest.mark.parametrize("row", rows("arrays"))
def test_bad_array(row, tmp_path, shared):
    _skip_unregistered(row.command)
    path = row.case.make(tmp_path / "arrays")
    args = command_args(row.command, shared, tmp_path, image=path, data=path)
    check_fails(args, tmp_path, path.name, row.case.problem)


@pytest.mark.parametrize("row", rows("latents"))
def test_bad_latent_file(row, tmp_path, shared, model_dir):
    path = row.case.make(tmp_path / "latents", model_dir)
    check_fails(command_args(row.command, shared, tmp_path, latents=path), tmp_path, path.name, row.case.problem)


@pytest.mark.parametrize("row", rows("checkpoints"))
def test_bad_checkpoint(row, tmp_path, shared, model_dir):
    _skip_unregistered(row.command)
    case, command = row.case, row.command
    bad = case.make(tmp_path / "checkpoints", model_dir)
    name = next(part for part in bad.parts if part.startswith("ckpt-"))
    args = command_args(command, shared, tmp_path, model=bad)
    if command == "train":
        args = ["train", "--data", "synthetic:8", "--init", bad, "--epochs", "1", "--batch-size", "4", "--quiet",
                "--out", tmp_path / "run"]
    check_fails(args, tmp_path, name, case.problem)


@pytest.mark.parametrize("row", rows("features"))
def test_bad_features_file(row, tmp_path, shared):
    path = row.case.make(tmp_path / "features", shared["feats"])
    args = command_args(row.command, shared, tmp_path, feats=path)
    check_fails(args, tmp_path, path.name, row.case.problem, not_said=row.case.not_said)


@pytest.mark.parametrize("row", rows("sidecars"))
def test_bad_sidecar(row, tmp_path, shared, model_dir):
    """A damaged prior or directions file beside a good model: one line naming that file, never black faces."""
    case = row.case
    folder = case.make(tmp_path / "sidecars", model_dir)
    args = command_args(row.command, shared, tmp_path, model=folder)
    if case.sampler:  # the base arguments sample N(0, I): read the fitted prior instead
        args[args.index("normal")] = case.sampler
    check_fails(args, tmp_path, f"{folder.name}/{case.file}: ", case.problem)


def _fill(text: str, tmp_path: Path, shared: dict) -> str:
    return text.replace("{tmp}", str(tmp_path)).replace("{model}", str(shared["model"])).replace("{good}", str(shared["good"][0]))


@pytest.mark.parametrize("row", rows("options"))
def test_bad_option_value(row, tmp_path, shared):
    _skip_unregistered(row.command)
    option: Opt = row.case
    args = [str(a) for a in command_args(row.command, shared, tmp_path, data="synthetic:8" if row.command == "train" else None)]
    for name, text in option.writes:
        (tmp_path / name).write_text(text)
    for dropped in option.drop:
        i = args.index(dropped)
        del args[i : i + 2]
    if option.positional:
        args[len(row.command.split())] = _fill(option.positional, tmp_path, shared)
    extra = [_fill(a, tmp_path, shared) for a in option.extra]
    if extra and extra[0].startswith("-") and args.count(extra[0]) == 1:  # replace the option rather than give it twice
        i = args.index(extra[0])
        args[i : i + 2] = extra
    else:
        args += extra
    check_fails(args, tmp_path, option.problem)


def _read_only(folder: Path, monkeypatch, simulated: bool) -> Path:
    """A folder nothing can be written to: chmod 0o555, or (as root) a patched writer that fails like one."""
    folder.mkdir(parents=True, exist_ok=True)
    if not simulated:
        if reason := root_reason():
            pytest.skip(reason)
        folder.chmod(0o555)
        return folder
    import aekit.io

    real = aekit.io.tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and (Path(dir) == folder or folder in Path(dir).parents):
            raise PermissionError(13, "Permission denied", os.path.join(dir, kwargs.get("prefix", "") + "XXXX"))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(aekit.io.tempfile, "mkstemp", mkstemp)
    return folder


def _fast_umap_layout(monkeypatch) -> None:
    """The outputs of `aekit umap`, not UMAP itself, are under test: lay the points out in milliseconds."""
    import aekit_umap.command

    monkeypatch.setattr(aekit_umap.command, "layout", lambda X, *args, **kwargs: np.asarray(X[:, :2], dtype=np.float32))


def _output_case(command: str, case: str, args: list, tmp_path: Path, shared: dict, monkeypatch):
    """Change `args` so that the output goes wrong as `case` says; returns (needles, {path: bytes it must keep}, read-only folder)."""
    option = OUT_OPTION.get(command)
    good = shared["good"][0]

    def set_out(value, flag=option):
        args[args.index(flag) + 1] = value

    def out_name(flag=option) -> str:
        return Path(args[args.index(flag) + 1]).name

    if case == "missing-folder":
        target = tmp_path / "no" / "such" / "folder" / out_name()
        set_out(target)
        return [str(target.parent), "does not exist"], {}, None
    if case in ("sheet-in-a-missing-folder", "coords-in-a-missing-folder", "html-in-a-missing-folder"):
        flag, name = {"sheet": ("--sheet", "sheet.png"), "coords": ("--coords", "coords.npz"), "html": ("--html", "umap.html")}[case.split("-")[0]]
        args += [flag, tmp_path / "nowhere" / name]
        return [str(tmp_path / "nowhere"), "does not exist"], {}, None
    if case == "latents-in-a-missing-folder":
        args += ["--save-latents", tmp_path / "nowhere" / "z.npz"]
        return ["--save-latents", "does not exist"], {}, None
    if case in ("read-only-folder", "read-only-simulated"):
        read_only = _read_only(tmp_path / "locked", monkeypatch, simulated=case.endswith("simulated"))
        if command in ("fit-prior", "directions fit"):  # they write beside the model: make the model folder read-only
            if case.endswith("simulated"):
                shutil.copytree(shared["model"], read_only / "model")
            else:
                read_only.chmod(0o755)
                shutil.copytree(shared["model"], read_only / "model")
                (read_only / "model").chmod(0o555)
            args[args.index("-m") + 1] = read_only / "model"
            return ["prior-" if command == "fit-prior" else "directions.safetensors", "Permission denied"], {}, read_only
        if command == "umap":
            _fast_umap_layout(monkeypatch)
        target = read_only / out_name()
        set_out(target)
        return [target.name, "Permission denied"], {}, read_only
    if case == "sheet-read-only-simulated":
        read_only = _read_only(tmp_path / "locked", monkeypatch, simulated=True)
        args += ["--sheet", read_only / "sheet.png"]
        return ["sheet.png", "Permission denied"], {}, read_only
    if case == "coords-and-html-then-a-read-only-picture":
        _fast_umap_layout(monkeypatch)
        read_only = _read_only(tmp_path / "locked", monkeypatch, simulated=True)
        set_out(read_only / "umap.png")
        args += ["--coords", tmp_path / "coords.npz", "--html", tmp_path / "umap.html"]
        return ["umap.png", "Permission denied"], {}, read_only
    if case == "read-only-home-simulated":
        home = _read_only(tmp_path / "home", monkeypatch, simulated=True)
        monkeypatch.setenv("AEKIT_HOME", str(home))
        return ["default-model.json", "Permission denied"], {}, home
    if case == "out-is-the-init-checkpoint":
        model = shutil.copytree(shared["model"], tmp_path / "init")
        args += ["--init", model]
        set_out(model)
        return [model.name, "is the --init checkpoint"], {p: p.read_bytes() for p in model.iterdir()}, None
    if case == "out-is-the-run-folder":
        run = shutil.copytree(shared["model"], tmp_path / "run")
        args[args.index("package") + 1] = run
        set_out(run)
        return [run.name], {p: p.read_bytes() for p in run.iterdir()}, None
    if case == "out-inside-the-data-folder":
        args[args.index("--data") + 1] = good.parent
        set_out(good.parent / "runs" / "run1")
        return ["inside the data folder", good.parent.name], {}, None
    if case == "out-is-a-file":
        set_out(good)
        return [good.name, "is a file"], {good: good.read_bytes()}, None
    if case == "out-is-a-foreign-folder":
        folder = tmp_path / "mine"
        write(folder, "notes.txt", b"mine")
        set_out(folder)
        return [folder.name, "was not written by `aekit demo`"], {}, None
    if case == "overwrites-the-input-image":
        set_out(good)
        return [good.name, "would overwrite an input"], {good: good.read_bytes()}, None
    if case == "overwrites-the-input-array":
        array = save_npz(tmp_path / "arrays", "faces.npz", images=faces())
        args[1] = array
        set_out(array)
        return [array.name, "would overwrite an input"], {array: array.read_bytes()}, None
    raise AssertionError(case)


@pytest.mark.parametrize("row", rows("outputs"))
def test_bad_output_path(row, tmp_path, shared, monkeypatch):
    command = row.command
    args = command_args(command, shared, tmp_path, data="synthetic:8" if command == "train" else None)
    needles, protected, read_only = _output_case(command, row.case, args, tmp_path, shared, monkeypatch)
    try:
        check_fails(args, tmp_path, *needles)
    finally:
        if read_only is not None:
            for folder in (read_only, read_only / "model"):
                if folder.exists():
                    folder.chmod(0o755)
    for path, data in protected.items():
        assert path.read_bytes() == data, f"{path} was overwritten"


# --- batch commands skip and list bad files and write the good results ----------------------------------------

BATCH_ARGS: dict[str, Callable[[Path, Path, Path], list]] = {  # (folder, model, tmp) -> arguments
    "compress": lambda f, m, t: ["compress", f, "-m", m, "-o", t / "z.npz", "-q"],
    "train": lambda f, m, t: ["train", "--data", f, "--epochs", "1", "--batch-size", "4", "--quiet", "--sample-every", "0",
                              "--out", t / "run", *TINY_CLI],
    "fit-prior": lambda f, m, t: ["fit-prior", "-m", m, "--data", f, "--sampler", "gaussian", "-q"],
    "embed": lambda f, m, t: ["embed", f, "-m", m, "-o", t / "feats.npz", "-q"],
    "latent-stats": lambda f, m, t: ["latent-stats", f, "-m", m],
    "noise": lambda f, m, t: ["noise", f, "-k", "gaussian:0.1", "-o", t / "noisy", "-q"],
    "denoise": lambda f, m, t: ["denoise", f, "-m", m, "-o", t / "clean", "-q"],
    "eval": lambda f, m, t: ["eval", "-m", m, "--data", f, "-o", t / "report", "-q"],
    "directions fit": lambda f, m, t: ["directions", "fit", "-m", m, "--data", f, "--axes", "2", "-q"],
}
BATCH_ARGS["faces"] = lambda f, m, t: ["faces", f, "--out", t / "faces", "-q"]


def _names_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in _files([folder]))


def _with_suffix(name: str, suffix: str) -> str:
    return name.rsplit(".", 1)[0] + suffix


def _batch_results(command: str, result, model: Path, tmp: Path, good: list[str], bad: list[Path]) -> tuple:
    """(what the command wrote or printed for the good files, what it should be)."""
    if command == "compress":
        from aekit_compress import load_latents

        return sorted(load_latents(tmp / "z.npz", aekit.load(model)).names), good
    if command == "train":
        assert f"skipped {len(bad)} unreadable image(s)" in result.stderr
        assert aekit.load(tmp / "run").training_summary["skipped"] == len(bad)
        return json.loads((tmp / "run" / "run.json").read_text())["train_images"], len(good)
    if command == "fit-prior":
        assert (model / "prior-gaussian.safetensors").is_file()
        return f"{len(good)} images, {len(bad)} unreadable skipped" in result.stderr, True
    if command == "embed":
        return sorted(aekit.load_features(tmp / "feats.npz").paths), good
    if command == "latent-stats":
        return sorted(line.split("\t")[0] for line in result.stdout.splitlines()), good
    if command == "noise":
        return _names_under(tmp / "noisy"), sorted(_with_suffix(name, ".png") for name in good)
    if command == "denoise":
        kept = lambda name: name if name.lower().endswith((".png", ".jpg", ".jpeg")) else _with_suffix(name, ".png")  # noqa: E731
        return _names_under(tmp / "clean"), sorted(kept(name) for name in good)
    if command == "eval":
        report = json.loads((tmp / "report" / "report.json").read_text())
        return report["data"]["eval"]["images"], len(good)
    if command == "directions fit":
        from aekit_edit import load_directions

        return load_directions(aekit.load(model)).info["images"], len(good)
    if command == "faces":  # every readable photo has its faces in faces.csv, or is listed: no face, or faces left out
        import csv

        from aekit.text import printable

        with open(tmp / "faces" / "faces.csv", newline="", encoding="utf-8", errors="surrogateescape") as fh:
            found = {Path(row["photo"]).relative_to(tmp / "mixed").as_posix() for row in csv.DictReader(fh)}
        lines = [line for line in result.stderr.splitlines() if line.startswith(("no face: ", "left out: "))]
        listed = lambda n: any(f"/mixed/{printable(n).split(chr(0xDCE9))[0]}" in line for line in lines)  # noqa: E731  (as listed_once)
        return sorted(n for n in good if n in found or listed(n)), good
    raise AssertionError(command)


@pytest.mark.parametrize("row", rows("batch"))
def test_batch_skips_and_lists_bad_files_and_writes_the_good_ones(row, tmp_path, shared, monkeypatch):
    command = row.command
    _skip_unregistered(command)
    model = shared["model"]
    if command in ("fit-prior", "directions fit"):
        model = shutil.copytree(model, tmp_path / "model")  # they write beside the model
    if command == "train":
        monkeypatch.setenv("AEKIT_LOAD_PLUGINS", "sources")  # no prior fitting at the end: faster
    folder, good, bad = mixed_folder(tmp_path, monkeypatch, good_faces=5 if command == "train" else 0)
    if command == "latent-stats":  # printed as the names' own bytes, which the runner decodes as UTF-8
        good = [os.fsencode(name).decode("utf-8", "replace") for name in good]
    result = run_cli(*BATCH_ARGS[command](folder, model, tmp_path))
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "Error" not in result.output, result.output
    listed_once(result.stderr, bad)
    written, expected = _batch_results(command, result, model, tmp_path, good, bad)
    assert written == expected, result.output
    assert stray_temporaries(tmp_path) == []


@pytest.mark.parametrize("row", rows("names"))
def test_colliding_names_each_get_a_file_of_their_own(row, tmp_path, shared, model_dir):
    """Latents whose source names make one output name: every latent is written, to a name no other output has
    (not even in another case or Unicode form) and that fits the file system."""
    from aekit_compress import save_latents

    names = list(row.case.names)
    latents = np.random.default_rng(0).normal(size=(len(names), LAT)).astype(np.float32)
    save_latents(tmp_path / "z.npz", latents, names, aekit.load(model_dir))
    result = run_cli(*command_args(row.command, shared, tmp_path, latents=tmp_path / "z.npz"))
    assert result.exit_code == 0, result.output
    assert f"wrote {len(names)} PNGs" in result.stdout, result.output
    written = [p.relative_to(tmp_path / "restored").as_posix() for p in _files([tmp_path / "restored"])]
    assert len({unicodedata.normalize("NFC", name).casefold() for name in written}) == len(names), written
    assert max(len(os.fsencode(part)) for name in written for part in name.split("/")) <= 255
    assert stray_temporaries(tmp_path) == []


def test_compress_skips_bad_files_named_one_by_one(tmp_path, model_dir, monkeypatch):
    """The files of the mixed folder given on the command line (as a shell glob gives them)."""
    from aekit_compress import load_latents

    folder, good, bad = mixed_folder(tmp_path, monkeypatch)
    named = [p for p in sorted(folder.iterdir()) if not p.is_dir()]
    result = run_cli("compress", *named, "-m", model_dir, "-o", tmp_path / "z.npz", "-q")
    assert result.exit_code == 0, result.output
    assert f"{len(good)} latents" in result.stdout and f"{len(bad)} skipped" in result.stdout
    listed_once(result.stderr, bad)
    assert len(load_latents(tmp_path / "z.npz").names) == len(good)
    assert stray_temporaries(tmp_path) == []


@pytest.mark.parametrize("row", rows("sizes"))
def test_thin_images_are_denoised_a_few_tiles_at_a_time_and_huge_ones_refused(row, tmp_path, shared, monkeypatch):
    """A thin image is denoised at its own size (by both methods) with never more than a batch of tiles through
    the model at once; one over the pixel limit is refused in one line naming it and the limit. In a folder the
    huge one is skipped and listed, and the others are written."""
    import aekit.denoising

    case, model = row.case, shared["model"]
    path = case.make(tmp_path / "in")
    args = command_args(row.command, shared, tmp_path, image=path)
    if case.problem:
        check_fails(args, tmp_path, path.name, case.problem, "the limit is")
    else:
        batches, forward = [], aekit.denoising._forward
        monkeypatch.setattr(aekit.denoising, "_forward",
                            lambda m, x, size, *level: batches.append(len(x)) or forward(m, x, size, *level))
        for method in ("tile", "resize"):
            result = run_cli(*args, "--method", method, "--runtime", "torch", "--overwrite")
            assert result.exit_code == 0, result.output
            assert Image.open(tmp_path / "clean.png").size == Image.open(path).size
        assert batches and max(batches) <= 64, batches  # aekit.denoising.TILE_BATCH: 312 tiles are five batches
    Image.fromarray(face()).save(tmp_path / "in" / "face.png")
    result = run_cli("denoise", tmp_path / "in", "-m", model, "-o", tmp_path / "all", "-q")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    listed_once(result.stderr, [path] if case.problem else [])
    kept = ["face.png"] + ([] if case.problem else [path.name])
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == sorted(kept)
    assert stray_temporaries(tmp_path) == []


def test_every_accepted_edge_image_works_in_interpolate(tmp_path, model_dir, good_images):
    for name, make in ACCEPTED_IMAGES:
        path = make(tmp_path / "edge")
        out = tmp_path / f"strip-{name}.png"
        result = run_cli("interpolate", path, good_images[0], "-m", model_dir, "--steps", "2", "--out", out)
        assert result.exit_code == 0, (name, result.output)
        assert Image.open(out).format == "PNG"


# --- file names that are not UTF-8, and --debug -----------------------------------------------------------------


def _main(monkeypatch, *args) -> tuple[int, str, str]:
    """The console entry point in this process, with a strict UTF-8 stdout (as in most locales)."""
    from aekit.cli import main

    out, err = _io.BytesIO(), _io.BytesIO()
    monkeypatch.setattr(sys, "stdout", _io.TextIOWrapper(out, encoding="utf-8", errors="strict"))
    monkeypatch.setattr(sys, "stderr", _io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace"))
    monkeypatch.setattr(sys, "argv", ["aekit", *[str(a) for a in args]])
    with pytest.raises(SystemExit) as exit_info:
        main()
    sys.stdout.flush()
    sys.stderr.flush()
    return exit_info.value.code, out.getvalue().decode("utf-8", "replace"), err.getvalue().decode("utf-8", "replace")


def test_folder_and_file_names_that_are_not_utf8(tmp_path, monkeypatch):
    """Data and outputs whose names are not UTF-8 work (and print); a run folder's name must be UTF-8."""
    monkeypatch.setenv("AEKIT_LOAD_PLUGINS", "sources")
    try:
        data = Path(os.fsdecode(os.fsencode(tmp_path) + b"/donn\xe9es"))
        data.mkdir()
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses file names that are not UTF-8")
    for i, image in enumerate(make_faces(4, seed=1, size=32)[0]):
        Image.fromarray(image).save(data / f"f{i}.png")
    bad_run = Path(os.fsdecode(os.fsencode(tmp_path) + b"/r\xe9sultat"))
    args = ["train", "--data", data, "--epochs", "1", "--batch-size", "2", "--quiet", "--sample-every", "0", *TINY_CLI]
    code, out, err = _main(monkeypatch, *args, "--out", bad_run)
    assert code == 2 and "the run folder's path must be valid UTF-8" in err and not bad_run.exists()
    code, out, err = _main(monkeypatch, *args, "--out", tmp_path / "run")
    assert code == 0 and out.startswith("saved "), err
    latents = Path(os.fsdecode(os.fsencode(tmp_path) + b"/z\xe9.npz"))
    monkeypatch.setenv("AEKIT_LOAD_PLUGINS", "sources,compress")
    aekit.plugins.reset()
    code, out, err = _main(monkeypatch, "compress", data, "-o", latents, "-q")  # the latest run's model
    assert code == 0 and "4 latents" in out and latents.is_file(), err


DEBUG_COMMANDS = [*IMAGE_COMMANDS, *(c for c in FEATURE_COMMANDS if c not in IMAGE_COMMANDS), "info", "generate", "decompress"]


@pytest.mark.parametrize("command", DEBUG_COMMANDS)
def test_debug_shows_the_traceback(command, tmp_path, shared):
    _skip_unregistered(command)
    bad = write(tmp_path / "bad", "cut.png", encoded(Image.fromarray(face()), "PNG")[:500])
    if command in FEATURE_COMMANDS:
        args = command_args(command, shared, tmp_path, feats=bad)
    elif command in IMAGE_COMMANDS:
        args = command_args(command, shared, tmp_path, image=bad, data=bad.parent)
    else:
        args = command_args(command, shared, tmp_path, model=tmp_path / "no-such-model")
    plain = run_cli(*args)
    error_line(plain)
    debug = run_cli("--debug", *args)
    assert debug.exit_code not in (0, None) and "Traceback" in debug.output, debug.output


if __name__ == "__main__":  # python tests/test_reliability.py
    sys.path.insert(0, str(ROOT / "src"))
    print(format_counts())
