"""Compress images to latent ``.npz`` files and back: ``aekit compress`` / ``aekit decompress``.

The ``.npz`` format (readable with ``np.load(path, allow_pickle=False)``):

==============  =====================================================================
``latents``     (N, latent_dim) float32, float16, or int8 (quantised per dimension)
``scale``       int8 only: (latent_dim,) float32; ``z = (q + 128) * scale + offset``
``offset``      int8 only: (latent_dim,) float32
``names``       (N,) the source names (file names relative to their folder)
``dtype``       the storage dtype's name
``model_id``    ``aekit.model_fingerprint(model)``: decompress refuses another model's latents
``meta``        JSON: format version, image size, the model's architecture and config (and
                ``align``, the ``--align`` mode, when faces were looked for)
``photo``       optional (N,) str: the image each latent came from (``--align auto`` / ``on``)
``face``        optional (N,) int64: the face's index in that image, largest first; -1: the
                whole image, used as it is
``box``         optional (N, 4) float32: the face's box x, y, width, height in the image's
                pixels; NaN for a whole image
==============  =====================================================================

With ``--align auto`` / ``on`` a latent is one face: its name is ``IMAGE#N`` (face N of IMAGE) or
``IMAGE`` (the image as it is), and ``photo`` / ``face`` / ``box`` say where it came from. Files
without them (``--align off``, or written before ``--align``) read as before.

In Python: ``save_latents(path, latents, names, model, dtype, placements=None)`` and
``load_latents(path, model)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from aekit import hookimpl
from aekit.errors import AekitError
from aekit.validate import parse_json

FORMAT = "aekit-latents"
FORMAT_VERSION = 1
DTYPES = ("float32", "float16", "int8")


class LatentFileError(AekitError):
    """A latent .npz file is damaged, incomplete, or made by another model."""


@dataclass
class LatentFile:
    """What `load_latents` returns: float32 latents, their names and the file's metadata."""

    latents: np.ndarray
    names: list[str]
    dtype: str
    model_id: str
    meta: dict
    stored_bytes: int  # the latents' payload in the file (quantisation parameters included)
    # where each latent came from (``aekit.alignment.placement_columns``): ``photo``, ``face``, ``box``; None in
    # files written without --align (or with --align off)
    placements: dict[str, np.ndarray] | None = None


# --- the format ------------------------------------------------------------------------------------


def quantize_int8(latents: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-dimension affine int8: (q, scale, offset) with z ~= (q + 128) * scale + offset."""
    low, high = latents.min(axis=0), latents.max(axis=0)
    scale = np.maximum(high - low, 1e-12).astype(np.float32) / 255.0
    q = np.rint((latents - low) / scale) - 128
    return np.clip(q, -128, 127).astype(np.int8), scale, low.astype(np.float32)


def dequantize_int8(q: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Inverse of `quantize_int8`."""
    return ((q.astype(np.float32) + 128.0) * scale + offset).astype(np.float32)


def encode_for_storage(latents: np.ndarray, dtype: str) -> dict[str, np.ndarray]:
    """The arrays that store `latents` in `dtype` (with quantisation parameters for int8)."""
    if dtype not in DTYPES:
        raise LatentFileError(f"unknown dtype {dtype!r} (choose {', '.join(DTYPES)})")
    latents = np.asarray(latents, dtype=np.float32)
    if not np.isfinite(latents).all():
        raise LatentFileError("latents contain NaN or infinite values")
    if dtype == "int8":
        q, scale, offset = quantize_int8(latents)
        arrays = {"latents": q, "scale": scale, "offset": offset}
    else:
        with np.errstate(over="ignore"):  # checked below, as an error that says what to do
            arrays = {"latents": latents.astype(dtype)}
    # checked after the cast: float16 turns anything beyond +-65504 into inf, which no reader would take back
    if not all(np.isfinite(a).all() for a in arrays.values() if a.dtype.kind == "f"):
        largest = float(np.abs(latents).max(initial=0.0))
        limit = f" (largest {np.finfo(dtype).max:.0f})" if dtype == "float16" else ""
        raise LatentFileError(f"latents as large as {largest:.6g} do not fit in {dtype}{limit}; "
                              "store them as float32 (--dtype float32)")
    return arrays


def decode_from_storage(arrays: dict[str, np.ndarray], dtype: str) -> np.ndarray:
    """Float32 latents back from `encode_for_storage`'s arrays."""
    if dtype == "int8":
        return dequantize_int8(arrays["latents"], arrays["scale"], arrays["offset"])
    return np.asarray(arrays["latents"], dtype=np.float32)


def save_latents(path, latents: np.ndarray, names, model, dtype: str = "float16", placements=None,
                 align: str | None = None) -> int:
    """Write a latent .npz atomically; returns the stored payload in bytes.

    `placements`: where each latent came from, as ``aekit.alignment.Placement`` objects or the columns of
    ``aekit.alignment.placement_columns`` (written as ``photo``, ``face``, ``box``); `align`: the ``--align``
    mode, recorded in ``meta``. Neither is written when None.
    """
    from aekit import io, model_fingerprint

    latents = np.asarray(latents, dtype=np.float32)
    names = [str(n) for n in names]
    if latents.ndim != 2 or len(latents) != len(names):
        raise LatentFileError(f"need (N, d) latents and N names, got {latents.shape} and {len(names)} names")
    columns = _checked_placements(placements, len(names), path, LatentFileError)
    try:
        arrays = encode_for_storage(latents, dtype)
    except LatentFileError as exc:  # checked before anything is written: name the file that is not made
        raise LatentFileError(f"{path}: {exc}") from None
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "image_size": model.config.image_size,
            "architecture": getattr(model, "architecture", "article"), "config": model.config.to_dict()}
    if align is not None:
        meta["align"] = str(align)
    with io.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:  # a handle: np.savez would add ".npz" to the temporary name
            np.savez(fh, names=np.asarray(names, dtype=str), dtype=np.asarray(dtype),
                     model_id=np.asarray(model_fingerprint(model)), meta=np.asarray(json.dumps(meta)), **arrays,
                     **(columns or {}))
    return sum(a.nbytes for a in arrays.values())


