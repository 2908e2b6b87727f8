"""Denoising whole pictures in their own mode: RGB, RGBA, grayscale, palette, 16-bit, any size.

The model sees an 8-bit RGB array; :func:`denoise_image` splits a PIL image into that array (plus
its alpha channel, or its 16-bit values) and puts the model's answer back into the image's mode:

=========================  ==================================================================
input mode                 output
=========================  ==================================================================
RGB                        RGB
RGBA, LA                   RGBA, LA: the alpha channel is kept unchanged
L (and 1-bit)              L: the model sees R = G = B; its three channels are averaged back
P (palette)                RGB, or RGBA when the palette has transparency
I;16 / I (16-bit)          I;16: the model's correction, in 8-bit steps, added to the 16-bit values
F (float)                  L (8-bit), with a note
CMYK, YCbCr, LAB, HSV      RGB
=========================  ==================================================================

:func:`open_picture` opens a file (EXIF rotation applied, Pillow's decompression-bomb limit an
error) and :func:`save_picture` writes one atomically in the format its extension names (JPEG at
quality 95), keeping the ICC profile and EXIF data, and saying what a format could not hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from aekit.errors import AekitError, ImageReadError

JPEG_QUALITY = 95
EXIF_ORIENTATION = 0x0112
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
FOREIGN_COLOUR_MODES = ("CMYK", "YCbCr", "LAB", "HSV")  # their ICC profiles do not fit the RGB result
SAVE_PARAMS = {"JPEG": {"quality": JPEG_QUALITY}, "WEBP": {"quality": JPEG_QUALITY}}
HIGH_DEPTH_FORMATS = ("PNG", "TIFF")  # formats that can hold a 16-bit grayscale image
BLOCK_PIXELS = 2**20  # 16-bit, float and grayscale pictures are converted a block of rows of about this many pixels at a time


@dataclass
class Picture:
    """An opened image file: its pixels in their own mode (upright), its format and metadata to keep."""

    image: Image.Image
    format: str | None
    bit_depth: int = 8  # bits per channel as stored in the file
    metadata: dict = field(default_factory=dict)  # icc_profile / exif for save_picture
    notes: list[str] = field(default_factory=list)


@dataclass
class ModelView:
    """What the model denoises (uint8 (H, W, 3)) and what `rebuild` needs to restore the image's own mode."""

    rgb: np.ndarray
    mode: str  # "rgb", "gray" or "gray16"
    alpha: np.ndarray | None = None
    values16: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    def rebuild(self, denoised: np.ndarray) -> Image.Image:
        """The denoised uint8 (H, W, 3) array back in the source image's mode."""
        denoised = np.asarray(denoised)
        if denoised.shape != self.rgb.shape or denoised.dtype != np.uint8:
            raise AekitError(f"the model returned {denoised.dtype} {denoised.shape} for a {self.rgb.shape} uint8 image")
        if self.mode == "rgb":
            if self.alpha is None:
                return Image.fromarray(denoised)
            return Image.fromarray(np.dstack([denoised, self.alpha]))
        gray = np.empty(denoised.shape[:2], np.uint16 if self.mode == "gray16" else np.uint8)
        for rows in _row_blocks(gray.shape):  # in blocks: float copies of a whole large picture would be GBs
            correction = denoised[rows].astype(np.float32).mean(axis=-1)
            if self.mode == "gray16":
                # the 8-bit change the model made, at 16-bit precision: detail below 8 bits survives
                change = (correction - self.rgb[rows, :, 0]) * 257.0
                gray[rows] = np.clip(np.rint(self.values16[rows].astype(np.float64) + change), 0, 65535)
            else:
                gray[rows] = np.clip(np.rint(correction), 0, 255)
        if self.mode == "gray16":
            return Image.fromarray(gray)  # I;16
        if self.alpha is None:
            return Image.fromarray(gray)
        return Image.fromarray(np.dstack([gray, self.alpha]))  # LA


