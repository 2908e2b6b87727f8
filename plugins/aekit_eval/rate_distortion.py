"""The rate-distortion curve of a codec model (the ``codec`` architecture) against JPEG, WebP and AVIF (issue 33).

One place for the numbers that ``aekit eval`` (its rate-distortion section) and ``benchmarks/codec_table.py``
report, so that both give the same ones on the same faces:

- `codec_point` / `codec_curve`: the codec's real bitstreams (``aekit_compress.code_faces``) at a quality, at
  every quality, or at a ``--bytes`` target: mean bytes a face of the streams alone, and the faces decoded as
  ``aekit decompress`` writes them (uint8), scored by `measure`;
- `pillow_sweep`: Pillow's JPEG (``optimize=True``), WebP (``method=6``) and AVIF (when this Pillow has it) over
  their quality settings; bytes are whole files, their own headers included;
- `at_bytes` / `matched`: a format's PSNR and SSIM at the codec's bytes, linear between its two nearest settings
  and never extrapolated;
- `plot_curve`: bytes a face (log scale) against PSNR, and against SSIM.

Every score is `measure`'s: PSNR (dB, the [0, 1] scale) and SSIM (scikit-image) of each face, then the mean.
"""

from __future__ import annotations

import io as stdio
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image, features
from tqdm.auto import tqdm

from . import quality as measures

# each format's sweep: dense where 64x64 faces take tens to hundreds of bytes, sparse above
SWEEPS = {"JPEG": (1, 3, 5, 8, 10, 15, 20, 30, 40, 50, 70, 90), "WEBP": (0, 2, 5, 10, 15, 20, 30, 40, 50, 70, 90),
          "AVIF": (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90)}
# the strongest each format offers at a quality (JPEG's optimised Huffman tables, WebP's slowest method), so the
# comparison is honest; AVIF with Pillow's defaults
SAVE_OPTIONS = {"JPEG": {"optimize": True}, "WEBP": {"method": 6}, "AVIF": {}}
LABELS = {"JPEG": "JPEG", "WEBP": "WebP", "AVIF": "AVIF"}
AVIF_MISSING = "AVIF: this Pillow has no AVIF support; left out"


def pillow_formats() -> list[str]:
    """The formats to sweep: JPEG, WebP, and AVIF when this Pillow can write it."""
    return [fmt for fmt in SWEEPS if fmt != "AVIF" or features.check("avif")]


def measure(decoded: np.ndarray, reference: np.ndarray, progress: bool = False, desc: str = "SSIM") -> dict:
    """MSE, PSNR (dB) and SSIM of each decoded face against its reference (uint8 or [0, 1] floats, (N, H, W, 3)),
    then their means and standard deviations (``aekit_eval.quality.scores``)."""
    return measures.scores(decoded, reference, progress, desc)


# --- the codec ----------------------------------------------------------------------------------------------


@dataclass
class CodecPoint:
    """The codec at one rate: its bitstreams, their mean bytes a face, and the decoded faces' scores."""

    label: str
    quality: int | None  # None for a --bytes target (then each face has its own, in `qualities`)
    bytes: float  # mean bytes a face of the bitstreams alone (no container)
    scores: dict  # `measure`'s: mse, psnr, ssim (means) and their *_std
    streams: list[bytes]
    qualities: np.ndarray  # (N,) each face's quality, 1-based
    decoded: np.ndarray  # the first `keep` faces decoded, uint8 (N, H, W, 3)
    decode_s: float  # seconds to decode every face (entropy decoding and synthesis)
    target_bytes: float | None = None

    @property
    def psnr(self) -> float:
        return self.scores["psnr"]

    @property
    def ssim(self) -> float:
        return self.scores["ssim"]


def codec_point(model, images: np.ndarray, quality: int | None = None, target_bytes: float | None = None,
                latents=None, decode=None, batch_size: int = 256, keep: int = 0, progress: bool = False) -> CodecPoint:
    """Code uint8 faces (N, H, W, 3) at `quality` (default: the model's), or at about `target_bytes` a face (a
    quality per face, as ``aekit compress --bytes``), decode them (`decode`: the synthesis, default ``model.decode``) and score them.

    The model's integer tables must be fixed (``model.fix_entropy_tables()``); `latents`: its
    ``coding_latents(images)`` when already computed (they are the same at every rate)."""
    from aekit.images import to_uint8_hwc
    from aekit_compress import code_faces

    if quality is None and target_bytes is None:
        quality = model.config.default_quality  # as `aekit compress` without --quality
    result = code_faces(model, images, quality=quality, target_bytes=target_bytes, decode=decode, batch_size=batch_size,
                        latents=latents)
    started = time.perf_counter()
    decoded = to_uint8_hwc(model.decompress_faces(result.streams, result.quality, decode=decode, batch_size=batch_size))
    decode_s = time.perf_counter() - started
    label = f"aekit codec, --bytes {target_bytes:g}" if target_bytes is not None else f"aekit codec, quality {quality}"
    n = max(len(result.streams), 1)
    return CodecPoint(label, None if target_bytes is not None else int(quality), sum(map(len, result.streams)) / n,
                      measure(decoded, images, progress, f"SSIM {label}"), result.streams, result.quality,
                      decoded[:keep], decode_s, target_bytes)


def file_bytes(model, points: list[CodecPoint], names, placements=None) -> list[float]:
    """Bytes a face of the whole .npz that `aekit compress` writes for each point's bitstreams (names, qualities,
    CRC-32s, offsets, metadata and zip headers included): what other formats' files are compared with."""
    import tempfile
    from pathlib import Path

    from aekit_compress import save_bitstreams

    with tempfile.TemporaryDirectory() as folder:
        return [save_bitstreams(Path(folder) / "faces.npz", p.streams, p.qualities, names, model, placements=placements)
                / max(len(p.streams), 1) for p in points]