PLACEMENT_KEYS = ("photo", "face", "box")  # aekit.alignment.PLACEMENT_FIELDS: the optional arrays of a latent file


def _placement_arrays(placements) -> dict[str, np.ndarray]:
    """``photo`` / ``face`` / ``box`` arrays from Placement objects or from ``placement_columns``' dict."""
    from aekit.alignment import placement_columns

    if isinstance(placements, dict):
        missing = [k for k in PLACEMENT_KEYS if k not in placements]
        if missing:
            raise LatentFileError(f"placements without {', '.join(missing)}")
        return {"photo": np.asarray(placements["photo"], dtype=str),
                "face": np.asarray(placements["face"], dtype=np.int64),
                "box": np.asarray(placements["box"], dtype=np.float32)}
    return placement_columns(list(placements))


def _checked_placements(placements, count: int, path, error) -> dict[str, np.ndarray] | None:
    """`placements` (or None) as the file's arrays, after checking them against `count` faces (`error` if not)."""
    if placements is None:
        return None
    columns = _placement_arrays(placements)
    problem = _placement_problem(columns, count)
    if problem:
        raise error(f"{path}: {problem}")
    return columns


def _placement_problem(arrays: dict[str, np.ndarray], count: int) -> str | None:
    """Why `arrays` (``photo``, ``face``, ``box``) do not describe `count` latents, or None when they do."""
    photo, face, box = (arrays[k] for k in PLACEMENT_KEYS)
    if photo.ndim != 1 or photo.dtype.kind != "U" or len(photo) != count:
        return f"photo must be a 1-D array of {count} texts, got {photo.dtype} {photo.shape}"
    if face.ndim != 1 or face.dtype.kind not in "iu" or len(face) != count:
        return f"face must be a 1-D array of {count} integers, got {face.dtype} {face.shape}"
    if count and int(face.min()) < -1:
        return f"face indices must be -1 (the whole image) or more, got {int(face.min())}"
    if box.shape != (count, 4) or box.dtype.kind != "f":
        return f"box must be a ({count}, 4) float array, got {box.dtype} {box.shape}"
    if not np.isfinite(box[face >= 0]).all():
        return "box holds NaN or infinite values for a face"
    return None


