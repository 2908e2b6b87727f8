"""Where aekit keeps its files: ``$AEKIT_HOME`` (the image cache, the latest-run pointer, user defaults)."""

from __future__ import annotations

import errno
import os
from pathlib import Path


def aekit_home() -> Path:
    """Where aekit keeps its cache and the latest-run pointer (``$AEKIT_HOME``, else ~/.cache/aekit)."""
    return Path(os.environ.get("AEKIT_HOME") or Path.home() / ".cache" / "aekit")


def why_missing(path) -> str:
    """Why an input path cannot be opened although it was named: a symbolic link loop, a broken link, or absent."""
    path = Path(path)
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
    return "broken symbolic link" if path.is_symlink() else "no such file or folder"
