"""Denoise a photo: train a small denoiser (clean faces in, noisy copies as input) or pass one, then clean a photo.

    python examples/denoise_photo.py --photo noisy.jpg --model runs/denoiser --out denoised/
    python examples/denoise_photo.py --images 128 --epochs 1 --out /tmp/ex    # CI's quick version

Without --photo, a 256x256 synthetic face with Gaussian noise stands in for the photo (so the PSNR
against the clean face can be printed). Without --model, a denoiser is trained first, the same as
`aekit train --data synthetic:N --arch small --noise gaussian:0.1 --lr 2e-3 --out OUT/denoiser`.
The photo is denoised at its own size (`model.denoise`); `aekit denoise photo.jpg --model M` does the same.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import aekit
from aekit.images import image_grid, open_image
from aekit.io import save_image
from aekit.metrics import psnr
from aekit.noise import parse_noise
from aekit.synthetic import draw_face
from aekit.train import Trainer, TrainConfig

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--photo", help="the noisy photo (default: a synthetic face with added noise)")
parser.add_argument("--model", help="a denoiser checkpoint (default: train one into OUT/denoiser)")
parser.add_argument("--noise", default="gaussian:0.1", help="the noise to train on and to add to the stand-in photo")
parser.add_argument("--images", type=int, default=2000, help="synthetic training faces, when training")
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--out", default="runs/denoise-example")
args = parser.parse_args()

out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
if args.model:
    model = aekit.load(args.model)
else:
    config = TrainConfig(data=f"synthetic:{args.images}", arch="small", epochs=args.epochs, lr=2e-3,
                         batch_size=min(64, args.images // 2), noise=args.noise)
    Trainer(config, out / "denoiser").run()
    model = aekit.load(out / "denoiser")

clean = None
if args.photo:
    noisy = np.asarray(open_image(args.photo))  # any size and mode; EXIF rotation applied
else:
    clean, _ = draw_face(12345, seed=5, size=256)
    noisy = (parse_noise(args.noise)(clean / 255.0, np.random.default_rng(0)) * 255 + 0.5).astype(np.uint8)
    save_image(out / "noisy.png", Image.fromarray(noisy))

denoised = model.denoise(noisy)  # the same size and type as given
save_image(out / "denoised.png", Image.fromarray(denoised))
rows = [noisy[None], denoised[None]] + ([clean[None]] if clean is not None else [])
save_image(out / "compare.png", image_grid([np.concatenate(rows)], scale=1, title="noisy | denoised" + (" | clean" if clean is not None else "")))
if clean is not None:
    print(f"PSNR against the clean face: noisy {psnr(noisy[None], clean[None])[0]:.2f} dB, "
          f"denoised {psnr(denoised[None], clean[None])[0]:.2f} dB")
print(f"wrote {out / 'denoised.png'} and {out / 'compare.png'}")
