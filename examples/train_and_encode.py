"""Train a small autoencoder on the built-in synthetic faces, reload it, and encode/decode with it.

    python examples/train_and_encode.py            # about a minute on 2 CPU cores
    python examples/train_and_encode.py --epochs 1 --images 256   # the quick version CI runs
"""

import argparse

import torch

import aekit
from aekit.data import prepare
from aekit.images import image_grid, to_uint8_hwc
from aekit.io import save_image
from aekit.train import Trainer, TrainConfig

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--images", type=int, default=1024)
parser.add_argument("--out", default="runs/example-small")
args = parser.parse_args()

config = TrainConfig(data=f"synthetic:{args.images + 64}[:{args.images}]", val_data=f"synthetic:{args.images + 64}[{args.images}:]",
                     arch="small", epochs=args.epochs, lr=2e-3)
Trainer(config, args.out).run()

model = aekit.load(args.out)                 # strict safetensors + JSON loading
faces = prepare("synthetic:8:99", 64, progress=False).images  # 8 faces never seen in training
latents = model.encode(torch.from_numpy(faces.copy()).float() / 127.5 - 1)  # (8, 128)
recon = model.decode(latents)
grid = image_grid([faces.transpose(0, 2, 3, 1), to_uint8_hwc(recon)], ["input", "decoded"], title="aekit small")
save_image(f"{args.out}/encode_decode.png", grid)
print(f"latents {tuple(latents.shape)}; picture in {args.out}/encode_decode.png")
