"""Finding faces in photos and aligning them the way CelebA's aligned set is framed.

Every aekit model sees 64x64 resizes of CelebA's aligned 178x218 images, where the eyes sit level at
nearly fixed positions. A face in a photo is brought into that frame by one similarity transform
(rotation, uniform scale, shift) that carries its five landmarks onto ``TEMPLATE``, the median of the
same detector's landmarks on CelebA's own aligned faces; ``aekit.images.resize_rgb`` then makes the
64x64 model input exactly as it does for CelebA.

Landmarks come from YuNet (``cv2.FaceDetectorYN``; the model ships in this package). A face is found
in the whole photo first; then it is looked at again in the frame that estimate gives it, where it is
nearly upright and of CelebA's size, in the frame and its mirror image, and those landmarks (back in
the photo) move the frame on, until it stops moving (``REFINE_PASSES``). YuNet's landmarks on a small or
tilted face are less precise, and follow only part of a face's tilt, and the template was measured on
upright faces of this size: the looks in the frame make the framing the same at any scale and tilt
(``python benchmarks/face_align.py --variants`` shows what each part buys).

Coordinates are in pixels with pixel centres at whole numbers (OpenCV's convention), x to the right,
y down. A transform is a (2, 3) float array ``M``: a photo point ``p`` goes to ``M[:, :2] @ p + M[:, 2]``
in the frame.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from aekit.errors import AekitError

FRAME = (178, 218)  # CelebA's aligned images, (width, height): the frame faces are aligned into
LANDMARK_NAMES = ("right_eye", "left_eye", "nose_tip", "right_mouth", "left_mouth")  # YuNet's order; the person's right

# The median of YuNet's landmarks (found again in the frame and its mirror image, as `detect_faces` does) on
# celeba-10k's aligned training images 1-9000 (half-size copies of CelebA's img_align_celeba, brought to 178x218 by
# the exact 2x map), in the 178x218 frame. 8,997 of the 9,000 images had a face. Made by:
#   python benchmarks/face_template.py
TEMPLATE = np.array([
    [68.61, 111.99],   # right eye
    [108.28, 111.94],  # left eye
    [88.08, 134.55],   # nose tip
    [71.81, 151.69],   # right mouth corner
    [105.23, 151.64],  # left mouth corner
], dtype=np.float64)
TEMPLATE.setflags(write=False)
# How much each landmark counts in the fit: the nose tip not at all, since it follows the head's turn, which
# CelebA's framing does not (re-aligned training images 8001-9000 came closest to their own framing so, if only
# by 0.15 dB over equal weights: `python benchmarks/face_template.py --weights`).
LANDMARK_WEIGHTS = np.array([1.0, 1.0, 0.0, 1.0, 1.0])
LANDMARK_WEIGHTS.setflags(write=False)

MODEL_FILE = "face_detection_yunet_2023mar.onnx"
MODEL_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"

MIN_SCORE = 0.8  # YuNet's score of a face: true faces score 0.88 or more 95 times in 100, false ones rarely 0.8 or more
REFIND_SCORE = 0.5  # finding a face again in its frame, where it is known to be, takes a weaker detection
NMS_THRESHOLD = 0.3  # overlapping detections of one face are merged above this IoU (YuNet's default)
MAX_SIDE = 1280  # a larger photo is searched at reduced scale (a 24 px face, the least --align uses, is then still 16 px or more
# for photos up to 1920 px; the landmarks are found again in the frame at full resolution, so they stay exact)
# A picture smaller than this on its shorter side is searched enlarged (a whole number of times, at most 4): YuNet
# scores a face that fills a 64x64 picture lower (CelebA's test faces at 64x64: 98% at 0.8 or more; enlarged twice:
# 100%)
SMALL_SIDE = 128
MIN_SIDE = 16  # a smaller image holds no face YuNet can find (and OpenCV's network needs some pixels)
REFIND_DISTANCE = 30.0  # frame pixels: a face found again farther than this from the template is another face
BORDERS = ("reflect", "replicate", "constant")
# YuNet's landmarks follow only part of a face's tilt (about two thirds for a face of CelebA's size in its frame,
# less for larger ones), so one look in the frame leaves some of the tilt. Each further look turns the frame on by
# REFINE_GAIN times the tilt it sees, until the frame moves less than REFINE_TOLERANCE frame pixels at its corners:
# the frame found is then the same at any tilt. Chosen on canvases of celeba-10k training faces 8001-8300 and on
# aekit's synthetic faces (benchmarks/face_align.py --variants): 1-2 looks for an upright face, up to 6 for a tilted one.
REFINE_PASSES = 6
REFINE_GAIN = 1.5
REFINE_TOLERANCE = 1.0
_PROBES = np.array([(0.0, 0.0), (177.0, 0.0), (0.0, 217.0), (177.0, 217.0)])  # the frame's corners


class FaceError(AekitError, ValueError):
    """An image or a setting the face functions cannot take (wrong kind of array, a bad --size)."""


@dataclass(frozen=True, eq=False)
class Face:
    """One face in a photo: what YuNet found, and the transform that aligns it.

    Attributes
    ----------
    box : tuple of 4 floats
        ``(x, y, width, height)`` of YuNet's box in the photo's pixels (may reach past its edges).
    landmarks : (5, 2) float array
        Right eye, left eye, nose tip, right and left mouth corners (``LANDMARK_NAMES``; the person's
        right), in the photo's pixels.
    score : float
        YuNet's confidence, 0 to 1.
    transform : (2, 3) float array
        Photo pixels to the 178x218 CelebA frame (``FRAME``); ``inverse`` goes back.
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float
    transform: np.ndarray = field(repr=False)

    @property
    def size(self) -> float:
        """The box's shorter side, in the photo's pixels (what ``min_size`` and ``--min-size`` compare)."""
        return float(min(self.box[2], self.box[3]))

    @property
    def scale(self) -> float:
        """Frame pixels per photo pixel (above 1: the face is enlarged to fill the frame)."""
        return float(np.sqrt(abs(np.linalg.det(self.transform[:, :2]))))

    @property
    def angle(self) -> float:
        """How far the face is turned in the photo, in degrees (counter-clockwise as seen, y down)."""
        return float(np.degrees(np.arctan2(self.transform[1, 0], self.transform[0, 0])))

    @property
    def inverse(self) -> np.ndarray:
        """The (2, 3) transform from the frame back to the photo (to put an edited face back)."""
        return invert(self.transform)

    def to_frame(self, points) -> np.ndarray:
        """Photo points (N, 2) in the frame's pixels."""
        return apply(self.transform, points)

    def to_photo(self, points) -> np.ndarray:
        """Frame points (N, 2) in the photo's pixels."""
        return apply(self.inverse, points)


