"""``model.denoise``: run a (noisy-input trained) model on images of any type and size.

The model sees its own size (64x64). Larger or smaller images go through one of two documented
methods: "resize" (denoise a 64x64 copy, add the removed-noise estimate back at full size) or "tile"
(overlapping 64x64 tiles at full resolution, blended with a smooth window).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .pixels import images_to_tensor, to_uint8

METHODS = ("auto", "resize", "tile")


def denoise_any(model, images, method: str = "auto", batch_size: int = 256, forward=None):
    """Dispatch on the input type; the output has the input's type, size and (for uint8) dtype.

    `forward` computes the model's output for float images (N, 3, S, S) in [-1, 1] at its own size
    (default: the model in eval mode; ``aekit_export.runtime`` passes ONNX Runtime's graph of it).
    """
    from PIL import Image

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "auto":
        method = "resize" if model.decodes_latents else "tile"
    if isinstance(images, Image.Image):
        return _denoise_pil(model, images, method, batch_size, forward)
    if isinstance(images, (list, tuple)):
        if not all(isinstance(im, Image.Image) for im in images):
            raise TypeError("a list passed to denoise must hold PIL images")
        return [_denoise_pil(model, im, method, batch_size, forward) for im in images]
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise TypeError(f"image arrays must be uint8 (H, W, 3) or (N, H, W, 3), got dtype {images.dtype}")
        single = images.ndim == 3
        batch = images[None] if single else images
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise ValueError(f"uint8 image arrays must be (H, W, 3) or (N, H, W, 3), got {images.shape}")
        x = images_to_tensor(batch)
        out = denoise_tensor(model, x, method, batch_size, forward)
        out = to_uint8(out).permute(0, 2, 3, 1).numpy()
        return out[0] if single else out
    if torch.is_tensor(images):
        x = images.float()
        single = x.ndim == 3
        x = x[None] if single else x
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"image tensors must be (N, 3, H, W) in [-1, 1], got {tuple(images.shape)}")
        out = denoise_tensor(model, x, method, batch_size, forward)
        return out[0] if single else out
    raise TypeError(f"expected a tensor, a uint8 array or PIL images, got {type(images).__name__}")


def _denoise_pil(model, image, method, batch_size, forward):
    from PIL import Image

    rgb = np.asarray(image.convert("RGB"))
    out = denoise_any(model, rgb, method, batch_size, forward)
    return Image.fromarray(out, "RGB")


def denoise_tensor(model, x: torch.Tensor, method: str, batch_size: int = 256, forward=None) -> torch.Tensor:
    """Denoise float images (N, 3, H, W) in [-1, 1] with `method` "resize" or "tile" (`forward`: as denoise_any's)."""
    if not torch.isfinite(x).all():
        raise ValueError("images contain NaN or infinite values")
    x = x.clamp(-1, 1)
    size = model.config.image_size
    if forward is None:
        def forward(batch):
            return _forward(model, batch, batch_size)
    if x.shape[-2:] == (size, size):
        return forward(x)
    if method == "tile":
        return torch.cat([_tile(forward, img[None], size) for img in x]) if len(x) else x
    return _resize(forward, x, size)


def _forward(model, x, batch_size):
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.inference_mode():
            outs = [model(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else x.clone()


def _resize(forward, x, size):
    """Denoise a model-size copy; add what the model removed, upsampled, to the full-size image."""
    height, width = x.shape[-2:]
    small = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True).clamp(-1, 1)
    removed = forward(small) - small
    correction = F.interpolate(removed, size=(height, width), mode="bicubic", align_corners=False)
    return (x + correction).clamp(-1, 1)


def _window(size: int) -> torch.Tensor:
    """A 2-D blending weight that is largest in the middle and small (not zero) at the edges."""
    ramp = torch.minimum(torch.arange(size) + 1.0, size - torch.arange(size).float()) / (size / 2)
    w = ramp.clamp(max=1.0)
    return torch.outer(w, w)


def _tile(forward, x, size, overlap: int = 16):
    """Overlapping size x size tiles at full resolution, blended with `_window`."""
    _, _, height, width = x.shape
    pad_h, pad_w = max(size - height, 0), max(size - width, 0)
    padded = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x
    H, W = padded.shape[-2:]
    stride = size - overlap
    ys = sorted({*range(0, H - size + 1, stride), H - size})
    xs = sorted({*range(0, W - size + 1, stride), W - size})
    corners = [(y, x0) for y in ys for x0 in xs]
    tiles = torch.cat([padded[:, :, y : y + size, x0 : x0 + size] for y, x0 in corners])
    denoised = forward(tiles)
    weight = _window(size)
    total = torch.zeros_like(padded)
    norm = torch.zeros((1, 1, H, W))
    for tile, (y, x0) in zip(denoised, corners):
        total[0, :, y : y + size, x0 : x0 + size] += tile * weight
        norm[0, 0, y : y + size, x0 : x0 + size] += weight
    return (total / norm)[:, :, :height, :width].clamp(-1, 1)
