"""Pixel scales in one place: uint8 [0, 255] images <-> the model's float [-1, 1] inputs.

Every encoder, trainer and plugin converts through these functions, so the maths ((x - 127.5) / 127.5,
the article's scaling, exact at 0 and 255) is the same everywhere and a fast path can never drift from ``model.encode``.
"""

from __future__ import annotations

import numpy as np
import torch


def to_signed(pixels) -> torch.Tensor:
    """uint8 [0, 255] pixels (tensor or array, any shape, layout kept) -> float32 [-1, 1].

    Arrays are copied (they may be read-only memory maps); tensors are converted out of place.
    """
    if not torch.is_tensor(pixels):
        pixels = torch.from_numpy(np.array(pixels, dtype=np.float32))  # a writable copy
    return pixels.float().sub(127.5).div_(127.5)


def images_to_tensor(images) -> torch.Tensor:
    """(N, H, W, 3) or (H, W, 3) uint8 images -> (N, 3, H, W) float32 model input in [-1, 1]."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if not images.flags.writeable:  # torch.from_numpy warns on read-only memory (memory maps, shared caches)
        images = np.array(images)
    return to_signed(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2))


def to_uint8(signed) -> torch.Tensor:
    """float [-1, 1] (any shape, layout kept) -> uint8 [0, 255], rounded and clipped."""
    return ((signed.detach().float() + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