def load_latents(path, model=None) -> LatentFile:
    """Read a latent .npz (never unpickling); with `model`, refuse latents that another model made.

    Anything wrong with the file (not a zip, damaged, missing or malformed arrays) is a LatentFileError.
    """
    from aekit.arrays import read_npz

    path = Path(path)
    arrays = read_npz(path, "latent .npz", LatentFileError)
    missing = [k for k in ("latents", "names", "dtype", "model_id", "meta") if k not in arrays]
    if missing:
        raise LatentFileError(f"{path}: not an aekit latent file (missing {', '.join(missing)})")
    dtype, model_id = _text_field(arrays, "dtype", path), _text_field(arrays, "model_id", path)
    if dtype not in DTYPES:
        raise LatentFileError(f"{path}: unknown latent dtype {dtype!r} (expected {', '.join(DTYPES)})")
    stored_latents = arrays["latents"]
    if stored_latents.dtype != np.dtype(dtype):
        raise LatentFileError(f"{path}: latents are stored as {stored_latents.dtype}, but the file says {dtype}")
    if stored_latents.ndim != 2:
        raise LatentFileError(f"{path}: latents must be a 2-D (N, d) array, got shape {stored_latents.shape}")
    if dtype == "int8":
        if not {"scale", "offset"} <= set(arrays):
            raise LatentFileError(f"{path}: int8 latents without their scale/offset")
        for key in ("scale", "offset"):
            if arrays[key].shape != stored_latents.shape[1:] or arrays[key].dtype.kind != "f":
                raise LatentFileError(f"{path}: int8 {key} must be float of shape {stored_latents.shape[1:]}, "
                                      f"got {arrays[key].dtype} {arrays[key].shape}")
    meta = parse_json(_text_field(arrays, "meta", path), f"{path}: damaged metadata", LatentFileError)
    if not isinstance(meta, dict):
        raise LatentFileError(f"{path}: damaged metadata (not a JSON object)")
    names_array = arrays["names"]
    if names_array.ndim != 1 or names_array.dtype.kind != "U":
        raise LatentFileError(f"{path}: names must be a 1-D array of text, got {names_array.dtype} {names_array.shape}")
    names = [str(n) for n in names_array]
    if len(stored_latents) != len(names):
        raise LatentFileError(f"{path}: {len(names)} names for latents of shape {stored_latents.shape}")
    latents = decode_from_storage(arrays, dtype)
    if not np.isfinite(latents).all():
        raise LatentFileError(f"{path}: latents contain NaN or infinite values")
    if model is not None:
        from aekit import model_fingerprint

        own = model_fingerprint(model)
        if own != model_id:
            where = getattr(model, "checkpoint_dir", None) or "this model"
            raise LatentFileError(f"{path}: made by model {model_id}, not by {where} ({own}); "
                                  "decompress with the model that compressed it")
        if latents.shape[1] != model.config.latent_dim:
            raise LatentFileError(f"{path}: latents have {latents.shape[1]} dimensions, the model {model.config.latent_dim}")
    placements = None
    present = [k for k in PLACEMENT_KEYS if k in arrays]
    if present:  # optional (--align): all three or none, one row per latent
        if len(present) != len(PLACEMENT_KEYS):
            absent = [k for k in PLACEMENT_KEYS if k not in arrays]
            raise LatentFileError(f"{path}: {', '.join(present)} without {', '.join(absent)} (where the latents came from)")
        placements = {k: arrays[k] for k in PLACEMENT_KEYS}
        problem = _placement_problem(placements, len(names))
        if problem:
            raise LatentFileError(f"{path}: {problem}")
        placements = {"photo": placements["photo"], "face": placements["face"].astype(np.int64, copy=False),
                      "box": placements["box"].astype(np.float32, copy=False)}
    stored = sum(arrays[k].nbytes for k in ("latents", "scale", "offset") if k in arrays)
    return LatentFile(latents, names, dtype, model_id, meta, stored, placements)


def _text_field(arrays: dict, key: str, path) -> str:
    value = arrays[key]
    if value.ndim != 0 or value.dtype.kind != "U":
        raise LatentFileError(f"{path}: {key!r} must be a text scalar, got {value.dtype} {value.shape}")
    return str(value)


# --- round-trip report -------------------------------------------------------------------------------


