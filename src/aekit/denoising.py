"""``model.denoise``: run a (noisy-input trained) model on images of any type and size.

The model sees its own size (64x64). Larger or smaller images go through one of two documented
methods: "resize" (denoise a 64x64 copy, add the removed-noise estimate back at full size) or "tile"
(overlapping 64x64 tiles at full resolution, blended with a smooth window).

Both work through an image a band of rows at a time, so what they hold besides the input and the
output is bounded whatever the image's size or shape: tiles go through the model at most
``TILE_BATCH`` at a time into float accumulators that cover only the rows those tiles touch, and the
resamplings of "resize" read the full-size image in slices of about ``BAND_PIXELS`` pixels. Bands run
along an image's longer side (a wide image is worked through by columns), and a side shorter than the
model is padded to its size band by band, never as a padded copy of the whole image.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .errors import AekitError
from .pixels import to_signed, to_uint8

METHODS = ("auto", "resize", "tile")
TILE_OVERLAP = 16  # pixels shared by neighbouring tiles
# at most this many tiles (and `batch_size`) go through the model at once: on the CPU the unet preset's activations
# take about 4 MB a tile (256 tiles: +0.75 GB with PyTorch, +1 GB with ONNX Runtime), and 64 run as fast as 256
TILE_BATCH = 64
BAND_PIXELS = 2**21  # "resize" reads the full-size image in slices of about this many pixels (24 MB as float)


def denoise_any(model, images, method: str = "auto", batch_size: int = 256, forward=None, sigma=None):
    """Dispatch on the input type; the output has the input's type, size and (for uint8) dtype.

    `forward` computes the model's output for float images (N, 3, S, S) in [-1, 1] at its own size
    (default: the model in eval mode; ``aekit.runtime`` passes ONNX Runtime's graph of it); it
    is never given more than `batch_size` images at once, nor more than ``TILE_BATCH`` tiles. For a
    model that takes a noise level it is called as ``forward(batch, level)``, `level` None (each
    image's own estimate) or one number for the whole batch.

    `sigma` is for models that take a noise level (``model.takes_noise_level``): None or ``"auto"``
    estimates each image's level from the whole image (``estimate_noise_sigma``), so all
    its tiles share it; a number in [0, 1] sets it for every image. Other models refuse a number.
    """
    sigma = _check_sigma(model, sigma)
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "auto":
        method = "resize" if model.decodes_latents else "tile"
    if isinstance(images, Image.Image):
        return _denoise_pil(model, images, method, batch_size, forward, sigma)
    if isinstance(images, (list, tuple)):
        if not all(isinstance(im, Image.Image) for im in images):
            raise TypeError("a list passed to denoise must hold PIL images")
        return [_denoise_pil(model, im, method, batch_size, forward, sigma) for im in images]
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise TypeError(f"image arrays must be uint8 (H, W, 3) or (N, H, W, 3), got dtype {images.dtype}")
        single = images.ndim == 3
        batch = images[None] if single else images
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise ValueError(f"uint8 image arrays must be (H, W, 3) or (N, H, W, 3), got {images.shape}")
        out = np.empty(batch.shape, np.uint8)  # uint8 in, uint8 out: the float copy is only ever a band
        _denoise_into(model, batch, out, method, batch_size, forward, sigma)
        return out[0] if single else out
    if torch.is_tensor(images):
        x = images.float()
        single = x.ndim == 3
        x = x[None] if single else x
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"image tensors must be (N, 3, H, W) in [-1, 1], got {tuple(images.shape)}")
        out = denoise_tensor(model, x, method, batch_size, forward, sigma)
        return out[0] if single else out
    raise TypeError(f"expected a tensor, a uint8 array or PIL images, got {type(images).__name__}")


def _denoise_pil(model, image, method, batch_size, forward, sigma=None):
    rgb = np.asarray(image.convert("RGB"))
    out = denoise_any(model, rgb, method, batch_size, forward, sigma)
    return Image.fromarray(out, "RGB")


def denoise_tensor(model, x: torch.Tensor, method: str, batch_size: int = 256, forward=None, sigma=None) -> torch.Tensor:
    """Denoise float images (N, 3, H, W) in [-1, 1] with `method` "resize" or "tile" (`forward`: as denoise_any's)."""
    if not torch.isfinite(x).all():
        raise ValueError("images contain NaN or infinite values")
    out = torch.empty(x.shape, dtype=torch.float32)
    _denoise_into(model, x, out, method, batch_size, forward, sigma)
    return out


def _denoise_into(model, images, out, method: str, batch_size: int, forward, sigma=None) -> None:
    """Denoise `images` (uint8 (N, H, W, 3) or float (N, 3, H, W)) into `out` of the same shape and type."""
    size = model.config.image_size
    takes_level = getattr(model, "takes_noise_level", False)
    if forward is None:
        def forward(batch, level=None):
            return _forward(model, batch, batch_size, level)

    def run(batch, level=sigma):  # the model's output at `level` (None: each image's own estimate)
        return forward(batch, level) if takes_level else forward(batch)

    sources, targets = [_Plane(image) for image in images], [_Plane(image) for image in out]
    if not sources:
        return
    if (sources[0].height, sources[0].width) == (size, size):  # the model's own size: batches of whole images
        for start in range(0, len(sources), batch_size):
            chunk = slice(start, start + batch_size)
            denoised = run(torch.stack([source.read(0, size) for source in sources[chunk]]))
            for target, image in zip(targets[chunk], denoised):
                target.write(0, size, image)
    elif method == "tile":
        for source, target in zip(sources, targets):
            tile_run = run
            if takes_level and sigma is None:  # one level for the whole image, so its tiles agree
                level = float(_image_noise_sigma(source))
                tile_run = lambda batch, level=level: run(batch, level)  # noqa: E731
            _tile(tile_run, source, target, size, min(batch_size, TILE_BATCH))
    else:
        _resize(run, sources, targets, size, batch_size)


def _forward(model, x, batch_size, sigma=None):
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    given = {} if sigma is None else {"sigma": sigma}
    try:
        with torch.inference_mode():
            outs = [model(x[i : i + batch_size].to(device), **given).float().cpu() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else x.clone()


NOISE_SAMPLE_SIDE = 1024  # the noise level of a large image is estimated on its central square of at most this side

# Haar HH coefficients of Gaussian noise have the noise's sigma; the median absolute value of a
# zero-mean normal is 0.6745 sigma (Donoho's MAD estimate, what scikit-image's estimate_sigma does).
MAD_TO_SIGMA = 1 / 0.6745
# The MAD estimate reads a face's own fine detail as a little noise, and clipping to [0, 1] hides some of
# strong noise; these pairs (median MAD estimate, true Gaussian sigma), measured on 600 of celeba-10k's
# training faces at 64x64, map it back to the true sigma (linear between them, and beyond the last pair).
CALIBRATION_ESTIMATES = (0.0116, 0.0173, 0.0263, 0.0353, 0.053, 0.0745, 0.0957, 0.1345, 0.1708, 0.2034, 0.2343, 0.2879, 0.3316)
CALIBRATION_SIGMAS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)


@torch.no_grad()
def estimate_noise_sigma(x: torch.Tensor) -> torch.Tensor:
    """Each image's noise sigma on the [0, 1] pixel scale, from images (N, C, H, W) in [-1, 1]: (N,).

    The median absolute Haar diagonal detail (HH) of every channel over 0.6745, averaged over the
    channels (the median ignores the few large coefficients of edges), then calibrated so that
    Gaussian noise of sigma s reads as s on faces. Images with an odd side lose their last row or column.
    """
    if x.ndim != 4 or x.shape[-1] < 2 or x.shape[-2] < 2:
        raise ValueError(f"need images (N, C, H, W) of at least 2x2, got {tuple(x.shape)}")
    pixels = (x.float() + 1) / 2  # the [0, 1] scale the noise specs use
    h, w = pixels.shape[-2] // 2 * 2, pixels.shape[-1] // 2 * 2
    p = pixels[..., :h, :w]
    hh = (p[..., 0::2, 0::2] - p[..., 0::2, 1::2] - p[..., 1::2, 0::2] + p[..., 1::2, 1::2]) / 2  # (N, C, H/2, W/2)
    flat = hh.abs().flatten(2)
    mad = flat.sort(dim=2).values[..., (flat.shape[2] - 1) // 2]  # (N, C): torch.median's value, in ONNX's terms
    return _calibrated((mad * MAD_TO_SIGMA).mean(dim=1))


def _calibrated(raw: torch.Tensor) -> torch.Tensor:
    """The MAD estimates mapped through the calibration pairs (piecewise linear), clamped to [0, 1]."""
    # a sum of clamped ramps, one per segment (the last one unbounded): plain elementwise ops, so the
    # estimate exports to ONNX with the model
    known, sigmas = CALIBRATION_ESTIMATES, CALIBRATION_SIGMAS
    out = torch.full_like(raw, sigmas[0])
    for i in range(len(known) - 1):
        slope = (sigmas[i + 1] - sigmas[i]) / (known[i + 1] - known[i])
        upper = known[i + 1] - known[i] if i < len(known) - 2 else None
        out = out + slope * (raw - known[i]).clamp(min=0, max=upper)
    return out.clamp(0, 1)


def _image_noise_sigma(source: "_Plane") -> float:
    """The noise sigma of one whole image, estimated on (at most) its central NOISE_SAMPLE_SIDE square."""
    top = max(0, (source.height - NOISE_SAMPLE_SIDE) // 2)
    left = max(0, (source.width - NOISE_SAMPLE_SIDE) // 2)
    rows = source.read(top, min(source.height, top + NOISE_SAMPLE_SIDE))[:, :, left : left + NOISE_SAMPLE_SIDE]
    return float(estimate_noise_sigma(rows[None])[0])


def _check_sigma(model, sigma):
    """None for "estimate it" (None or "auto"), else the number; AekitError / ValueError for what cannot be used."""
    if sigma is None or (isinstance(sigma, str) and sigma == "auto"):
        return None
    if not getattr(model, "takes_noise_level", False):
        raise AekitError("this model takes no noise level (sigma); only noise-level-conditioned denoisers such as "
                         "the drunet architecture do")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not (0 <= sigma <= 1):
        raise ValueError(f"sigma must be 'auto' or a number in [0, 1] (the [0, 1] pixel scale), got {sigma!r}")
    return float(sigma)


class _Plane:
    """One image, read and written a band of rows at a time as float (3, rows, width) in [-1, 1].

    It is a uint8 (H, W, 3) array (converted band by band, as ``images_to_tensor`` and ``to_uint8`` do)
    or a float (3, H, W) tensor; ``.T`` is the same image with rows and columns swapped (nothing copied).
    """

    def __init__(self, data, transposed: bool = False):
        self.data, self.transposed = data, transposed
        height, width = data.shape[:2] if isinstance(data, np.ndarray) else data.shape[1:]
        self.height, self.width = (width, height) if transposed else (height, width)

    @property
    def T(self) -> _Plane:
        return _Plane(self.data, not self.transposed)

    def _stored(self, start: int, stop: int):
        """Rows start..stop as stored (columns, when transposed)."""
        if isinstance(self.data, np.ndarray):
            return self.data[:, start:stop] if self.transposed else self.data[start:stop]
        return self.data[:, :, start:stop] if self.transposed else self.data[:, start:stop]

    def read(self, start: int, stop: int) -> torch.Tensor:
        band = self._stored(start, stop)
        band = to_signed(band).permute(2, 0, 1) if isinstance(band, np.ndarray) else band.float().clamp(-1, 1)
        return band.transpose(1, 2) if self.transposed else band

    def write(self, start: int, stop: int, rows: torch.Tensor) -> None:
        rows = rows.transpose(1, 2) if self.transposed else rows
        band = self._stored(start, stop)
        if isinstance(band, np.ndarray):
            band[...] = to_uint8(rows).permute(1, 2, 0).numpy()
        else:
            band.copy_(rows)


def _along_longer_side(forward, source: _Plane, target: _Plane):
    """`source`, `target` and `forward` turned so that rows run along the image's longer side.

    Bands of rows then hold a multiple of the shorter side (never more than the square root of the
    image's pixels); the model still sees every tile the right way round.
    """
    if source.width <= source.height:
        return forward, source, target

    def turned(batch):
        return forward(batch.transpose(-1, -2).contiguous()).transpose(-1, -2)

    return turned, source.T, target.T


def _padded_rows(source: _Plane, start: int, stop: int, width: int) -> torch.Tensor:
    """Rows start..stop of the image replicate-padded (bottom and right) to at least the model's size."""
    rows = source.read(start, min(stop, source.height))
    pad_rows, pad_columns = stop - start - rows.shape[1], width - source.width
    if pad_rows or pad_columns:
        rows = F.pad(rows[None], (0, pad_columns, 0, pad_rows), mode="replicate")[0]
    return rows


def _window(size: int) -> torch.Tensor:
    """A 2-D blending weight that is largest in the middle and small (not zero) at the edges."""
    ramp = torch.minimum(torch.arange(size) + 1.0, size - torch.arange(size).float()) / (size / 2)
    w = ramp.clamp(max=1.0)
    return torch.outer(w, w)


def _tile(forward, source: _Plane, target: _Plane, size: int, batch_size: int, overlap: int = TILE_OVERLAP) -> None:
    """Overlapping size x size tiles at full resolution, blended with `_window`, `batch_size` tiles at a time.

    The tiles are those of the image replicate-padded to at least size x size, in row order. Their
    weighted sums go into accumulators covering only the rows from the first one not yet written to
    the last one the current batch reaches; rows no later tile reaches are written out and dropped.
    """
    forward, source, target = _along_longer_side(forward, source, target)
    height, width = source.height, source.width
    H, W = max(height, size), max(width, size)
    stride = size - overlap
    ys = sorted({*range(0, H - size + 1, stride), H - size})
    xs = sorted({*range(0, W - size + 1, stride), W - size})
    corners = [(y, x) for y in ys for x in xs]
    weight = _window(size)
    top = 0  # the accumulators' first row: every row above it is written
    total, norm = torch.zeros(3, 0, W), torch.zeros(1, 0, W)
    for start in range(0, len(corners), batch_size):
        batch = corners[start : start + batch_size]
        first, bottom = batch[0][0], batch[-1][0] + size
        rows = _padded_rows(source, first, bottom, W)
        denoised = forward(torch.stack([rows[:, y - first : y - first + size, x : x + size] for y, x in batch]))
        if bottom - top > total.shape[1]:
            total, norm = _grown(total, bottom - top), _grown(norm, bottom - top)
        for tile, (y, x) in zip(denoised, batch):
            total[:, y - top : y - top + size, x : x + size] += tile * weight
            norm[:, y - top : y - top + size, x : x + size] += weight
        done = corners[start + batch_size][0] if start + batch_size < len(corners) else H
        if done > top:
            end = min(done, height)  # rows past the image's own are padding
            if end > top:
                target.write(top, end, (total[:, : end - top, :width] / norm[:, : end - top, :width]).clamp(-1, 1))
            total, norm, top = total[:, done - top :], norm[:, done - top :], done


def _grown(accumulator: torch.Tensor, rows: int) -> torch.Tensor:
    grown = torch.zeros(accumulator.shape[0], rows, accumulator.shape[2])
    grown[:, : accumulator.shape[1]] = accumulator
    return grown


def _resize(forward, sources: list[_Plane], targets: list[_Plane], size: int, batch_size: int) -> None:
    """Denoise a model-size copy of each image; add what the model removed, upsampled, to the full-size image.

    The resamplings are F.interpolate's (bicubic; antialiased going down), one axis at a time and
    through the full-size image in bands, so that no full-size float copy is ever made.
    """
    for start in range(0, len(sources), batch_size):
        chunk = slice(start, start + batch_size)
        small = torch.stack([_downsampled(source, size) for source in sources[chunk]]).clamp(-1, 1)
        removed = forward(small) - small
        for source, target, change in zip(sources[chunk], targets[chunk], removed):
            _add_upsampled(source, target, change)


def _downsampled(source: _Plane, size: int) -> torch.Tensor:
    """The image resampled to (3, size, size) as F.interpolate(bicubic, antialias=True) does it, in slices.

    The longer side is resampled first, a few lines across the shorter side at a time (read as rows of
    the turned image, so F.interpolate does exactly its own one-axis pass), then the shorter side.
    """
    if source.width > source.height:
        return _downsampled(source.T, size).transpose(1, 2)
    step = max(1, BAND_PIXELS // source.height)
    columns = [_interpolate(source.T.read(c, min(c + step, source.width)), size, antialias=True)
               for c in range(0, source.width, step)]
    tall = torch.cat(columns, dim=1).transpose(1, 2)  # (3, size, width)
    return F.interpolate(tall[None], size=(size, size), mode="bicubic", align_corners=False, antialias=True)[0]


def _interpolate(rows: torch.Tensor, length: int, antialias: bool = False) -> torch.Tensor:
    """Rows (3, n, m) resampled along their length to (3, n, length): F.interpolate's bicubic, one axis."""
    return F.interpolate(rows[None], size=(rows.shape[1], length), mode="bicubic", align_corners=False,
                         antialias=antialias)[0]


def _add_upsampled(source: _Plane, target: _Plane, change: torch.Tensor) -> None:
    """target = (source + change upsampled to the source's size).clamp(-1, 1), a band of rows at a time.

    The upsampling is F.interpolate's bicubic (not antialiased): along the shorter side at once (a
    small (3, size, shorter side) array), then along the longer side band by band with its own weights.
    """
    if source.width > source.height:
        source, target, change = source.T, target.T, change.transpose(1, 2)
    height, width = source.height, source.width
    wide = _interpolate(change, width)  # (3, size, width)
    step = max(1, BAND_PIXELS // width)
    for start in range(0, height, step):
        stop = min(start + step, height)
        rows, weights = _cubic_taps(change.shape[1], height, start, stop)
        correction = sum(weights[None, :, k, None] * wide[:, rows[:, k], :] for k in range(4))
        target.write(start, stop, (source.read(start, stop) + correction).clamp(-1, 1))


def _cubic_taps(in_size: int, out_size: int, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 4 source indices and weights of outputs start..stop of F.interpolate's bicubic resampling
    (A = -0.75, align_corners=False) from in_size to out_size, computed in float32 as PyTorch does."""
    A = -0.75
    scale = torch.tensor(float(in_size), dtype=torch.float32) / out_size
    real = scale * (torch.arange(start, stop, dtype=torch.float32) + 0.5) - 0.5
    index = torch.floor(real).long().clamp(max=in_size - 1)
    t = (real - index).clamp(0, 1)

    def near(x):  # |x| <= 1
        return ((A + 2) * x - (A + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A

    weights = torch.stack([far(t + 1), near(t), near(1 - t), far((1 - t) + 1)], dim=1)
    rows = (index[:, None] + torch.arange(-1, 3)).clamp(0, in_size - 1)
    return rows, weights
