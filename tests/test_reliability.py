"""Bad input, everywhere a user can give it, and what aekit may load.

A corpus of bad inputs is made at test time (nothing binary is committed) and every command that reads
images, arrays, latents or checkpoints is run against it through the CLI. Each bad input must give
exactly one ``Error:`` line naming the file and the problem, a non-zero exit status and no traceback
(``--debug`` shows one); batch commands skip and list bad files and still write the good results; no
temporary file (``.*.tmp``) and no partial output is ever left behind. Property-based tests feed random
and mutated bytes to the readers, which may raise only aekit's own errors.

"Unsupported" means a file Pillow cannot decode (an SVG or a PDF named like an image). Pillow decodes
by content, so a valid TIFF, ICO or TGA named ``.png`` is read, not refused: those are in the corpus of
edge inputs that must be accepted, with the image modes, EXIF rotation, a 1x1 image and a file name
that is not UTF-8.

How many bad inputs each command is tried with: ``python tests/test_reliability.py``, or
``python -m pytest tests/test_reliability.py -q -rA -k counts`` (the table is in the captured output).
"""

from __future__ import annotations

import ast
import io as _io
import json
import os
import shutil
import struct
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from unittest import mock

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import aekit
from aekit.cli import cli
from aekit.errors import AekitError, ImageReadError
from aekit.synthetic import make_faces

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(image_size=32, widths=(8, 16), convs_per_half=1, latent_dim=16)
TINY_CLI = ["--model-config", "image_size=32", "--model-config", "widths=8,16", "--model-config", "convs_per_half=1",
            "--model-config", "latent_dim=16"]
OVER_LIMIT = 64 * 64  # Image.MAX_IMAGE_PIXELS for the cases that need a lower limit


def _never() -> str | None:
    return None


def _root_reason() -> str | None:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return "running as root: root reads and writes regardless of permissions (the simulated case covers it)"
    return None


# --- the corpus: makers write one bad thing into a folder and return its path ----------------------------


def _face(size: int = 40, seed: int = 0) -> np.ndarray:
    return make_faces(1, seed=seed, size=size)[0][0]


