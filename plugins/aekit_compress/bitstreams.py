"""The codec's ``.npz``: one entropy-coded bitstream per face (``aekit compress`` with a ``codec`` model).

Readable with ``np.load(path, allow_pickle=False)``; every array is plain:

=================  =====================================================================================
``format``         ``"aekit-codec"`` (what tells it from a latent ``.npz``)
``format_version`` 1
``codec``          the model's architecture (``"codec"``)
``model_id``       ``aekit.model_fingerprint(model)``: decompress refuses another model's bitstreams
``model_name``     the installed pretrained model's name that made it, or ``""``: where decompress looks first
``quality``        (N,) uint8: each face's quality (1 = the lowest rate)
``streams``        (B,) uint8: every face's bitstream, one after the other
``offsets``        (N + 1,) int64: face i is ``streams[offsets[i]:offsets[i + 1]]``
``crc32``          (N,) uint32: CRC-32 of each face's quality byte and bitstream, checked before decoding
``names``          (N,) the source names
``meta``           JSON: the format, the image size, the architecture and config, the latent's shape, and
                   ``target_bytes`` (``--bytes``) or ``align`` when given
``photo`` ...      optional ``photo`` / ``face`` / ``box``, as in a latent file (``--align``)
=================  =====================================================================================

Bytes per face are counted two ways: the bitstreams alone (``offsets[-1] / N``) and the whole file over N.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aekit.errors import AekitError
from aekit.validate import parse_json

CODEC_FORMAT = "aekit-codec"
CODEC_FORMAT_VERSION = 1
REQUIRED = ("format", "format_version", "codec", "model_id", "model_name", "quality", "streams", "offsets", "crc32",
            "names", "meta")


class BitstreamFileError(AekitError):
    """A codec .npz is damaged, incomplete, or made by another model."""


@dataclass
class CodedFaces:
    """What `load_bitstreams` returns: each face's bitstream and quality, their names and the file's metadata."""

    streams: list[bytes]
    quality: np.ndarray  # (N,) int, 1-based
    names: list[str]
    model_id: str
    model_name: str
    meta: dict
    placements: dict[str, np.ndarray] | None = None

    @property
    def stream_bytes(self) -> int:
        return sum(len(s) for s in self.streams)


def face_crc(quality: int, stream: bytes) -> int:
    """The CRC-32 a face's bitstream is stored with: over its quality byte, then its bytes."""
    return zlib.crc32(stream, zlib.crc32(bytes([int(quality)])))


def is_bitstream_file(arrays: dict) -> bool:
    """Whether the arrays of an .npz are a codec file (they name its format), not a latent file."""
    value = arrays.get("format")
    return value is not None and value.ndim == 0 and value.dtype.kind == "U" and str(value) == CODEC_FORMAT


def save_bitstreams(path, streams: list[bytes], quality, names, model, model_name: str = "", placements=None,
                    extra_meta: dict | None = None) -> int:
    """Write a codec .npz atomically; returns the file's size in bytes."""
    from aekit import io, model_fingerprint
    from aekit.checkpoint import architecture_name

    from . import PLACEMENT_KEYS, _checked_placements

    names = [str(n) for n in names]
    quality = np.asarray(quality, dtype=np.int64).reshape(-1)
    if not (len(streams) == len(names) == len(quality)):
        raise BitstreamFileError(f"{len(streams)} bitstreams, {len(quality)} qualities and {len(names)} names")
    if len(quality) and (quality.min() < 1 or quality.max() > 255):
        raise BitstreamFileError("qualities must be from 1 to 255")
    columns = _checked_placements(placements, len(names), path, BitstreamFileError)
    offsets = np.zeros(len(streams) + 1, np.int64)
    np.cumsum([len(s) for s in streams], out=offsets[1:])
    cfg = model.config
    meta = {"format": CODEC_FORMAT, "format_version": CODEC_FORMAT_VERSION, "image_size": cfg.image_size,
            "architecture": architecture_name(model), "config": cfg.to_dict(), "latent_shape": list(cfg.latent_shape),
            **(extra_meta or {})}
    arrays = dict(format=np.asarray(CODEC_FORMAT), format_version=np.asarray(CODEC_FORMAT_VERSION),
                  codec=np.asarray(architecture_name(model)), model_id=np.asarray(model_fingerprint(model)),
                  model_name=np.asarray(model_name or ""), quality=quality.astype(np.uint8),
                  streams=np.frombuffer(b"".join(streams), np.uint8), offsets=offsets,
                  crc32=np.asarray([face_crc(q, s) for q, s in zip(quality, streams)], np.uint32),
                  names=np.asarray(names, dtype=str), meta=np.asarray(json.dumps(meta)))
    if columns:
        arrays.update({k: columns[k] for k in PLACEMENT_KEYS})
    with io.atomic_path(path) as tmp:
        # deflated: names, offsets and CRCs would cost ~60 bytes a face stored plain, ~11 deflated (the streams
        # themselves do not shrink); a handle, since np.savez_compressed would add ".npz" to the temporary name
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return Path(path).stat().st_size


