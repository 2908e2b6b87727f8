"""Where aekit keeps its files: ``$AEKIT_HOME`` (the image cache, the latest-run pointer, user defaults)."""

from __future__ import annotations

import os
from pathlib import Path


def aekit_home() -> Path:
    """Where aekit keeps its cache and the latest-run pointer (``$AEKIT_HOME``, else ~/.cache/aekit)."""
    return Path(os.environ.get("AEKIT_HOME") or Path.home() / ".cache" / "aekit")