class AlignedFace(NamedTuple):
    """A face and its aligned picture, (H, W, 3) uint8 (from ``aligned_faces``)."""

    face: Face
    image: np.ndarray


# --- transforms ------------------------------------------------------------------------------------------


def fit_similarity(src, dst, weights=None) -> np.ndarray:
    """The (2, 3) similarity (rotation, uniform scale, shift; never a mirror image) that carries the points
    `src` (N, 2) closest to `dst` (N, 2) in weighted least squares (Umeyama's closed form)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise FaceError(f"need two matching (N, 2) point arrays with N >= 2, got {src.shape} and {dst.shape}")
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mean_src, mean_dst = w @ src, w @ dst
    a, b = src - mean_src, dst - mean_dst
    spread = float(w @ (a * a).sum(axis=1))
    if spread <= 1e-12:
        raise FaceError("the points all lie in one place: no transform fits them")
    u, sigma, vt = np.linalg.svd((b * w[:, None]).T @ a)
    sign = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(sigma) @ sign)) / spread
    shift = mean_dst - scale * rotation @ mean_src
    return np.hstack([scale * rotation, shift[:, None]])


def similarity(scale: float = 1.0, angle: float = 0.0, shift=(0.0, 0.0), center=(0.0, 0.0)) -> np.ndarray:
    """The (2, 3) transform that turns by `angle` degrees (counter-clockwise as seen) and scales by `scale`
    about `center`, then shifts by `shift`."""
    theta = np.radians(angle)
    c, s = scale * np.cos(theta), scale * np.sin(theta)
    linear = np.array([[c, s], [-s, c]])  # y points down: this turns counter-clockwise on the screen
    center = np.asarray(center, dtype=np.float64)
    return np.hstack([linear, (center - linear @ center + np.asarray(shift, dtype=np.float64))[:, None]])


def invert(transform) -> np.ndarray:
    """The inverse of a (2, 3) affine transform."""
    transform = np.asarray(transform, dtype=np.float64)
    linear = np.linalg.inv(transform[:, :2])
    return np.hstack([linear, (-linear @ transform[:, 2])[:, None]])


def compose(second, first) -> np.ndarray:
    """The (2, 3) transform that applies `first`, then `second`."""
    second, first = np.asarray(second, dtype=np.float64), np.asarray(first, dtype=np.float64)
    return np.hstack([second[:, :2] @ first[:, :2], (second[:, :2] @ first[:, 2] + second[:, 2])[:, None]])


def apply(transform, points) -> np.ndarray:
    """Points (N, 2) carried by a (2, 3) transform."""
    transform = np.asarray(transform, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return points @ transform[:, :2].T + transform[:, 2]


def _boosted(update, gain: float) -> np.ndarray:
    """The frame-to-frame similarity `update` with its turn (about the face's centre) taken `gain` times as far."""
    if gain == 1.0:
        return update
    scale = float(np.sqrt(abs(np.linalg.det(update[:, :2]))))
    angle = float(np.degrees(np.arctan2(update[1, 0], update[0, 0])))
    centre = np.array([88.5, 130.0])
    shift = apply(update, [centre])[0] - centre
    return similarity(scale, -gain * angle, shift, center=centre)


def celeba_transform(landmarks) -> np.ndarray:
    """The transform that carries five landmarks (photo pixels) onto ``TEMPLATE`` in the 178x218 frame."""
    return fit_similarity(landmarks, TEMPLATE, LANDMARK_WEIGHTS)


# --- images ------------------------------------------------------------------------------------------------


def as_rgb(image) -> np.ndarray:
    """`image` as a C-contiguous (H, W, 3) uint8 RGB array.

    Takes a file path (read by ``aekit.images.open_image``: EXIF rotation applied, formats checked), a
    PIL image of any mode (alpha over white, as aekit reads files), or a uint8 array: (H, W) grey,
    (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA.
    """
    from PIL import Image

    from aekit.images import open_image, to_rgb

    if isinstance(image, (str, os.PathLike)):
        image = open_image(image)
    if isinstance(image, Image.Image):
        return np.ascontiguousarray(np.asarray(to_rgb(image), dtype=np.uint8))
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise FaceError(f"expected uint8 pixels, got an array of {array.dtype} (convert with np.clip(x, 0, 255).astype(np.uint8))")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        return np.ascontiguousarray(np.repeat(array[:, :, None], 3, axis=2))
    if array.ndim == 3 and array.shape[2] == 4:
        return np.ascontiguousarray(np.asarray(to_rgb(Image.fromarray(array, "RGBA")), dtype=np.uint8))
    if array.ndim == 3 and array.shape[2] == 3:
        return np.ascontiguousarray(array)
    raise FaceError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got an array of shape {array.shape}")


def warp(image, transform, size=FRAME, border: str = "reflect") -> np.ndarray:
    """`image` (H, W, 3) uint8 carried by `transform` into a picture of `size` (width, height), bicubic.

    Where the transform shrinks (a large face), the region it covers is first shrunk by area averaging to
    about the output's scale, so fine detail does not alias. Pixels from outside the photo are its edge
    reflected (``border="reflect"``), its edge repeated (``"replicate"``) or black (``"constant"``).
    """
    import cv2

    if border not in BORDERS:
        raise FaceError(f"unknown border {border!r} (one of {', '.join(BORDERS)})")
    mode = {"reflect": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT}[border]
    image = np.asarray(image)
    transform = np.asarray(transform, dtype=np.float64)
    width, height = int(size[0]), int(size[1])
    scale = float(np.sqrt(abs(np.linalg.det(transform[:, :2]))))
    if scale < 0.75:
        image, transform = _shrunk_region(image, transform, scale, width, height)
    return cv2.warpAffine(image, transform, (width, height), flags=cv2.INTER_CUBIC, borderMode=mode)


def _shrunk_region(image, transform, scale, width, height):
    """The part of `image` the output covers, shrunk by area averaging to about the output's scale, and the
    transform from it: warping that is the same picture as warping the whole photo, without aliasing."""
    import cv2

    corners = apply(invert(transform), [(-1, -1), (width, -1), (-1, height), (width, height)])
    margin = 2.0 / scale  # a couple of output pixels more, for the cubic kernel
    h, w = image.shape[:2]
    x0, y0 = (max(0, int(np.floor(v - margin))) for v in corners.min(axis=0))
    x1, y1 = min(w, int(np.ceil(corners[:, 0].max() + margin)) + 1), min(h, int(np.ceil(corners[:, 1].max() + margin)) + 1)
    if x1 - x0 < 2 or y1 - y0 < 2:  # the output lies (nearly) outside the photo: nothing there to shrink
        return image, transform
    region = image[y0:y1, x0:x1]
    small_w, small_h = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
    small = cv2.resize(region, (small_w, small_h), interpolation=cv2.INTER_AREA)
    fx, fy = small_w / (x1 - x0), small_h / (y1 - y0)
    # photo -> region -> small picture (cv2.resize maps pixel centres: x' = (x + 0.5) * f - 0.5)
    to_small = np.array([[fx, 0.0, (0.5 - x0) * fx - 0.5], [0.0, fy, (0.5 - y0) * fy - 0.5]])
    return small, compose(transform, invert(to_small))


def resized(frame: np.ndarray, size) -> np.ndarray:
    """An aligned 178x218 frame at an output `size`: None keeps it; an int n is the models' own n x n resize
    (``aekit.images.resize_rgb``, as CelebA's images are resized); (width, height) is a bicubic resize."""
    from PIL import Image

    from aekit.images import resize_rgb

    if size is None:
        return frame
    if isinstance(size, (int, np.integer)):
        return resize_rgb(frame, int(size))
    width, height = (int(v) for v in size)
    if (width, height) == (frame.shape[1], frame.shape[0]):
        return frame
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.BICUBIC), dtype=np.uint8)


