"""Reading any image a user might have as RGB, and drawing image grids."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFile, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from ._version import __version__
from .errors import ImageReadError, first_line
from .notes import note
from .paths import refuse_special_file
from .pixels import to_uint8

# The image formats aekit reads, by Pillow's names: the only decoders Pillow may pick. Pillow picks one from
# a file's content, not its name, and some run a program: EPS (and PostScript) hands the file to Ghostscript,
# whose -dSAFER has been escaped to run code more than once, so a "face.jpg" starting "%!PS" must never reach it.
# None of these runs a program; each has a signature (no header-less format such as TGA, that any bytes might be).
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
# What an opened image may say it is: the JPEG opener gives a camera's JPEG with a preview or depth map
# after the picture (a Multi-Picture Object) as "MPO".
_OPENED_FORMATS = frozenset(ALLOWED_FORMATS) | {"MPO"}
FORMATS_READ = "JPEG, PNG, WebP, BMP, GIF and TIFF"  # as messages and the README name them
# the names a folder's images have (a named file is read whatever its name: its content decides)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never silently grey


def open_image(path, draft_size: int | None = None) -> Image.Image:
    """Open an image file as 8-bit RGB, applying EXIF rotation; ImageReadError on anything bad.

    Transparent pixels are composited over white, 16-bit and float images are scaled to 8 bits.
    `draft_size` lets JPEG decode at a reduced scale (still at least that size) for speed.
    Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) is enforced as an error, before
    any pixel is decoded. Only ``ALLOWED_FORMATS`` are read. Every failure, whatever Pillow raises on
    damaged data, is an ImageReadError; running out of memory stays a MemoryError (see ``read_errors``).
    """
    path = Path(path)
    with read_errors(path), open_checked(path) as img:
        return _decoded(img, draft_size)


def decode_image_bytes(data: bytes, name: str) -> Image.Image:
    """``open_image`` for an image file's bytes (a data set's cell, say); errors call it `name`."""
    with read_errors(name), _open_allowed(io.BytesIO(data), name) as img:
        return _decoded(img, None)


def _decoded(img: Image.Image, draft_size: int | None) -> Image.Image:
    if draft_size and img.format == "JPEG":
        img.draft("RGB", (draft_size, draft_size))
    img.load()
    ImageOps.exif_transpose(img, in_place=True)  # not a copy of every picture to turn the few that need it
    return to_rgb(img)


@contextlib.contextmanager
def read_errors(path):
    """Turn whatever opening or decoding `path` raises into one precise ImageReadError.

    Running out of memory is no fault of the file: it stays a MemoryError (naming the file), so that a
    batch stops rather than skipping, and caching as bad, an image a later run could read.
    """
    try:
        yield
    except ImageReadError:
        raise
    except MemoryError as exc:  # the machine's state, not the file's: never "damaged", never skipped as a bad file
        raise MemoryError(f"{path}: ran out of memory decoding this image") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(f"{path}: image too large ({first_line(exc)})") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image Pillow can read") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a directory") from None
    except PermissionError:
        raise ImageReadError(f"{path}: permission denied") from None
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file or folder") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageReadError(f"{path}: symbolic link loop") from None
        raise ImageReadError(f"{path}: damaged image ({first_line(exc)})") from None
    except Exception as exc:  # Pillow's decoders raise many kinds of errors on corrupt data
        raise ImageReadError(f"{path}: damaged image ({first_line(exc)})") from None


# Warning filters are process-global, so `catch_warnings` in several decoding threads at once can
# drop each other's filters (and let a bomb through with only a warning); opening under a lock keeps
# them consistent. Opening reads only the header, so decoding itself still runs in parallel.
_OPEN_LOCK = threading.Lock()


def open_checked(path: Path) -> Image.Image:
    """Image.open with Pillow's bomb warning as an error, then an explicit pixel-count check.

    The safe opener every reader of user images uses (the header only: call ``.load()`` or convert).
    Only ``ALLOWED_FORMATS`` are tried, whatever the file's name: another format is an ImageReadError.
    A FIFO, socket or device is refused without being opened (opening a FIFO blocks).
    """
    refuse_special_file(path)
    return _open_allowed(path, path)


def _open_allowed(source, path) -> Image.Image:
    """``open_checked`` of a file name or a binary file object `source`, which errors call `path`."""
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(source, formats=ALLOWED_FORMATS)
        except UnidentifiedImageError:
            if _other_format(source):
                raise ImageReadError(f"{path}: not an image format aekit reads (it reads {FORMATS_READ})") from None
            raise
    if img.format not in _OPENED_FORMATS:  # no opener of ours gives another; never decode one that did
        img.close()
        raise ImageReadError(f"{path}: not an image format aekit reads ({img.format}; it reads {FORMATS_READ})")
    limit = Image.MAX_IMAGE_PIXELS
    if limit and img.width * img.height > limit:
        img.close()
        raise ImageReadError(f"{path}: image too large ({img.width}x{img.height} = {img.width * img.height} pixels "
                             f"exceeds Pillow's limit of {limit}, could be a decompression bomb)")
    try:
        _note_frames(img, path)
    except BaseException:
        img.close()
        raise
    return img


def _other_format(source) -> bool:
    """Whether a file none of ``ALLOWED_FORMATS`` opened starts like one Pillow has another opener for.

    Only for the message (a format aekit does not read, rather than no image at all): this compares the first
    bytes with each opener's signature, and never runs an opener. Openers with no signature are left out.
    """
    try:
        if isinstance(source, io.IOBase):
            source.seek(0)
            head = source.read(16)
        else:  # opened again: never blocking, and read only if still a regular file (not swapped for a FIFO)
            fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            try:
                head = os.read(fd, 16) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
            finally:
                os.close(fd)
    except (OSError, ValueError):
        return False
    for name, (_, accept) in list(Image.OPEN.items()):
        if name in _OPENED_FORMATS or accept is None:
            continue
        try:
            if accept(head):  # True, or Pillow's "it is one, but the library to read it is missing"
                return True
        except Exception:  # a signature check on too few bytes
            continue
    return False


def _note_frames(img: Image.Image, path) -> None:
    """Note a file of several frames or pages, of which every reader uses only the first (left at frame 0).

    An MPO (a camera's JPEG with a preview or depth map after the picture) is the one format whose
    later frames are no pictures of their own, so it gets no note.
    """
    animated, count = False, None
    try:
        animated = bool(getattr(img, "is_animated", False)) and img.format != "MPO"
        count = img.n_frames if animated else 1  # a GIF's count walks its frames' blocks, without decoding them
    except Exception:  # damaged data after the first frame, which may still be readable: decoding it decides
        pass
    if img.tell() != 0:
        img.seek(0)
    if not animated:
        return
    pages = img.format == "TIFF"
    unit = "pages" if pages else "frames"
    note(f"{path}: {'multi-page' if pages else 'animated'} ({count or 'several'} {unit}): only the first is used")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB (alpha over white, high bit depths scaled down)."""
    if img.mode == "RGB":
        return img
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, "L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def resize_rgb(image, size: int) -> np.ndarray:
    """An RGB PIL image or (H, W, 3) uint8 array resized straight to size x size (bicubic, no crop)."""
    if isinstance(image, np.ndarray):
        if image.shape[:2] == (size, size):
            return image
        image = Image.fromarray(image)
    if image.size != (size, size):
        image = image.resize((size, size), Image.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


def to_uint8_hwc(images) -> np.ndarray:
    """(N, 3, H, W) tensors/arrays in [-1, 1] to (N, H, W, 3) uint8."""
    images = images.detach().cpu() if torch.is_tensor(images) else torch.from_numpy(np.asarray(images, dtype=np.float32))
    return to_uint8(images).permute(0, 2, 3, 1).numpy()


def image_grid(rows: list[np.ndarray], row_labels: list[str] | None = None, title: str | None = None, scale: int = 2, pad: int = 2) -> Image.Image:
    """A grid picture: each row is an (N, H, W, 3) uint8 array; labels on the left, title on top."""
    rows = [np.asarray(r) for r in rows if len(r)]
    if not rows:
        raise ValueError("image_grid needs at least one non-empty row")
    h, w = rows[0].shape[1] * scale, rows[0].shape[2] * scale
    cols = max(len(r) for r in rows)
    label_w = 8 + 7 * max((len(s) for s in row_labels or []), default=0) if row_labels else 0
    title_h = 20 if title else 0
    canvas = Image.new("RGB", (label_w + cols * (w + pad) + pad, title_h + len(rows) * (h + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad + 2, 4), title, fill="black")
    for r, row in enumerate(rows):
        y = title_h + pad + r * (h + pad)
        if row_labels:
            draw.text((4, y + h // 2 - 6), row_labels[r], fill="black")
        for c, img in enumerate(row):
            tile = Image.fromarray(img).resize((w, h), Image.NEAREST)
            canvas.paste(tile, (label_w + pad + c * (w + pad), y))
    return canvas



def caption_row(picture: Image.Image, captions: list, tile: int, pad: int) -> Image.Image:
    """`picture` (an ``image_grid``) with a row of captions under it, one per column of width `tile`.

    A caption may be a tuple of texts from longest to shortest: the first that fits is drawn.
    """
    height = 14
    canvas = Image.new("RGB", (picture.width, picture.height + height), "white")
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for c, options in enumerate(captions):
        options = options if isinstance(options, tuple) else (options,)
        text = next((t for t in options if draw.textlength(t) <= tile), options[-1])
        x = pad + c * (tile + pad) + max(0, (tile - draw.textlength(text)) / 2)
        draw.text((x, picture.height), text, fill="black")
    return canvas


def png_text(fields: dict):
    """PNG text chunks recording how a picture was made: ``Software`` (aekit's version) plus `fields`."""
    info = PngInfo()
    info.add_text("Software", f"aekit {__version__}")
    for key, value in fields.items():  # file names that are not UTF-8 would make the PNG unwritable
        info.add_text(key, str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
    return info