def model_view(image: Image.Image) -> ModelView:
    """Split a PIL image of any mode into the model's uint8 RGB array and what is needed to rebuild it."""
    mode = image.mode
    if mode == "P" or mode == "PA":
        image = image.convert("RGBA" if mode == "PA" or "transparency" in image.info else "RGB")
    elif mode in ("RGBa", "La"):
        image = image.convert(mode.upper())
    elif mode == "1":
        image = image.convert("L")
    mode = image.mode
    if mode in ("RGB", "RGBA"):
        array = np.asarray(image)
        return ModelView(np.array(array[..., :3], order="C"), "rgb", array[..., 3].copy() if mode == "RGBA" else None)
    if mode in ("L", "LA"):
        array = np.asarray(image)
        gray = array if mode == "L" else array[..., 0]
        return ModelView(_gray_to_rgb(gray), "gray", array[..., 1].copy() if mode == "LA" else None)
    if mode in SIXTEEN_BIT_MODES or mode == "I":
        values = np.asarray(image)  # whole numbers (uint16 or int32)
        low, high = values.min(initial=0), values.max(initial=0)
        if mode == "I" and high <= 255 and low >= 0:
            return ModelView(_gray_to_rgb(values.astype(np.uint8)), "gray")
        notes = []
        if mode == "I" and (high > 65535 or low < 0):
            notes.append("32-bit values clipped to the 16-bit range")
        values = np.clip(values, 0, 65535).astype(np.uint16, copy=False)  # exact: 2 bytes a pixel, not float64's 8
        gray = np.empty(values.shape, np.uint8)
        for rows in _row_blocks(values.shape):
            gray[rows] = np.clip(np.rint(values[rows] / 257.0), 0, 255)
        return ModelView(_gray_to_rgb(gray), "gray16", values16=values, notes=notes)
    if mode == "F":
        raw = np.asarray(image)

        def finite(rows):
            return np.nan_to_num(raw[rows].astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)

        blocks = _row_blocks(raw.shape)
        peak = max((finite(rows).max(initial=0) for rows in blocks), default=0)
        top = 1.0 if peak <= 1 else 255.0 if peak <= 255 else 65535.0
        gray = np.empty(raw.shape, np.uint8)
        for rows in blocks:
            gray[rows] = np.clip(np.rint(finite(rows) / top * 255.0), 0, 255)
        return ModelView(_gray_to_rgb(gray), "gray", notes=[f"floating-point image (range 0-{top:g}) saved as 8-bit"])
    return ModelView(np.array(image.convert("RGB")), "rgb")


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=-1))


