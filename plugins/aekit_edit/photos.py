"""Edits carried back into the photo: each face's change, not the model's reconstruction, under a soft mask.

A model sees a 64x64 picture framed like CelebA's aligned faces, and gives back a blurred version of it.
So an edit is applied to the photo as a *change*: for each face, ``z = encode(crop)`` and
``change = decode(z + d) - decode(z)`` (float, grey levels), which the face aligner carries back through
the face's inverse transform under a soft mask (``FaceAligner.put_back``): the photo keeps its own
resolution and detail, and pixels outside the mask are its own, bit for bit.

Where a change goes (`PhotoFace.face`), by ``--align`` (``aekit.alignment``):

- a face found in the photo (``on``, or ``auto``): put back through that face's transform;
- a picture already framed like CelebA (``auto``): put back through the aligner's ``framed_face``, whose
  transform stretches the whole picture onto the frame, as the model's resize did;
- a picture with no face (``auto``), or any picture under ``off``: the change is resized to the picture's
  size and added to all of it, no mask (the picture is taken as the model's framing).

Used by ``aekit edit`` and the explorer (``aekit serve``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aekit.alignment import MIN_FACE_SIZE, Placement, aligner_for, check_mode, get_aligner, placements_of


@dataclass
class PhotoFace:
    """One model input of a photo and where its change goes back: `face` is the aligner's face to put it back
    through (a face found, or the framed picture's), or None to add it to the whole picture."""

    placement: Placement
    pixels: np.ndarray  # (S, S, 3) uint8: the model's input
    face: Any = None

    @property
    def masked(self) -> bool:
        return self.face is not None


def photo_faces(image: np.ndarray, name: str, mode: str, size: int, aligner=None, largest: bool = False,
                min_size: float = MIN_FACE_SIZE) -> tuple[list[PhotoFace], str | None]:
    """The model inputs of `image` ((H, W, 3) uint8) under `mode`, each with where its change goes back, and
    why there are none (or None): the rules of ``aekit.alignment.placements_of``."""
    from aekit.images import resize_rgb

    mode = check_mode(mode)
    if aligner is None:
        aligner = aligner_for(mode)
        mode = mode if aligner is not None else "off"
    image = np.ascontiguousarray(image)
    placements, why = placements_of(image, name, mode, aligner, largest, min_size)
    faces = []
    for placement in placements:
        if placement.aligned:
            faces.append(PhotoFace(placement, aligner.crop(image, placement.face, size), placement.face))
        else:  # the whole picture: framed like CelebA (auto: its framed face), no face found (auto) or --align off
            faces.append(PhotoFace(placement, resize_rgb(image, size), placement.face))
    return faces, why


def grey_levels(decoded) -> np.ndarray:
    """Decoded model outputs ((N, 3, S, S) in [-1, 1], tensor or array) as float32 (N, S, S, 3) grey levels, 0 to 255
    (unrounded: what ``aekit.images.to_uint8_hwc`` rounds)."""
    import torch

    values = decoded.detach().cpu().float().numpy() if torch.is_tensor(decoded) else np.asarray(decoded, np.float32)
    return np.clip((values.transpose(0, 2, 3, 1) + 1.0) * 127.5, 0.0, 255.0).astype(np.float32)


def decoded_changes(decode, latents: np.ndarray, moved: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reconstructions, edited, changes) of `latents` moved to `moved`: the first two float32 (N, S, S, 3) grey
    levels, and ``changes = edited - reconstructions``, from one call of `decode` (``model.decode`` or a runtime's)."""
    latents = np.asarray(latents, dtype=np.float32)
    grey = grey_levels(decode(np.concatenate([latents, np.asarray(moved, dtype=np.float32)])))
    reconstructions, edited = grey[: len(latents)], grey[len(latents):]
    return reconstructions, edited, edited - reconstructions


def add_whole(image: np.ndarray, change: np.ndarray) -> np.ndarray:
    """`image` ((H, W, 3) uint8) with `change` ((S, S, 3) float, grey levels) resized to its size and added to all
    of it, no mask: the picture taken as the model's framing."""
    import cv2

    image = np.asarray(image)
    height, width = image.shape[:2]
    change = np.ascontiguousarray(change, dtype=np.float32)
    if change.shape[:2] != (height, width):
        shrink = width < change.shape[1] and height < change.shape[0]
        change = cv2.resize(change, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return np.clip(np.rint(image.astype(np.float32) + change), 0, 255).astype(np.uint8)


def put_changes(image: np.ndarray, faces: list[PhotoFace], changes, aligner=None) -> np.ndarray:
    """`image` with each face's change put back, face after face (a new uint8 array; `image` is not changed)."""
    result = np.asarray(image, dtype=np.uint8)
    for face, change in zip(faces, changes):
        if face.masked:
            result = (aligner or get_aligner()).put_back(result, face.face, change)
        else:
            result = add_whole(result, change)
    return result if result is not image else result.copy()
