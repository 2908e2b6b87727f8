"""Training data for a photo denoiser: faces at their 64x64 size and 64x64 crops of them at photo scales.

    python examples/denoiser_crops.py ../shared/data/celeba-10k/images runs/drunet-mix --count 9000

A denoiser trained only on faces shrunk to 64x64 sees denser detail than a photo's 64x64 tiles hold
(celeba-10k's 89x109 faces, and CelebA's 178x218 ones, are 1.4x and 2.8x larger), so it leaves more
noise on a photo's smooth skin and background than BM3D does. This writes, from the first `--count`
images of IMAGES (celeba-10k's training faces are 1-9000: never the test faces 9001-10000):

- ``whole/``: links to the images (the trainer resizes each to 64x64, as for any folder);
- ``crops/``: one random 64x64 crop per image, of the image enlarged 1x, 1.5x or 2x (chosen at random,
  LANCZOS, as ``benchmarks/denoise_photos.py`` enlarges faces), seeded by ``--seed``.

``aekit train --data OUT`` then trains on both (``faces-64-denoise``'s last stage did; see its model card).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from PIL import Image

SCALES = (1.0, 1.5, 2.0)
SIZE = 64


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", type=Path, help="a folder of face images (celeba-10k's images/)")
    parser.add_argument("out", type=Path, help="the folder to write (whole/ and crops/ inside)")
    parser.add_argument("--count", type=int, default=9000, help="use the first COUNT images (sorted by name)")
    parser.add_argument("--seed", type=int, default=31)
    args = parser.parse_args()
    files = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[: args.count]
    if not files:
        parser.error(f"no images in {args.images}")
    (args.out / "whole").mkdir(parents=True, exist_ok=True)
    (args.out / "crops").mkdir(exist_ok=True)
    rng = np.random.default_rng(args.seed)
    for path in files:
        link = args.out / "whole" / path.name
        if not link.exists():
            os.symlink(path.resolve(), link)
        image = Image.open(path).convert("RGB")
        scale = float(rng.choice(SCALES))
        if scale != 1:
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
        if min(image.size) < SIZE:
            continue
        x, y = rng.integers(0, image.width - SIZE + 1), rng.integers(0, image.height - SIZE + 1)
        image.crop((x, y, x + SIZE, y + SIZE)).save(args.out / "crops" / f"{path.stem}-x{scale:g}.png")
    print(f"wrote {args.out}: {len(files)} whole faces (links) and their crops")


if __name__ == "__main__":
    main()
