"""Faces in photos for every command that feeds faces to a model: ``--align auto|on|off``.

Every aekit model sees 64x64 pictures framed like CelebA's aligned faces. A photo is not framed like
that, so before a model sees it each face in it is found and aligned by a face aligner, which a plugin
registers (``register_aligners``; the built-in ``aekit_faces`` registers ``yunet``). The core never
imports it: it only knows the `FaceAligner` interface below.

``--align`` decides, per image:

- ``off``: the image is resized to the model's size as it is (what aekit did before faces were found).
- ``on``: every face found in the image is aligned and becomes one model input; an image with no face
  (or only faces too small, ``MIN_FACE_SIZE``) is skipped and listed.
- ``auto`` (the default): images of data sets stored or drawn in a model's framing (arrays, ``synthetic``,
  hub data sets: ``ImageSource.is_photo`` is False) are used as they are, unsearched. An image file already
  framed like CelebA is used as it is (the aligner's ``framed_face`` finds the face where CelebA's framing
  puts it); otherwise its faces are aligned as with ``on``; an image with no face of at least
  ``MIN_FACE_SIZE`` is used as it is.

`AlignedSource` wraps any ``aekit.data.ImageSource`` so: one entry per face, named ``KEY#N`` (face N of
the image ``KEY``, largest first) or ``KEY`` (the image used as it is), with `placements` saying where each
model input came from (the photo, the face's index and its box), which commands write beside their rows.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator

import click
import numpy as np
from tqdm.auto import tqdm

from .data import ImageSource, decode_workers, supports_reduced
from .errors import AekitError, ImageReadError
from .images import resize_rgb, to_rgb
from .notes import note
from .registry import get_registry

ALIGN_MODES = ("auto", "on", "off")
DEFAULT_ALIGN = "auto"
MIN_FACE_SIZE = 24.0  # px, a face box's shorter side: smaller faces are enlarged past anything a model can use
ALIGN_HELP = ("Find and align faces before the model sees them: on (every face of each image, CelebA's framing; "
              "images without one are skipped and listed), off (each image resized as it is), auto (images already "
              "framed like CelebA as they are, others aligned; no face found: as it is).")
PLACEMENT_FIELDS = ("photo", "face", "box")  # what each output row records: the input, face index (-1: whole), x y w h


class AlignmentError(AekitError, ValueError):
    """A bad --align setting, or aligning asked for with no face aligner installed."""


class FaceAligner:
    """What a face-aligner plugin registers (``register_aligners``): finding, cropping and putting faces back.

    Images are (H, W, 3) uint8 RGB arrays. A face is any object with ``box`` (x, y, width, height in the
    photo's pixels), ``score`` (0 to 1) and ``transform`` (a (2, 3) float array from photo pixels into the
    aligner's frame); ``size`` is the box's shorter side.
    """

    name = "aligner"

    def find(self, image: np.ndarray) -> list:
        """The faces in `image`, largest first."""
        raise NotImplementedError

    def framed_face(self, image: np.ndarray):
        """The face when `image` is already framed like the models' training faces (then it is used as it is),
        with a ``transform`` that takes the whole image onto the frame; None otherwise."""
        raise NotImplementedError

    def crop(self, image: np.ndarray, face, size: int) -> np.ndarray:
        """The face aligned, as a (size, size, 3) uint8 model input."""
        raise NotImplementedError

    def put_back(self, image: np.ndarray, face, change: np.ndarray) -> np.ndarray:
        """`image` with `change` (a float (S, S, 3) difference of two decoded model outputs, in grey levels)
        added to the face, carried back into the photo and faded out by a soft mask around the face.

        Pixels outside the mask are `image`'s own, bit for bit; the result is a new uint8 array.
        """
        raise NotImplementedError


def check_mode(mode: str) -> str:
    mode = str(mode).strip().lower()
    if mode not in ALIGN_MODES:
        raise AlignmentError(f"--align {mode!r}: expected one of {', '.join(ALIGN_MODES)}")
    return mode


def align_option(function=None, *, default: str | None = DEFAULT_ALIGN, help: str = ALIGN_HELP):
    """The ``--align auto|on|off`` option of commands that feed faces to a model (passed as ``align``).

    ``default=None``: no default, for commands that read a features file whose rows say how each was made
    (`help` then says what that means to the command).
    """
    decorator = click.option("--align", "align", type=click.Choice(ALIGN_MODES, case_sensitive=False), default=default,
                             show_default=default is not None, help=help)
    return decorator(function) if function is not None else decorator


def get_aligner(name: str | None = None) -> FaceAligner:
    """The registered face aligner `name` (None: the only one, or ``yunet`` among several)."""
    registry = get_registry()
    names = registry.names("aligner")
    if name is None:
        if not names:
            raise AlignmentError("--align needs a face aligner and none is installed (the built-in aekit_faces "
                                 "plugin provides one; see `aekit plugins`), or use --align off")
        name = "yunet" if "yunet" in names or len(names) != 1 else names[0]
    return registry.get("aligner", name)


def aligner_for(mode: str) -> FaceAligner | None:
    """The aligner `mode` uses: None for ``off``, and for ``auto`` when no aligner is installed (every image is then
    used as it is, with a note); ``on`` without one is `AlignmentError`."""
    if check_mode(mode) == "off":
        return None
    try:
        return get_aligner()
    except AlignmentError:
        if mode == "on":
            raise
        note("--align auto: no face aligner is installed (see `aekit plugins`), so every image is used as it is")
        return None


@dataclass(frozen=True)
class Placement:
    """Where one model input came from: the image's name, the face's index in it (-1: the whole image, used as
    it is) and the face's box in the image's pixels (NaN for a whole image); `face` is the aligner's face (for a
    whole image already framed like CelebA, its ``framed_face``; else None)."""

    photo: str
    face_index: int
    box: tuple[float, float, float, float]
    score: float = math.nan
    face: Any = None

    @property
    def aligned(self) -> bool:
        return self.face_index >= 0

    def key(self) -> str:
        return f"{self.photo}#{self.face_index}" if self.aligned else self.photo


def _whole(photo: str) -> Placement:
    return Placement(photo, -1, (math.nan,) * 4)


def placements_of(image: np.ndarray, name: str, mode: str, aligner: FaceAligner | None, largest: bool = False,
                  min_size: float = MIN_FACE_SIZE) -> tuple[list[Placement], str | None]:
    """The model inputs one image gives under `mode`, and why it gives none (or None): see the module's doc."""
    mode = check_mode(mode)
    if mode == "off":
        return [_whole(name)], None
    framed = aligner.framed_face(image) if mode == "auto" else None
    if framed is not None:  # kept: an edit is put back through it (aekit_edit), without looking again
        return [Placement(name, -1, (math.nan,) * 4, face=framed)], None
    faces = aligner.find(image)
    kept = [f for f in faces if float(min(f.box[2], f.box[3])) >= min_size]
    if largest:
        kept = kept[:1]
    if kept:
        return [Placement(name, i, tuple(float(v) for v in f.box), float(f.score), f) for i, f in enumerate(kept)], None
    if mode == "auto":  # no usable face: the picture as it is
        return [_whole(name)], None
    if faces:
        return [], f"{name}: no face of at least {min_size:g} px (largest {max(min(f.box[2], f.box[3]) for f in faces):.0f} px)"
    return [], f"{name}: no face found"


