"""A UMAP picture of a folder of faces: encode every image, lay the latents out in 2-D, colour by a label.

    python examples/umap_folder.py --folder faces/ --model runs/synth --color-by Smiling --out umap/
    python examples/umap_folder.py --model runs/synth --images 60 --out /tmp/ex   # CI's quick version

Labels come from an `attributes.csv` at the folder's root (file name, then 0/1 or -1/1 columns). Without
--folder, a folder of synthetic faces (with their attributes.csv) is written first. The same from the
command line: `aekit embed FOLDER --model M --out feats.npz` then
`aekit umap feats.npz --out umap.png --color-by Smiling --thumbnails 30`.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import aekit
from aekit.data import prepare
from aekit.io import save_figure
from aekit.synthetic import make_faces
from aekit_umap import draw, layout, spread_sample

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--folder", help="folder of face images (default: write --images synthetic faces to OUT/faces)")
parser.add_argument("--model", help="checkpoint folder or hub id (default: the latest `aekit train` run)")
parser.add_argument("--color-by", help="a label from the folder's attributes.csv (default: the first one)")
parser.add_argument("--images", type=int, default=500, help="how many synthetic faces to write when no --folder is given")
parser.add_argument("--thumbnails", type=int, default=30)
parser.add_argument("--out", default="runs/umap-example")
args = parser.parse_args()

out = Path(args.out)
folder = Path(args.folder) if args.folder else out / "faces"
if not args.folder:
    images, attrs = make_faces(args.images, seed=21)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["image_id," + ",".join(attrs)]
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"face{i:05d}.png")
        lines.append(f"face{i:05d}.png," + ",".join(str(int(v[i])) for v in attrs.values()))
    (folder / "attributes.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

model = aekit.load(args.model)
data = prepare(str(folder), model.config.image_size, progress=False)  # images (N, 3, S, S) uint8, names, attributes
pictures = np.ascontiguousarray(data.images.transpose(0, 2, 3, 1))
latents = model.encode(pictures).numpy()
coords = layout(latents, seed=0)  # standardised, then UMAP; the same seed gives the same picture

label = args.color_by or next(iter(data.attributes), None)
values = np.asarray(data.attributes[label]).astype(int) if label else None  # -1: unknown
legend = {int(v): f"{label}={v}" for v in np.unique(values[values >= 0])} if label else {}
shown = spread_sample(coords, args.thumbnails, seed=0)
figure = draw(coords, values, legend, label or "", {int(i): pictures[i] for i in shown},
              f"UMAP of {len(coords)} faces in {folder}" + (f", coloured by {label}" if label else ""))
save_figure(out / "umap.png", figure, dpi=100)
print(f"wrote {out / 'umap.png'} ({len(coords)} faces" + (f", coloured by {label})" if label else ")"))
