"""How much a trained model gains when each image's latent is optimised at encode time (the decoder and
the 128 numbers per image unchanged; only the encoder's guess is refined by gradient descent).

    python benchmarks/latent_optimization.py --model runs/recipe-celeba10k --count 100 --steps 60 --lr 0.05

Prints mean PSNR on the first COUNT celeba-10k test faces (images[9000:]) for the encoder's latent
and after every 10 Adam steps on the latents (MSE against the image), with the seconds spent.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch

import aekit
from aekit.data import prepare
from aekit.metrics import psnr

IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "celeba-10k" / "images"


def mean_psnr(out, x):
    return float(psnr(out.clamp(-1, 1), x).mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--images", default=f"{IMAGES}[9000:]")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                        help="Learning rate over the steps: constant, or cosine decay to 0.")
    args = parser.parse_args()
    model = aekit.load(args.model).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    images = prepare(args.images, progress=False).images[: args.count]
    x = torch.from_numpy(np.array(images)).float() / 127.5 - 1
    with torch.no_grad():
        z0 = model.encoder(x)
        rows = [(0, mean_psnr(model.decoder(z0), x), 0.0)]
    z = z0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=args.lr)
    if args.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.steps)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        loss = ((model.decoder(z) - x) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if args.schedule == "cosine":
            scheduler.step()
        if step % 10 == 0 or step == args.steps:
            with torch.no_grad():
                rows.append((step, mean_psnr(model.decoder(z), x), time.perf_counter() - start))
    print(f"{args.model}, {len(x)} images from {args.images}, Adam lr {args.lr} ({args.schedule}) on the latents")
    print("| steps | PSNR (dB) | gain | seconds |\n|---:|---:|---:|---:|")
    for step, value, seconds in rows:
        print(f"| {step} | {value:.3f} | {value - rows[0][1]:+.3f} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
