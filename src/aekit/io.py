"""Atomic file writing: every file aekit writes goes to a temporary name first, then is renamed."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import AekitError
from .paths import cut_to_bytes


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


TEMP_SUFFIX = ".tmp"
# A temporary name is "." + at most this many bytes of the file's name + "." + mkstemp's 8 random characters
# + the extension (up to 16 bytes) + ".tmp": at most 94 bytes, so any name that fits its folder has one that fits too
TEMP_NAME_BYTES = 64
TEMP_EXTENSION_BYTES = 16

# mkstemp makes 0600 files; give written files the permissions open() would have given them
FILE_MODE = 0o666 & ~_current_umask()


@contextlib.contextmanager
def atomic_path(path, suffix: str = ""):
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    if path.is_dir():
        raise AekitError(f"{path}: is a directory, expected a file path")
    if not path.parent.is_dir():
        raise AekitError(f"{path}: folder {path.parent} does not exist")
    prefix, suffix = _temp_affixes(path, suffix)
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    except OSError as exc:  # a read-only or full folder
        if exc.errno is not None:
            exc.filename = str(path)
        raise
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:  # reach the disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename in (None, tmp, Path(tmp)):
            exc.filename = str(path)  # name the file the user asked for, not the temporary one
        raise


def _temp_affixes(path: Path, suffix: str) -> tuple[str, str]:
    """mkstemp's (prefix, suffix) for a temporary beside `path`: ``.NAME.`` and ``EXT.tmp``, both bounded in bytes
    (a 255-byte name, legal itself, would otherwise make a temporary name the file system refuses)."""
    extension = suffix or path.suffix
    if len(os.fsencode(extension)) > TEMP_EXTENSION_BYTES:
        extension = ""  # no writer needs an extension that long on its temporary file
    return f".{cut_to_bytes(path.name, TEMP_NAME_BYTES)}.", extension + TEMP_SUFFIX


def check_writable(path) -> None:
    """Fail now, before any work, when the file `path` could not be written (in folders still to be made):
    a temporary file is made and removed in its nearest existing folder, as ``atomic_path`` would."""
    path = Path(path)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_affixes(path, "")[0], suffix=TEMP_SUFFIX, dir=folder)
    except OSError as exc:
        raise AekitError(f"{path}: {exc.strerror or type(exc).__name__}") from None
    os.close(fd)
    os.unlink(tmp)


def remove_temporaries(directory) -> list[Path]:
    """Delete the temporary files that `atomic_path` left under `directory` when its process was killed."""
    removed = []
    for candidate in Path(directory).rglob(".*" + TEMP_SUFFIX):
        if candidate.is_file():
            with contextlib.suppress(OSError):
                candidate.unlink()
                removed.append(candidate)
    return removed


def write_bytes(path, data: bytes) -> None:
    """Write bytes atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path, text: str) -> None:
    """Write text (UTF-8) atomically; file names that are not UTF-8 are written back as their own bytes."""
    write_bytes(path, text.encode("utf-8", "surrogateescape"))


def write_json(path, obj) -> None:
    """Write JSON atomically, indented, keys in insertion order."""
    write_text(path, json.dumps(obj, indent=2, default=json_default) + "\n")


def save_image(path, image, format: str | None = None, **params) -> None:
    """Save a PIL image atomically; the format follows the extension unless given."""
    fmt = format or _format_for(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt, **params)


def save_figure(path, figure, **params) -> None:
    """Save a matplotlib figure atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=_format_for(path).lower(), **params)


def _format_for(path) -> str:
    Image.init()
    ext = Path(path).suffix.lower()
    if ext not in Image.EXTENSION:
        raise AekitError(f"{path}: unknown image extension {ext!r} (use .png, .jpg, .webp ...)")
    return Image.EXTENSION[ext]


def json_default(obj):
    """``json.dumps(default=...)`` for numpy scalars and arrays and paths: what aekit's JSON files hold."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
