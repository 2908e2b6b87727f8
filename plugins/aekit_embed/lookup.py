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


def _row_list(feats, rows) -> list[int]:
    return list(range(len(feats))) if rows is None else [int(r) for r in rows]


def photos_for(feats, images=None, rows=None) -> tuple[ImageSource | None, list[int], str]:
    """The photos behind `rows` of `feats` (all when None): (a source of each photo once, the index of each
    row's photo in it, ""), or (None, [], why not).

    A row is a whole image or a face of a photo (``feats.photo``, ``feats.face``: ``aekit embed --align``);
    each photo is found once, by name. `images` (INPUT texts, like ``--images``) wins; else the stored
    absolute files when they all still exist; else the stored inputs re-opened (relative to the folder
    `aekit embed` ran in) when they still hold every name (data sources such as ``synthetic`` or arrays).
    """
    rows = _row_list(feats, rows)
    names, first, photo_of_row = [], [], []
    position: dict[str, int] = {}
    for r in rows:
        name = feats.photo[r]
        if name not in position:
            position[name] = len(names)
            names.append(name)
            first.append(r)
        photo_of_row.append(position[name])
    if images:
        return align(open_inputs(list(images)), names, "--images " + " ".join(map(str, images))), photo_of_row, ""
    stored = list(feats.files or [])
    files = [stored[r] if r < len(stored) else "" for r in first]
    if files and all(files) and all(os.path.isfile(f) for f in files):
        return FileListSource(files), photo_of_row, ""
    inputs, cwd = feats.meta.get("inputs"), feats.meta.get("cwd")
    if inputs:
        specs = []
        for spec in inputs:
            base, window = split_slice(str(spec))
            candidate = Path(cwd or ".") / base if not Path(base).is_absolute() else Path(base)
            specs.append(str(candidate) + str(spec)[len(base):] if candidate.exists() else str(spec))
        try:
            return align(open_inputs(specs), names, "inputs"), photo_of_row, ""
        except Exception:  # gone, changed, offline: fall through to the note
            pass
    example = next((f for f in files if f and not os.path.isfile(f)), None) or (inputs or ["?"])[0]
    return None, [], f"the images are no longer where `aekit embed` read them (e.g. {example}); pass --images INPUT"


def _same_place(found, stored, tolerance: float = 0.5) -> bool:
    """True when a face's box found again is where `aekit embed` found it (within `tolerance` of its size)."""
    stored = np.asarray(stored, dtype=np.float64)
    if not np.isfinite(stored).all():
        return True
    found = np.asarray(found, dtype=np.float64)
    size = max(stored[2], stored[3], 1.0)
    moved = np.hypot(*(found[:2] + found[2:] / 2 - stored[:2] - stored[2:] / 2))
    return bool(moved <= tolerance * size and 0.5 <= max(found[2], found[3], 1.0) / size <= 2.0)


