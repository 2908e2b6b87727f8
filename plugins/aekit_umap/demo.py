"""The `umap` part of `aekit demo`: a UMAP picture of the held-out latents, coloured by an attribute."""

from __future__ import annotations

import numpy as np


def _neighbour_agreement(coords: np.ndarray, y: np.ndarray, k: int = 5) -> float:
    """How often a face's k nearest neighbours in the picture share its label (leave-one-out k-NN accuracy)."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(coords) - 1)
    _, index = NearestNeighbors(n_neighbors=k + 1).fit(coords).kneighbors(coords)
    votes = y[index[:, 1:]].mean(axis=1)
    return float(((votes > 0.5).astype(int) == y).mean())


def run(ctx):
    from aekit.demo import DemoSection

    from . import draw, layout, spread_sample

    latents = ctx.encode(ctx.images)
    coords = layout(latents, seed=ctx.seed, epochs=100 if ctx.quick else None)
    rows, scores = [], {}
    for name, values in ctx.labels.items():
        y = np.asarray(values).astype(int)
        if len(y) == len(coords) and 0 < y.sum() < len(y):
            scores[name] = _neighbour_agreement(coords, y)
            rows.append([name, f"{scores[name]:.3f}", f"{max(y.mean(), 1 - y.mean()):.3f}"])
    rows.sort(key=lambda r: -float(r[1]))
    colour = max(scores, key=scores.get) if scores else None
    values = np.asarray(ctx.labels[colour]).astype(int) if colour else None
    legend = {0: f"not {colour}", 1: colour} if colour else {}
    pictures = ctx.hwc(ctx.images)
    shown = spread_sample(coords, 8 if ctx.quick else 30, ctx.seed)
    figure = draw(coords, values, legend, colour or "", {int(i): pictures[i] for i in shown},
                  f"UMAP of {len(coords)} held-out faces' latents" + (f", coloured by {colour}" if colour else ""))
    picture = ctx.save_figure("umap.png", figure, dpi=80)
    text = (f"UMAP lays the {latents.shape[1]}-d latents of the held-out faces out in 2-D so that faces with similar "
            f"latents sit together, with some faces drawn at their points. The colour is the attribute the picture "
            f"separates best"
            + (f" ({colour})" if colour else "") + ": the table gives, for each attribute, how often a face's 5 nearest "
            f"neighbours in the picture share its value, beside the majority-class rate.\n\nFrom the command line:\n\n"
            f"`aekit embed faces/ --model {ctx.model_dir} --out feats.npz` then `aekit umap feats.npz --out umap.png "
            f"--color-by {colour or 'Male'} --thumbnails 40 --html umap.html` (the `--html` page shows each face on hover).")
    return DemoSection(title="UMAP: a map of the latent space", text=text,
                       images=[(picture, f"each point a held-out face; colour: {colour or 'none'}")],
                       tables=[("Neighbourhood agreement in the picture (5 nearest neighbours)",
                                ["attribute", "neighbours agree", "majority class"], rows)])
