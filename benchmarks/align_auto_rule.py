"""How `--align auto` tells a picture already framed like CelebA from one that is not.

`YuNetAligner.framed_face` stretches a picture onto CelebA's 178x218 frame (as the models' resize does),
finds the face there, and calls it framed when its eyes and mouth corners lie on average within
``FRAMED_DISTANCE`` frame pixels of the template. This prints that distance on celeba-10k test faces
(9001-9400) as they are (89x109), at the models' 64x64, and misframed in the same-size picture (scaled
0.25-1x, turned up to 25 degrees, shifted up to 20 px, edges reflected), and the share each threshold calls
framed.

    python benchmarks/align_auto_rule.py
"""

import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from face_align import IMAGES, load_test  # noqa: E402

from aekit.images import resize_rgb  # noqa: E402
from aekit_faces.aligner import FRAMED_DISTANCE, YuNetAligner  # noqa: E402
from aekit_faces.faces import TEMPLATE, apply, similarity  # noqa: E402


def distance(aligner, image) -> float:
    face = aligner.framed_face(image)
    if face is None:
        return np.inf
    return float(np.linalg.norm(apply(face.transform, face.landmarks) - TEMPLATE, axis=1)[[0, 1, 3, 4]].mean())


def main():
    if not IMAGES.is_dir():
        sys.exit(f"needs celeba-10k at {IMAGES}")
    aligner = YuNetAligner(framed_distance=np.inf)  # measure every distance; the threshold is applied below
    test = load_test(IMAGES, 400)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    as_they_are = np.array([distance(aligner, image) for image in test])
    per_image = (time.perf_counter() - start) / len(test)
    at_64 = np.array([distance(aligner, resize_rgb(image, 64)) for image in test])
    misframed = []
    for image in test[:200]:
        turn = similarity(rng.uniform(0.25, 1.0), rng.uniform(-25, 25), (rng.uniform(-20, 20), rng.uniform(-20, 20)),
                          center=(44.5, 54.5))
        misframed.append(distance(aligner, cv2.warpAffine(image, turn, (89, 109), flags=cv2.INTER_CUBIC,
                                                          borderMode=cv2.BORDER_REFLECT_101)))
    misframed = np.array(misframed)
    print("| pictures | found | median | 90th | 99th | max (frame px) |\n|---|---:|---:|---:|---:|---:|")
    for name, values in (("aligned, 89x109", as_they_are), ("aligned, 64x64", at_64), ("misframed, 89x109", misframed)):
        found = values[np.isfinite(values)]
        p = np.percentile(found, [50, 90, 99, 100])
        print(f"| {name} | {len(found)}/{len(values)} | {p[0]:.1f} | {p[1]:.1f} | {p[2]:.1f} | {p[3]:.1f} |")
    print("\n| threshold | aligned 89x109 called framed | aligned 64x64 | misframed |\n|---:|---:|---:|---:|")
    for threshold in (8.0, 10.0, FRAMED_DISTANCE, 14.0):
        print(f"| {threshold:g}{' (used)' if threshold == FRAMED_DISTANCE else ''} | {np.mean(as_they_are < threshold):.1%} "
              f"| {np.mean(at_64 < threshold):.1%} | {np.mean(misframed < threshold):.1%} |")
    print(f"\ntime per 89x109 picture: {1000 * per_image:.1f} ms")


if __name__ == "__main__":
    main()
