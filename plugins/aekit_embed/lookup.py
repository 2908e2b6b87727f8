"""Where each image of a source lives on disk, and finding the images behind a features file again."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from aekit.data import ImageSource, SubsetSource, split_slice
from aekit.inputs import ConcatSource, FileListSource, open_inputs
from aekit.errors import AekitError


def leaf(source: ImageSource, index: int) -> tuple[ImageSource, int]:
    """The innermost source holding image `index` (through concatenations and subsets) and its index there."""
    while True:
        if isinstance(source, ConcatSource):
            s, k = source._where[index]
            source, index = source.sources[s], k
        elif isinstance(source, SubsetSource):
            source, index = source.source, source.indices[index]
        else:
            return source, index


class FileResolver:
    """Absolute file paths (or None) of a source's images, caching each inner source's keys."""

    def __init__(self, source: ImageSource):
        self.source = source
        self._keys: dict[int, list[str]] = {}

    def _leaf_key(self, inner: ImageSource, index: int) -> str:
        if id(inner) not in self._keys:
            self._keys[id(inner)] = inner.keys()
        return self._keys[id(inner)][index]

    def file(self, index: int) -> Path | None:
        """The image's file, when it is one (folders and image files; not arrays, synthetic or hub rows)."""
        inner, i = leaf(self.source, index)
        if isinstance(inner, FileListSource):
            return Path(os.path.abspath(inner.paths[i]))
        root = getattr(inner, "root", None)  # a folder source: keys are paths relative to its root
        if root is not None and Path(root).is_dir():
            return Path(os.path.abspath(Path(root) / self._leaf_key(inner, i)))
        return None

    def is_named_file(self, index: int) -> bool:
        """True when the image is a file named on the command line (not found inside a folder)."""
        return isinstance(leaf(self.source, index)[0], FileListSource)


def absolute_inputs(inputs) -> list[str]:
    """The INPUT texts with paths that exist made absolute (windows like ``faces/[:10]`` kept)."""
    out = []
    for spec in inputs:
        base, window = split_slice(str(spec))
        if Path(base).exists():
            suffix = str(spec)[len(base):] if window is not None else ""
            out.append(str(Path(base).resolve()) + suffix)
        else:
            out.append(str(spec))
    return out


def align(source: ImageSource, names: list[str], what: str) -> ImageSource:
    """The images of `source` named `names`, in that order (by full name, else by base name)."""
    keys = source.keys()
    if keys == names:
        return source
    position = {k: i for i, k in enumerate(keys)}
    by_base: dict[str, int] = {}
    for i, k in enumerate(keys):
        by_base.setdefault(k.replace("\\", "/").rsplit("/", 1)[-1], i)
    indices, missing = [], []
    for name in names:
        i = position.get(name)
        if i is None:
            i = by_base.get(name.replace("\\", "/").rsplit("/", 1)[-1])
        if i is None:
            missing.append(name)
        else:
            indices.append(i)
    if missing:
        raise AekitError(f"{what}: {len(missing)} of the {len(names)} images are not in it (e.g. {missing[0]})")
    return SubsetSource(source, indices)


def images_for(feats, images=None) -> tuple[ImageSource | None, str]:
    """A source aligned with the rows of `feats`, or (None, why not).

    `images` (INPUT texts, like ``--images``) wins; else the stored absolute files when they all still
    exist; else the stored inputs re-opened (relative to the folder `aekit embed` ran in) when they
    still hold every name (data sources such as ``synthetic`` or arrays).
    """
    if images:
        return align(open_inputs(list(images)), feats.paths, "--images " + " ".join(map(str, images))), ""
    files = list(feats.files or [])
    if files and all(files) and all(os.path.isfile(f) for f in files):
        return FileListSource(files), ""
    inputs, cwd = feats.meta.get("inputs"), feats.meta.get("cwd")
    if inputs:
        specs = []
        for spec in inputs:
            base, window = split_slice(str(spec))
            candidate = Path(cwd or ".") / base if not Path(base).is_absolute() else Path(base)
            specs.append(str(candidate) + str(spec)[len(base):] if candidate.exists() else str(spec))
        try:
            return align(open_inputs(specs), feats.paths, "inputs"), ""
        except Exception:  # gone, changed, offline: fall through to the note
            pass
    example = next((f for f in files if f and not os.path.isfile(f)), None) or (inputs or ["?"])[0]
    return None, f"the images are no longer where `aekit embed` read them (e.g. {example}); pass --images INPUT"


def read_images(source: ImageSource, indices, size: int) -> dict[int, np.ndarray]:
    """Decoded uint8 (size, size, 3) images for some indices of `source`; unreadable ones are left out."""
    out = {}
    for i, image, error in source.iter_images(list(indices), size):
        if error is None and image.ndim == 3 and image.shape[2] == 3:
            out[i] = image
    return out