class RowSource(ImageSource):
    """The model input behind each of some rows of a features file, made when it is read.

    A row is a whole image (its photo resized) or face N of its photo: the photo is read and its faces found
    again as `aekit embed` found them, then face N is aligned (as ``aekit.alignment.AlignedSource`` does,
    pixel for pixel). Only the rows read cost anything (a sheet's few faces of a large index); the faces of
    the last few photos are kept, so the faces of one photo are found once. `mode` None follows the rows;
    ``off`` gives every row its whole photo; ``auto``/``on`` find the faces under that mode and match each row
    by its face index (a row the mode does not give fails to read, with the reason).
    """

    CACHED_PHOTOS = 8

    def __init__(self, feats, photos: ImageSource, photo_of_row: list[int], rows: list[int], mode: str | None,
                 size: int):
        import threading

        self.feats, self.photos, self.photo_of_row, self.rows = feats, photos, list(photo_of_row), list(rows)
        self.mode, self.size = mode, int(size)
        self.description = photos.description if mode == "off" else f"faces of {photos.description}"
        self._keys = [feats.paths[r] for r in self.rows]
        self._aligner = None
        self._cache: dict[int, tuple] = {}
        self._lock = threading.Lock()

    def keys(self):
        return list(self._keys)

    def fingerprint(self):
        return f"{self.photos.fingerprint()}|rows:{self.mode}:{self.size}:{len(self.rows)}"

    def photo(self, index: int):
        """Row `index`'s whole photo (as its source reads it)."""
        return self.photos.read(self.photo_of_row[index])

    def _placed(self, p: int, name: str, mode: str):
        """(photo as an RGB array, its placements under `mode` or the reason it has none): cached per photo."""
        from aekit.alignment import get_aligner, placements_of
        from aekit.images import to_rgb

        with self._lock:
            if p in self._cache:
                return self._cache[p]
            if self._aligner is None:
                self._aligner = get_aligner()
        picture = self.photos.read(p)
        image = np.ascontiguousarray(np.asarray(to_rgb(picture) if not isinstance(picture, np.ndarray) else picture,
                                                dtype=np.uint8))
        if image.ndim != 3 or image.shape[2] != 3:
            from aekit.errors import ImageReadError

            raise ImageReadError(f"{name}: expected an RGB image, got shape {image.shape}")
        result = (image, *placements_of(image, name, mode, self._aligner))
        with self._lock:
            if len(self._cache) >= self.CACHED_PHOTOS:
                self._cache.pop(next(iter(self._cache)))
            self._cache[p] = result
        return result

    def read(self, index):
        from aekit.errors import ImageReadError
        from aekit.images import resize_rgb

        row, p = self.rows[index], self.photo_of_row[index]
        face, name, key = int(self.feats.face[row]), self.feats.photo[row], self._keys[index]
        if self.mode == "off" or (self.mode is None and face < 0):
            return self.photos.read(p)
        mode = self.mode or "on"  # the rows' own faces: found as under on, whatever decided to look for them
        image, placements, why = self._placed(p, name, mode)
        match = [q for q in placements if q.face_index == face]
        if not match:
            if why is not None and not placements:
                raise ImageReadError(why)
            what = f"face {face}" if face >= 0 else "the whole image"
            raise ImageReadError(f"{key}: {what} of {name} is not found again with --align {mode}"
                                 + ("" if self.mode is None else f" (the features were embedded with --align {self.feats.align})"))
        placement = match[0]
        if not placement.aligned:
            return resize_rgb(image, self.size)
        if not _same_place(placement.box, self.feats.box[row]):
            raise ImageReadError(f"{key}: face {face} of {name} is not where `aekit embed` found it (has the photo changed?)")
        return self._aligner.crop(image, placement.face, self.size)


def rows_source(feats, photos: ImageSource, photo_of_row: list[int], rows=None, align_mode: str | None = None,
                size: int | None = None) -> ImageSource:
    """The model inputs behind `rows` of `feats` (all when None), from `photos_for`'s photos (`RowSource`).

    `align_mode` None (the default): as each row says, a whole image or face N of its photo. ``off``: each
    row's whole photo. ``auto``/``on``: the faces found under that mode, matched by each row's face index.
    Files of whole images read under None or off give `photos` itself: exactly the images `aekit embed` read.
    """
    from aekit.alignment import check_mode

    rows = _row_list(feats, rows)
    mode = check_mode(align_mode) if align_mode is not None else None
    whole = mode == "off" or (mode is None and all(int(feats.face[r]) < 0 for r in rows))
    if whole and photo_of_row == list(range(len(photos))):
        return photos  # one whole image per row, in order: the photos themselves
    return RowSource(feats, photos, photo_of_row, rows, mode, int(size or feats.meta.get("image_size") or 64))


def images_for(feats, images=None, align_mode: str | None = None, rows=None,
               size: int | None = None) -> tuple[ImageSource | None, str]:
    """A source aligned with the rows of `feats` (or with `rows`, some of them), or (None, why not).

    Where the images are: `photos_for`; which pixels each row gets (a whole image, or a face of a photo
    found again): `rows_source`. Features files of whole images (from before ``--align``, or ``--align
    off``) give exactly the images `aekit embed` read.
    """
    photos, photo_of_row, why = photos_for(feats, images, rows)
    if photos is None:
        return None, why
    return rows_source(feats, photos, photo_of_row, rows, align_mode, size), ""


def read_images(source: ImageSource, indices, size: int) -> dict[int, np.ndarray]:
    """Decoded uint8 (size, size, 3) images for some indices of `source`; unreadable ones are left out."""
    out = {}
    for i, image, error in source.iter_images(list(indices), size):
        if error is None and image.ndim == 3 and image.shape[2] == 3:
            out[i] = image
    return out