def codec_curve(model, images: np.ndarray, latents=None, decode=None, batch_size: int = 256, keep: int = 0,
                progress: bool = False) -> list[CodecPoint]:
    """`codec_point` at every quality, 1 (fewest bytes) to ``model.config.qualities``; the analysis runs once."""
    latents = model.coding_latents(images, batch_size) if latents is None else latents
    qualities = range(1, model.config.qualities + 1)
    return [codec_point(model, images, q, latents=latents, decode=decode, batch_size=batch_size, keep=keep)
            for q in tqdm(qualities, desc="codec qualities", unit="quality", disable=not progress, leave=False)]


# --- Pillow's formats ----------------------------------------------------------------------------------------


def pillow_round_trip(images: np.ndarray, fmt: str, quality: int) -> tuple[float, np.ndarray]:
    """Mean bytes a face (whole files) and the decoded uint8 faces for one Pillow format at one quality."""
    sizes, decoded = [], []
    for image in images:
        buffer = stdio.BytesIO()
        Image.fromarray(image).save(buffer, format=fmt, quality=int(quality), **SAVE_OPTIONS[fmt])
        sizes.append(buffer.tell())
        buffer.seek(0)
        with Image.open(buffer) as img:
            decoded.append(np.asarray(img.convert("RGB")))
    return float(np.mean(sizes)), np.stack(decoded)


def pillow_sweep(images: np.ndarray, formats: list[str] | None = None, progress: bool = False) -> dict[str, list[dict]]:
    """Each format (default `pillow_formats`) at each of its `SWEEPS` settings on uint8 faces (N, H, W, 3):
    {format: [{"quality", "bytes_per_image", "mse", "psnr", "ssim", ...}, ...]} in the sweep's order."""
    formats = pillow_formats() if formats is None else formats
    settings = [(fmt, q) for fmt in formats for q in SWEEPS[fmt]]
    sweeps: dict[str, list[dict]] = {fmt: [] for fmt in formats}
    for fmt, q in tqdm(settings, desc="Pillow sweeps", unit="setting", disable=not progress, leave=False):
        size, decoded = pillow_round_trip(images, fmt, q)
        sweeps[fmt].append({"quality": q, "bytes_per_image": size, **measure(decoded, images)})
    return sweeps


def curve_of(rows: list[dict]) -> list[tuple[float, float, float]]:
    """A sweep's rows as `at_bytes` reads them: (bytes, PSNR, SSIM)."""
    return [(r["bytes_per_image"], r["psnr"], r["ssim"]) for r in rows]


def at_bytes(curve, size: float) -> tuple[float, float] | None:
    """(PSNR, SSIM) of a format's sweep [(bytes, psnr, ssim)] at `size` bytes, linearly between its two nearest
    settings; None outside the sweep (no extrapolation)."""
    curve = sorted(curve)
    sizes = [c[0] for c in curve]
    if not sizes or size < sizes[0] or size > sizes[-1]:
        return None
    return float(np.interp(size, sizes, [c[1] for c in curve])), float(np.interp(size, sizes, [c[2] for c in curve]))


def matched(sweeps: dict[str, list[dict]], size: float) -> dict[str, dict | None]:
    """Every swept format read at `size` bytes: {format: {"psnr", "ssim"} or None where its sweep does not reach}."""
    out = {}
    for fmt, rows in sweeps.items():
        value = at_bytes(curve_of(rows), size)
        out[fmt] = None if value is None else {"psnr": value[0], "ssim": value[1]}
    return out


def sweep_span(rows: list[dict]) -> tuple[float, float]:
    """The smallest and largest mean bytes a face of a sweep: the range `at_bytes` reads."""
    sizes = [r["bytes_per_image"] for r in rows]
    return min(sizes), max(sizes)


# --- the plot -------------------------------------------------------------------------------------------------


def plot_curve(path, codec: list[tuple[float, float, float]], sweeps: dict[str, list[dict]],
               extra: list[tuple[str, float, float, float]] = (), xlim: tuple[float, float] | None = None,
               title: str = "rate-distortion") -> None:
    """Save a PNG: bytes a face (log scale) against PSNR (left) and SSIM (right), the codec's qualities as one
    line, each format's sweep dashed, `extra` points [(label, bytes, psnr, ssim)] as squares. `codec`:
    [(bytes, psnr, ssim)] in any order; `xlim`: the bytes shown (default: every point's)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from aekit import io

    figure = Figure(figsize=(11, 4.2), dpi=110)  # no pyplot: no GUI backend involved
    axes = figure.subplots(1, 2)
    codec = sorted(codec)
    for axis, column, label in ((axes[0], 1, "PSNR (dB)"), (axes[1], 2, "SSIM")):
        axis.plot([p[0] for p in codec], [p[column] for p in codec], "o-", label="aekit codec", color="black")
        for fmt, rows in sweeps.items():
            curve = sorted(curve_of(rows))
            axis.plot([c[0] for c in curve], [c[column] for c in curve], ".--", label=LABELS.get(fmt, fmt))
        for name, size, psnr, ssim in extra:
            axis.plot([size], [(psnr, ssim)[column - 1]], "s", label=name)
        axis.set_xscale("log")
        # plain numbers at 1, 2 and 5 of each decade: the default 3x10^2 labels run into each other
        axis.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.xaxis.set_minor_formatter(NullFormatter())
        if xlim is not None:
            axis.set_xlim(*xlim)
        axis.set_xlabel("bytes a face")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    io.save_figure(path, figure)
