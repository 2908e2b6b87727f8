"""The corpus of bad and edge inputs the reliability tests feed to every command (made at test time).

Makers write one bad thing into a folder and return its path: images (damaged, unsupported, too large,
unreadable, symlink loops, folders), image arrays, latent files, checkpoints and features files, each
with the words the error must use for the problem; plus the edge images that must be accepted.
Nothing binary is committed. Imported by the test modules (``from corpus import ...``).
"""

from __future__ import annotations

import io as _io
import json
import os
import shutil
import struct
import threading
import time
import weakref
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit.synthetic import make_faces
from helpers import TINY

OVER_LIMIT = 64 * 64  # Image.MAX_IMAGE_PIXELS for the cases that need a lower limit


def _never() -> str | None:
    return None


def root_reason() -> str | None:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return "running as root: root reads and writes regardless of permissions (the simulated case covers it)"
    return None


# --- the corpus: makers write one bad thing into a folder and return its path ----------------------------


def face(size: int = 40, seed: int = 0) -> np.ndarray:
    return make_faces(1, seed=seed, size=size)[0][0]


def encoded(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = _io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def write(folder: Path, name: str, data: bytes) -> Path:
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


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n"  # what Pillow renders with Ghostscript


def ghostscript_trap(monkeypatch, path: Path) -> Path:
    """A stand-in `gs` first on PATH, which writes `gs-ran` beside it if anything runs it; returns that file.

    Pillow remembers whether it found Ghostscript: that is forgotten, so the stand-in would be found.
    """
    from PIL import EpsImagePlugin

    folder = path.parent.parent / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "gs-ran"
    script = folder / "gs"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{marker}"\nexit 0\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)
    return marker


class FifoWatch:
    """Opens the writing end of the FIFO `path` whenever a reader has opened it, and closes it at once: a
    reader that should never have opened it gets end of file (a damaged image) instead of blocking
    forever, so a regression fails its test rather than hanging it; `opened` counts those openings."""

    running = False  # set by `watch_fifo` through monkeypatch, whose undo at the end of the test stops the thread

    def __init__(self, path: Path):
        self.path, self.opened = path, 0

    def start(self) -> "FifoWatch":
        self.running = True
        threading.Thread(target=self._watch, daemon=True, name=f"fifo-watch {self.path.name}").start()
        return self

    def _watch(self) -> None:
        while self.running:
            try:  # without O_NONBLOCK this would block too; with it, it fails (ENXIO) while no reader has it open
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.02)
                continue
            self.opened += 1
            os.close(fd)
            time.sleep(0.02)


FIFO_WATCHES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # path -> its FifoWatch, while the test runs


def watch_fifo(monkeypatch, path: Path) -> FifoWatch:
    """Watch the FIFO `path` (see FifoWatch) until the test ends."""
    watch = FIFO_WATCHES[path] = FifoWatch(path)
    monkeypatch.setattr(watch, "running", True)  # undone (False) when the test ends: the thread stops
    return watch.start()


def no_fifos() -> str | None:
    return None if hasattr(os, "mkfifo") else "this system has no named pipes (FIFOs)"


def make_fifo(folder: Path, name: str = "pipe.jpg") -> Path:
    """A FIFO named like an image: opening it for reading blocks until something writes to it."""
    folder.mkdir(parents=True, exist_ok=True)
    os.mkfifo(folder / name)
    return folder / name


CONTROL_NAME = "cut\nskipped: forged.png\x1b[2J\x1b]0;owned\x07.png"  # a newline, a screen clear, a window title
LONG_NAME = "é" * 125 + "x.png"  # 255 bytes in UTF-8: the longest name Linux, macOS and Windows file systems take


def _unreadable(folder: Path) -> Path:
    path = write(folder, "locked.png", encoded(Image.fromarray(face()), "PNG"))
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
    fifo: bool = False  # a FIFO: watched while the test runs (see FifoWatch), so a reader that opens it cannot hang
    skip: Callable[[], str | None] = _never

    def shown(self, path: Path) -> str:
        """What of the file's name the error line shows (file names that are not UTF-8 are escaped, and so are
        control characters: `aekit.text.printable`)."""
        from aekit.text import printable

        return printable(path.name).split("\udce9")[0]


