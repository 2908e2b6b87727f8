"""Derive aekit_faces' landmark template from CelebA's own aligned faces, and check the landmark weights.

    python benchmarks/face_template.py             # the template from celeba-10k's training images 1-9000
    python benchmarks/face_template.py --weights   # and which landmark weights re-align training images best

The template is where YuNet puts the five landmarks on a face that CelebA aligned: each of celeba-10k's
training images (1-9000 only; 9001-10000 are the test faces, never looked at here) is brought to the
178x218 frame by the exact 2x map (the images are half-size copies of CelebA's 178x218 ones), the face is
found there as ``aekit_faces.detect_faces`` finds it again in the frame (``frame_landmarks``), and the median
of each coordinate over the images is the template. It prints the template as the Python constant that
``aekit_faces/faces.py`` holds, with the spread of each landmark (median absolute deviation).

``--weights`` re-aligns training images 8001-9000 with each of a few landmark weightings and prints how
close the re-aligned 64x64 input is to the plain 64x64 resize (mean PSNR; higher is closer to CelebA's
own framing); the weights in ``LANDMARK_WEIGHTS`` were chosen by it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "data" / "celeba-10k" / "images"
HALF_TO_FRAME = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5]])  # 89x109 pixel centres -> 178x218 (x' = 2x + 0.5)
WEIGHTINGS = {  # right eye, left eye, nose tip, right mouth, left mouth
    "all equal": (1, 1, 1, 1, 1),
    "eyes x2": (2, 2, 1, 1, 1),
    "eyes x4": (4, 4, 1, 1, 1),
    "no nose": (1, 1, 0, 1, 1),
    "eyes and mouth centre": (2, 2, 0, 1, 1),
    "eyes only": (1, 1, 0, 0, 0),
}


def image_path(images: Path, number: int) -> Path:
    return images / f"{number:06d}.jpg"


def read(path: Path) -> np.ndarray:
    from aekit.images import open_image

    return np.asarray(open_image(path))


def frame_points(images: Path, numbers) -> tuple[np.ndarray, list[int]]:
    """(landmarks (N, 5, 2) in the 178x218 frame, the image numbers they are of); images without a face are left out."""
    from tqdm.auto import tqdm

    from aekit_faces.faces import FRAME, frame_landmarks, warp

    points, found = [], []
    for number in tqdm(numbers, desc="landmarks", unit="img", leave=False, disable=None):
        frame = warp(read(image_path(images, number)), HALF_TO_FRAME, FRAME)
        landmarks = frame_landmarks(frame)
        if landmarks is not None:
            points.append(landmarks)
            found.append(number)
    return np.asarray(points), found


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def check_weights(images: Path, template: np.ndarray, numbers) -> None:
    """Mean PSNR of the re-aligned 64x64 input against the plain resize, per weighting (training images only)."""
    from tqdm.auto import tqdm

    from aekit.images import resize_rgb
    from aekit_faces.faces import FRAME, apply, detect_faces, fit_similarity, warp

    rows = []
    for number in tqdm(numbers, desc="re-aligning", unit="img", leave=False, disable=None):
        image = read(image_path(images, number))
        faces = detect_faces(image)
        if faces:
            rows.append((image, faces[0].landmarks))
    exact = [psnr(resize_rgb(warp(image, HALF_TO_FRAME, FRAME), 64), resize_rgb(image, 64)) for image, _ in rows]
    print(f"\n{len(rows)} of {len(numbers)} training images {numbers[0]}-{numbers[-1]} had a face; mean PSNR of the "
          f"64x64 input against the plain resize (the exact 2x map: {np.mean(exact):.2f} dB):")
    for name, weights in WEIGHTINGS.items():
        values, shifts = [], []
        for image, landmarks in rows:
            transform = fit_similarity(landmarks, template, weights)
            values.append(psnr(resize_rgb(warp(image, transform, FRAME), 64), resize_rgb(image, 64)))
            corners = np.array([(0, 0), (177, 0), (0, 217), (177, 217), (89, 109)], float)
            shifts.append(np.linalg.norm(apply(compose_inverse(transform), corners) - corners, axis=1).mean())
        print(f"  {name:<24} {str(weights):<18} {np.mean(values):6.2f} dB  (median {np.median(values):.2f}; "
              f"frame moves {np.mean(shifts):.2f} px on average)")


def compose_inverse(transform: np.ndarray) -> np.ndarray:
    """The frame-to-frame map that re-aligning makes of an aligned image: the exact map's inverse, then `transform`."""
    from aekit_faces.faces import compose, invert

    return compose(transform, invert(HALF_TO_FRAME))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=str(IMAGES), help="celeba-10k's images folder")
    parser.add_argument("--count", type=int, default=9000, help="training images 1..COUNT (at most 9000)")
    parser.add_argument("--weights", action="store_true", help="also compare landmark weightings on images 8001-9000")
    args = parser.parse_args()
    images = Path(args.images)
    if not images.is_dir():
        raise SystemExit(f"{images}: not found (celeba-10k lives in ../shared/data/celeba-10k)")
    count = min(args.count, 9000)  # never the test faces 9001-10000
    start = time.perf_counter()
    points, found = frame_points(images, range(1, count + 1))
    template = np.median(points, axis=0)
    spread = np.median(np.abs(points - template), axis=0)
    from aekit_faces.faces import LANDMARK_NAMES

    print(f"# {len(found)} of {count} training images had a face ({time.perf_counter() - start:.0f} s)")
    print("# landmark           median x, y (178x218 frame)   median absolute deviation x, y")
    for name, (x, y), (dx, dy) in zip(LANDMARK_NAMES, template, spread):
        print(f"#   {name:<16} {x:8.2f} {y:8.2f}                  {dx:6.2f} {dy:6.2f}")
    print("TEMPLATE = np.array([")
    for name, (x, y) in zip(LANDMARK_NAMES, template):
        print(f"    [{x:.2f}, {y:.2f}],  # {name.replace('_', ' ')}")
    print("], dtype=np.float64)")
    if args.weights:
        check_weights(images, np.round(template, 2), list(range(8001, count + 1)))


if __name__ == "__main__":
    main()