class AlignedSource(ImageSource):
    """Each face of each image of `source`, aligned for a model of `size` (see the module's doc for `mode`).

    The images are read and searched once, here (threads, with a progress bar); the aligned faces are kept,
    ``size * size * 3`` bytes each, and images used as they are are read again from `source` when asked
    for (exactly as without ``--align``). Images that fail to read, or give no face with ``on``, stay as
    entries that fail to read, named as the image, so batch commands skip and list them as usual.
    """

    def __init__(self, source: ImageSource, mode: str, size: int, aligner: FaceAligner | None = None,
                 largest: bool = False, min_size: float = MIN_FACE_SIZE, progress: bool = True):
        self.source, self.mode, self.size = source, check_mode(mode), int(size)
        self.aligner = aligner if aligner is not None else aligner_for(self.mode)
        if self.aligner is None:
            self.mode = "off"
        self.largest, self.min_size = largest, float(min_size)
        self.description = f"faces of {source.description}" if self.mode != "off" else source.description
        keys = source.keys()
        self._placements: list[Placement] = []
        self._sources: list[int] = []  # the source index of each entry
        self._crops: list[np.ndarray | None] = []
        self._errors: list[str | None] = []
        bar = tqdm(total=len(keys), desc="finding faces", unit="img", disable=not progress or self.mode == "off",
                   leave=False)
        for index, results, error in self._survey(keys):
            bar.update()
            if error is not None:
                self._add(index, _whole(keys[index]), None, error)
            for placement, crop in results:
                self._add(index, placement, crop, None)
        bar.close()
        self._keys = [p.key() if e is None else p.photo for p, e in zip(self._placements, self._errors)]

    def _add(self, index, placement, crop, error):
        self._sources.append(index)
        self._placements.append(placement)
        self._crops.append(crop)
        self._errors.append(error)

    def _one(self, index: int, key: str):
        if self.mode == "off" or (self.mode == "auto" and not self.source.is_photo(index)):
            return index, [(_whole(key), None)], None  # a data set in the model's framing: as it is, unsearched
        try:
            picture = self.source.read(index)
        except ImageReadError as exc:
            return index, [], str(exc)
        image = np.asarray(to_rgb(picture) if not isinstance(picture, np.ndarray) else picture, dtype=np.uint8)
        if image.ndim != 3 or image.shape[2] != 3:
            return index, [], f"{key}: expected an RGB image, got shape {image.shape}"
        image = np.ascontiguousarray(image)
        placements, why = placements_of(image, key, self.mode, self.aligner, self.largest, self.min_size)
        crops = [self.aligner.crop(image, p.face, self.size) if p.aligned else None for p in placements]
        return index, list(zip(placements, crops)), why

    def _survey(self, keys) -> Iterator[tuple[int, list, str | None]]:
        workers = decode_workers()
        if workers == 1 or len(keys) < 2:
            for i, key in enumerate(keys):
                yield self._one(i, key)
            return
        chunk = 16 * workers
        with ThreadPoolExecutor(workers) as pool:  # OpenCV and Pillow release the GIL: threads search in parallel
            for start in range(0, len(keys), chunk):
                yield from pool.map(lambda i: self._one(i, keys[i]), range(start, min(len(keys), start + chunk)))

    # --- ImageSource ---------------------------------------------------------------------------------------

    def keys(self):
        return self._keys

    def fingerprint(self):
        name = getattr(self.aligner, "name", "") if self.aligner is not None else ""
        return f"{self.source.fingerprint()}|align:{self.mode}:{name}:{self.size}:{int(self.largest)}:{self.min_size:g}"

    def attributes(self):
        rows = np.asarray(self._sources, dtype=np.int64)
        return {k: np.asarray(v)[rows] for k, v in self.source.attributes().items()}

    def read(self, index):
        if self._errors[index] is not None:
            raise ImageReadError(self._errors[index])
        if self._crops[index] is None:
            return self.source.read(self._sources[index])
        return self._crops[index]

    def read_reduced(self, index, size):
        if self._errors[index] is None and self._crops[index] is None:
            return self.source.read_reduced(self._sources[index], size)
        return self.read(index)

    def is_photo(self, index):
        return self.source.is_photo(self._sources[index])

    def byte_size(self, index):
        return self.source.byte_size(self._sources[index])

    def iter_images(self, indices, size: int, reduced: bool = False):
        indices = list(indices)
        whole = [self._sources[i] for i in indices if self._errors[i] is None and self._crops[i] is None]
        extra = {"reduced": True} if reduced and supports_reduced(self.source) else {}
        # images used as they are come from the source's own reader, in order: the same pixels as without --align
        from_source = self.source.iter_images(whole, size, **extra) if whole else iter(())
        for i in indices:
            if self._errors[i] is not None:
                yield i, None, self._errors[i]
            elif self._crops[i] is None:
                _, image, error = next(from_source)
                yield i, image, error
            else:
                yield i, resize_rgb(self._crops[i], size), None

    # --- where each entry came from -------------------------------------------------------------------------

    def placements(self) -> list[Placement]:
        """One `Placement` per entry (also for entries that fail to read: the whole image)."""
        return list(self._placements)

    def source_index(self, index: int) -> int:
        """The index in the wrapped source of the image entry `index` came from."""
        return self._sources[index]

    @property
    def skipped(self) -> list[str]:
        """Why images gave no entry (no face, or unreadable), one line each."""
        return [e for e in self._errors if e is not None]