def load_bitstreams(path, arrays: dict | None = None) -> CodedFaces:
    """Read a codec .npz (never unpickling) and check it whole: every array's type and shape, the offsets, and
    each face's CRC-32; anything wrong is a BitstreamFileError naming the file (and the face)."""
    from aekit.arrays import read_npz

    from . import PLACEMENT_KEYS, _placement_problem

    path = Path(path)
    arrays = arrays if arrays is not None else read_npz(path, "codec .npz", BitstreamFileError)
    if not is_bitstream_file(arrays):
        raise BitstreamFileError(f"{path}: not an aekit codec file (no \"format\": \"{CODEC_FORMAT}\")")
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise BitstreamFileError(f"{path}: damaged codec file (missing {', '.join(missing)})")
    version = arrays["format_version"]
    if version.ndim != 0 or version.dtype.kind not in "iu":
        raise BitstreamFileError(f"{path}: damaged codec file (format_version is not a whole number)")
    if int(version) > CODEC_FORMAT_VERSION:
        raise BitstreamFileError(f"{path}: written by a newer aekit (codec file format {int(version)}, this aekit "
                                 f"reads up to {CODEC_FORMAT_VERSION}); upgrade aekit")
    model_id, model_name = _text(arrays, "model_id", path), _text(arrays, "model_name", path)
    _text(arrays, "codec", path)
    meta = parse_json(_text(arrays, "meta", path), f"{path}: damaged metadata", BitstreamFileError)
    if not isinstance(meta, dict):
        raise BitstreamFileError(f"{path}: damaged metadata (not a JSON object)")
    names_array, quality, streams, offsets, crcs = (arrays[k] for k in ("names", "quality", "streams", "offsets", "crc32"))
    if names_array.ndim != 1 or names_array.dtype.kind != "U":
        raise BitstreamFileError(f"{path}: names must be a 1-D array of text, got {names_array.dtype} {names_array.shape}")
    n = len(names_array)
    checks = [(quality, np.uint8, (n,)), (offsets, np.int64, (n + 1,)), (crcs, np.uint32, (n,))]
    for array, dtype, shape in checks:
        if array.dtype != dtype or array.shape != shape:
            key = next(k for k in ("quality", "offsets", "crc32") if arrays[k] is array)
            raise BitstreamFileError(f"{path}: {key} must be {np.dtype(dtype).name} of shape {shape}, got "
                                     f"{array.dtype} {array.shape} (damaged or not an aekit codec file)")
    if streams.dtype != np.uint8 or streams.ndim != 1:
        raise BitstreamFileError(f"{path}: streams must be a 1-D uint8 array, got {streams.dtype} {streams.shape}")
    if offsets[0] != 0 or offsets[-1] != len(streams) or (np.diff(offsets) < 0).any():
        raise BitstreamFileError(f"{path}: the offsets do not cut the {len(streams)} stream bytes into {n} faces "
                                 "(truncated or damaged)")
    names = [str(v) for v in names_array]
    data = streams.tobytes()
    cut = [data[offsets[i] : offsets[i + 1]] for i in range(n)]
    for i, (q, stream) in enumerate(zip(quality, cut)):
        if face_crc(int(q), stream) != int(crcs[i]):
            raise BitstreamFileError(f"{path}: face {i} ({names[i]}): its bitstream is damaged (CRC-32 mismatch); "
                                     "nothing decoded")
    placements = None
    present = [k for k in PLACEMENT_KEYS if k in arrays]
    if present:
        if len(present) != len(PLACEMENT_KEYS):
            raise BitstreamFileError(f"{path}: {', '.join(present)} without the rest of photo, face, box")
        placements = {k: arrays[k] for k in PLACEMENT_KEYS}
        problem = _placement_problem(placements, n)
        if problem:
            raise BitstreamFileError(f"{path}: {problem}")
    return CodedFaces(cut, quality.astype(np.int64), names, model_id, model_name, meta, placements)


