"""What the noise-level input buys: a noise-level model told its own estimate, the true sigma, or one fixed level.

    python benchmarks/denoise_sigma.py                       # faces-64-denoise on 200 celeba-10k test faces
    python benchmarks/denoise_sigma.py --model runs/drunet --faces 1000

Gaussian noise of each sigma (0.02-0.3, the [0, 1] scale, seeded) on celeba-10k's test faces at 64x64;
``model.denoise(images, sigma=...)`` with sigma None (each face's own estimate, the default), the true
sigma, and two fixed levels for every face (what a blind model without the estimate must settle on).
PSNR in dB, per face then the mean.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "data" / "celeba-10k" / "images"
SIGMAS = (0.02, 0.05, 0.1, 0.2, 0.3)
FIXED = (0.1, 0.05)


def main():
    import aekit
    from aekit.data import prepare
    from aekit.metrics import psnr

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=str(IMAGES))
    parser.add_argument("--model", default="faces-64-denoise")
    parser.add_argument("--faces", type=int, default=200)
    args = parser.parse_args()
    model = aekit.load(args.model, task="denoise").eval()
    if not getattr(model, "takes_noise_level", False):
        parser.error(f"--model {args.model}: takes no noise level")
    faces = np.array(prepare(f"{args.images}[9000:]", 64, progress=False).images[: args.faces])
    clean = torch.from_numpy(faces).float() / 127.5 - 1  # (N, 3, 64, 64) in [-1, 1]
    print(f"{len(clean)} celeba-10k test faces at 64x64, model {args.model}, PSNR dB\n")
    print("| gaussian σ | own estimate | told the true σ | " + " | ".join(f"fixed {f:g}" for f in FIXED) + " |")
    print("|---|---:|---:|" + "---:|" * len(FIXED))
    for sigma in SIGMAS:
        noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(int(sigma * 1000)))
        noisy = (clean + 2 * sigma * noise).clamp(-1, 1)  # sigma on [0, 1] is 2 sigma on [-1, 1]
        with torch.inference_mode():
            scores = [psnr(model.denoise(noisy, sigma=level), clean).mean() for level in (None, sigma, *FIXED)]
        print(f"| {sigma:g} | " + " | ".join(f"{v:.2f}" for v in scores) + " |")


if __name__ == "__main__":
    main()
