"""Train an autoencoder on a folder of face images and look at its reconstructions of faces it did not see.

    python examples/train_on_folder.py --folder ~/photos/faces/ --epochs 20 --out runs/my-faces
    python examples/train_on_folder.py --images 96 --epochs 1 --batch-size 16 --out /tmp/ex   # CI's quick version

Any folder works: images are found recursively (jpg, png, webp, bmp) and resized straight to 64x64, and an
`attributes.csv` at its root gives labels. Without --folder, a folder of synthetic faces is written first.
10% of the images are held out for the validation loss and PSNR. The same from the command line:
`aekit train --data FOLDER --val-fraction 0.1 --arch small --epochs 5 --lr 2e-3 --out runs/my-faces`.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import aekit
from aekit.data import prepare
from aekit.images import image_grid, to_uint8_hwc
from aekit.io import save_image
from aekit.synthetic import make_faces
from aekit.train import Trainer, TrainConfig, split_train_val

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--folder", help="folder of face images (default: write --images synthetic faces to OUT/faces)")
parser.add_argument("--images", type=int, default=1000, help="how many synthetic faces to write when no --folder is given")
parser.add_argument("--arch", default="small", help="model preset: small (fast on a CPU) or article")
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--out", default="runs/folder-example", help="where the faces (if made), the run and the picture go")
args = parser.parse_args()

out = Path(args.out)
folder = Path(args.folder) if args.folder else out / "faces"
if not args.folder:  # stand-in for your photos: PNG files in subfolders
    images, _ = make_faces(args.images, seed=11)
    for i, image in enumerate(images):
        (folder / f"part{i % 4}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"part{i % 4}" / f"face{i:05d}.png")

run = out / "run"
config = TrainConfig(data=str(folder), val_fraction=0.1, arch=args.arch, epochs=args.epochs,
                     batch_size=args.batch_size, lr=2e-3 if args.arch == "small" else 2e-4)
Trainer(config, run).run()

model = aekit.load(run)
final = model.training_summary["final"]
print(f"held-out PSNR after {args.epochs} epoch(s): {final.get('val_psnr', float('nan')):.2f} dB")

data = prepare(str(folder), model.config.image_size, progress=False)  # cached: no decoding the second time
_, held_out = split_train_val(len(data), config.val_fraction, config.seed)  # the trainer's own split
faces = np.asarray(data.images[held_out[:8]])
recon = model.reconstruct(faces.transpose(0, 2, 3, 1))
save_image(out / "held_out.png", image_grid([faces.transpose(0, 2, 3, 1), to_uint8_hwc(recon)], ["held out", "decoded"]))
print(f"model in {run}; reconstructions of held-out faces in {out / 'held_out.png'}")
