"""Data sources, the uint8 image cache, and the in-memory training set.

A data source (registered by a plugin) turns ``--data SOURCE`` into an :class:`ImageSource`.
:func:`prepare` then decodes and resizes its images once, in parallel, into a uint8 array cached
under ``$AEKIT_HOME/cache`` keyed by the source's fingerprint and the preprocessing, so a second
run (or epoch) does no decoding at all.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import queue
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from . import image_cache
from .paths import why_missing, why_not_regular
from .errors import DataSourceError, ImageReadError
from .images import resize_rgb
from .pixels import to_signed
from .registry import get_registry

RESIZE_METHOD = "pil-bicubic"


def decode_workers() -> int:
    """Threads that decode images: ``AEKIT_DECODE_THREADS`` if set, else the CPU count (at most 8).

    Pillow releases the GIL while it decodes and resizes, so threads decode in parallel.
    """
    value = os.environ.get("AEKIT_DECODE_THREADS", "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            pass
    return max(1, min(8, os.cpu_count() or 1))


def supports_reduced(source) -> bool:
    """True when `source.iter_images` takes ``reduced`` (sources that override it may not)."""
    try:
        return "reduced" in inspect.signature(source.iter_images).parameters
    except (TypeError, ValueError):
        return False


class ImageSource:
    """A sequence of images with names and optional attribute labels; subclasses implement `read`."""

    description: str = "images"

    def __len__(self) -> int:
        return len(self.keys())

    def keys(self) -> list[str]:
        """One name per image (a relative file name, a row id...)."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A string that changes whenever the images or their order change."""
        raise NotImplementedError

    def attributes(self) -> dict[str, np.ndarray]:
        """Attribute/label columns aligned with `keys()` (may be empty)."""
        return {}

    def read(self, index: int):
        """Image `index` as an RGB PIL image or (H, W, 3) uint8 array; ImageReadError when bad."""
        raise NotImplementedError

    def is_photo(self, index: int) -> bool:
        """True when image `index` is an image file (a photo, perhaps not framed like the training faces); False
        for data sets stored or drawn in a model's framing (arrays, synthetic faces, hub data sets).
        ``--align auto`` looks for faces only in photos (``aekit.alignment``)."""
        return False

    def read_reduced(self, index: int, size: int):
        """Like `read`, but a JPEG may be decoded at a reduced scale (Pillow's ``draft``), still at least
        `size` on each side: much faster for photos several times larger than `size`.

        Pixels after the resize differ slightly from ``read`` + resize (on CelebA-like faces about 0.5
        grey levels on average, at most ~11 of 255); images smaller than twice `size` decode exactly as
        ``read``. The cache of `prepare` never uses this; streaming commands (``aekit embed``) may.
        The default is `read` itself.
        """
        return self.read(index)

    def iter_images(self, indices, size: int, reduced: bool = False) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
        """Yield (index, resized uint8 HWC or None, error or None) in order; threads overlap decoding.

        With `reduced`, images come from `read_reduced` (JPEG draft decoding), else from `read`.
        """
        read = (lambda i: self.read_reduced(i, size)) if reduced else self.read

        def work(i):
            try:
                return i, resize_rgb(read(i), size), None
            except ImageReadError as exc:
                return i, None, str(exc)

        workers = decode_workers()
        if workers == 1:
            yield from map(work, indices)
            return
        indices = list(indices)
        chunk = 64 * workers
        # at most two chunks in flight, so memory stays bounded however many images there are
        with ThreadPoolExecutor(workers) as pool:
            pending = [pool.submit(work, i) for i in indices[:chunk]]
            for start in range(chunk, len(indices) + chunk, chunk):
                upcoming = [pool.submit(work, i) for i in indices[start : start + chunk]]
                for future in pending:
                    yield future.result()
                pending = upcoming

    def byte_size(self, index: int) -> int | None:
        """Size in bytes of the stored (compressed) image, when it is a file; else None."""
        return None