def parse_size(text) -> int | tuple[int, int] | None:
    """``--size``: ``178x218`` (the frame; None), ``N`` (N x N as the models resize), or ``WxH``."""
    text = str(text).strip().lower()
    try:
        parts = [int(p) for p in text.split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or not all(1 <= p <= 4096 for p in parts):
        raise FaceError(f"{text!r}: expected N or WIDTHxHEIGHT, whole numbers from 1 to 4096 (e.g. 64 or 178x218)")
    if len(parts) == 1:
        return parts[0]
    return None if tuple(parts) == FRAME else (parts[0], parts[1])


# --- the detector ------------------------------------------------------------------------------------------

_LOCAL = threading.local()  # a cv2.FaceDetectorYN keeps the input size it was last given: one per thread
_MODEL_LOCK = threading.Lock()
_QUIET_LOCK = threading.Lock()
_MODEL_BYTES: bytes | None = None


def model_bytes() -> bytes:
    """The YuNet .onnx shipped in this package (read with importlib.resources; its sha256 checked once)."""
    global _MODEL_BYTES
    with _MODEL_LOCK:
        if _MODEL_BYTES is None:
            from importlib import resources

            data = resources.files(__package__).joinpath("yunet").joinpath(MODEL_FILE).read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if digest != MODEL_SHA256:
                raise AekitError(f"aekit_faces/yunet/{MODEL_FILE}: damaged (sha256 {digest[:12]}..., expected "
                                 f"{MODEL_SHA256[:12]}...); reinstall aekit")
            _MODEL_BYTES = data
        return _MODEL_BYTES


def _detector(score: float):
    """This thread's YuNet detector with threshold `score`."""
    made = getattr(_LOCAL, "detectors", None)
    if made is None:
        made = _LOCAL.detectors = {}
    if score in made:
        return made[score]
    try:
        import cv2
    except ImportError as exc:  # a core dependency: only a broken install gets here
        raise AekitError(f"finding faces needs OpenCV ({exc}); pip install opencv-python-headless") from None
    data = np.frombuffer(model_bytes(), dtype=np.uint8)
    with _QUIET_LOCK:  # the log level is global: threads creating detectors at once must not restore it midway
        return _created(cv2, data, score)


def _created(cv2, data, score):
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # OpenCV 5 warns about targets on every creation
    try:
        try:
            detector = cv2.FaceDetectorYN.create("onnx", data, np.zeros(0, np.uint8), (320, 320), float(score),
                                                 NMS_THRESHOLD, 5000)
        except (cv2.error, TypeError):  # an OpenCV without the overload that takes the model's bytes: a file, then
            from importlib import resources

            with resources.as_file(resources.files(__package__).joinpath("yunet").joinpath(MODEL_FILE)) as path:
                detector = cv2.FaceDetectorYN.create(str(path), "", (320, 320), float(score), NMS_THRESHOLD, 5000)
    finally:
        cv2.utils.logging.setLogLevel(level)
    _LOCAL.detectors[score] = detector
    return detector


def _raw_detections(rgb: np.ndarray, score: float) -> np.ndarray:
    """YuNet's rows (N, 15) for an RGB image: box x, y, w, h; five landmarks x, y; score."""
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_SIDE:
        return np.zeros((0, 15), np.float64)
    detector = _detector(score)
    detector.setInputSize((width, height))
    _, found = detector.detect(np.ascontiguousarray(rgb[:, :, ::-1]))  # YuNet takes BGR
    return np.zeros((0, 15), np.float64) if found is None else np.asarray(found, dtype=np.float64).reshape(-1, 15)


def _find(rgb: np.ndarray, score: float, max_side: int | None) -> np.ndarray:
    """`_raw_detections` of the whole photo, searched at reduced scale when it is larger than `max_side`, enlarged when
    it is smaller than ``SMALL_SIDE``."""
    import cv2

    height, width = rgb.shape[:2]
    factor = 1.0 if not max_side or max(height, width) <= max_side else max_side / max(height, width)
    if factor == 1.0 and MIN_SIDE <= min(height, width) < SMALL_SIDE:
        factor = float(min(4, -(-SMALL_SIDE // min(height, width))))
    if factor == 1.0:
        return _raw_detections(rgb, score)
    small_size = (max(1, round(width * factor)), max(1, round(height * factor)))
    rows = _raw_detections(cv2.resize(rgb, small_size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC),
                           score)
    fx, fy = small_size[0] / width, small_size[1] / height
    rows = rows.copy()
    xs, ys = [0, 4, 6, 8, 10, 12], [1, 5, 7, 9, 11, 13]  # the box's corner and the landmarks (not its width, height)
    rows[:, xs] = (rows[:, xs] + 0.5) / fx - 0.5  # pixel centres of the searched picture back in the photo
    rows[:, ys] = (rows[:, ys] + 0.5) / fy - 0.5
    rows[:, 2], rows[:, 3] = rows[:, 2] / fx, rows[:, 3] / fy  # the box's width and height are lengths
    return rows


def frame_landmarks(frame: np.ndarray, score: float = REFIND_SCORE, mirror: bool = True) -> np.ndarray | None:
    """The landmarks (5, 2), in frame pixels, of the face in an aligned 178x218 frame that lies nearest the
    template; None when none lies within ``REFIND_DISTANCE`` of it.

    With `mirror`, the face is found in the frame and in its mirror image, and the two are averaged
    (YuNet's landmarks wander by about 2 frame pixels between two views of one face; the average
    wanders less, and is the same for a face and its mirror image).
    """
    found = _nearest_template(_raw_detections(frame, score))
    if found is None or not mirror:
        return found
    flipped = _nearest_template(_raw_detections(np.ascontiguousarray(frame[:, ::-1]), score), mirrored=True)
    if flipped is None:
        return found
    flipped = flipped[[1, 0, 2, 4, 3]]  # the person's right eye is the mirror image's left eye
    flipped[:, 0] = frame.shape[1] - 1 - flipped[:, 0]
    return (found + flipped) / 2


def _nearest_template(rows: np.ndarray, mirrored: bool = False) -> np.ndarray | None:
    if not len(rows):
        return None
    expected = TEMPLATE
    if mirrored:
        expected = TEMPLATE[[1, 0, 2, 4, 3]].copy()
        expected[:, 0] = FRAME[0] - 1 - expected[:, 0]
    points = rows[:, 4:14].reshape(-1, 5, 2)
    distance = np.linalg.norm(points - expected, axis=2).mean(axis=1)
    best = int(np.argmin(distance))
    return points[best].copy() if distance[best] <= REFIND_DISTANCE else None


def detect_faces(image, min_score: float = MIN_SCORE, refine: bool | int = True, max_side: int | None = MAX_SIDE) -> list[Face]:
    """The faces in `image`, largest first, each with its landmarks and the transform that aligns it.

    Parameters
    ----------
    image : path, PIL image or uint8 array
        Anything ``as_rgb`` takes (a path is read with EXIF rotation applied).
    min_score : float
        YuNet's score threshold (0 to 1); weaker detections are not faces.
    refine : bool or int
        Find each face again in the frame its transform gives, and align by those landmarks, until the
        frame stops moving (at most ``REFINE_PASSES`` looks, or this many; see ``REFINE_GAIN``).
        False aligns by the landmarks found in the whole photo.
    max_side : int or None
        A photo larger than this on its longer side is searched at reduced scale (None: never).

    Returns
    -------
    list of Face
        Largest box first; an image smaller than 16 pixels on a side has none.
    """
    rgb = as_rgb(image)
    if not 0.0 <= float(min_score) <= 1.0:
        raise FaceError(f"min_score must be from 0 to 1, got {min_score}")
    passes = REFINE_PASSES if refine is True else max(0, int(refine))
    faces = []
    for row in _find(rgb, float(min_score), max_side):
        landmarks = row[4:14].reshape(5, 2)
        transform = celeba_transform(landmarks)
        for _ in range(passes):
            again = frame_landmarks(warp(rgb, transform))
            if again is None:
                break
            # the face seen nearly upright at CelebA's size: its landmarks, back in the photo, move the frame on
            landmarks = apply(invert(transform), again)
            update = _boosted(celeba_transform(again), REFINE_GAIN)  # frame -> frame
            transform = compose(update, transform)
            if np.abs(apply(update, _PROBES) - _PROBES).max() < REFINE_TOLERANCE:
                break
        faces.append(Face(tuple(float(v) for v in row[:4]), landmarks, float(row[14]), transform))
    faces.sort(key=lambda face: face.box[2] * face.box[3], reverse=True)
    return faces


def align(image, face, size=None, border: str = "reflect") -> np.ndarray:
    """The face aligned in CelebA's frame, (H, W, 3) uint8.

    Parameters
    ----------
    image : path, PIL image or uint8 array
        The photo the face was found in (anything ``as_rgb`` takes).
    face : Face or (2, 3) array
        A face from ``detect_faces``, or a transform into the frame.
    size : None, int or (width, height)
        None: the 178x218 frame; an int n: n x n made from the frame exactly as aekit resizes CelebA's
        images (``size=64`` is a model's input); (width, height): the frame resized to that.
    border : str
        What fills the frame beyond the photo's edge: "reflect", "replicate" or "constant" (black).
    """
    transform = face.transform if isinstance(face, Face) else np.asarray(face, dtype=np.float64)
    if transform.shape != (2, 3):
        raise FaceError(f"expected a Face or a (2, 3) transform, got shape {transform.shape}")
    return resized(warp(as_rgb(image), transform, FRAME, border), size)


def select_faces(faces: list[Face], largest: bool = False, min_size: float = 0.0, min_score: float = 0.0):
    """(kept, left out) of `faces`: left out are ``(face, reason)`` for a face smaller than `min_size` pixels or
    scoring below `min_score`; with `largest`, only the largest face that passes is kept."""
    kept, left_out = [], []
    for face in faces:
        if face.size < min_size:
            left_out.append((face, f"{face.size:.0f} px, smaller than {min_size:g}"))
        elif face.score < min_score:
            left_out.append((face, f"score {face.score:.2f}, below {min_score:g}"))
        else:
            kept.append(face)
    return (kept[:1] if largest else kept), left_out


def aligned_faces(image, largest: bool = False, min_size: float = 0.0, min_score: float = MIN_SCORE, size=None,
                  refine: bool | int = True, border: str = "reflect") -> list[AlignedFace]:
    """Every face of `image` that is at least `min_size` pixels (its box's shorter side) and scores at least
    `min_score`, aligned (see ``align`` for `size` and `border`); with `largest`, only the largest."""
    rgb = as_rgb(image)
    faces = detect_faces(rgb, min_score=min_score, refine=refine)
    kept, _ = select_faces(faces, largest, min_size, min_score)
    return [AlignedFace(face, align(rgb, face, size, border)) for face in kept]