def _text(arrays: dict, key: str, path) -> str:
    value = arrays[key]
    if value.ndim != 0 or value.dtype.kind != "U":
        raise BitstreamFileError(f"{path}: {key!r} must be a text scalar, got {value.dtype} {value.shape}")
    return str(value)


def check_model(coded: CodedFaces, model, path) -> None:
    """BitstreamFileError unless `model` made the file (same fingerprint) and can decode its qualities."""
    from aekit import model_fingerprint

    own = model_fingerprint(model)
    if own != coded.model_id:
        where = getattr(model, "checkpoint_dir", None) or "this model"
        raise BitstreamFileError(f"{path}: made by model {coded.model_id}, not by {where} ({own}); decompress with "
                                 "the model that compressed it")
    if len(coded.quality) and int(coded.quality.max()) > model.config.qualities:
        raise BitstreamFileError(f"{path}: a face at quality {int(coded.quality.max())}, the model has "
                                 f"{model.config.qualities}")


@dataclass
class CodingResult:
    """What `code_faces` returns: a bitstream and a quality per face; with a byte target, each quality's mean size."""

    streams: list[bytes]
    quality: np.ndarray  # (N,) int, 1-based
    sizes: np.ndarray | None = None  # (N, Q) bytes of each face at each quality (--bytes only)


def code_faces(model, images, quality: int | None = None, target_bytes: float | None = None, decode=None,
               batch_size: int = 256, latents=None) -> CodingResult:
    """Bitstreams of `images` (as ``model.encode`` takes them) at one `quality` (default: the model's), or, with
    `target_bytes`, a quality per face so that the mean bitstream is about that long: each face is coded and decoded
    (`decode`: the synthesis, default ``model.decode``) at every quality, then ``aekit.codec.choose_qualities``
    spends the bytes where they lower the squared error most. `latents`: ``model.coding_latents(images)``, when
    already computed."""
    from aekit.codec import choose_qualities
    from aekit.model import as_model_input

    latents = model.coding_latents(images, batch_size) if latents is None else latents
    n = len(latents)
    if target_bytes is None:
        q = int(quality or model.config.default_quality)
        model._qualities(q, 1)  # a quality the model does not have: a CodecError naming the range
        return CodingResult(model.encode_streams(model.symbols(latents, q), q), np.full(n, q, np.int64))
    decode = decode or model.decode
    x = as_model_input(images, model.config.image_size)
    qualities = model.config.qualities
    sizes, errors, coded = np.zeros((n, qualities)), np.zeros((n, qualities)), []
    for q in range(1, qualities + 1):
        symbols = model.symbols(latents, q)
        streams = model.encode_streams(symbols, q)
        decoded = decode(model.dequantized(symbols, q), batch_size=batch_size).float()
        errors[:, q - 1] = ((decoded - x) / 2).pow(2).flatten(1).mean(1).numpy()
        sizes[:, q - 1] = [len(s) for s in streams]
        coded.append(streams)
    choice = choose_qualities(sizes, errors, float(target_bytes))
    return CodingResult([coded[c][i] for i, c in enumerate(choice)], choice.astype(np.int64) + 1, sizes)
