"""Reading users' ``.npz`` and ``.npy`` files safely: never a pickle, never a decompression bomb.

``np.load`` trusts what a file declares: an ``.npz`` member of a few megabytes can declare gigabytes of
zeros, and numpy allocates them before anything else is checked. These readers look first: the file's
magic bytes, every member's name, and each member's ``.npy`` header (dtype, shape, declared bytes, read
from the first few hundred decompressed bytes only), against a limit on the declared size and on how
far it exceeds the file's own size. Only then is any array decompressed. Every problem is raised as
the caller's error class, in one line naming the file (and the member and its declared size).
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import AekitError
from .paths import why_not_regular

# No member may declare more than this many bytes (AEKIT_MAX_ARRAY_BYTES overrides it) ...
MAX_ARRAY_BYTES = 4 * 2**30
# ... nor, once past SMALL_ARRAY_BYTES, more than this many times the bytes the whole file occupies:
# numpy's own savez_compressed of real images or latents shrinks them 1-10x, a bomb of zeros 1000x.
MAX_EXPANSION = 100
SMALL_ARRAY_BYTES = 64 * 2**20
PICKLE_REASON = "it holds Python objects (pickle), which aekit never loads"


@dataclass(frozen=True)
class Member:
    """What one ``.npy`` (or ``.npz`` member) declares in its header."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def declared_bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def describe(self) -> str:
        shape = " x ".join(str(n) for n in self.shape) or "scalar"
        return f"{shape} {self.dtype} ({_size(self.declared_bytes)})"


def max_array_bytes() -> int:
    """The limit on one array's declared size: ``$AEKIT_MAX_ARRAY_BYTES``, else 4 GiB."""
    text = os.environ.get("AEKIT_MAX_ARRAY_BYTES", "")
    try:
        return int(text) if text else MAX_ARRAY_BYTES
    except ValueError:
        raise AekitError(f"AEKIT_MAX_ARRAY_BYTES={text!r}: expected a number of bytes") from None


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _magic(path: Path, what: str, error) -> bytes:
    """The first bytes of `path`, or `error` saying why it cannot be read."""
    if path.is_dir():
        raise error(f"{path}: is a folder, not a {what}")
    special = why_not_regular(path)
    if special:  # opening a FIFO would block until something writes to it
        raise error(f"{path}: {special}")
    try:
        with open(path, "rb") as fh:
            return fh.read(6)
    except FileNotFoundError:
        raise error(f"{path}: no such file or folder") from None
    except PermissionError:
        raise error(f"{path}: permission denied") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None


NPZ_MAGIC, NPY_MAGIC = b"PK", b"\x93NUMPY"


def _expect(path: Path, magic: bytes, what: str, error) -> None:
    """`error` unless the file starts with `magic` (a zip for .npz, numpy's header for .npy), saying what it is."""
    head = _magic(path, what, error)
    if not head.startswith(magic):
        other = {NPZ_MAGIC: "it is a .npz archive", NPY_MAGIC: "it is a .npy array"}
        found = next((text for start, text in other.items() if head.startswith(start)), None)
        reason = "the file is empty" if not head else found or ("not a zip archive" if magic == NPZ_MAGIC else "not a .npy array")
        raise error(f"{path}: not a readable {what} ({reason})")


def _read_header(fh, label: str, what: str, error) -> Member:
    try:
        version = np.lib.format.read_magic(fh)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = reader(fh, max_header_size=10000)
    except Exception as exc:  # ValueError, EOFError, zlib errors... on a damaged header
        reason = PICKLE_REASON if "pickle" in str(exc) else f"damaged array header ({type(exc).__name__})"
        raise error(f"{label}: not a readable {what} ({reason})") from None
    member = Member(label.rsplit(":", 1)[-1], dtype, tuple(int(n) for n in shape))
    if dtype.hasobject:
        raise error(f"{label}: not a readable {what} ({PICKLE_REASON})")
    return member


def _check_size(member: Member, label: str, file_bytes: int, limit: int, error) -> None:
    declared = member.declared_bytes
    if declared > limit:
        raise error(f"{label} declares {member.describe()}, over the limit of {_size(limit)} "
                    "(AEKIT_MAX_ARRAY_BYTES); refused before decompressing")
    if declared > SMALL_ARRAY_BYTES and declared > MAX_EXPANSION * file_bytes:
        raise error(f"{label} declares {member.describe()} in a {_size(file_bytes)} file "
                    f"(over {MAX_EXPANSION}x: a decompression bomb?); refused before decompressing")


def inspect_npz(path, what: str = ".npz file", error=AekitError) -> dict[str, Member]:
    """Every member's declared dtype and shape, checked against the size limits; no array is decompressed."""
    path = Path(path)
    _expect(path, NPZ_MAGIC, what, error)
    file_bytes, limit = path.stat().st_size, max_array_bytes()
    members = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                label = f"{path}: member {info.filename}"
                if not info.filename.endswith(".npy") or "/" in info.filename:
                    raise error(f"{label}: not a readable {what} (an .npz holds only .npy arrays)")
                with archive.open(info) as fh:  # reads (and inflates) the header's bytes only
                    member = _read_header(fh, label, what, error)
                    header_bytes = fh.tell()
                _check_size(member, label, file_bytes, limit, error)
                if info.file_size != header_bytes + member.declared_bytes:
                    raise error(f"{label}: not a readable {what} (the header declares {member.describe()}, the member holds "
                                f"{_size(info.file_size - header_bytes)})")
                members[info.filename[:-4]] = member
    except AekitError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise error(f"{path}: not a readable {what} (damaged archive: {type(exc).__name__})") from None
    return members


def read_npz(path, what: str = ".npz file", error=AekitError, keys=None) -> dict[str, np.ndarray]:
    """The arrays of a ``.npz`` (those in `keys`, default all) after ``inspect_npz`` has vetted every header."""
    path = Path(path)
    members = inspect_npz(path, what, error)
    wanted = [k for k in members if keys is None or k in keys]
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in wanted}
    except ValueError as exc:
        reason = PICKLE_REASON if "pickle" in str(exc) else "damaged array data"
        raise error(f"{path}: not a readable {what} ({reason})") from None
    except Exception as exc:  # zipfile, zlib, struct... on damaged data past the headers
        raise error(f"{path}: not a readable {what} (damaged archive: {type(exc).__name__})") from None


def read_npy(path, what: str = ".npy file", error=AekitError) -> np.ndarray:
    """A ``.npy`` array, memory-mapped, after its header is checked against the file's own size."""
    path = Path(path)
    _expect(path, NPY_MAGIC, what, error)
    with open(path, "rb") as fh:
        member = _read_header(fh, str(path), what, error)
        header_bytes = fh.tell()
    file_bytes = path.stat().st_size
    if header_bytes + member.declared_bytes != file_bytes:
        raise error(f"{path}: not a readable {what} (the header declares {member.describe()}, the file holds "
                    f"{_size(file_bytes - header_bytes)})")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise error(f"{path}: not a readable {what} (damaged: {type(exc).__name__})") from None