@dataclass
class Report:
    """Round-trip figures for `aekit compress --report`."""

    images: int
    payload_bytes: int
    file_bytes: int
    input_bytes: int | None
    psnr: float
    ssim: float
    image_size: int
    input_files: int | None = None  # the input files read (--align: fewer than the latents, a file per photo)

    def rows(self) -> list[tuple[str, str]]:
        raw = self.image_size * self.image_size * 3
        per_image = self.payload_bytes / self.images
        rows = [("images", f"{self.images}"),
                ("bytes per image (latents)", f"{per_image:.1f}"),
                ("bytes per image (.npz file)", f"{self.file_bytes / self.images:.1f}"),
                (f"ratio vs raw {self.image_size}x{self.image_size} pixels ({raw} B)", f"{raw / per_image:.1f}x")]
        if self.input_bytes:
            rows.append(("ratio vs input files", f"{self.input_bytes / self.images / per_image:.1f}x "
                                                 f"({self.input_bytes / (self.input_files or self.images):.0f} B per file)"))
        rows += [("round-trip PSNR", f"{self.psnr:.2f} dB"), ("round-trip SSIM", f"{self.ssim:.4f}")]
        return rows


def round_trip_quality(model, source, latents: np.ndarray, batch_size: int, progress: bool,
                       decode=None) -> tuple[float, float, int]:
    """Mean PSNR/SSIM of decode(latents) against the source images; also the input files' total bytes.

    `decode`: what turns latents into images (default ``model.decode``; ONNX Runtime's for --runtime onnx).
    """
    from aekit.data import iter_batches
    from aekit.images import to_uint8_hwc
    from aekit.metrics import psnr, ssim

    size, decode = model.config.image_size, decode or model.decode
    psnrs, ssims, row = [], [], 0
    for batch in iter_batches(source, size, batch_size, progress=progress, desc="checking round trip"):
        decoded = to_uint8_hwc(decode(torch.from_numpy(latents[row : row + len(batch.images)])))
        row += len(batch.images)
        psnrs.append(psnr(decoded, batch.images))
        ssims.append(ssim(decoded, batch.images))
    sizes = [source.byte_size(i) for i in range(len(source.keys()))]
    input_bytes = sum(sizes) if sizes and all(s is not None for s in sizes) else None
    return float(np.concatenate(psnrs).mean()), float(np.concatenate(ssims).mean()), input_bytes


# --- commands ----------------------------------------------------------------------------------------


@hookimpl
def register_commands(register):
    from .commands import compress, decompress

    register(compress)
    register(decompress)


def output_names(names: list[str], faces=None) -> list[str]:
    """Safe, unique relative PNG paths for source names (no absolute paths, no '..'), each part short enough
    for the file system; repeats get ~1, ~2... (``aekit.paths.unique_names``, which never gives a name twice).

    `faces` (a latent file's ``face`` column): a latent named ``IMAGE#N`` with face N >= 0 is written as
    ``IMAGE-N.png`` (as `aekit faces` names the faces of a photo).
    """
    from aekit.paths import unique_names

    safe = []
    for row, name in enumerate(names):
        suffix = ""
        if faces is not None and int(faces[row]) >= 0 and name.endswith(f"#{int(faces[row])}"):
            name, suffix = name[: -len(f"#{int(faces[row])}")], f"-{int(faces[row])}"
        name = name.replace("\0", "_")  # names come from a file anyone may have written
        try:
            name.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate, which no file name can hold
            name = name.encode("utf-8", "replace").decode("utf-8")
        parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("/", "..", ".", "")]
        stem = str(PurePosixPath(*parts).with_suffix("")) if parts else "image"
        safe.append(f"{stem}{suffix}.png")
    return unique_names(safe)


def _subset(source, names):
    from aekit.data import SubsetSource

    keys = source.keys()
    if len(names) == len(keys):
        return source
    position = {k: i for i, k in enumerate(keys)}
    return SubsetSource(source, [position[n] for n in names])


# --- `aekit demo` ------------------------------------------------------------------------------------


@hookimpl
def register_demos(register):
    from . import demo  # light: numpy; its work imports what it needs

    register("compress", demo.run, help="the latent round trip against JPEG: a table and a grid", order=10)


# the codec's bitstream .npz (a ``codec`` model's `aekit compress`): format and Python API in bitstreams.py
from .bitstreams import (BitstreamFileError, CodedFaces, CodingResult, code_faces, is_bitstream_file,  # noqa: E402
                         load_bitstreams, save_bitstreams)
