"""Exclusive locks on folders that one aekit process writes at a time (a training run's folder).

``folder_lock(folder)`` takes an advisory ``flock`` on ``FOLDER/.aekit-lock`` for the life of the
block; a second process fails at once with one line naming the holder's pid and command. The lock
file is removed on the way out, and a folder the lock made is removed again when the block failed
before writing anything else, so a refused or failed start leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from pathlib import Path

from .errors import AekitError

LOCK_NAME = ".aekit-lock"


class FolderBusyError(AekitError):
    """Another process holds the folder's lock."""


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return "another process"
    return text or "another process"


@contextlib.contextmanager
def folder_lock(folder, what: str = "folder"):
    """Hold an exclusive lock on `folder` (made if missing) for the block, or raise FolderBusyError."""
    folder = Path(folder)
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fh = open(path, "a+", encoding="utf-8", errors="surrogateescape")  # file names in argv may not be UTF-8
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusyError(f"{folder}: this {what} is in use by {_holder(path)}; wait for it to finish or "
                                  "choose another --out") from None
        if os.fstat(fh.fileno()).st_ino != os.stat(path).st_ino:  # its holder removed the file as we opened it
            raise FolderBusyError(f"{folder}: this {what} was just in use by another process; try again")
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} ({' '.join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))})")
        fh.flush()
        try:
            yield folder
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
            if made:  # a start that failed before writing anything leaves no empty folder
                with contextlib.suppress(OSError):
                    folder.rmdir()
    finally:
        fh.close()  # closing releases the lock
