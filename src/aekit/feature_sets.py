"""Feature sets: what ``model.features(images, kind=NAME)`` and ``aekit embed --features NAME`` compute.

An autoencoder's 128-d bottleneck is a weak linear feature (about PCA-128 in a linear probe); the
encoder's intermediate maps carry much more (timm's ``forward_features``). A feature set is a function
``(maps, latent) -> (N, D)`` over the encoder's feature map after each stage (full size first, as
``encoder_maps`` gives them) and the latent. Built in (registered by the core, so ``AEKIT_LOAD_PLUGINS``
cannot leave them out):

- ``latent``: the latent itself, what ``aekit compress`` stores (128-d for the shipped models).
- ``multiscale``: each stage's map average- and max-pooled over space, plus the latent: 2 x (sum of
  the maps' widths) + latent_dim values (1,152 for ``faces-64``, whose stem adds a map).
- ``grid``: each of the last three stages average-pooled on a 2 x 2 grid, each stage's global average,
  and the latent (2,432 for ``faces-64``): where in the face a feature fires, at three scales.

A plugin adds one with the ``register_feature_sets`` hook: ``register(name, function, help="")``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .registry import get_registry

# What `aekit embed` and AutoencoderEmbedder use. On celeba-10k with faces-64 every set has the same
# linear-probe mean (0.858-0.859, benchmarks/feature_sets.py), and multiscale finds a mirrored face twice
# as often in search (0.41 vs 0.21 recall@1, benchmarks/face_search.py): the README's features tables
DEFAULT = "multiscale"


def encoder_maps(model, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """(the encoder's feature map after each stage, full size first; the latent) for a batch `x` in [-1, 1].

    An encoder with ``forward_features`` / ``latent_from_features`` (``ResNetEncoder``) gives its own
    maps; a sequential one (the article's) gives the output of each layer that is still a feature map.
    """
    encoder = model.encoder
    if hasattr(encoder, "forward_features"):
        maps = encoder.forward_features(x)
        return list(maps), encoder.latent_from_features(x, maps)
    maps, h = [], x
    for layer in encoder:
        h = layer(h)
        if h.ndim == 4:
            maps.append(h)
    return maps, h


def latent_features(maps, latent):
    """The latent (N, latent_dim)."""
    return latent


def multiscale_features(maps, latent):
    """Global average and max of every stage's map, then the latent: (N, 2 * sum(widths) + latent_dim)."""
    pooled = [m.mean(dim=(2, 3)) for m in maps] + [m.amax(dim=(2, 3)) for m in maps]
    return torch.cat([*pooled, latent], dim=1)


def grid_features(maps, latent, cells: int = 2, stages: int = 3):
    """The last `stages` maps average-pooled on a cells x cells grid, every map's global average, the latent."""
    local = [F.adaptive_avg_pool2d(m, cells).flatten(1) for m in maps[-stages:]]
    return torch.cat([*local, *(m.mean(dim=(2, 3)) for m in maps), latent], dim=1)


BUILT_IN = {
    "latent": (latent_features, "the 128-d latent itself (what `aekit compress` stores)"),
    "multiscale": (multiscale_features, "every encoder stage average- and max-pooled, plus the latent (1,152-d for faces-64)"),
    "grid": (grid_features, "the last three stages on a 2x2 grid, every stage's average, the latent (2,432-d for faces-64)"),
}


def get(name: str):
    """The registered feature set `name` (a RegistryError listing the known ones otherwise)."""
    return get_registry().get("feature_set", name)


def names() -> list[str]:
    return get_registry().names("feature_set")


@torch.inference_mode()
def compute(model, x: torch.Tensor, kind: str = "latent") -> torch.Tensor:
    """Feature set `kind` of a batch `x` (N, 3, S, S) in [-1, 1] on the model's device, float32 (N, D)."""
    function = get(kind)
    maps, latent = encoder_maps(model, x)
    features = function(maps, latent)
    if features.ndim != 2 or len(features) != len(x):
        raise ValueError(f"feature set {kind!r} returned shape {tuple(features.shape)}, not (N, D) for {len(x)} images")
    return features.float()


def dimension(model, kind: str) -> int:
    """How many values feature set `kind` gives per image for this model."""
    return output_width(model, lambda x: compute(model, x, kind))


@torch.no_grad()
def output_width(model, function, count: int = 1) -> int:
    """How many values `function` (a batch in [-1, 1] -> (N, D)) gives per image: run on `count` images of zeros
    at the model's size, in eval mode (restored after)."""
    size = model.config.image_size
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        return int(function(torch.zeros(count, model.config.channels, size, size, device=device)).shape[1])
    finally:
        model.train(was_training)