def _encoded(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = _io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _write(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with (almost) no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _symlink(target, link: Path) -> Path:
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(target, link)
    except (OSError, NotImplementedError):
        pytest.skip("symlinks are not available here")
    return link


def _non_utf8(folder: Path, data: bytes, prefix: bytes = b"bad") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    raw = os.fsencode(folder) + b"/" + prefix + b"_caf\xe9.png"
    try:
        with open(raw, "wb") as fh:
            fh.write(data)
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses file names that are not UTF-8")
    return Path(os.fsdecode(raw))


def _unreadable(folder: Path) -> Path:
    path = _write(folder, "locked.png", _encoded(Image.fromarray(_face()), "PNG"))
    path.chmod(0)
    return path


def _simulate_permission_denied(monkeypatch, path: Path) -> None:
    """Opening this one file fails like a file without read permission (root can read anything)."""
    real_open = Image.open

    def fake_open(fp, *args, **kwargs):
        if isinstance(fp, (str, os.PathLike)) and Path(fp).name == path.name:
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", fake_open)


@dataclass(frozen=True)
class Bad:
    """One bad input: `make(folder) -> path` and the words the error must use for the problem."""

    id: str
    make: Callable[[Path], Path]
    problem: str
    is_dir: bool = False  # a folder: as a data folder's only entry the error is "no image files" for the data folder
    max_pixels: int | None = None  # run with Image.MAX_IMAGE_PIXELS lowered to this
    simulate: Callable | None = None  # (monkeypatch, path): a fault that cannot be made for real here
    skip: Callable[[], str | None] = _never

    def shown(self, path: Path) -> str:
        """What of the file's name the error line shows (file names that are not UTF-8 are escaped)."""
        return path.name.split("\udce9")[0]


BAD_IMAGES = [
    Bad("truncated-jpeg", lambda d: _write(d, "cut.jpg", _encoded(Image.fromarray(_face()), "JPEG", quality=95)[:600]),
        "damaged image"),
    Bad("truncated-png", lambda d: _write(d, "cut.png", _encoded(Image.fromarray(_face()), "PNG")[:1500]), "damaged image"),
    Bad("zero-bytes", lambda d: _write(d, "empty.jpg", b""), "not an image Pillow can read"),
    Bad("text-named-jpg", lambda d: _write(d, "notes.jpg", b"this is not a picture\n"), "not an image Pillow can read"),
    Bad("unsupported-svg-named-png", lambda d: _write(d, "vector.png", b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"/>'),
        "not an image Pillow can read"),
    Bad("unsupported-pdf-named-jpg", lambda d: _write(d, "doc.jpg", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"),
        "not an image Pillow can read"),
    Bad("bomb-header-100000x100000", lambda d: _write(d, "bomb.png", _png_header_only(100_000, 100_000)), "image too large"),
    Bad("huge-20000x20000", lambda d: _write(d, "huge.png", _png_header_only(20_000, 20_000)), "image too large"),
    Bad("over-lowered-pixel-limit", lambda d: _write(d, "big.png", _encoded(Image.fromarray(_face(80)), "PNG")),
        "image too large", max_pixels=OVER_LIMIT),
    Bad("unreadable-permissions", _unreadable, "permission denied", skip=_root_reason),
    Bad("unreadable-simulated", lambda d: _write(d, "denied.png", _encoded(Image.fromarray(_face()), "PNG")),
        "permission denied", simulate=_simulate_permission_denied),
    Bad("symlink-loop", lambda d: _symlink("loop.jpg", d / "loop.jpg"), "symbolic link loop"),
    Bad("non-utf8-name-truncated", lambda d: _non_utf8(d, _encoded(Image.fromarray(_face()), "PNG")[:900]), "damaged image"),
    Bad("directory-named-jpg", lambda d: (d / "folder.jpg").mkdir(parents=True) or d / "folder.jpg", "is a directory", is_dir=True),
    Bad("empty-folder", lambda d: (d / "nothing").mkdir(parents=True) or d / "nothing", "is a directory", is_dir=True),
    Bad("folder-of-symlink-loops", lambda d: _symlink(".", d / "loops" / "self") and d / "loops", "is a directory", is_dir=True),
]


def _mode_image(mode: str) -> Image.Image:
    rgb = Image.fromarray(_face())
    if mode == "I;16":
        return Image.fromarray((np.asarray(rgb.convert("L"), dtype=np.uint16) * 257))
    if mode == "P-transparent":
        image = rgb.convert("P")
        image.info["transparency"] = 0
        return image
    return rgb.convert(mode)


def _exif_rotated(folder: Path) -> Path:
    exif = Image.Exif()
    exif[0x0112] = 6
    return _write(folder, "rotated.jpg", _encoded(Image.fromarray(_face()).resize((40, 20)), "JPEG", exif=exif))


ACCEPTED_IMAGES = [  # edge inputs that are not bad: each must be read as an RGB image
    ("rgba", lambda d: _write(d, "rgba.png", _encoded(_mode_image("RGBA"), "PNG"))),
    ("la", lambda d: _write(d, "la.png", _encoded(_mode_image("LA"), "PNG"))),
    ("p", lambda d: _write(d, "p.png", _encoded(_mode_image("P-transparent"), "PNG"))),
    ("i16", lambda d: _write(d, "i16.png", _encoded(_mode_image("I;16"), "PNG"))),
    ("cmyk-jpeg", lambda d: _write(d, "cmyk.jpg", _encoded(_mode_image("CMYK"), "JPEG"))),
    ("exif-rotated-jpeg", _exif_rotated),
    ("1x1", lambda d: _write(d, "dot.png", _encoded(Image.fromarray(_face()).resize((1, 1)), "PNG"))),
    ("tiff-named-png", lambda d: _write(d, "tiff.png", _encoded(Image.fromarray(_face()), "TIFF"))),
    ("ico-named-png", lambda d: _write(d, "icon.png", _encoded(Image.fromarray(_face()), "ICO"))),
    ("tga-named-bmp", lambda d: _write(d, "targa.bmp", _encoded(Image.fromarray(_face()), "TGA"))),
    ("non-utf8-name", lambda d: _non_utf8(d, _encoded(Image.fromarray(_face()), "PNG"), prefix=b"good")),
]


def _save_npy(folder: Path, name: str, array, allow_pickle: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / name, array, allow_pickle=allow_pickle)
    return folder / name


def _save_npz(folder: Path, name: str, **arrays) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / name, **arrays)
    return folder / name


def _faces(n: int = 6, size: int = 16) -> np.ndarray:
    return make_faces(n, seed=2, size=size)[0]


def _floats(**at) -> np.ndarray:
    images = _faces().astype(np.float32) / 127.5 - 1
    for index, value in at.items():
        images[int(index[1:]), 0, 0, 0] = value
    return images


def _objects() -> np.ndarray:
    objects = np.empty(2, dtype=object)
    objects[0], objects[1] = {"a": 1}, [1, 2]
    return objects


def _truncated(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


BAD_ARRAYS = [
    Bad("wrong-shape-3d", lambda d: _save_npy(d, "gray.npy", _faces()[..., 0]), "must be (N, H, W, 3) or (N, 3, H, W)"),
    Bad("wrong-shape-4-channels", lambda d: _save_npy(d, "rgba.npy", np.zeros((4, 16, 16, 4), np.uint8)), "must be (N, H, W, 3)"),
    Bad("zero-size-images", lambda d: _save_npy(d, "flat.npy", np.zeros((4, 0, 0, 3), np.uint8)), "at least 1x1"),
    Bad("no-images", lambda d: _save_npy(d, "none.npy", np.zeros((0, 16, 16, 3), np.uint8)), "holds no images"),
    Bad("wrong-dtype-int32", lambda d: _save_npy(d, "ints.npy", _faces().astype(np.int32)), "must be uint8 or float"),
    Bad("wrong-dtype-complex", lambda d: _save_npy(d, "complex.npy", _faces().astype(np.complex64)), "must be uint8 or float"),
    Bad("nan", lambda d: _save_npy(d, "nan.npy", _floats(i1=np.nan)), "NaN or infinite"),
    Bad("inf", lambda d: _save_npy(d, "inf.npy", _floats(i2=np.inf)), "NaN or infinite"),
    Bad("out-of-range-floats", lambda d: _save_npy(d, "range.npy", _faces().astype(np.float32)), "must lie in [-1, 1] or [0, 1]"),
    Bad("npz-missing-images-key", lambda d: _save_npz(d, "labels.npz", label=np.arange(4)), "no 'images' array"),
    Bad("npz-names-do-not-match", lambda d: _save_npz(d, "named.npz", images=_faces(), names=np.array(["a", "b"])),
        "'names' has 2 entries for 6 images"),
    Bad("pickle-npy", lambda d: _save_npy(d, "evil.npy", _objects(), allow_pickle=True), "pickle"),
    Bad("pickle-npz", lambda d: _save_npz(d, "evil.npz", images=_objects()), "pickle"),
    Bad("truncated-npy", lambda d: _truncated(_save_npy(d, "cut.npy", _faces())), "cannot load array"),
    Bad("truncated-npy-header", lambda d: _truncated(_save_npy(d, "head.npy", _faces()), keep=0.01), "cannot load array"),
    Bad("truncated-npz", lambda d: _truncated(_save_npz(d, "cut.npz", images=_faces())), "damaged or unreadable array file"),
    Bad("text-named-npy", lambda d: _write(d, "notes.npy", b"hello\n"), "not a .npy array"),
    Bad("zero-bytes-npz", lambda d: _write(d, "empty.npz", b""), "not a .npz (zip) archive"),
]


# --- latent files (decompress) ----------------------------------------------------------------------------


def _latents_from(folder: Path, model_dir: Path, name: str, drop=(), **changes) -> Path:
    from aekit_compress import save_latents

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    z = np.random.default_rng(0).normal(size=(3, TINY["latent_dim"])).astype(np.float32)
    save_latents(path, z, ["a.png", "b.png", "c.png"], aekit.load(model_dir), "float16")
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files if k not in drop}
    arrays.update(changes)
    path.unlink()
    np.savez(path, **arrays)
    return path


@dataclass(frozen=True)
class BadLatents:
    id: str
    make: Callable[[Path, Path], Path]  # (folder, model_dir) -> path
    problem: str


LAT = TINY["latent_dim"]
BAD_LATENTS = [
    BadLatents("wrong-dimension", lambda d, m: _latents_from(d, m, "dim.npz", latents=np.zeros((3, 8), np.float16)), "latents have 8 dimensions"),
    BadLatents("3d-latents", lambda d, m: _latents_from(d, m, "cube.npz", latents=np.zeros((1, 3, LAT), np.float16)), "must be a 2-D (N, d) array"),
    BadLatents("1d-latents", lambda d, m: _latents_from(d, m, "line.npz", latents=np.zeros(LAT, np.float16)), "must be a 2-D (N, d) array"),
    BadLatents("text-latents", lambda d, m: _latents_from(d, m, "text.npz", latents=np.array([["x"] * LAT] * 3)), "latents are stored as <U1"),
    BadLatents("dtype-label-mismatch", lambda d, m: _latents_from(d, m, "mixed.npz", latents=np.zeros((3, LAT), np.float32)),
               "latents are stored as float32, but the file says float16"),
    BadLatents("unknown-dtype-label", lambda d, m: _latents_from(d, m, "bf7.npz", dtype=np.asarray("bfloat7")), "unknown latent dtype 'bfloat7'"),
    BadLatents("dtype-label-not-text", lambda d, m: _latents_from(d, m, "five.npz", dtype=np.asarray(5)), "'dtype' must be a text scalar"),
    BadLatents("nan", lambda d, m: _latents_from(d, m, "nan.npz", latents=np.full((3, LAT), np.nan, np.float16)), "NaN or infinite"),
    BadLatents("inf", lambda d, m: _latents_from(d, m, "inf.npz", latents=np.full((3, LAT), np.inf, np.float16)), "NaN or infinite"),
    BadLatents("missing-latents-key", lambda d, m: _latents_from(d, m, "nolat.npz", drop=("latents",)), "missing latents"),
    BadLatents("missing-names-and-meta", lambda d, m: _latents_from(d, m, "bare.npz", drop=("names", "meta")), "missing names, meta"),
    BadLatents("int8-without-scales", lambda d, m: _latents_from(d, m, "q.npz", dtype=np.asarray("int8"), latents=np.zeros((3, LAT), np.int8)),
               "int8 latents without their scale/offset"),
    BadLatents("int8-scales-of-wrong-shape", lambda d, m: _latents_from(d, m, "qs.npz", dtype=np.asarray("int8"), latents=np.zeros((3, LAT), np.int8),
                                                                       scale=np.ones(3, np.float32), offset=np.zeros(3, np.float32)),
               "int8 scale must be float of shape"),
    BadLatents("names-do-not-match", lambda d, m: _latents_from(d, m, "names.npz", names=np.array(["a"])), "1 names for latents of shape (3, 16)"),
    BadLatents("names-2d", lambda d, m: _latents_from(d, m, "names2d.npz", names=np.array([["a", "b", "c"]])), "names must be a 1-D array of text"),
    BadLatents("metadata-not-json", lambda d, m: _latents_from(d, m, "meta.npz", meta=np.asarray("{broken")), "damaged metadata"),
    BadLatents("metadata-not-an-object", lambda d, m: _latents_from(d, m, "metalist.npz", meta=np.asarray("[1, 2]")), "not a JSON object"),
    BadLatents("pickled-names", lambda d, m: _latents_from(d, m, "pickled.npz", names=np.array(["a", 1, None], dtype=object)), "pickle"),
    BadLatents("another-models-latents", lambda d, m: _latents_from(d, m, "other.npz", model_id=np.asarray("0123456789abcdef")),
               "decompress with the model that compressed it"),
    BadLatents("truncated", lambda d, m: _truncated(_latents_from(d, m, "cut.npz")), "not a readable latent .npz"),
    BadLatents("zero-bytes", lambda d, m: _write(d, "empty.npz", b""), "the file is empty"),
    BadLatents("text-file", lambda d, m: _write(d, "notes.npz", b"hello"), "not a zip archive"),
    BadLatents("a-npy-array", lambda d, m: _save_npy(d, "plain.npy", np.zeros((3, LAT), np.float32)), "it is a .npy array"),
    BadLatents("a-directory", lambda d, m: (d / "dir.npz").mkdir(parents=True) or d / "dir.npz", "is a directory"),
]


# --- checkpoints ------------------------------------------------------------------------------------------


def _checkpoint(folder: Path, model_dir: Path, name: str, change=None) -> Path:
    target = folder / f"ckpt-{name}"
    shutil.copytree(model_dir, target)
    if change:
        change(target)
    return target


def _edit_config(**fields):
    def edit(target: Path):
        config = json.loads((target / "config.json").read_text())
        for key, value in fields.items():
            if key == "config_fields":
                config["config"].update(value)
            else:
                config[key] = value
        (target / "config.json").write_text(json.dumps(config))
    return edit


def _edit_weights(edit):
    def change(target: Path):
        from safetensors.torch import load_file, save_file

        state = load_file(str(target / "model.safetensors"))
        edit(state)
        save_file(state, str(target / "model.safetensors"))
    return change


def _nan_weight(state):
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = torch.full_like(state[key], float("nan"))


def _pickle_instead(suffix: str):
    def change(target: Path):
        (target / "model.safetensors").unlink()
        torch.save({"weights": torch.zeros(2)}, target / f"model{suffix}")
    return change


def _pickle_file(folder: Path, model_dir: Path, name: str) -> Path:
    target = folder / f"ckpt-{name}"
    target.mkdir(parents=True)
    torch.save({"weights": torch.zeros(2)}, target / "weights.bin")
    return target / "weights.bin"


@dataclass(frozen=True)
class BadCheckpoint:
    id: str
    make: Callable[[Path, Path], Path]  # (folder, model_dir) -> a path to pass as --model
    problem: str


def _ck(name, problem, change=None):
    return BadCheckpoint(name, lambda d, m: _checkpoint(d, m, name, change), problem)


BAD_CHECKPOINTS = [
    _ck("missing-config", "not an aekit checkpoint (no config.json)", lambda t: (t / "config.json").unlink()),
    _ck("missing-weights", "no model.safetensors", lambda t: (t / "model.safetensors").unlink()),
    _ck("config-invalid-json", "invalid JSON", lambda t: (t / "config.json").write_text("{not json")),
    _ck("config-not-utf8", "invalid JSON", lambda t: (t / "config.json").write_bytes(b"\xff\xfe\x00{")),
    _ck("config-not-an-object", "not an aekit config", lambda t: (t / "config.json").write_text("[1, 2]")),
    _ck("config-without-format", "not an aekit config", _edit_config(format="something-else")),
    _ck("config-is-a-directory", "no config.json", lambda t: (t / "config.json").unlink() or (t / "config.json").mkdir()),
    _ck("config-and-weights-disagree", "weights do not match config.json", _edit_config(config_fields={"latent_dim": 32})),
    _ck("config-claims-a-huge-model", "weights do not match config.json", _edit_config(config_fields={"latent_dim": 10**9})),
    _ck("wrong-architecture-name", "architecture 'vq-vae' is not registered", _edit_config(architecture="vq-vae")),
    _ck("config-field-unknown", "no config field(s) dropout", _edit_config(config_fields={"dropout": 0.1})),
    _ck("config-field-wrong-type", "invalid config for model 'article'", _edit_config(config_fields={"latent_dim": "big"})),
    _ck("config-field-invalid-value", "invalid config for model 'article'", _edit_config(config_fields={"latent_dim": -3})),
    _ck("weights-missing-a-tensor", "1 missing", _edit_weights(lambda s: s.pop("decoder.0.bias"))),
    _ck("weights-with-an-extra-tensor", "1 unexpected", _edit_weights(lambda s: s.update(extra=torch.zeros(3)))),
    _ck("weights-with-nan", "NaN or infinite", _edit_weights(_nan_weight)),
    _ck("truncated-safetensors", "unreadable safetensors file", lambda t: _truncated(t / "model.safetensors")),
    _ck("safetensors-header-only", "unreadable safetensors file", lambda t: _truncated(t / "model.safetensors", keep=0.0001)),
    _ck("pt-pickle-instead-of-safetensors", "refusing to load a pickle-based file (.pt); aekit loads only model.safetensors",
        _pickle_instead(".pt")),
    BadCheckpoint("bin-pickle-file", lambda d, m: _pickle_file(d, m, "bin-pickle-file"),
                  "refusing to load a pickle-based file (.bin); aekit loads only model.safetensors"),
    BadCheckpoint("an-image-file", lambda d, m: _write(d / "ckpt-an-image-file", "face.png", _encoded(Image.fromarray(_face()), "PNG")),
                  "not a checkpoint; give the folder holding model.safetensors"),
    BadCheckpoint("missing-folder", lambda d, m: d / "ckpt-missing-folder" / "nowhere", "no such checkpoint folder"),
]


# --- CLI options and output paths ---------------------------------------------------------------------------

BAD_OPTIONS = [  # (command, extra arguments, the problem the error names)
    ("train", ["--epochs", "-1"], "--epochs must be at least 1"),
    ("train", ["--epochs", "0"], "--epochs must be at least 1"),
    ("train", ["--epochs", "many"], "'many' is not a valid integer"),
    ("train", ["--batch-size", "0"], "--batch-size must be at least 1"),
    ("train", ["--batch-size", "-8"], "--batch-size must be at least 1"),
    ("train", ["--lr", "-1"], "--lr must be a positive number"),
    ("train", ["--lr", "nan"], "--lr must be a positive number"),
    ("train", ["--weight-decay", "-1"], "--weight-decay must be zero or more"),
    ("train", ["--shift", "-2"], "--shift must be zero or more pixels"),
    ("train", ["--color-jitter", "1.5"], "--color-jitter must be in [0, 1)"),
    ("train", ["--val-fraction", "1.5"], "--val-fraction must be in [0, 1)"),
    ("train", ["--sample-every", "-1"], "--sample-every must be zero"),
    ("train", ["--limit", "-1"], "--skip and --limit must be zero or more"),
    ("train", ["--precision", "fp8"], "'fp8' is not one of"),
    ("train", ["--on-nan", "ignore"], "'ignore' is not one of"),
    ("train", ["--device", "tpu"], "unknown device 'tpu'"),
    ("train", ["--arch", "nope"], "unknown model 'nope'"),
    ("train", ["--model-config", "latent_dim=big"], "'big' is not a number"),
    ("train", ["--model-config", "depth=3"], "no config field(s) depth"),
    ("generate", ["--n", "0"], "0 is not in the range"),
    ("generate", ["--n", "100000"], "100000 is not in the range"),
    ("generate", ["--sampler", "nope"], "unknown sampler 'nope'"),
    ("generate", ["--seed", "-1"], "-1 is not in the range"),
    ("generate", ["--out", "{tmp}/grid.jpg"], "must end in .png"),
    ("fit-prior", ["--sampler", "nope"], "unknown sampler 'nope'"),
    ("fit-prior", ["--sampler", "normal"], "needs no fitting"),
    ("fit-prior", ["--components", "0"], "0 is not in the range"),
    ("fit-prior", ["--limit", "1"], "1 is not in the range"),
    ("fit-prior", ["--batch-size", "0"], "0 is not in the range"),
    ("compress", ["--dtype", "int4"], "'int4' is not one of"),
    ("compress", ["--batch-size", "0"], "0 is not in the range"),
    ("compress", ["--out", "{tmp}/latents.txt"], "must end in .npz"),
    ("decompress", ["--size", "0"], "0 is not in the range"),
    ("decompress", ["--batch-size", "0"], "0 is not in the range"),
    ("interpolate", ["--steps", "1"], "1 is not in the range"),
    ("interpolate", ["--steps", "65"], "65 is not in the range"),
    ("info", ["--nope"], "No such option"),
]

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
    ("interpolate", "overwrites-input-a"),
    ("fit-prior", "read-only-folder"), ("fit-prior", "read-only-simulated"),
]

IMAGE_COMMANDS = ["train", "fit-prior", "compress", "interpolate"]
ARRAY_COMMANDS = ["train", "fit-prior", "compress"]
CHECKPOINT_COMMANDS = ["info", "generate", "compress", "decompress", "interpolate", "fit-prior", "train"]


def bad_input_counts() -> dict[str, dict[str, int]]:
    """Bad inputs tried per command, by kind (what the parametrized tests below run)."""
    commands = ["train", "compress", "decompress", "info", "fit-prior", "generate", "interpolate"]
    counts = {c: {"images": 0, "arrays": 0, "latents": 0, "checkpoints": 0, "options": 0, "outputs": 0} for c in commands}
    for c in IMAGE_COMMANDS:
        counts[c]["images"] = len(BAD_IMAGES)
    for c in ARRAY_COMMANDS:
        counts[c]["arrays"] = len(BAD_ARRAYS)
    counts["decompress"]["latents"] = len(BAD_LATENTS)
    for c in CHECKPOINT_COMMANDS:
        counts[c]["checkpoints"] = len(BAD_CHECKPOINTS)
    for c, _, _ in BAD_OPTIONS:
        counts[c]["options"] += 1
    for c, _ in BAD_OUTPUTS:
        counts[c]["outputs"] += 1
    return counts


def format_counts() -> str:
    counts = bad_input_counts()
    kinds = list(next(iter(counts.values())))
    lines = [f"{'command':<12}" + "".join(f"{k:>12}" for k in kinds) + f"{'total':>8}"]
    for command, row in counts.items():
        lines.append(f"{command:<12}" + "".join(f"{row[k]:>12}" for k in kinds) + f"{sum(row.values()):>8}")
    total = sum(sum(row.values()) for row in counts.values())
    lines.append(f"all commands: {total} bad inputs tried; plus {len(ACCEPTED_IMAGES)} edge images that must be accepted")
    return "\n".join(lines)


# --- helpers ------------------------------------------------------------------------------------------------


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A tiny checkpoint, two readable faces and a valid latent file, made once; tests must not change them."""
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
    return {"model": model_dir, "good": sorted((root / "good").iterdir()), "latents": root / "z.npz"}


@pytest.fixture
def model_dir(shared):
    yield shared["model"]
    assert not list(shared["model"].glob("prior-*")), "a test wrote into the shared model folder"


@pytest.fixture
def good_images(shared):
    """Two readable faces, for the commands that need other inputs than the bad one."""
    return shared["good"]


def stray_temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*.tmp")]


def error_line(result) -> str:
    """The one `Error:` line of a failed command (and no traceback)."""
    assert result.exit_code not in (0, None), result.output
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(lines) == 1, result.output
    return lines[0]


def assert_one_line_error(result, root: Path, *needles: str) -> str:
    line = error_line(result)
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    assert stray_temporaries(root) == []
    return line


def invoke(runner, *args):
    return runner.invoke(cli, [str(a) for a in args])


def _command_args(command: str, tmp_path: Path, model: Path, good: list[Path], image: Path | None = None,
                  data: Path | str | None = None, latents: Path | None = None) -> list:
    """Arguments that run `command` with this model on this image / data / latent file (else good inputs)."""
    image = image or good[0]
    if command == "train":
        return ["train", "--data", data, "--epochs", "1", "--batch-size", "2", "--quiet", "--sample-every", "0",
                "--out", tmp_path / "run", *TINY_CLI]
    if command == "fit-prior":
        return ["fit-prior", "-m", model, "--data", data or good[0].parent, "-q"]
    if command == "compress":
        return ["compress", image, "-m", model, "-o", tmp_path / "out.npz", "-q"]
    if command == "interpolate":
        return ["interpolate", image, good[1], "-m", model, "--out", tmp_path / "strip.png"]
    if command == "decompress":
        return ["decompress", latents, "-m", model, "-o", tmp_path / "restored", "-q"]
    if command == "generate":
        return ["generate", "-m", model, "--out", tmp_path / "grid.png", "--sampler", "normal", "--seed", "1"]
    if command == "info":
        return ["info", model]
    raise AssertionError(command)


OUTPUTS = ("run/config.json", "out.npz", "strip.png", "grid.png")


def _no_outputs(tmp_path: Path) -> None:
    for name in OUTPUTS:
        assert not (tmp_path / name).exists(), name
    restored = tmp_path / "restored"
    assert not restored.exists() or not any(restored.iterdir())


def _apply(case, monkeypatch, path: Path) -> None:
    if case.max_pixels:
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", case.max_pixels)
    if case.simulate:
        case.simulate(monkeypatch, path)


# --- bad images, arrays, latents and checkpoints, command by command ----------------------------------------


def _each_command(commands, run_one) -> None:
    """Run one bad input through each command; a failure says which command it was."""
    for command in commands:
        try:
            run_one(command)
        except AssertionError as exc:
            raise AssertionError(f"aekit {command}: {exc}") from None


@pytest.mark.parametrize("case", BAD_IMAGES, ids=lambda c: c.id)
def test_bad_image_in_every_command_that_reads_images(case, runner, tmp_path, model_dir, good_images, monkeypatch):
    if reason := case.skip():
        pytest.skip(reason)
    data = tmp_path / "data"  # train and fit-prior read a folder holding only the bad file
    path = case.make(data)
    _apply(case, monkeypatch, path)

    def run_one(command):
        result = invoke(runner, *_command_args(command, tmp_path, model_dir, good_images, image=path, data=data))
        if case.is_dir:
            needles = {"interpolate": [path.name, "is a directory"], "compress": [path.name, "no image files"]}.get(
                command, [data.name, "no image files"])
        else:
            needles = [case.shown(path), case.problem]
            if command in ("train", "fit-prior", "compress"):
                needles.append("could be read (first problem:")
        assert_one_line_error(result, tmp_path, *needles)
        _no_outputs(tmp_path)

    _each_command(IMAGE_COMMANDS, run_one)


@pytest.mark.parametrize("case", BAD_ARRAYS, ids=lambda c: c.id)
def test_bad_array_in_every_command_that_reads_arrays(case, runner, tmp_path, model_dir, good_images):
    path = case.make(tmp_path / "arrays")

    def run_one(command):
        result = invoke(runner, *_command_args(command, tmp_path, model_dir, good_images, image=path, data=path))
        assert_one_line_error(result, tmp_path, path.name, case.problem)
        _no_outputs(tmp_path)

    _each_command(ARRAY_COMMANDS, run_one)


@pytest.mark.parametrize("case", BAD_LATENTS, ids=lambda c: c.id)
def test_bad_latent_file(case, runner, tmp_path, model_dir, good_images):
    path = case.make(tmp_path / "latents", model_dir)
    result = invoke(runner, *_command_args("decompress", tmp_path, model_dir, good_images, latents=path))
    assert_one_line_error(result, tmp_path, path.name, case.problem)
    _no_outputs(tmp_path)


@pytest.mark.parametrize("case", BAD_CHECKPOINTS, ids=lambda c: c.id)
def test_bad_checkpoint_in_every_command_that_loads_one(case, runner, tmp_path, model_dir, good_images, shared):
    bad = case.make(tmp_path / "checkpoints", model_dir)
    latents = shared["latents"]
    name = next(part for part in bad.parts if part.startswith("ckpt-"))

    def run_one(command):
        args = _command_args(command, tmp_path, bad, good_images, latents=latents)
        if command == "train":
            args = ["train", "--data", "synthetic:8", "--init", bad, "--epochs", "1", "--batch-size", "4", "--quiet",
                    "--out", tmp_path / "run"]
        assert_one_line_error(invoke(runner, *args), tmp_path, name, case.problem)
        _no_outputs(tmp_path)
        assert not list(Path(bad if bad.is_dir() else bad.parent).glob("prior-*"))

    _each_command(CHECKPOINT_COMMANDS, run_one)


@pytest.mark.parametrize("command, extra, problem", BAD_OPTIONS, ids=[f"{c}{'_'.join(a)}" for c, a, _ in BAD_OPTIONS])
def test_bad_option_value(command, extra, problem, runner, tmp_path, model_dir, good_images, shared):
    args = _command_args(command, tmp_path, model_dir, good_images, latents=shared["latents"],
                         data="synthetic:8")
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    if extra[0] in args and extra[0] in ("--out", "--sampler"):  # replace the option rather than giving it twice
        i = args.index(extra[0])
        args[i : i + 2] = extra
    else:
        args += extra
    assert_one_line_error(invoke(runner, *args), tmp_path, problem)
    _no_outputs(tmp_path)


def _read_only(folder: Path, monkeypatch, simulated: bool) -> Path:
    """A folder nothing can be written to: chmod 0o555, or (as root) a patched writer that fails like one."""
    folder.mkdir(parents=True, exist_ok=True)
    if not simulated:
        if reason := _root_reason():
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


@pytest.mark.parametrize("command, case", BAD_OUTPUTS, ids=[f"{c}-{k}" for c, k in BAD_OUTPUTS])
def test_bad_output_path(command, case, runner, tmp_path, model_dir, good_images, shared, monkeypatch):
    args = _command_args(command, tmp_path, model_dir, good_images, latents=shared["latents"],
                         data="synthetic:8" if command == "train" else None)
    option = {"train": "--out", "compress": "-o", "decompress": "-o", "generate": "--out", "interpolate": "--out"}.get(command)
    protected: dict[Path, bytes] = {}

    def set_out(value):
        args[args.index(option) + 1] = value

    read_only = None
    if case == "missing-folder":
        target = tmp_path / "no" / "such" / "folder" / Path(args[args.index(option) + 1]).name
        set_out(target)
        needles = [str(target.parent), "does not exist"]
    elif case in ("read-only-folder", "read-only-simulated"):
        read_only = _read_only(tmp_path / "locked", monkeypatch, simulated=case.endswith("simulated"))
        if command == "fit-prior":  # fit-prior writes beside the model: make the model folder read-only
            model_copy = shutil.copytree(model_dir, read_only / "model") if case.endswith("simulated") else None
            if model_copy is None:
                read_only.chmod(0o755)
                shutil.copytree(model_dir, read_only / "model")
                (read_only / "model").chmod(0o555)
            args[args.index("-m") + 1] = read_only / "model"
            needles = ["prior-", "Permission denied"]
        else:
            target = read_only / Path(args[args.index(option) + 1]).name
            set_out(target)
            needles = [target.name, "Permission denied"]
    elif case == "out-is-the-init-checkpoint":
        args += ["--init", model_dir]
        set_out(model_dir)
        protected = {p: p.read_bytes() for p in model_dir.iterdir()}
        needles = [model_dir.name, "is the --init checkpoint"]
    elif case == "out-inside-the-data-folder":
        args[2] = good_images[0].parent
        set_out(good_images[0].parent / "runs" / "run1")
        needles = ["inside the data folder", good_images[0].parent.name]
    elif case == "out-is-a-file":
        set_out(good_images[0])
        protected = {good_images[0]: good_images[0].read_bytes()}
        needles = [good_images[0].name, "is a file"]
    elif case == "overwrites-the-input-image":
        set_out(good_images[0])
        protected = {good_images[0]: good_images[0].read_bytes()}
        needles = [good_images[0].name, "would overwrite an input"]
    elif case == "overwrites-the-input-array":
        array = _save_npz(tmp_path / "arrays", "faces.npz", images=_faces())
        args[1] = array
        set_out(array)
        protected = {array: array.read_bytes()}
        needles = [array.name, "would overwrite an input"]
    elif case == "overwrites-input-a":
        set_out(good_images[0])
        protected = {good_images[0]: good_images[0].read_bytes()}
        needles = [good_images[0].name, "would overwrite an input image"]
    elif case == "latents-in-a-missing-folder":
        args += ["--save-latents", tmp_path / "nowhere" / "z.npz"]
        needles = ["--save-latents", "does not exist"]
    else:
        raise AssertionError(case)
    try:
        assert_one_line_error(invoke(runner, *args), tmp_path, *needles)
    finally:
        if read_only is not None:
            for folder in (read_only, read_only / "model"):
                if folder.exists():
                    folder.chmod(0o755)
    for path, data in protected.items():
        assert path.read_bytes() == data, f"{path} was overwritten"
    _no_outputs(tmp_path)
    if read_only is not None:
        assert [p.name for p in read_only.rglob("*") if p.is_file() and p.parent == read_only] == []


# --- batch commands skip and list bad files and write the good results ----------------------------------------


def _mixed_folder(root: Path, monkeypatch, good_faces: int = 0) -> tuple[Path, list[str], list[Path]]:
    """A folder with every bad image file, every accepted edge image and `good_faces` plain faces.

    Returns (folder, names of the readable images relative to it, paths of the bad files).
    """
    folder = root / "mixed"
    bad = []
    for case in BAD_IMAGES:
        if case.skip() or case.id == "empty-folder":
            continue
        path = case.make(folder)
        _apply(case, monkeypatch, path)
        if not case.is_dir:
            bad.append(path)
    good = [make(folder) for _, make in ACCEPTED_IMAGES]
    for i, image in enumerate(make_faces(good_faces, seed=7, size=32)[0] if good_faces else []):
        Image.fromarray(image).save(folder / f"face{i:02d}.png")
        good.append(folder / f"face{i:02d}.png")
    return folder, sorted(p.relative_to(folder).as_posix() for p in good), bad


def _listed(output: str, bad: list[Path]) -> None:
    listed = [line for line in output.splitlines() if line.startswith("skipped: ") and "... and" not in line]
    assert len(listed) == len(bad), output
    for path in bad:
        assert sum(BAD_IMAGES[0].shown(path) in line for line in listed) == 1, (path, output)


def test_compress_skips_and_lists_bad_files_and_writes_the_good_ones(runner, tmp_path, model_dir, monkeypatch):
    from aekit_compress import load_latents

    folder, good, bad = _mixed_folder(tmp_path, monkeypatch)
    result = invoke(runner, "compress", folder, "-m", model_dir, "-o", tmp_path / "z.npz", "-q")
    assert result.exit_code == 0, result.output
    assert f"{len(good)} latents" in result.stdout and f"{len(bad)} skipped" in result.stdout
    _listed(result.stderr, bad)
    stored = load_latents(tmp_path / "z.npz", aekit.load(model_dir))
    assert sorted(stored.names) == good
    # the same files named one by one on the command line (a glob), folders among them
    named = sorted(folder.iterdir())
    names = [p for p in named if not p.is_dir()]
    result = invoke(runner, "compress", *names, "-m", model_dir, "-o", tmp_path / "z2.npz", "-q")
    assert result.exit_code == 0, result.output
    _listed(result.stderr, bad)
    assert len(load_latents(tmp_path / "z2.npz").names) == len(good)
    assert stray_temporaries(tmp_path) == []


def test_train_data_preparation_skips_and_lists_bad_files(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("AEKIT_LOAD_PLUGINS", "sources")  # no prior fitting at the end: faster
    folder, good, bad = _mixed_folder(tmp_path, monkeypatch, good_faces=5)
    run = tmp_path / "run"
    result = invoke(runner, "train", "--data", folder, "--epochs", "1", "--batch-size", "4", "--quiet", "--sample-every", "0",
                    "--out", run, *TINY_CLI)
    assert result.exit_code == 0, result.output
    assert f"skipped {len(bad)} unreadable image(s)" in result.stderr
    _listed(result.stderr, bad)
    assert json.loads((run / "run.json").read_text())["train_images"] == len(good)
    assert aekit.load(run).training_summary["skipped"] == len(bad)
    assert stray_temporaries(tmp_path) == []


def test_fit_prior_data_skips_and_lists_bad_files(runner, tmp_path, model_dir, monkeypatch):
    model_dir = shutil.copytree(model_dir, tmp_path / "model")  # fit-prior writes beside the model
    folder, good, bad = _mixed_folder(tmp_path, monkeypatch)
    result = invoke(runner, "fit-prior", "-m", model_dir, "--data", folder, "--sampler", "gaussian", "-q")
    assert result.exit_code == 0, result.output
    _listed(result.stderr, bad)
    assert f"{len(good)} images, {len(bad)} unreadable skipped" in result.stderr
    assert (model_dir / "prior-gaussian.safetensors").is_file()
    assert stray_temporaries(tmp_path) == []


def test_every_accepted_edge_image_works_in_interpolate(runner, tmp_path, model_dir, good_images):
    for name, make in ACCEPTED_IMAGES:
        path = make(tmp_path / "edge")
        out = tmp_path / f"strip-{name}.png"
        result = invoke(runner, "interpolate", path, good_images[0], "-m", model_dir, "--steps", "2", "--out", out)
        assert result.exit_code == 0, (name, result.output)
        assert Image.open(out).format == "PNG"


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


@pytest.mark.parametrize("command", ["train", "compress", "decompress", "info", "fit-prior", "generate", "interpolate"])
def test_debug_shows_the_traceback(command, runner, tmp_path, model_dir, good_images):
    bad = _write(tmp_path / "bad", "cut.png", _encoded(Image.fromarray(_face()), "PNG")[:500])
    args = _command_args(command, tmp_path, model_dir, good_images, image=bad, data=bad.parent)
    if command in ("info", "generate", "decompress"):
        args = _command_args(command, tmp_path, tmp_path / "no-such-model", good_images, latents=bad)
    plain = invoke(runner, *args)
    error_line(plain)
    debug = invoke(runner, "--debug", *args)
    assert debug.exit_code not in (0, None) and "Traceback" in debug.output, debug.output


def test_bad_input_counts_per_command():
    """Prints the table of bad inputs tried per command (pytest -rA or -s shows it)."""
    counts = bad_input_counts()
    assert all(sum(row.values()) > 0 for row in counts.values())
    print("\nbad inputs tried per command\n" + format_counts())


# --- property-based: random and mutated bytes raise only aekit's errors ----------------------------------------


def _seeds_images() -> list[bytes]:
    face = Image.fromarray(_face(24))
    return [_encoded(face, "PNG"), _encoded(face, "JPEG", quality=80), _encoded(face.convert("P"), "GIF"),
            _encoded(face, "BMP"), _encoded(face, "TIFF"), _encoded(face, "WEBP"), _encoded(face.convert("RGBA"), "PNG")]


def _npy_bytes(array) -> bytes:
    buffer = _io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _npz_bytes(**arrays) -> bytes:
    buffer = _io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _write_temp(data: bytes, suffix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="aekit-fuzz-"))
    path = folder / f"input{suffix}"
    path.write_bytes(data)
    return path


def _latent_seeds() -> list[bytes]:
    from aekit_compress import encode_for_storage

    z = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    seeds = []
    for dtype in ("float16", "int8"):
        seeds.append(_npz_bytes(names=np.array(["a", "b", "c", "d"]), dtype=np.asarray(dtype), model_id=np.asarray("0" * 16),
                                meta=np.asarray(json.dumps({"format": "aekit-latents"})), **encode_for_storage(z, dtype)))
    return seeds


def _array_seeds() -> list[tuple[bytes, str]]:
    faces = _faces(3, 16)
    return [(_npy_bytes(faces), ".npy"), (_npy_bytes(faces.transpose(0, 3, 1, 2).astype(np.float32) / 255), ".npy"),
            (_npz_bytes(images=faces, names=np.array(["x", "y", "z"]), smiling=np.array([0, 1, 0])), ".npz")]


try:
    from hypothesis import HealthCheck, given, settings, strategies as st
except ImportError:  # pragma: no cover - a dev dependency
    st = None

if st is None:  # pragma: no cover

    @pytest.mark.skip(reason="hypothesis is not installed (pip install hypothesis)")
    def test_property_based_readers():
        pass

else:

    # AEKIT_FUZZ_EXAMPLES=5000 for a longer search (random instead of the fixed examples)
    EXAMPLES = int(os.environ.get("AEKIT_FUZZ_EXAMPLES", "80"))
    FUZZ = settings(max_examples=EXAMPLES, deadline=5000, suppress_health_check=[HealthCheck.too_slow], database=None,
                    derandomize="AEKIT_FUZZ_EXAMPLES" not in os.environ)

    @st.composite
    def mutated(draw, seeds: list[bytes]):
        """A valid file with some bytes changed, a run inserted or deleted, and maybe truncated."""
        data = bytearray(draw(st.sampled_from(seeds)))
        for _ in range(draw(st.integers(0, 6))):
            where = draw(st.integers(0, len(data) - 1))
            action = draw(st.sampled_from(["set", "insert", "delete"]))
            if action == "set":
                data[where] = draw(st.integers(0, 255))
            elif action == "insert":
                data[where:where] = draw(st.binary(min_size=1, max_size=16))
            else:
                del data[where : where + draw(st.integers(1, 16))]
            if not data:
                break
        if draw(st.booleans()):
            data = data[: draw(st.integers(0, len(data)))]
        return bytes(data)

    def _file_bytes(seeds):
        return st.one_of(st.binary(max_size=2048), mutated(seeds), st.sampled_from(seeds))

    @pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # Pillow warns about some damaged TIFF tags
    @FUZZ
    @given(data=_file_bytes(_seeds_images()), suffix=st.sampled_from([".png", ".jpg", ".gif", ".bmp", ".tif", ".webp"]))
    def test_open_image_raises_only_image_read_errors(data, suffix):
        from aekit.images import open_image

        path = _write_temp(data, suffix)
        try:
            with mock.patch.object(Image, "MAX_IMAGE_PIXELS", 4_000_000):  # mutated headers must not allocate gigabytes
                image = open_image(path)
            assert image.mode == "RGB" and image.width >= 1 and image.height >= 1
        except ImageReadError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
        finally:
            shutil.rmtree(path.parent)

    @FUZZ
    @given(data=_file_bytes(_latent_seeds()))
    def test_load_latents_raises_only_aekit_errors(data):
        from aekit_compress import LatentFile, load_latents

        path = _write_temp(data, ".npz")
        try:
            loaded = load_latents(path)
            assert isinstance(loaded, LatentFile) and loaded.latents.dtype == np.float32 and loaded.latents.ndim == 2
            assert np.isfinite(loaded.latents).all() and len(loaded.names) == len(loaded.latents)
        except AekitError as exc:
            assert str(path) in str(exc)
        finally:
            shutil.rmtree(path.parent)

    @FUZZ
    @given(seed=st.sampled_from(_array_seeds()), data=st.data())
    def test_array_source_raises_only_aekit_errors(seed, data):
        from aekit_sources import ArraySource

        raw, suffix = seed
        content = data.draw(st.one_of(st.binary(max_size=2048), mutated([raw]), st.just(raw)))
        path = _write_temp(content, suffix)
        try:
            try:
                source = ArraySource(str(path))
            except AekitError as exc:
                assert str(path) in str(exc)
                return
            assert len(source.keys()) == len(source.array) >= 1
            for index in range(min(len(source.keys()), 4)):
                try:
                    image = np.asarray(source.read(index))
                    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
                except ImageReadError:
                    pass
            del source
        finally:
            shutil.rmtree(path.parent)


# --- security: nothing aekit loads can run code -----------------------------------------------------------------

UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _unsafe_uses(path: Path) -> list[str]:
    """Calls and imports in a source file that could unpickle (or run) data."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    shown = path.relative_to(ROOT) if ROOT in path.parents else path.name
    found = []
    for node in ast.walk(tree):
        where = f"{shown}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [f"{where}: import {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            found.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if name in ("torch.load", "eval", "exec") or name.endswith(("pickle.load", "pickle.loads")):
                found.append(f"{where}: {name}(...)")
            for keyword in node.keywords:
                if keyword.arg == "allow_pickle" and not (isinstance(keyword.value, ast.Constant) and keyword.value.value is False):
                    found.append(f"{where}: {name}(allow_pickle={ast.unparse(keyword.value)})")
                if keyword.arg == "weights_only" and not (isinstance(keyword.value, ast.Constant) and keyword.value.value is True):
                    found.append(f"{where}: {name}(weights_only={ast.unparse(keyword.value)})")
            if name in ("np.load", "numpy.load") and not any(k.arg == "allow_pickle" for k in node.keywords):
                found.append(f"{where}: {name}(...) without allow_pickle=False")
    return found


def test_no_code_in_src_or_plugins_can_unpickle():
    files = sorted([*(ROOT / "src").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")])
    assert len(files) > 10
    problems = [problem for path in files for problem in _unsafe_uses(path)]
    assert problems == [], "\n".join(problems)


def test_the_unsafe_use_check_finds_what_it_looks_for(tmp_path):
    sample = tmp_path / "unsafe_sample.py"
    sample.write_text("import pickle\nimport numpy as np\nimport torch\n"
                      "torch.load('x')\nnp.load('a.npy')\nnp.load('a.npy', allow_pickle=True)\npickle.loads(b'')\n", encoding="utf-8")
    found = _unsafe_uses(sample)
    assert len(found) == 5, found


def test_loading_never_unpickles(tmp_path, model_dir, monkeypatch):
    """With every unpickler booby-trapped, a checkpoint, latents, arrays and priors still load."""
    import pickle

    def trap(*args, **kwargs):
        raise AssertionError("aekit unpickled something")

    for target, name in [(torch, "load"), (pickle, "load"), (pickle, "loads")]:
        monkeypatch.setattr(target, name, trap)
    from aekit_compress import load_latents, save_latents
    from aekit_generate import GaussianSampler, load_prior, save_prior
    from aekit_sources import ArraySource

    model = aekit.load(shutil.copytree(model_dir, tmp_path / "model"))  # a prior is written beside it
    save_latents(tmp_path / "z.npz", np.zeros((2, LAT), np.float32), ["a", "b"], model)
    assert len(load_latents(tmp_path / "z.npz", model).names) == 2
    np.savez(tmp_path / "faces.npz", images=_faces())
    assert len(ArraySource(str(tmp_path / "faces.npz")).keys()) == 6
    save_prior(GaussianSampler().fit(np.random.default_rng(0).normal(size=(20, LAT))), "gaussian", model=model)
    assert load_prior(model, "gaussian").sample(2, seed=0).shape == (2, LAT)


def test_push_to_hub_uploads_only_the_model_never_tokens_or_other_files(tmp_path, monkeypatch):
    """A run folder holding secrets: only config.json + model.safetensors leave, from a separate folder."""
    from aekit.train import Trainer, TrainConfig

    monkeypatch.setenv("AEKIT_LOAD_PLUGINS", "sources")
    run = tmp_path / "run"
    Trainer(TrainConfig(data="synthetic:8", epochs=1, batch_size=4, sample_every=0, model_config=dict(TINY)), run,
            progress=False, log=lambda m: None).run()
    token = "hf_SECRETtoken1234567890"
    (run / ".env").write_text(f"HF_TOKEN={token}\n")
    (run / "token").write_text(token)
    (run / "notes.txt").write_text("private")
    monkeypatch.setenv("HF_TOKEN", token)
    uploads = []

    class FakeApi:
        def __init__(self, token=None):
            self.token = token

        def create_repo(self, repo_id, **kwargs):
            pass

        def upload_folder(self, folder_path, repo_id, **kwargs):
            folder = Path(folder_path)
            uploads.append({"folder": folder, "kwargs": kwargs,
                            "files": {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}})

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    model = aekit.load(run)
    model.push_to_hub("me/faces", token=token)
    (upload,) = uploads
    assert sorted(upload["files"]) == ["config.json", "model.safetensors"]
    assert run not in upload["folder"].parents and upload["folder"] != run
    for name, content in upload["files"].items():
        assert token.encode() not in content, name
    assert token not in json.dumps(upload["kwargs"], default=str)
    config = json.loads(upload["files"]["config.json"])
    assert config["training"]["epochs_done"] == 1  # the model's own summary, nothing from the environment


if __name__ == "__main__":  # python tests/test_reliability.py
    sys.path.insert(0, str(ROOT / "src"))
    print(format_counts())
