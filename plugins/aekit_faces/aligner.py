"""``yunet``: the face aligner behind ``--align`` (an ``aekit.alignment.FaceAligner``).

It finds faces with `detect_faces`, crops them with `align`, says when a picture is already framed like
CelebA (`framed_face`), and carries an edit's change back into the photo under a soft mask (`put_back`).
"""

from __future__ import annotations

import numpy as np

from aekit.alignment import FaceAligner

from .faces import (FRAME, MIN_SCORE, REFIND_SCORE, TEMPLATE, Face, _raw_detections, align, apply, detect_faces,
                    invert)

# A picture counts as framed like CelebA when, stretched onto the 178x218 frame as the models' resize does, a face
# is found with its eyes and mouth corners on average within this many frame pixels of the template (the eyes are
# 40 apart). celeba-10k's aligned test faces lie at a median 3.1 (99.5% under 12, at 89x109 and at 64x64); the same
# faces misframed in the picture (scaled 0.25-1x, turned up to 25 degrees) at a median 32 (3.5% under 12, those
# barely moved): python benchmarks/align_auto_rule.py
FRAMED_DISTANCE = 12.0
# The soft mask an edit is blended back with, in the 178x218 frame: an ellipse around the head (chin to the top of
# the hair, ear to ear), at full strength inside FADE_START of its radius and fading to nothing at its edge; outside
# it the photo is untouched. Chosen on misframed training faces 8001-8150 (python benchmarks/edit_mask.py): a mask
# of the face alone left hair edits out (Blond_Hair +1 rose the judge's probability by 0.09; this one, 0.25), and
# every mask kept the photo's sharpness (0.97-1.03 of it).
MASK_CENTRE = (88.5, 112.0)
MASK_RADII = (78.0, 100.0)
FADE_START = 0.6


def frame_mask() -> np.ndarray:
    """The soft face mask (218, 178) float32 in the frame: 1 at the face, fading to exactly 0 at the ellipse."""
    ys, xs = np.mgrid[0:FRAME[1], 0:FRAME[0]].astype(np.float64)
    radius = np.sqrt(((xs - MASK_CENTRE[0]) / MASK_RADII[0]) ** 2 + ((ys - MASK_CENTRE[1]) / MASK_RADII[1]) ** 2)
    fade = np.clip((1.0 - radius) / (1.0 - FADE_START), 0.0, 1.0)
    return (fade * fade * (3.0 - 2.0 * fade)).astype(np.float32)  # smoothstep: no visible edge


class YuNetAligner(FaceAligner):
    """Faces found by YuNet and aligned onto CelebA's landmark template (``aekit_faces.faces``)."""

    name = "yunet"

    def __init__(self, min_score: float = MIN_SCORE, framed_distance: float = FRAMED_DISTANCE):
        self.min_score = float(min_score)
        self.framed_distance = float(framed_distance)

    def find(self, image):
        return detect_faces(image, min_score=self.min_score)

    def framed_face(self, image):
        import cv2

        image = np.asarray(image)
        height, width = image.shape[:2]
        if min(height, width) < 8:
            return None
        shrink = width > FRAME[0] and height > FRAME[1]
        frame = cv2.resize(image, FRAME, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        rows = _raw_detections(np.ascontiguousarray(frame), REFIND_SCORE)
        if not len(rows):
            return None
        points = rows[:, 4:14].reshape(-1, 5, 2)
        distance = np.linalg.norm(points - TEMPLATE, axis=2)[:, [0, 1, 3, 4]].mean(axis=1)
        best = int(np.argmin(distance))
        if distance[best] > self.framed_distance:
            return None
        stretch = np.array([[FRAME[0] / width, 0.0, 0.5 * FRAME[0] / width - 0.5],
                            [0.0, FRAME[1] / height, 0.5 * FRAME[1] / height - 0.5]])  # pixel centres, as cv2.resize
        back = invert(stretch)
        corner = apply(back, [rows[best, 0:2]])[0]
        box = (float(corner[0]), float(corner[1]), float(rows[best, 2] * width / FRAME[0]),
               float(rows[best, 3] * height / FRAME[1]))
        return Face(box, apply(back, points[best]), float(rows[best, 14]), stretch)

    def crop(self, image, face, size):
        return align(image, face, int(size))

    def put_back(self, image, face, change):
        import cv2

        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 photo, got {image.dtype} {image.shape}")
        change = np.asarray(change, dtype=np.float32)
        if change.ndim != 3 or change.shape[2] != 3:
            raise ValueError(f"expected an (S, S, 3) change, got shape {change.shape}")
        transform = np.asarray(face.transform, dtype=np.float64)
        height, width = image.shape[:2]
        # the mask's box in the photo: only that region is touched
        corners = apply(invert(transform), [(MASK_CENTRE[0] + dx * MASK_RADII[0], MASK_CENTRE[1] + dy * MASK_RADII[1])
                                            for dx in (-1, 1) for dy in (-1, 1)])
        x0, y0 = (max(0, int(np.floor(v)) - 1) for v in corners.min(axis=0))
        x1, y1 = (int(np.ceil(v)) + 2 for v in corners.max(axis=0))
        x1, y1 = min(width, x1), min(height, y1)
        result = image.copy()
        if x1 <= x0 or y1 <= y0:
            return result
        frame_change = cv2.resize(change, FRAME, interpolation=cv2.INTER_CUBIC)  # model input -> frame: undoes the resize
        mask = frame_mask()[:, :, None]
        weighted = np.concatenate([frame_change * mask, mask], axis=2)
        to_frame = transform.copy()
        to_frame[:, 2] += transform[:, :2] @ np.array([x0, y0], dtype=np.float64)  # region pixels -> frame pixels
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        moved = cv2.warpAffine(np.ascontiguousarray(weighted), to_frame, (x1 - x0, y1 - y0), flags=flags,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        mask = moved[:, :, 3]
        region = image[y0:y1, x0:x1].astype(np.float32)
        edited = np.clip(np.rint(region + moved[:, :, :3]), 0, 255).astype(np.uint8)
        inside = mask > 0
        result[y0:y1, x0:x1][inside] = edited[inside]  # outside the mask: the photo's own bytes
        return result

    def mask(self, image_shape, face) -> np.ndarray:
        """The soft mask (H, W) float32 of `face` in a photo of `image_shape`: where `put_back` may change pixels."""
        import cv2

        height, width = image_shape[:2]
        return cv2.warpAffine(frame_mask(), np.asarray(face.transform, dtype=np.float64), (width, height),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
