"""Edit faces in latent space: fit attribute directions on labelled faces, then move faces along them.

    python examples/edit_faces.py                                          # the pretrained faces-64
    python examples/edit_faces.py --model runs/synth --data synthetic:2000  # your model and its labels
    python examples/edit_faces.py --model /tmp/ex --data synthetic:200 --out /tmp/ex-edit   # CI's quick version

A model that has no `directions.safetensors` yet gets one fitted on `--data` (any `aekit train`
--data source with 0/1 attributes; the synthetic faces have 10). Each row of the picture is one
face moved from -2 to +2 along one attribute. The same from the command line:
`aekit directions fit --model M --data SOURCE` and `aekit edit face.png --sweep Smiling --out strip.png`.
"""

import argparse
from pathlib import Path

import numpy as np

import aekit
from aekit.data import prepare
from aekit.images import image_grid, to_uint8_hwc
from aekit.io import save_image
from aekit_edit import DirectionsError, directions_path, fit_directions, load_directions, save_directions

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", default="faces-64", help="pretrained name or checkpoint folder")
parser.add_argument("--data", default="synthetic:2000", help="labelled faces to fit directions on, when the model has none")
parser.add_argument("--names", default="Smiling,Eyeglasses,Male,Blond_Hair",
                    help="directions to draw (those the model has; else its first four attributes)")
parser.add_argument("--out", default="runs/edit-example")
args = parser.parse_args()

out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
model = aekit.load(args.model)
try:
    directions = load_directions(model)  # refused if it was fitted for another model
except DirectionsError:
    prepared = prepare(args.data, model.config.image_size, progress=False)
    latents = model.encode(prepared.images.transpose(0, 2, 3, 1)).numpy()
    directions, left_out = fit_directions(latents, prepared.attributes, info={"source": args.data})
    save_directions(directions, directions_path(model.checkpoint_dir), aekit.model_fingerprint(model))
    print(f"fitted {len(directions.names)} directions on {args.data} ({len(left_out)} attributes left out)")

face = prepare("synthetic:1:7", model.config.image_size, progress=False).images.transpose(0, 2, 3, 1)
z = model.encode(face).numpy()[0]
names = [n for n in args.names.split(",") if n in directions.names]
names = names or directions.named("attribute")[:4] or directions.names[:4]
amounts = np.linspace(-2, 2, 5)
rows = [to_uint8_hwc(model.decode(directions.sweep(z, name, amounts))) for name in names]
save_image(out / "sweeps.png", image_grid(rows, [n[:8] for n in names], title="each row: -2 ... +2 along one direction"))
print(f"wrote {out / 'sweeps.png'} ({', '.join(names)})")
