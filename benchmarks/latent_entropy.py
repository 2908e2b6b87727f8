"""How few bytes a codec's latent needs once entropy-coded: faces-64's 128-d latent, quantised and counted.

    python benchmarks/latent_entropy.py                    # faces-64, steps 0.1-0.7 of each dimension's spread

No training: each latent dimension is rounded to a step of STEP x its standard deviation on the 9,000
training faces, a histogram per dimension (training faces, add-half smoothing) is the entropy model,
and the 1,000 test faces are scored with it: the ideal code length in bytes a face (what
``aekit.entropy``'s rANS reaches within its 4-byte state) and the PSNR of the decoded quantised latents.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "data" / "celeba-10k" / "images"


def main():
    import aekit
    from aekit.data import prepare
    from aekit.metrics import psnr

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=str(IMAGES))
    parser.add_argument("--model", default="faces-64")
    parser.add_argument("--steps", default="0.1,0.2,0.3,0.4,0.5,0.7", help="steps, as shares of each dimension's std")
    args = parser.parse_args()
    model = aekit.load(args.model).eval()
    faces = {part: torch.from_numpy(np.array(prepare(f"{args.images}[{part}]", 64, progress=False).images)).float() / 127.5 - 1
             for part in (":9000", "9000:")}
    train, test = model.encode(faces[":9000"]), model.encode(faces["9000:"])
    print(f"{args.model}: float latents {psnr(model.decode(test), faces['9000:']).mean():.2f} dB on {len(test)} test faces\n")
    print("| step (× std) | bytes a face (ideal) | PSNR dB |")
    print("|---:|---:|---:|")
    spread = train.std(0)
    for share in (float(s) for s in args.steps.split(",")):
        step = share * spread
        a, b = torch.round(train / step).long(), torch.round(test / step).long()
        bits = 0.0
        for d in range(a.shape[1]):
            low = int(min(a[:, d].min(), b[:, d].min()))
            counts = np.bincount((a[:, d] - low).numpy(), minlength=int(max(a[:, d].max(), b[:, d].max())) - low + 1) + 0.5
            bits += -np.log2(counts[(b[:, d] - low).numpy()] / counts.sum()).sum()
        quality = psnr(model.decode(b.float() * step), faces["9000:"]).mean()
        print(f"| {share:g} | {bits / len(test) / 8:.1f} | {quality:.2f} |")


if __name__ == "__main__":
    main()