def files_fingerprint(paths) -> str:
    """A sha256 over each file's absolute path, size, modification time, inode and status-change time
    (missing files count too): a file replaced by one of the same size and mtime (``cp -p``, an unpacked
    archive) has a new inode or ctime, so the cache is not read for it.

    The absolute path is ``str(Path(p).absolute())`` (not normalised: ``..`` stays), built with string
    operations because this runs over every file of a folder at every start.
    """
    cwd = os.getcwd()
    stat, isabs, join = os.stat, os.path.isabs, os.path.join
    lines = []
    for path in paths:
        text = str(path) if isinstance(path, PurePath) else _path_text(path)
        if not isabs(text):
            text = cwd if text == "." else join(cwd, text)
        try:
            st = stat(text)
            lines.append(f"{text}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{st.st_ctime_ns}\n")
        except OSError:
            lines.append(f"{text}|missing\n")
    return hashlib.sha256("".join(lines).encode("utf-8", "surrogateescape")).hexdigest()


def scan_image_folder(root, extensions) -> list[str]:
    """Relative POSIX names of the files under `root` whose lower-cased names end with one of
    `extensions`, recursively, in the order ``sorted()`` gives their Path objects (part by part).

    Hidden files and folders (a leading dot) are skipped; symbolic links to folders are not followed
    (``os.walk``'s default), so link loops cannot trap it. String operations only: listing a folder
    of 10,000 images this way takes a few tens of milliseconds, where Path objects took hundreds.
    A FIFO, socket or device named like an image is listed too (no ``stat`` per file here): the folder
    source refuses it when it is read, never opening it (``aekit.paths.refuse_special_file``), so every
    command lists it as skipped, "not a regular file".
    """
    top = os.fspath(root)
    cut = len(top) + (0 if top.endswith(os.sep) else 1)
    suffixes = tuple(e.lower() for e in extensions)
    names = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        relative = dirpath[cut:].replace(os.sep, "/")
        prefix = relative + "/" if relative else ""
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(suffixes):
                names.append(prefix + name)
    names.sort(key=lambda name: name.split("/"))
    return names


def _path_text(path) -> str:
    """``str(Path(path))`` without building a Path when the text is already in that normal form."""
    text = os.fspath(path)
    if not isinstance(text, str) or not text or "//" in text or "/./" in text or text.startswith("./") \
            or text.endswith(("/", "/.")) or text == "." or os.sep != "/":
        return str(Path(path))
    return text


class SubsetSource(ImageSource):
    """Some images of another source, by index."""

    def __init__(self, source: ImageSource, indices: list[int]):
        self.source, self.indices = source, indices
        self.description = source.description
        self._keys = None

    def __len__(self):
        return len(self.indices)

    def keys(self):
        if self._keys is None:  # computed once: a folder's keys cost a path operation per file
            keys = self.source.keys()
            self._keys = [keys[i] for i in self.indices]
        return list(self._keys)

    def fingerprint(self):
        digest = hashlib.sha256(np.asarray(self.indices, dtype=np.int64).tobytes()).hexdigest()[:16]
        return f"{self.source.fingerprint()}|subset:{digest}"

    def attributes(self):
        return {k: np.asarray(v)[self.indices] for k, v in self.source.attributes().items()}

    def read(self, index):
        return self.source.read(self.indices[index])

    def is_photo(self, index):
        return self.source.is_photo(self.indices[index])

    def read_reduced(self, index, size):
        return self.source.read_reduced(self.indices[index], size)

    def byte_size(self, index):
        return self.source.byte_size(self.indices[index])


@dataclass
class Batch:
    """A batch of decoded images from `iter_batches`."""

    indices: list[int]
    names: list[str]
    images: np.ndarray  # uint8 (B, S, S, 3)


