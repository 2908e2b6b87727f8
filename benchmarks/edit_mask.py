"""Which soft mask `put_back` blends an edit with: tried on TRAINING faces 8001-8150 only.

Each face is misframed into a 640x480 canvas as ``face_misframed.py`` does, found, edited by +1 along faces-64's
Smiling, Eyeglasses, Blond_Hair and Male directions and put back under each candidate mask (an ellipse in the
178x218 frame: centre, radii, where the fade starts). Printed: the mean rise of a pixel judge's probability
(``edit_directions.Judge`` fitted on the plain training images 1-8000) on the faces without the attribute, and
the sharpness kept inside the mask (mean squared Laplacian, edited / photo).

    python benchmarks/edit_mask.py          # about 3 minutes on 2 cores
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edit_directions import Judge  # noqa: E402
from face_align import IMAGES, load_test  # noqa: E402
from face_misframed import is_pasted_face, misframed  # noqa: E402
from photo_edit import grey_levels, nchw, sharpness  # noqa: E402

MASKS = {  # name: (centre, radii, fade start), in the 178x218 frame
    "face (eyebrows to chin)": ((88.5, 124.0), (62.0, 84.0), 0.7),
    "head (chin to the top of the hair; used)": ((88.5, 112.0), (78.0, 100.0), 0.6),
    "head, wider": ((88.5, 108.0), (86.0, 106.0), 0.55),
    "the whole frame": ((88.5, 108.5), (89.0, 109.0), 0.8),
}


def main():
    import torch
    from aekit_edit import load_directions

    import aekit
    import aekit_faces.aligner as A
    from aekit.alignment import get_aligner
    from aekit.data import prepare

    data = IMAGES.parent
    if not (data / "attributes.csv").is_file():
        sys.exit(f"needs celeba-10k at {data}")
    torch.set_num_threads(2)
    names = ["Smiling", "Eyeglasses", "Blond_Hair", "Male"]
    train = prepare(f"{data}[:8000]", 64, progress=False)
    judge = Judge(np.asarray(train.images), {n: np.asarray(train.attributes[n]) for n in names})
    held = prepare(f"{data}[8000:8150]", 64, progress=False).attributes
    labels = {n: np.asarray(held[n]) for n in names}
    model = aekit.load("faces-64").eval()
    directions = load_directions(model)
    al = get_aligner()
    photos = misframed(load_test(IMAGES, 150, first=8001), 1)
    kept = []
    for i, (c, p) in enumerate(photos):
        f = [f for f in al.find(c) if f.size >= 24]
        if f and is_pasted_face(f[0], p):
            kept.append((i, c, f[0], al.crop(c, f[0], 64)))
    rows = np.array([k[0] for k in kept])
    crops = np.stack([k[3] for k in kept])
    z = model.encode(crops).numpy()
    base = grey_levels(model.decode(z))
    p0 = judge.probabilities(nchw(crops))
    outs = {n: grey_levels(model.decode(directions.apply(z, [(n, 1.0)]))) - base for n in names}
    print(f"{len(kept)} faces found of 150 (training faces 8001-8150, misframed)\n")
    print("| mask | " + " | ".join(f"{n} +1: rise / sharpness kept" for n in names) + " |")
    print("|---|" + "---:|" * len(names))
    for vname, (c, r, fs) in MASKS.items():
        A.MASK_CENTRE, A.MASK_RADII, A.FADE_START = c, r, fs
        cells = []
        for n in names:
            after, sh0, sh1 = [], [], []
            for (i, canvas, face, crop), ch in zip(kept, outs[n]):
                e = al.put_back(canvas, face, ch)
                after.append(al.crop(e, face, 64))
                m = al.mask(canvas.shape, face) > 0.5
                sh0.append(sharpness(canvas, m))
                sh1.append(sharpness(e, m))
            p1 = judge.probabilities(nchw(np.stack(after)))[n]
            w = labels[n][rows] == 0
            cells.append(f"{np.mean((p1 - p0[n])[w]):+.3f} / {np.mean(sh1) / np.mean(sh0):.2f}")
        print(f"| {vname} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
