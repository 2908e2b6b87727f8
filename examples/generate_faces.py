"""Generate new faces with a trained model: sample latents from a fitted prior, decode them, and interpolate.

    python examples/generate_faces.py --model runs/synth --n 32 --out generated/
    python examples/generate_faces.py --model runs/synth --n 8 --out /tmp/ex     # CI's quick version

`aekit train` fits a Gaussian and a Gaussian mixture to the training latents and stores them beside the
model (`prior-gmm.safetensors`); without one, a Gaussian is fitted here to the latents of synthetic faces.
The article's `decoder(torch.randn(n, 128))` is drawn too, for comparison: the latents are not N(0, I).
The same from the command line: `aekit generate --model runs/synth --n 32 --out grid.png`.
"""

import argparse
import math
from pathlib import Path

import numpy as np

import aekit
from aekit.data import prepare
from aekit.images import image_grid, to_uint8_hwc
from aekit.io import save_image
from aekit_generate import GaussianSampler, NormalSampler, fitted_priors, load_prior

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", help="checkpoint folder or hub id (default: the latest `aekit train` run)")
parser.add_argument("--n", type=int, default=32, help="how many faces")
parser.add_argument("--seed", type=int, default=1)
parser.add_argument("--out", default="runs/generate-example")
args = parser.parse_args()

out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
model = aekit.load(args.model)
have = fitted_priors(model.checkpoint_dir)
if "gmm" in have or "gaussian" in have:
    name = "gmm" if "gmm" in have else "gaussian"
    sampler = load_prior(model, name)  # refused if it was fitted for another model
else:
    name = "gaussian (fitted here)"
    faces = prepare("synthetic:1000", model.config.image_size, progress=False).images
    sampler = GaussianSampler().fit(model.encode(faces.transpose(0, 2, 3, 1)).numpy())

cols = math.ceil(math.sqrt(args.n))
z = sampler.sample(args.n, seed=args.seed)
generated = to_uint8_hwc(model.decode(z))
article = to_uint8_hwc(model.decode(NormalSampler(latent_dim=model.config.latent_dim).sample(cols, seed=args.seed)))
rows = [generated[i : i + cols] for i in range(0, len(generated), cols)]
save_image(out / "generated.png", image_grid(rows + [article], [name[:8]] * len(rows) + ["N(0,I)"], title=f"{name} prior; last row: decoder(randn)"))

t = np.linspace(0, 1, 8, dtype=np.float32)[:, None]
walk = to_uint8_hwc(model.decode((1 - t) * z[0] + t * z[min(1, len(z) - 1)]))  # between the first two samples
save_image(out / "interpolation.png", image_grid([walk], title="from sample 1 to sample 2"))
print(f"wrote {out / 'generated.png'} ({args.n} faces from the {name} prior) and {out / 'interpolation.png'}")