def iter_batches(source: ImageSource, size: int, batch_size: int = 256, skipped: list | None = None,
                 progress: bool = True, desc: str = "reading", reduced: bool = False) -> Iterator[Batch]:
    """Stream a source in batches of decoded, resized images; bad images go to `skipped` (bounded memory).

    `reduced` lets JPEGs decode at a reduced scale (see `ImageSource.read_reduced`): faster, not exact.
    """
    keys = source.keys()
    indices, images = [], []
    bar = tqdm(total=len(keys), desc=desc, unit="img", disable=not progress, leave=False)
    extra = {"reduced": True} if reduced and supports_reduced(source) else {}
    for i, image, error in source.iter_images(range(len(keys)), size, **extra):
        bar.update()
        if error is None and (image.ndim != 3 or image.shape[2] != 3):
            error = f"{keys[i]}: expected an RGB image, got shape {image.shape}"
        if error is not None:
            if skipped is not None:
                skipped.append(error)
            continue
        indices.append(i)
        images.append(image)
        if len(images) == batch_size:
            yield Batch(indices, [keys[j] for j in indices], np.stack(images))
            indices, images = [], []
    bar.close()
    if images:
        yield Batch(indices, [keys[j] for j in indices], np.stack(images))


def prefetch(iterator, depth: int = 2):
    """Run `iterator` in a background thread, `depth` items ahead (decoding overlaps the model's work)."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        items.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put((done, None))
        except BaseException as exc:  # handed to the consumer, raised there
            items.put((done, exc))

    thread = threading.Thread(target=produce, daemon=True, name="aekit-prefetch")
    thread.start()
    try:
        while True:
            item, error = items.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting to put, then let it finish
            try:
                items.get(timeout=0.1)
            except queue.Empty:
                pass
        if hasattr(iterator, "close"):
            iterator.close()


@dataclass
class PreparedImages:
    """Decoded, resized images: uint8 (N, 3, S, S) (maybe memory-mapped), names, labels, skipped files."""

    images: np.ndarray
    names: list[str]
    attributes: dict[str, np.ndarray] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    source: str = ""
    cache_path: Path | None = None
    from_cache: bool = False

    def __len__(self) -> int:
        return len(self.images)


SLICE = re.compile(r"^(?P<spec>.+)\[(?P<start>-?\d*):(?P<stop>-?\d*)\]$")


def split_slice(spec: str) -> tuple[str, slice | None]:
    """``SOURCE[START:STOP]`` -> (SOURCE, slice); a plain spec has no slice."""
    match = SLICE.match(str(spec))
    if not match:
        return str(spec), None
    to_int = lambda t: int(t) if t else None  # noqa: E731
    return match["spec"], slice(to_int(match["start"]), to_int(match["stop"]))


def open_source(spec: str) -> ImageSource:
    """Resolve ``--data`` text to an ImageSource through the registered data sources."""
    registry = get_registry()
    spec = str(spec)
    name, _, argument = spec.partition(":")
    if name in registry.names("data_source") and len(name) > 1:  # len>1: not a Windows drive letter
        opener = registry.get("data_source", name)
    else:
        claimers = [e for e in registry.entries("data_source") if e.extra.get("claims") and e.extra["claims"](spec)]
        if not claimers:
            if os.path.islink(spec):  # names a file, but a link that leads nowhere
                raise DataSourceError(f"{spec}: {why_missing(spec)}")
            if special := why_not_regular(spec):  # a FIFO or device: there, but never a data source
                raise DataSourceError(f"{spec}: {special}")
            known = ", ".join(registry.names("data_source")) or "none"
            raise DataSourceError(f"{spec}: no such file or folder, and not a known data source (known: {known})"
                                  f"{registry.missing_hint}")
        opener, argument = claimers[0].obj, spec
    source = opener(argument)
    if not isinstance(source, ImageSource):
        raise DataSourceError(f"data source for {spec!r} returned {type(source).__name__}, not an ImageSource")
    return source


def select_indices(keys: list[str], skip: int = 0, limit: int | None = None, files=None, window: slice | None = None) -> list[int]:
    """Indices kept by a SOURCE[START:STOP] window, a file list (names or base names), --skip, then --limit."""
    if skip < 0 or (limit is not None and limit < 0):
        raise DataSourceError("--skip and --limit must be zero or more")
    indices = list(range(len(keys)))[window or slice(None)]
    if files is not None:
        wanted = _read_file_list(files)
        base = {k: k.rsplit("/", 1)[-1] for k in keys}
        indices = [i for i in indices if keys[i] in wanted or base[keys[i]] in wanted]
        if not indices:
            raise DataSourceError(f"{files}: none of its {len(wanted)} names is in the data source")
    indices = indices[skip:]
    return indices if limit is None else indices[:limit]


def _read_file_list(files) -> set[str]:
    if isinstance(files, (list, tuple, set)):
        return {str(f) for f in files}
    try:
        lines = Path(files).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataSourceError(f"{files}: cannot read file list ({exc.__class__.__name__})") from None
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def prepare(source: ImageSource | str, image_size: int = 64, skip: int = 0, limit: int | None = None,
            files=None, progress: bool = True, use_cache: bool = True) -> PreparedImages:
    """Decode and resize the selected images once; later calls with the same key read the cache.

    `source` may be an ImageSource or ``--data`` text, optionally with a ``[START:STOP]`` window
    over the source's order (``faces/[:9000]``), applied before `files`, `skip` and `limit`.
    """
    window = None
    if isinstance(source, str):
        spec, window = split_slice(source)
        source = open_source(spec)
    keys = source.keys()
    indices = select_indices(keys, skip, limit, files, window)
    if not indices:
        raise DataSourceError(f"{source.description}: no images selected (it has {len(keys)})")
    key = image_cache.cache_key(source.fingerprint(), RESIZE_METHOD, image_size, indices)
    if use_cache:
        image_cache.remove_leftovers()
        cached = image_cache.read_entry(key, source.description)
        if cached is not None:
            images, names, attributes, skipped = cached
            return PreparedImages(images, names, attributes, skipped, source.description,
                                  image_cache.entry_paths(key)[0], from_cache=True)
    return _decode(source, keys, indices, image_size, key if use_cache else None, progress)


def _decode(source, keys, indices, size, cache_key, progress) -> PreparedImages:
    """Decode the selected images (in parallel), and write them to the cache under `cache_key` unless None."""
    all_attributes = source.attributes()
    good, skipped = [], []
    buffer = np.empty((len(indices), 3, size, size), dtype=np.uint8)
    bar = tqdm(total=len(indices), desc=f"decoding {source.description}", unit="img", disable=not progress, leave=False)
    for i, image, error in source.iter_images(indices, size):
        if error is None and (image.ndim != 3 or image.shape[2] != 3):
            error = f"{keys[i]}: expected an RGB image, got shape {image.shape}"
        if error is None:
            buffer[len(good)] = image.transpose(2, 0, 1)
            good.append(i)
        else:
            skipped.append(error)
        bar.update()
    bar.close()
    if not good:
        raise DataSourceError(f"{source.description}: none of the {len(indices)} selected images could be read "
                              f"(first problem: {skipped[0]})")
    images = buffer[: len(good)]
    names = [keys[i] for i in good]
    attributes = {name: np.asarray(col)[good] for name, col in all_attributes.items()}
    cache_path = image_cache.write_entry(cache_key, images, names, attributes, skipped) if cache_key else None
    return PreparedImages(images, names, attributes, skipped, source.description, cache_path)


class ImageTensorSet:
    """Batches of float tensors in [-1, 1] from uint8 (N, 3, S, S) images, shuffled by (seed, epoch)."""

    def __init__(self, images: np.ndarray, batch_size: int, drop_last: bool = True, rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.images, self.batch_size, self.drop_last = images, batch_size, drop_last
        self.rank, self.world_size = rank, world_size  # distributed: this process takes every world_size-th batch

    def __len__(self) -> int:
        n = len(self.images)
        total = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return total // self.world_size if self.world_size > 1 else total

    def batches(self, seed: int | None = None, epoch: int = 0, start: int = 0):
        """Yield uint8 tensor batches; the order depends only on (seed, epoch) so a resumed run repeats it."""
        n = len(self.images)
        if seed is None:
            order = np.arange(n)
        else:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).numpy()
        for step in range(start, len(self)):
            b = step * self.world_size + self.rank  # the same shuffled order on every rank, a different batch each
            idx = np.sort(order[b * self.batch_size : (b + 1) * self.batch_size])  # sorted: faster memmap reads
            yield torch.from_numpy(np.ascontiguousarray(self.images[idx]))


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1] (``aekit.pixels.to_signed``, the article's scaling)."""
    return to_signed(batch)
