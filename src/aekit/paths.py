"""Where aekit keeps its files (``$AEKIT_HOME``), and the rules for the names and kinds of files it reads and writes."""

from __future__ import annotations

import errno
import os
import stat
import unicodedata
from pathlib import Path, PurePosixPath

from .errors import ImageReadError

# The longest file name (one path part) Linux, macOS and Windows file systems take, in bytes (UTF-8)
NAME_MAX = 255
# An extension longer than this is no extension: a repeat's ~N goes at the end of the name instead
MAX_SUFFIX_BYTES = 32


def aekit_home() -> Path:
    """Where aekit keeps its cache and the latest-run pointer (``$AEKIT_HOME``, else ~/.cache/aekit)."""
    return Path(os.environ.get("AEKIT_HOME") or Path.home() / ".cache" / "aekit")


def why_missing(path) -> str:
    """Why an input path cannot be opened although it was named: a symbolic link loop, a broken link, absent,
    or there but no regular file (a FIFO, socket or device, see `why_not_regular`)."""
    path = Path(path)
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
    else:
        special = why_not_regular(path)
        if special:
            return special
    return "broken symbolic link" if path.is_symlink() else "no such file or folder"


_SPECIAL_KINDS = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                  (stat.S_ISBLK, "a block device"))


def why_not_regular(path) -> str | None:
    """``"not a regular file (a named pipe)"`` when `path` (links followed) is a FIFO, socket or device; else None.

    Such a file must never be opened as an input: opening a FIFO blocks until something writes to it,
    and a device may never end. Regular files, folders and paths that do not exist give None (reading
    them says what is wrong). One ``stat``, no ``open``.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # ValueError: a NUL byte in the name
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kind = next((what for test, what in _SPECIAL_KINDS if test(mode)), "a special file")
    return f"not a regular file ({kind})"


def refuse_special_file(path) -> None:
    """ImageReadError, without opening it, when the image file `path` is a FIFO, socket or device."""
    reason = why_not_regular(path)
    if reason:
        raise ImageReadError(f"{path}: {reason}")


# --- output names --------------------------------------------------------------------------------------


def cut_to_bytes(text: str, limit: int) -> str:
    """`text` cut to at most `limit` bytes in the file-system encoding, never inside a UTF-8 character."""
    data = os.fsencode(text)
    if len(data) <= limit:
        return text
    end = limit
    for _ in range(3):  # data[end] is the first byte cut off: a continuation byte means its character began earlier
        if end > 0 and data[end] & 0xC0 == 0x80:
            end -= 1
    return os.fsdecode(data[:end])


def _split_suffix(name: str) -> tuple[str, str]:
    suffix = PurePosixPath(name).suffix
    if not suffix or len(os.fsencode(suffix)) > MAX_SUFFIX_BYTES:
        return name, ""
    return name[: -len(suffix)], suffix


def _fit(part: str, limit: int, tag: str = "") -> str:
    """`part` with `tag` added before its extension, cut before the extension to fit in `limit` bytes."""
    stem, suffix = _split_suffix(part)
    if not tag and len(os.fsencode(part)) <= limit:
        return part
    return cut_to_bytes(stem, limit - len(os.fsencode(tag + suffix))) + tag + suffix


def _fold(name: str) -> str:
    # macOS and Windows file systems ignore case (and macOS the Unicode normal form): so do the comparisons, so
    # that outputs written here can be copied there, and two outputs never land on one file there
    return unicodedata.normalize("NFC", name).casefold()


def unique_names(names: list[str], limit: int = NAME_MAX) -> list[str]:
    """Relative POSIX output names, one per name in `names`, never the same twice and each part at most `limit` bytes.

    A part longer than `limit` bytes (UTF-8) is cut before its extension. The first of equal names keeps
    it; each repeat gets ``~1``, ``~2``... before the extension, the lowest number that no other name (given
    or handed out, ``a~1.png`` included) and no folder the names use already has, so a file never
    replaces another or a folder. Names are compared ignoring case and Unicode normal form: ``A.png`` and
    ``a.png`` are one file on macOS and Windows file systems.
    """
    split = []
    for name in names:
        parts = [_fit(part, limit) for part in PurePosixPath(name).parts]
        if not parts or parts[0] == "/":
            raise ValueError(f"{name!r}: expected a relative file name")
        split.append(parts)
    taken = {_fold("/".join(parts[:i])) for parts in split for i in range(1, len(parts))}  # folders stay folders
    result: list[str | None] = [None] * len(names)
    repeats = []
    for index, parts in enumerate(split):  # first, every name keeps itself where it can: no renamed repeat takes it
        key = _fold("/".join(parts))
        if key in taken:
            repeats.append(index)
        else:
            taken.add(key)
            result[index] = "/".join(parts)
    counters: dict[str, int] = {}  # the last number tried per name: many repeats of one name stay linear
    for index in repeats:
        *folders, last = split[index]
        base = _fold("/".join([*folders, last]))
        count = counters.get(base, 0)
        while True:
            count += 1
            candidate = "/".join([*folders, _fit(last, limit, f"~{count}")])
            if _fold(candidate) not in taken:
                break
        counters[base] = count
        taken.add(_fold(candidate))
        result[index] = candidate
    return result
