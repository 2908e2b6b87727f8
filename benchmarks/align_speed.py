"""How fast faces are found and aligned, and what ``--align on`` costs ``aekit embed``.

Photo-like canvases (640x480 and 1920x1080, 1-3 celeba-10k test faces each, scaled, turned and pasted on
scikit-image's pictures: ``face_align.canvases``) are written as JPEGs (quality 92). Then, on this machine's
cores:

1. faces found and aligned per second: ``aekit.alignment.AlignedSource`` over each folder (reading the
   JPEGs, finding, aligning; its threads), and YuNet's search of the whole photo alone (one thread);
2. ``aekit embed PHOTOS --align on`` against ``aekit embed CROPS --align off`` on the same faces already
   aligned (the crops ``--align on`` made, written as 178x218 PNGs): whole commands, best of ``--rounds``.

    python benchmarks/align_speed.py [--photos 60] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from face_align import IMAGES, canvases, load_test, realign  # noqa: E402


def write_photos(folder: Path, photos) -> int:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, (canvas, _) in enumerate(photos):
        Image.fromarray(canvas).save(folder / f"photo-{i:03d}.jpg", quality=92)
    return sum(len(pasted) for _, pasted in photos)


def timed(command: list[str], rounds: int) -> float:
    best = np.inf
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=60, help="photos of each size")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not IMAGES.is_dir():
        sys.exit(f"needs celeba-10k at {IMAGES}")
    from PIL import Image

    from aekit.alignment import AlignedSource
    from aekit.inputs import open_inputs
    from aekit_faces.faces import MAX_SIDE, _find, as_rgb

    test = load_test(IMAGES, 200)
    refs, _ = realign(test)
    aekit = [sys.executable, "-m", "aekit"]
    print(f"{os.cpu_count()} cores; {args.photos} photos of each size, 1-3 faces each; best of {args.rounds}\n")
    print("| photos | faces pasted | found and aligned | faces/s (find + align, threads) | whole-photo search alone, ms/photo (1 thread) "
          "| embed --align on | embed of the aligned crops, --align off | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in ((640, 480), (1920, 1080)):
            folder = Path(tmp) / f"{size[0]}x{size[1]}"
            pasted = write_photos(folder, canvases(test, refs, size, args.photos, (1, 3), seed=size[0]))
            start = time.perf_counter()
            aligned = AlignedSource(open_inputs([folder]), "on", 178, progress=False)
            align_seconds = time.perf_counter() - start
            crops = folder.with_name(folder.name + "-crops")
            crops.mkdir()
            found = 0
            for index, (key, placement) in enumerate(zip(aligned.keys(), aligned.placements())):
                if placement.aligned:
                    from aekit_faces import align

                    photo = as_rgb(folder / placement.photo)
                    Image.fromarray(align(photo, placement.face)).save(crops / f"{index:04d}.png")
                    found += 1
            import cv2

            cv2.setNumThreads(1)
            pictures = [as_rgb(p) for p in sorted(folder.glob("*.jpg"))]
            start = time.perf_counter()
            for picture in pictures:
                _find(picture, 0.8, MAX_SIDE)
            search_ms = 1000 * (time.perf_counter() - start) / len(pictures)
            cv2.setNumThreads(0)
            on = timed(aekit + ["embed", str(folder), "--align", "on", "--out", str(Path(tmp) / "on.npz"), "-q",
                                "--overwrite"], args.rounds)
            off = timed(aekit + ["embed", str(crops), "--align", "off", "--out", str(Path(tmp) / "off.npz"), "-q",
                                 "--overwrite"], args.rounds)
            print(f"| {size[0]}x{size[1]} | {pasted} | {found} | {found / align_seconds:.1f} | {search_ms:.1f} "
                  f"| {on:.2f} s | {off:.2f} s | {on / off:.1f}x |")


if __name__ == "__main__":
    main()