BAD_IMAGES = [
    Bad("truncated-jpeg", lambda d: write(d, "cut.jpg", encoded(Image.fromarray(face()), "JPEG", quality=95)[:600]),
        "damaged image"),
    Bad("truncated-png", lambda d: write(d, "cut.png", encoded(Image.fromarray(face()), "PNG")[:1500]), "damaged image"),
    Bad("zero-bytes", lambda d: write(d, "empty.jpg", b""), "not an image Pillow can read"),
    Bad("text-named-jpg", lambda d: write(d, "notes.jpg", b"this is not a picture\n"), "not an image Pillow can read"),
    Bad("unsupported-svg-named-png", lambda d: write(d, "vector.png", b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"/>'),
        "not an image Pillow can read"),
    Bad("unsupported-pdf-named-jpg", lambda d: write(d, "doc.jpg", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"),
        "not an image Pillow can read"),
    # Pillow would hand it to Ghostscript (security finding 1): refused by content, and a stand-in gs on PATH
    # leaves a file behind if anything runs it (check_fails finds it)
    Bad("eps-named-jpg", lambda d: write(d, "face.jpg", EPS), "not an image format aekit reads", simulate=ghostscript_trap),
    Bad("ico-named-png", lambda d: write(d, "icon.png", encoded(Image.fromarray(face()), "ICO")), "not an image format aekit reads"),
    # TGA has no signature (so it is not read: any bytes might pass for one); its first bytes are a cursor's
    Bad("tga-named-bmp", lambda d: write(d, "targa.bmp", encoded(Image.fromarray(face()), "TGA")), "not an image format aekit reads"),
    Bad("bomb-header-100000x100000", lambda d: write(d, "bomb.png", _png_header_only(100_000, 100_000)), "image too large"),
    Bad("huge-20000x20000", lambda d: write(d, "huge.png", _png_header_only(20_000, 20_000)), "image too large"),
    Bad("over-lowered-pixel-limit", lambda d: write(d, "big.png", encoded(Image.fromarray(face(80)), "PNG")),
        "image too large", max_pixels=OVER_LIMIT),
    Bad("unreadable-permissions", _unreadable, "permission denied", skip=root_reason),
    Bad("unreadable-simulated", lambda d: write(d, "denied.png", encoded(Image.fromarray(face()), "PNG")),
        "permission denied", simulate=_simulate_permission_denied),
    Bad("symlink-loop", lambda d: _symlink("loop.jpg", d / "loop.jpg"), "symbolic link loop"),
    Bad("non-utf8-name-truncated", lambda d: _non_utf8(d, encoded(Image.fromarray(face()), "PNG")[:900]), "damaged image"),
    # a name that forges a line of output and clears the screen: every line naming it must show it escaped
    Bad("control-characters-in-name", lambda d: write(d, CONTROL_NAME, encoded(Image.fromarray(face()), "PNG")[:900]),
        "damaged image"),
    Bad("directory-named-jpg", lambda d: (d / "folder.jpg").mkdir(parents=True) or d / "folder.jpg", "is a directory", is_dir=True),
    Bad("empty-folder", lambda d: (d / "nothing").mkdir(parents=True) or d / "nothing", "is a directory", is_dir=True),
    Bad("folder-of-symlink-loops", lambda d: _symlink(".", d / "loops" / "self") and d / "loops", "is a directory", is_dir=True),
    Bad("fifo-named-jpg", make_fifo, "not a regular file (a named pipe)", fifo=True, skip=no_fifos),
    Bad("device-named-png", lambda d: _symlink(os.devnull, d / "null.png"), "not a regular file (a character device)",
        skip=lambda: None if os.path.exists("/dev/null") else "no /dev/null here"),
]


def _mode_image(mode: str) -> Image.Image:
    rgb = Image.fromarray(face())
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
    return write(folder, "rotated.jpg", encoded(Image.fromarray(face()).resize((40, 20)), "JPEG", exif=exif))


ACCEPTED_IMAGES = [  # edge inputs that are not bad: each must be read as an RGB image
    ("rgba", lambda d: write(d, "rgba.png", encoded(_mode_image("RGBA"), "PNG"))),
    ("la", lambda d: write(d, "la.png", encoded(_mode_image("LA"), "PNG"))),
    ("p", lambda d: write(d, "p.png", encoded(_mode_image("P-transparent"), "PNG"))),
    ("i16", lambda d: write(d, "i16.png", encoded(_mode_image("I;16"), "PNG"))),
    ("cmyk-jpeg", lambda d: write(d, "cmyk.jpg", encoded(_mode_image("CMYK"), "JPEG"))),
    ("exif-rotated-jpeg", _exif_rotated),
    ("1x1", lambda d: write(d, "dot.png", encoded(Image.fromarray(face()).resize((1, 1)), "PNG"))),
    ("tiff-named-png", lambda d: write(d, "tiff.png", encoded(Image.fromarray(face()), "TIFF"))),
    ("gif", lambda d: write(d, "still.gif", encoded(Image.fromarray(face()), "GIF"))),
    ("tiff", lambda d: write(d, "scan.tif", encoded(Image.fromarray(face()), "TIFF"))),
    # a camera's JPEG with a preview after the picture: Pillow says "MPO"
    ("mpo-camera-jpeg", lambda d: write(d, "camera.jpg", encoded(Image.fromarray(face()), "MPO", save_all=True,
                                                                append_images=[Image.fromarray(face(20))]))),
    ("non-utf8-name", lambda d: _non_utf8(d, encoded(Image.fromarray(face()), "PNG"), prefix=b"good")),
    ("name-255-bytes", lambda d: write(d, LONG_NAME, encoded(Image.fromarray(face()), "PNG"))),
]


# --- images whose size is the hazard (`aekit denoise`): a few KB that once took GBs --------------------------


def _thin(width: int, height: int) -> bytes:
    """A PNG of a smooth stripe one or two pixels thin (a 1x2,000,000 one is 6 KB, and was padded whole to 64 rows)."""
    along = np.linspace(0, 255, max(width, height)).astype(np.uint8)
    stripe = np.stack([along, along[::-1], np.full_like(along, 128)], axis=-1)
    pixels = np.broadcast_to(stripe[None] if width >= height else stripe[:, None], (height, width, 3))
    return encoded(Image.fromarray(np.ascontiguousarray(pixels)), "PNG")


@dataclass(frozen=True)
class Sized:
    """An image whose size, not its bytes, is the problem: `make(folder) -> path`; `problem` the words of its
    refusal, or None when it must be denoised at its own size (a thin one: a few tiles through the model at a time)."""

    id: str
    make: Callable[[Path], Path]
    problem: str | None = None


SIZED_IMAGES = [
    Sized("thin-1x5000-png", lambda d: write(d, "tall.png", _thin(1, 5000))),
    Sized("thin-5000x2-png", lambda d: write(d, "wide.png", _thin(5000, 2))),
    # under Pillow's bomb limit (89 Mpx), over denoise's: refused from its header, before any pixel is decoded
    Sized("huge-9400x9400-png", lambda d: write(d, "huge.png", _png_header_only(9400, 9400)), "image too large to denoise"),
]


def save_npy(folder: Path, name: str, array, allow_pickle: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / name, array, allow_pickle=allow_pickle)
    return folder / name


def save_npz(folder: Path, name: str, **arrays) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / name, **arrays)
    return folder / name


def faces(n: int = 6, size: int = 16) -> np.ndarray:
    return make_faces(n, seed=2, size=size)[0]


def _floats(**at) -> np.ndarray:
    images = faces().astype(np.float32) / 127.5 - 1
    for index, value in at.items():
        images[int(index[1:]), 0, 0, 0] = value
    return images


def _objects() -> np.ndarray:
    objects = np.empty(2, dtype=object)
    objects[0], objects[1] = {"a": 1}, [1, 2]
    return objects


def truncated(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


BAD_ARRAYS = [
    Bad("wrong-shape-3d", lambda d: save_npy(d, "gray.npy", faces()[..., 0]), "must be (N, H, W, 3) or (N, 3, H, W)"),
    Bad("wrong-shape-4-channels", lambda d: save_npy(d, "rgba.npy", np.zeros((4, 16, 16, 4), np.uint8)), "must be (N, H, W, 3)"),
    Bad("zero-size-images", lambda d: save_npy(d, "flat.npy", np.zeros((4, 0, 0, 3), np.uint8)), "at least 1x1"),
    Bad("no-images", lambda d: save_npy(d, "none.npy", np.zeros((0, 16, 16, 3), np.uint8)), "holds no images"),
    Bad("wrong-dtype-int32", lambda d: save_npy(d, "ints.npy", faces().astype(np.int32)), "must be uint8 or float"),
    Bad("wrong-dtype-complex", lambda d: save_npy(d, "complex.npy", faces().astype(np.complex64)), "must be uint8 or float"),
    Bad("nan", lambda d: save_npy(d, "nan.npy", _floats(i1=np.nan)), "NaN or infinite"),
    Bad("inf", lambda d: save_npy(d, "inf.npy", _floats(i2=np.inf)), "NaN or infinite"),
    Bad("out-of-range-floats", lambda d: save_npy(d, "range.npy", faces().astype(np.float32)), "must lie in [-1, 1] or [0, 1]"),
    Bad("npz-missing-images-key", lambda d: save_npz(d, "labels.npz", label=np.arange(4)), "no 'images' array"),
    Bad("npz-names-do-not-match", lambda d: save_npz(d, "named.npz", images=faces(), names=np.array(["a", "b"])),
        "'names' has 2 entries for 6 images"),
    Bad("pickle-npy", lambda d: save_npy(d, "evil.npy", _objects(), allow_pickle=True), "pickle"),
    Bad("pickle-npz", lambda d: save_npz(d, "evil.npz", images=_objects()), "pickle"),
    Bad("truncated-npy", lambda d: truncated(save_npy(d, "cut.npy", faces())), "not a readable image array"),
    Bad("truncated-npy-header", lambda d: truncated(save_npy(d, "head.npy", faces()), keep=0.01), "not a readable image array"),
    Bad("truncated-npz", lambda d: truncated(save_npz(d, "cut.npz", images=faces())), "not a readable image array"),
    Bad("text-named-npy", lambda d: write(d, "notes.npy", b"hello\n"), "not a .npy array"),
    Bad("zero-bytes-npz", lambda d: write(d, "empty.npz", b""), "the file is empty"),
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
    BadLatents("metadata-nested-too-deeply", lambda d, m: _latents_from(d, m, "deep.npz", meta=np.asarray("[" * 100_000)),
               "nested too deeply"),
    BadLatents("metadata-not-an-object", lambda d, m: _latents_from(d, m, "metalist.npz", meta=np.asarray("[1, 2]")), "not a JSON object"),
    BadLatents("pickled-names", lambda d, m: _latents_from(d, m, "pickled.npz", names=np.array(["a", 1, None], dtype=object)), "pickle"),
    BadLatents("another-models-latents", lambda d, m: _latents_from(d, m, "other.npz", model_id=np.asarray("0123456789abcdef")),
               "decompress with the model that compressed it"),
    BadLatents("truncated", lambda d, m: truncated(_latents_from(d, m, "cut.npz")), "not a readable latent .npz"),
    BadLatents("zero-bytes", lambda d, m: write(d, "empty.npz", b""), "the file is empty"),
    BadLatents("text-file", lambda d, m: write(d, "notes.npz", b"hello"), "not a zip archive"),
    BadLatents("a-npy-array", lambda d, m: save_npy(d, "plain.npy", np.zeros((3, LAT), np.float32)), "it is a .npy array"),
    BadLatents("a-directory", lambda d, m: (d / "dir.npz").mkdir(parents=True) or d / "dir.npz", "is a folder, not a latent .npz"),
]


@dataclass(frozen=True)
class CollidingNames:
    """Source names in a latent file whose PNGs would land on one file (or on a folder): decompress must still
    write one file each, with names that differ in more than case and that fit the file system."""

    id: str
    names: tuple[str, ...]


COLLIDING_NAMES = [
    CollidingNames("extension-only", ("a.jpg", "a.png", "a~1.png")),  # a.png twice, then the ~1 the repeat would get
    CollidingNames("generated-looking-first", ("a~1.png", "a~2.jpg", "a.png", "a.jpg", "a.webp", "a~2.png")),
    CollidingNames("case-only", ("Face.png", "face.jpg", "FACE.webp")),  # one file on macOS and Windows file systems
    CollidingNames("unicode-normal-forms", ("caf\u00e9.png", "cafe\u0301.png")),  # one file on macOS
    CollidingNames("file-and-folder", ("x.png", "x.png/y.png", "x")),
    CollidingNames("unsafe-parts", ("../a.png", "/a.png", "./a.png", "a.png", "a\\b.png", "a/b.png")),
    CollidingNames("empty-and-nul", ("", ".", "image.png", "n\0x.png", "n_x.png")),
    CollidingNames("255-bytes", (LONG_NAME, LONG_NAME[:-4] + ".jpg", LONG_NAME[:-4] + ".webp")),
    CollidingNames("longer-than-255-bytes", ("n" * 300 + ".png", "n" * 300 + ".jpg", "n" * 299 + ".png", "d" * 300 + "/x.png")),
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


def _config_with(key: str, text: str, field: bool = True):
    """config.json with `key` (a config field, else a top-level key) written as the raw JSON `text`:
    what json.dumps cannot write (nesting deeper than Python parses, 5000 digits)."""
    def change(target: Path):
        config = json.loads((target / "config.json").read_text())
        (config["config"] if field else config)[key] = "@RAW@"
        (target / "config.json").write_text(json.dumps(config).replace('"@RAW@"', text))
    return change


def _int8_weight(state):
    key = next(k for k, v in state.items() if v.is_floating_point() and v.ndim == 4)
    state[key] = (state[key] * 100).to(torch.int8)


def _negative_running_var(state):
    key = next(k for k in state if k.endswith("running_var"))
    state[key] = -1 - state[key]


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
    _ck("config-claims-a-huge-model", 'config field "latent_dim" must be from 1 to 65536, got 1000000000',
        _edit_config(config_fields={"latent_dim": 10**9})),
    # config bombs: a few bytes describing a model that took minutes and gigabytes to build before any check
    _ck("config-bomb-out-of-bounds", 'config field "convs_per_half" must be from 0 to 16, got 10000',
        _edit_config(config_fields={"convs_per_half": 10_000})),
    _ck("config-bomb-within-bounds", "weights do not match config.json: it describes a model of 938 tensors",
        _edit_config(config_fields={"convs_per_half": 16})),
    _ck("config-huge-integer", 'config field "latent_dim" must be from 1 to 65536', _edit_config(config_fields={"latent_dim": 10**40})),
    _ck("config-over-1-mib", "bytes, more than the 1,048,576 this file may hold",
        lambda t: (t / "config.json").write_text((t / "config.json").read_text() + " " * (1 << 20))),
    _ck("safetensors-header-over-the-cap", "a 1,099,511,627,776-byte header, more than the 4,194,304 aekit reads",
        lambda t: (t / "model.safetensors").write_bytes((1 << 40).to_bytes(8, "little") + b"{}")),
    _ck("wrong-architecture-name", "architecture 'vq-vae' is not registered", _edit_config(architecture="vq-vae")),
    _ck("config-field-unknown", "no config field(s) dropout", _edit_config(config_fields={"dropout": 0.1})),
    _ck("config-field-wrong-type", 'config field "latent_dim" must be a whole number, got "big"',
        _edit_config(config_fields={"latent_dim": "big"})),
    _ck("config-field-nan", 'config field "negative_slope" must be a finite number, got NaN',
        _edit_config(config_fields={"negative_slope": float("nan")})),
    _ck("config-widths-a-string", 'config field "widths" must be a list of whole numbers, got "3264"',
        _edit_config(config_fields={"widths": "3264"})),
    _ck("config-field-bool-for-a-number", 'config field "latent_dim" must be a whole number, got true',
        _edit_config(config_fields={"latent_dim": True})),
    _ck("config-field-of-5000-digits", "invalid JSON (a 5000-digit number)", _config_with("latent_dim", "1" * 5000)),
    _ck("config-nested-too-deeply", "invalid JSON (nested too deeply to read)",
        _config_with("deep", "[" * 100_000 + "]" * 100_000, field=False)),
    _ck("config-training-not-an-object", '"training" must be an object', _edit_config(training="a string")),
    _ck("config-newer-format-version", "written by a newer aekit (checkpoint format 999", _edit_config(format_version=999)),
    _ck("config-field-invalid-value", "invalid config for model 'article'", _edit_config(config_fields={"image_size": 8})),
    _ck("weights-missing-a-tensor", "1 missing", _edit_weights(lambda s: s.pop("decoder.0.bias"))),
    _ck("weights-with-an-extra-tensor", "1 unexpected", _edit_weights(lambda s: s.update(extra=torch.zeros(3)))),
    _ck("weights-with-nan", "NaN or infinite", _edit_weights(_nan_weight)),
    _ck("weights-int8", "stored as the wrong kind of number", _edit_weights(_int8_weight)),
    _ck("weights-negative-running-var", "BatchNorm running variance(s) hold negative values", _edit_weights(_negative_running_var)),
    _ck("truncated-safetensors", "unreadable safetensors file", lambda t: truncated(t / "model.safetensors")),
    _ck("safetensors-header-only", "unreadable safetensors file", lambda t: truncated(t / "model.safetensors", keep=0.0001)),
    _ck("pt-pickle-instead-of-safetensors", "refusing to load a pickle-based file (.pt); aekit loads only model.safetensors",
        _pickle_instead(".pt")),
    BadCheckpoint("bin-pickle-file", lambda d, m: _pickle_file(d, m, "bin-pickle-file"),
                  "refusing to load a pickle-based file (.bin); aekit loads only model.safetensors"),
    BadCheckpoint("an-image-file", lambda d, m: write(d / "ckpt-an-image-file", "face.png", encoded(Image.fromarray(face()), "PNG")),
                  "not a checkpoint; give the folder holding model.safetensors"),
    BadCheckpoint("missing-folder", lambda d, m: d / "ckpt-missing-folder" / "nowhere", "no such checkpoint folder"),
]


# --- files fitted beside a checkpoint: priors (generate) and latent directions (directions list, edit) ---------


def _resave(path: Path, arrays=None, metadata=None) -> None:
    """The safetensors file `path` written again with `arrays(a)` / `metadata(m)` applied to its contents."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), framework="np") as fh:
        meta, tensors = dict(fh.metadata() or {}), {k: fh.get_tensor(k) for k in fh.keys()}
    if arrays:
        arrays(tensors)
    if metadata:
        metadata(meta)
    save_file(tensors, str(path), metadata=meta)


def _poke(key: str, value: float):
    def edit(arrays):
        arrays[key] = arrays[key].copy()
        arrays[key].reshape(-1)[1] = value
    return edit


def _with_prior(folder: Path, model_dir: Path, name: str, sampler: str, arrays=None, metadata=None) -> Path:
    """A copy of the checkpoint with a `sampler` prior fitted to random latents, then damaged."""
    from aekit_generate import GaussianSampler, GMMSampler, save_prior

    target = folder / f"ckpt-{name}"
    shutil.copytree(model_dir, target)
    gaussian = GaussianSampler().fit(np.random.default_rng(0).standard_normal((64, LAT)))
    fitted = gaussian if sampler == "gaussian" else GMMSampler.from_state(  # one component: no EM to wait for
        {"weights": np.ones(1), "means": gaussian.mean[None], "covariances": gaussian.cov[None]}, {"components": 1})
    path = save_prior(fitted, sampler, directory=target, fingerprint=aekit.model_fingerprint(aekit.load(target)))
    _resave(path, arrays, metadata)
    return target


def _with_directions(folder: Path, model_dir: Path, name: str, arrays=None, metadata=None) -> Path:
    """A copy of the checkpoint (which has directions fitted) with its directions.safetensors damaged."""
    target = folder / f"ckpt-{name}"
    shutil.copytree(model_dir, target)
    _resave(target / "directions.safetensors", arrays, metadata)
    return target


@dataclass(frozen=True)
class BadSidecar:
    """A checkpoint folder whose prior or directions file is bad: `make(folder, model_dir) -> the folder`, the file's
    name in it, and the words the error must use. Priors are read by `generate --sampler SAMPLER`, directions by
    `directions list` and `edit`."""

    id: str
    file: str
    make: Callable[[Path, Path], Path]
    problem: str

    @property
    def sampler(self) -> str | None:
        return self.file[len("prior-"):-len(".safetensors")] if self.file.startswith("prior-") else None


def _prior(name: str, sampler: str, problem: str, arrays=None, metadata=None) -> BadSidecar:
    return BadSidecar(name, f"prior-{sampler}.safetensors",
                      lambda d, m: _with_prior(d, m, name, sampler, arrays, metadata), problem)


def _directions(name: str, problem: str, arrays=None, metadata=None) -> BadSidecar:
    return BadSidecar(name, "directions.safetensors", lambda d, m: _with_directions(d, m, name, arrays, metadata), problem)


DEEP = "[" * 100_000 + "]" * 100_000  # nesting deeper than Python's JSON parser can follow
BAD_SIDECARS = [
    _prior("prior-nan-mean", "gaussian", "'mean' holds NaN or infinite values", _poke("mean", np.nan)),
    _prior("prior-infinite-covariance", "gaussian", "'cov' holds NaN or infinite values", _poke("cov", np.inf)),
    _prior("gmm-prior-nan-means", "gmm", "'means' holds NaN or infinite values", _poke("means", np.nan)),
    _prior("prior-of-the-wrong-width", "gaussian", f"{LAT + 1}-d for a {LAT}-d model",
           lambda a: a.update(mean=np.zeros(LAT + 1), cov=np.eye(LAT + 1))),
    _prior("prior-newer-format-version", "gaussian", "written by a newer aekit (prior format 999",
           metadata=lambda m: m.update(format_version="999")),
    _prior("prior-meta-nested-too-deeply", "gaussian", "invalid JSON (nested too deeply to read)",
           metadata=lambda m: m.update(meta=DEEP)),
    _directions("directions-nan-vector", "vectors holds NaN or infinite values", _poke("vectors", np.nan)),
    _directions("directions-nan-mean", "mean holds NaN or infinite values", _poke("mean", np.nan)),
    _directions("directions-int-vectors", "vectors stored as int32, not floats",
                lambda a: a.update(vectors=(a["vectors"] * 100).astype(np.int32))),
    _directions("directions-newer-format-version", "written by a newer aekit (directions format 999",
                metadata=lambda m: m.update(format_version="999")),
    _directions("directions-details-nested-too-deeply", "invalid JSON (nested too deeply to read)",
                metadata=lambda m: m.update(details=DEEP)),
]



# --- features files (classify, cluster, umap) ---------------------------------------------------------------


def _features_from(folder: Path, good: Path, name: str, drop=(), **changes) -> Path:
    """A copy of the good features file `good` with arrays left out or replaced."""
    folder.mkdir(parents=True, exist_ok=True)
    with np.load(good, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files if k not in drop}
    arrays.update(changes)
    np.savez(folder / name, **arrays)
    return folder / name


def _meta_of(good: Path, **fields) -> np.ndarray:
    with np.load(good, allow_pickle=False) as archive:
        meta = json.loads(str(archive["meta"]))
    return np.asarray(json.dumps({**meta, **fields}))


def _features_of(good: Path, dtype=np.float32, value=None) -> np.ndarray:
    with np.load(good, allow_pickle=False) as archive:
        features = archive["features"].astype(dtype)
    if value is not None:
        features[1, 2] = value
    return features


def _compress_output(folder: Path, good: Path) -> Path:
    """A latent file like `aekit compress` writes (latents, names, meta, ...), not features."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "latents.npz", latents=np.zeros((3, LAT), np.float16), names=np.array(["a", "b", "c"]),
             dtype=np.asarray("float16"), model_id=np.asarray("0" * 16), meta=np.asarray('{"format": "aekit-latents"}'))
    return folder / "latents.npz"


@dataclass(frozen=True)
class BadFeatures:
    """A bad features file: `make(folder, good_features) -> path`, the words the error must use, and words it must not."""

    id: str
    make: Callable[[Path, Path], Path]
    problem: str
    not_said: tuple[str, ...] = ()


BAD_FEATURES = [
    BadFeatures("missing-file", lambda d, g: d / "nowhere.npz", "no such file"),
    BadFeatures("a-directory", lambda d, g: (d / "dir.npz").mkdir(parents=True) or d / "dir.npz", "is a folder, not a features .npz"),
    BadFeatures("zero-bytes", lambda d, g: write(d, "empty.npz", b""), "not a readable features .npz"),
    BadFeatures("text-file", lambda d, g: write(d, "notes.npz", b"these are not features\n"), "not a readable features .npz",
                not_said=("pickle",)),  # numpy calls any non-array file a pickle; aekit must not repeat that
    BadFeatures("truncated", lambda d, g: truncated(_features_from(d, g, "cut.npz")), "not a readable features .npz"),
    BadFeatures("pickled-paths", lambda d, g: _features_from(d, g, "pickled.npz", paths=_objects()), "pickle"),
    BadFeatures("a-compress-latent-file", _compress_output, "it is a latent file from `aekit compress`"),
    BadFeatures("missing-keys", lambda d, g: _features_from(d, g, "bare.npz", drop=("paths", "meta")),
                "not an aekit features file (missing paths, meta)"),
    BadFeatures("metadata-not-json", lambda d, g: _features_from(d, g, "meta.npz", meta=np.asarray("{broken")), "damaged metadata"),
    BadFeatures("metadata-nested-too-deeply", lambda d, g: _features_from(d, g, "deep.npz", meta=np.asarray("[" * 100_000)),
                "nested too deeply"),
    BadFeatures("metadata-not-an-object", lambda d, g: _features_from(d, g, "metalist.npz", meta=np.asarray("[1, 2]")),
                "not an aekit features file (format None)"),
    BadFeatures("another-format", lambda d, g: _features_from(d, g, "other.npz", meta=_meta_of(g, format="aekit-latents")),
                "not an aekit features file (format 'aekit-latents')"),
    BadFeatures("newer-format-version", lambda d, g: _features_from(d, g, "newer.npz", meta=_meta_of(g, format_version=99)),
                "written by a newer aekit"),
    BadFeatures("paths-do-not-match", lambda d, g: _features_from(d, g, "paths.npz", paths=np.array(["a", "b"])),
                "2 paths for features of shape"),
    BadFeatures("integer-features", lambda d, g: _features_from(d, g, "ints.npz", features=_features_of(g, np.int32)),
                "paths for features of shape"),
    BadFeatures("nan", lambda d, g: _features_from(d, g, "nan.npz", features=_features_of(g, value=np.nan)), "NaN or infinite"),
    BadFeatures("inf", lambda d, g: _features_from(d, g, "inf.npz", features=_features_of(g, value=np.inf)), "NaN or infinite"),
    BadFeatures("labels-do-not-fit", lambda d, g: _features_from(d, g, "labels.npz", labels=np.zeros((2, 3), np.int64)), "do not fit"),
    BadFeatures("label-names-without-labels", lambda d, g: _features_from(d, g, "names.npz", drop=("labels",)),
                "label names without labels"),
]


# --- a folder of every bad and every accepted image, for the commands that skip bad files ----------------------


def apply(case: Bad, monkeypatch, path: Path) -> None:
    """What a bad image needs besides its file: a lowered pixel limit, a simulated fault, a watch on a FIFO."""
    if case.fifo:
        watch_fifo(monkeypatch, path)
    if case.max_pixels:
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", case.max_pixels)
    if case.simulate:
        case.simulate(monkeypatch, path)


def mixed_folder(root: Path, monkeypatch, good_faces: int = 0) -> tuple[Path, list[str], list[Path]]:
    """A folder with every bad image file, every accepted edge image and `good_faces` plain faces.

    Returns (folder, names of the readable images relative to it, paths of the bad files).
    """
    folder = root / "mixed"
    bad = []
    for case in BAD_IMAGES:
        if case.skip() or case.id == "empty-folder":
            continue
        path = case.make(folder)
        apply(case, monkeypatch, path)
        if not case.is_dir:
            bad.append(path)
    good = [make(folder) for _, make in ACCEPTED_IMAGES]
    for i, image in enumerate(make_faces(good_faces, seed=7, size=32)[0] if good_faces else []):
        Image.fromarray(image).save(folder / f"face{i:02d}.png")
        good.append(folder / f"face{i:02d}.png")
    return folder, sorted(p.relative_to(folder).as_posix() for p in good), bad


def listed_once(output: str, bad: list[Path]) -> None:
    """Each bad file is named on exactly one ``skipped:`` line, and no other file is; no FIFO among them was opened."""
    listed = [line for line in output.splitlines() if line.startswith("skipped: ") and "... and" not in line]
    assert len(listed) == len(bad), output
    opened = [path for path in bad if path in FIFO_WATCHES and FIFO_WATCHES[path].opened]
    assert opened == [], f"opened FIFOs (a reader blocks on one until something writes to it): {opened}\n{output}"
    for path in bad:
        assert sum(BAD_IMAGES[0].shown(path) in line for line in listed) == 1, (path, output)
