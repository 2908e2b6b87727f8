"""The decoded-image cache under ``$AEKIT_HOME/cache``: decode once, memory-map on every later start.

An entry is ``KEY.npy`` (uint8 (N, 3, S, S) images) and ``KEY.npz`` (names, skipped files, labels,
and an xxh3-64 checksum of the images' bytes and the metadata). The checksum is verified when an entry
is opened, so a damaged cache (a flipped byte, a disk error, a half-copied file) is rebuilt, with one
line saying so, instead of silently training on damaged data. Entries are written atomically, under
an exclusive lock on ``cache.lock``; a start that finds the lock free removes the temporary files a
killed writer left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from . import io
from .paths import aekit_home

CACHE_VERSION = 2  # bump when the cached format or decoding changes
CHUNK_BYTES = 64 * 2**20


def cache_dir() -> Path:
    return aekit_home() / "cache"


def cache_key(source_fingerprint: str, resize_method: str, image_size: int, indices) -> str:
    """The entry's name: the source's fingerprint, the decoding settings and the selected indices."""
    digest = hashlib.sha256()
    digest.update(json.dumps([CACHE_VERSION, resize_method, image_size, source_fingerprint]).encode())
    digest.update(np.asarray(indices, dtype=np.int64).tobytes())
    return digest.hexdigest()[:24]


def entry_paths(key: str) -> tuple[Path, Path]:
    folder = cache_dir()
    return folder / f"{key}.npy", folder / f"{key}.npz"


def checksum(images: np.ndarray, names, skipped, attributes: dict) -> str:
    """xxh3-64 of the images' bytes (in chunks, so a memory map is read once) and of the metadata."""
    import xxhash  # deferred: only hashing a decoded folder needs it (it comes with `datasets`, not pinned by aekit)

    digest = xxhash.xxh3_64()
    flat = np.ascontiguousarray(images).reshape(-1).view(np.uint8)
    for start in range(0, len(flat), CHUNK_BYTES):
        digest.update(flat[start : start + CHUNK_BYTES])
    digest.update(json.dumps([list(names), list(skipped), list(attributes)]).encode("utf-8", "surrogateescape"))
    for values in attributes.values():
        digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(blocking: bool = True):
    """An exclusive lock on the cache folder; yields False when `blocking` is off and another holds it."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(aekit_home() / "cache.lock", "a+") as fh:  # beside the folder, which holds entries only
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def remove_leftovers() -> list[Path]:
    """Remove the temporary files of writers that were killed (only when no writer holds the lock)."""
    if not cache_dir().is_dir():
        return []
    try:
        with _locked(blocking=False) as free:
            return io.remove_temporaries(cache_dir()) if free else []
    except OSError:  # a read-only AEKIT_HOME: nothing to clean, and the run goes on without writing the cache
        return []


def read_entry(key: str, description: str, warn=None):
    """(images memory-mapped, names, attributes, skipped), or None when absent or damaged (then it is removed)."""
    images_path, meta_path = entry_paths(key)
    if not (images_path.is_file() and meta_path.is_file()):
        return None
    warn = warn or (lambda message: print(message, file=sys.stderr))
    try:
        images = np.load(images_path, mmap_mode="r", allow_pickle=False)
        with np.load(meta_path, allow_pickle=False) as meta:
            names = meta["names"].tolist()
            skipped = meta["skipped"].tolist()
            attributes = {str(n): meta[f"attr_{i}"] for i, n in enumerate(meta["attr_names"].tolist())}
            stored = str(meta["checksum"]) if "checksum" in meta.files else None
        intact = len(images) == len(names) and stored == checksum(images, names, skipped, attributes)
    except (OSError, ValueError, KeyError, EOFError):
        intact = False
    if not intact:
        warn(f"Warning: the image cache of {description} was damaged (checksum mismatch); rebuilding it")
        for path in (images_path, meta_path):
            with contextlib.suppress(OSError):
                path.unlink()
        return None
    return images, names, attributes, skipped


def write_entry(key: str, images: np.ndarray, names, attributes: dict, skipped) -> Path | None:
    """Write an entry atomically (under the cache lock); a full or read-only cache only warns."""
    images_path, meta_path = entry_paths(key)
    try:
        with _locked():
            with io.atomic_path(images_path) as tmp:
                with open(tmp, "wb") as fh:  # np.save appends .npy to a path without it; a handle avoids that
                    np.save(fh, images, allow_pickle=False)
            arrays = {f"attr_{i}": np.asarray(v) for i, v in enumerate(attributes.values())}
            with io.atomic_path(meta_path) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, names=np.asarray(names, dtype=str), skipped=np.asarray(skipped, dtype=str),
                             attr_names=np.asarray(list(attributes), dtype=str),
                             checksum=np.asarray(checksum(images, names, skipped, attributes)), **arrays)
    except OSError as exc:
        print(f"Warning: could not write the image cache ({exc.strerror or exc})", file=sys.stderr)
        return None
    return images_path


__all__ = ["CACHE_VERSION", "cache_dir", "cache_key", "checksum", "entry_paths", "read_entry", "remove_leftovers",
           "write_entry"]
