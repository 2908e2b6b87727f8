"""The `generate` part of `aekit demo`: new faces from the fitted prior, an interpolation and a latent direction."""

from __future__ import annotations

import numpy as np


def _sampler(ctx, train_latents):
    """(name, fitted sampler, how): the prior `aekit train` fitted beside the model, else a Gaussian fitted here."""
    from .priors import GaussianSampler, PriorError, fitted_priors, load_prior

    for name in ("gmm", "gaussian"):
        if name in fitted_priors(ctx.model_dir):
            try:
                return name, load_prior(ctx.model, name), f"the `{name}` prior that `aekit train` fitted beside the model"
            except PriorError:
                continue
    return "gaussian", GaussianSampler().fit(train_latents), "a Gaussian fitted to the training latents here"


def _pair(labels: dict, n: int) -> tuple[int, int]:
    """Two held-out faces that differ in as many attributes as possible (the first such pair)."""
    if not labels or n < 2:
        return 0, min(1, n - 1)
    matrix = np.stack([np.asarray(v) for v in labels.values()], axis=1)[: min(n, 64)]
    differences = (matrix[:, None, :] != matrix[None, :, :]).sum(-1)
    a, b = np.unravel_index(int(np.argmax(differences)), differences.shape)
    return int(a), int(b)


def _clearest_attribute(labels: dict, latents: np.ndarray) -> str | None:
    """The attribute whose two groups' mean latents lie furthest apart (in per-dimension standard deviations)."""
    best, best_gap = None, -1.0
    scale = latents.std(0) + 1e-6
    for name, values in labels.items():
        y = np.asarray(values)[: len(latents)]
        if len(y) == len(latents) and 0 < y.sum() < len(y):
            gap = float(np.linalg.norm((latents[y == 1].mean(0) - latents[y == 0].mean(0)) / scale))
            if gap > best_gap:
                best, best_gap = name, gap
    return best


def run(ctx):
    from aekit.demo import DemoSection

    from .priors import NormalSampler

    limit = 512 if ctx.quick else 2000
    train_latents = ctx.encode(ctx.train_images[:limit])
    name, sampler, how = _sampler(ctx, train_latents)
    cols = 8
    rows_of_samples = 2 if ctx.quick else 4
    z = np.asarray(sampler.sample(cols * rows_of_samples, seed=ctx.seed), dtype=np.float32)
    generated = ctx.decode(z)
    article = ctx.decode(NormalSampler(latent_dim=ctx.model.config.latent_dim).sample(cols, seed=ctx.seed))
    grid = ctx.save_grid("generated.png", [generated[i : i + cols] for i in range(0, len(generated), cols)] + [article],
                         [name] * rows_of_samples + ["N(0,I)"], title=f"new faces: {name} prior (top), the article's decoder(randn) (bottom)")
    images = [(grid, f"{cols * rows_of_samples} faces sampled from the {name} prior, and a row of the article's "
                     "decoder(randn) samples for comparison")]

    # interpolation between two held-out faces
    a, b = _pair(ctx.labels, len(ctx.images))
    za, zb = ctx.encode(ctx.images[[a, b]])
    t = np.linspace(0.0, 1.0, 8, dtype=np.float32)[:, None]
    walk = ctx.decode((1 - t) * za + t * zb)
    originals = ctx.hwc(ctx.images[[a, b]])
    strip = ctx.save_grid("interpolation.png", [np.concatenate([originals[:1], walk, originals[1:]])],
                          title="original A | decoded latents from A's to B's (8 steps) | original B")
    images.append((strip, "a straight line in latent space between two held-out faces, with the originals at both ends"))

    # a latent direction: mean latent of smiling faces minus that of the others
    tables = []
    attribute = _clearest_attribute(ctx.train_labels, train_latents)
    if attribute is not None:
        y = np.asarray(ctx.train_labels[attribute])[: len(train_latents)]
        if 0 < y.sum() < len(y):
            direction = train_latents[y == 1].mean(0) - train_latents[y == 0].mean(0)
            held = np.asarray(ctx.labels.get(attribute, np.zeros(len(ctx.images))))
            pick = np.flatnonzero(held == 0)[:cols]
            if len(pick):
                base = ctx.encode(ctx.images[pick])
                rows = [ctx.hwc(ctx.images[pick]), ctx.decode(base)] + [ctx.decode(base + k * direction) for k in (0.5, 1.0, 1.5)]
                arithmetic = ctx.save_grid("direction.png", rows, ["original", "decoded", "+0.5 dir", "+1.0 dir", "+1.5 dir"],
                                           title=f"adding the '{attribute}' direction to held-out faces without it")
                images.append((arithmetic, f"latent arithmetic: the mean latent of '{attribute}' training faces minus "
                                           f"that of the others, added to faces that lack it ('{attribute}' is the "
                                           "attribute whose groups' latents lie furthest apart)"))
    spread = [["training latents", f"{np.linalg.norm(train_latents, axis=1).mean():.2f}", f"{train_latents.std(0).mean():.3f}"],
              [f"{name} samples", f"{np.linalg.norm(z, axis=1).mean():.2f}", f"{z.std(0).mean():.3f}"],
              ["N(0, I) (the article)", f"{np.sqrt(z.shape[1]):.2f}", "1.000"]]
    tables.append(("Why the article's decoder(randn) looks wrong: the latents are not N(0, I)",
                   ["latents", "mean norm", "mean per-dimension std"], spread))
    text = (f"The article samples faces with `decoder(torch.randn(n, {z.shape[1]}))`, but an autoencoder's latents are "
            f"not N(0, I) (see the table), so those come out blurred or broken. Sampling instead from {how} gives faces "
            f"like the training set. Straight lines between two latents morph one face into another, and differences "
            f"of mean latents are attribute directions.\n\nFrom the command line:\n\n"
            f"`aekit generate --model {ctx.model_dir} --n 32 --out grid.png --seed 1` and "
            f"`aekit interpolate a.png b.png --model {ctx.model_dir} --steps 8 --out strip.png` "
            f"(`aekit fit-prior` refits the prior on other images).")
    return DemoSection(title="Generate: new faces, interpolation and latent arithmetic", text=text, images=images, tables=tables)