def _row_blocks(shape) -> list[slice]:
    """Slices of rows of about BLOCK_PIXELS pixels each, covering an array of `shape` (height, width, ...)."""
    height, width = shape[:2]
    step = max(1, BLOCK_PIXELS // max(width, 1))
    return [slice(start, start + step) for start in range(0, height, step)]


def denoise_image(model, image: Image.Image, method: str = "auto") -> tuple[Image.Image, list[str]]:
    """Denoise a PIL image of any mode and size with ``model.denoise``; returns (image in its own mode, notes)."""
    (result,) = denoise_images(model, [image], method)
    if isinstance(result, ValueError):
        raise result
    return result


def denoise_images(model, images: list[Image.Image], method: str = "auto", sigma="auto") -> list:
    """`denoise_image` for several images: those of one size go through the model together.

    One call of ``model.denoise`` per size (faces of one size: one batch) rather than one per image,
    with the same result as `denoise_image` on each. Returns, per image, (image, notes), or the
    ValueError that image alone raises (e.g. too small to tile). `sigma` other than "auto" is passed on
    (a noise-level-conditioned model; see ``Autoencoder.denoise``).
    """
    if not callable(getattr(model, "denoise", None)):
        raise AekitError(f"{type(model).__name__} models have no denoise(); use an aekit Autoencoder")
    views = [model_view(image) for image in images]
    results: list = [None] * len(images)

    def run(indices: list[int]) -> None:
        # one picture is passed as it is (no stacked copy): it may be tens of millions of pixels
        stacked = views[indices[0]].rgb[None] if len(indices) == 1 else np.stack([views[i].rgb for i in indices])
        denoised = model.denoise(stacked, method=method, **({} if sigma == "auto" else {"sigma": sigma}))
        if hasattr(denoised, "detach"):  # a tensor: be lenient with models that answer in torch
            denoised = denoised.detach().cpu().numpy()
        for k, i in enumerate(indices):
            results[i] = (views[i].rebuild(np.asarray(denoised[k])), list(views[i].notes))

    by_shape: dict[tuple, list[int]] = {}
    for i, view in enumerate(views):
        by_shape.setdefault(view.rgb.shape, []).append(i)
    for indices in by_shape.values():
        try:
            run(indices)
        except ValueError as exc:
            if len(indices) == 1:
                results[indices[0]] = exc
                continue
            for i in indices:  # one at a time, so each failure is its own
                try:
                    run([i])
                except ValueError as exc:
                    results[i] = exc
    return results


# --- files --------------------------------------------------------------------------------------------


def open_picture(path, max_pixels: int | None = None) -> Picture:
    """Open an image file keeping its mode, with EXIF rotation applied; ImageReadError on anything bad.

    With `max_pixels`, an image of more pixels (width x height, from its header) is refused before it is decoded.
    """
    from aekit.images import open_checked, read_errors  # Pillow's bomb warning as an error, as every aekit reader does

    path = Path(path)
    with read_errors(path), open_checked(path) as opened:
        width, height = opened.size
        if max_pixels is not None and width * height > max_pixels:
            raise ImageReadError(f"{path}: image too large to denoise ({width}x{height} = {width * height:,} pixels; "
                                 f"the limit is {max_pixels:,})")
        opened.load()
        file_format = opened.format
        image = ImageOps.exif_transpose(opened)  # a new, upright image without the orientation tag
    bit_depth = _png_bit_depth(path) if file_format == "PNG" else (16 if image.mode in SIXTEEN_BIT_MODES else 8)
    notes = []
    if bit_depth == 16 and image.mode in ("RGB", "RGBA"):
        notes.append("16-bit colour PNG: Pillow reads it as 8-bit, so it is saved as 8-bit")
    return Picture(image, file_format, bit_depth, _metadata(image, image.mode), notes)


def _png_bit_depth(path: Path) -> int:
    """Bits per channel from a PNG's IHDR chunk (8 when the header cannot be read)."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(25)
    except OSError:
        return 8
    return header[24] if len(header) == 25 and header[12:16] == b"IHDR" else 8


def _metadata(image: Image.Image, mode: str) -> dict:
    """The ICC profile and EXIF data (orientation removed: the pixels are upright now) to save again."""
    metadata = {}
    profile = image.info.get("icc_profile")
    if profile and mode not in FOREIGN_COLOUR_MODES:
        metadata["icc_profile"] = profile
    try:
        exif = image.getexif()
        exif.pop(EXIF_ORIENTATION, None)
        if len(exif):
            metadata["exif"] = exif.tobytes()
    except Exception:  # damaged EXIF is dropped, never fatal
        pass
    return metadata


def format_for_path(path) -> str:
    """Pillow's format name for an output file's extension; AekitError when it names no writable format."""
    Image.init()
    suffix = Path(path).suffix.lower()
    file_format = Image.registered_extensions().get(suffix)
    if file_format is None or file_format not in Image.SAVE:
        raise AekitError(f"{path}: cannot write images with extension {suffix or '(none)'!r}; use .png or .jpg")
    return file_format


def fit_to_format(image: Image.Image, file_format: str) -> tuple[Image.Image, list[str]]:
    """Convert an image to a mode `file_format` can hold; notes say what was given up."""
    notes = []
    if image.mode == "I;16" and file_format not in HIGH_DEPTH_FORMATS:
        values = np.asarray(image).astype(np.float64)
        image = Image.fromarray(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8))
        notes.append(f"16-bit image saved as 8-bit ({file_format} has no 16-bit grayscale)")
    if file_format == "JPEG" and image.mode in ("RGBA", "LA"):
        flat = "RGB" if image.mode == "RGBA" else "L"
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA")).convert(flat)
        notes.append("JPEG has no transparency: composited over white")
    return image, notes


def save_picture(path, image: Image.Image, metadata: dict | None = None) -> list[str]:
    """Write an image atomically in the format its extension names; returns notes on what was converted."""
    from aekit import io

    file_format = format_for_path(path)
    image, notes = fit_to_format(image, file_format)
    params = {**SAVE_PARAMS.get(file_format, {}), **(metadata or {})}
    try:
        io.save_image(path, image, format=file_format, **params)
    except (OSError, KeyError, ValueError) as exc:
        if not _is_mode_problem(exc):
            raise
        fallback = "RGBA" if "A" in image.mode and file_format != "JPEG" else "RGB"
        io.save_image(path, image.convert(fallback), format=file_format, **params)
        notes.append(f"{image.mode} image saved as {fallback} ({file_format} cannot hold {image.mode})")
    return notes


def _is_mode_problem(exc: Exception) -> bool:
    text = str(exc).lower()
    return isinstance(exc, KeyError) or "mode" in text