def aligned_source(source: ImageSource, mode: str, size: int, **options) -> ImageSource:
    """`source` as model inputs under `mode`: `source` itself with ``off``, else an `AlignedSource` (which, with
    no aligner installed, holds each image whole, so callers still get its placements)."""
    if check_mode(mode) == "off":
        return source
    return AlignedSource(source, mode, size, **options)


def placement_columns(placements: list[Placement]) -> dict[str, np.ndarray]:
    """The placement columns commands write beside their rows: ``photo`` (str), ``face`` (int, -1: the whole
    image) and ``box`` (N, 4) float32 x, y, width, height (NaN for a whole image)."""
    return {
        "photo": np.asarray([p.photo for p in placements], dtype=str),
        "face": np.asarray([p.face_index for p in placements], dtype=np.int64),
        "box": np.asarray([p.box for p in placements], dtype=np.float32).reshape(-1, 4),
    }


def model_inputs(image, mode: str, size: int, aligner: FaceAligner | None = None, largest: bool = False,
                 min_size: float = MIN_FACE_SIZE, name: str = "image") -> tuple[list[np.ndarray], list[Placement]]:
    """One image's model inputs under `mode` (each (size, size, 3) uint8) and where they came from.

    For Python callers (``AutoencoderEmbedder``, the explorer's upload): an image with no usable face under
    ``on`` raises `AlignmentError` with the reason.
    """
    mode = check_mode(mode)
    if not isinstance(image, np.ndarray):
        image = np.asarray(to_rgb(image), dtype=np.uint8)
    image = np.ascontiguousarray(image)
    if aligner is None:
        aligner = aligner_for(mode)
        mode = mode if aligner is not None else "off"
    placements, why = placements_of(image, name, mode, aligner, largest, min_size)
    if why is not None:
        raise AlignmentError(why)
    crops = [resize_rgb(image, size) if not p.aligned else aligner.crop(image, p.face, size) for p in placements]
    return crops, placements
