"""The features file that ``aekit embed`` writes, and ``aekit.load_features`` to read it for scikit-learn.

A features file is a plain ``.npz`` (``np.load(path, allow_pickle=False)`` reads it; nothing is pickled):

===============  ==================================================================================
``features``     (N, D) float32: one feature vector per image (the feature set ``meta`` names)
``paths``        (N,) str: the image names as the source gave them (relative to an input folder,
                 a file name as given, ``synthetic-0-000012``, ...)
``files``        (N,) str: the absolute file of each image, ``""`` for images that are not files
``labels``       optional, int64: (N,) for one label column, (N, L) for several; ``-1`` = unknown
``label_names``  optional, (L,) str: the label columns' names (always 1-D, also for one column)
``photo``        optional, (N,) str: the image (photo) each row came from, as the source named it
``face``         optional, (N,) int64: the face's index in that photo (largest first; -1: the whole
                 image, used as it is)
``box``          optional, (N, 4) float32: the face's box in the photo's pixels, x y width height
                 (NaN for a whole image); ``aekit embed --align`` writes these three
                 (``aekit.alignment.placement_columns``); files without them read as whole images
``model_id``     () str: ``aekit.model_fingerprint`` of the model that made the features
``meta``         () str: JSON: ``format`` ("aekit-features"), ``format_version``, the model
                 (``model``, ``architecture``, ``config``, ``image_size``), ``feature_set`` (e.g.
                 ``multiscale``, ``latent``) and its ``dimension`` D, the
                 ``inputs`` as given and the ``cwd`` they were relative to, ``label_sources``
                 (name -> where it came from) and ``label_classes`` (name -> class names, for
                 labels whose values index a list of names, such as class subfolders), and
                 ``align`` (``auto``, ``on`` or ``off``: how faces were found; files without it: off)
===============  ==================================================================================

In Python::

    feats = aekit.load_features("feats.npz")
    feats.X, feats.y, feats.label_names, feats.paths     # ready for scikit-learn
    feats.feature_set, feats.model_id                    # which features, of which model
    feats.photo, feats.face, feats.box                   # where each row came from (face -1: the whole image)
    y = feats.target("Male")                             # one label column by name
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import io
from ._version import __version__
from .arrays import read_npz
from .checkpoint import architecture_name, model_fingerprint
from .errors import AekitError
from .validate import parse_json

FORMAT = "aekit-features"
FORMAT_VERSION = 1
UNKNOWN = -1  # a label value meaning "not known for this image"


class FeatureFileError(AekitError):
    """A features file is missing, damaged, or not an aekit features file."""


class UnknownLabelError(FeatureFileError, KeyError):
    """A label name that the features file does not have (the message lists the known ones)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass
class Features:
    """What `load_features` returns: ``X`` (N, D) float32, ``y`` (None, (N,) or (N, L) int64), names."""

    X: np.ndarray
    y: np.ndarray | None
    label_names: list[str]
    paths: list[str]
    files: list[str] = field(default_factory=list)
    model_id: str = ""
    meta: dict = field(default_factory=dict)
    source: str = ""
    photo: list[str] | None = None  # None: each row is a whole image (paths)
    face: np.ndarray | None = None  # (N,) int64, -1 = the whole image
    box: np.ndarray | None = None  # (N, 4) float32 x, y, width, height; NaN for a whole image

    def __post_init__(self):
        n = len(self.paths)
        if self.photo is None:
            self.photo = list(self.paths)
        if self.face is None:
            self.face = np.full(n, -1, dtype=np.int64)
        if self.box is None:
            self.box = np.full((n, 4), np.nan, dtype=np.float32)

    @property
    def feature_set(self) -> str:
        """Which feature set the file holds (``aekit embed --features``); files without the field hold latents."""
        return str(self.meta.get("feature_set", "latent"))

    def __len__(self) -> int:
        return len(self.X)

    @property
    def align(self) -> str:
        """How the rows' faces were found (``aekit embed --align``): auto, on or off (files from before it: off)."""
        return str(self.meta.get("align") or "off")

    @property
    def classes(self) -> dict[str, list[str]]:
        """Class names of the label columns whose values index a list of names (e.g. class subfolders)."""
        return dict(self.meta.get("label_classes") or {})

    @property
    def labels(self) -> dict[str, np.ndarray]:
        """Every label column by name (each (N,) int64; -1 = unknown)."""
        return {name: self.target(name) for name in self.label_names}

    def target(self, name: str, as_names: bool = False) -> np.ndarray:
        """One label column, (N,) int64 (-1 = unknown); `as_names` gives class names where the label has them."""
        if name not in self.label_names:
            known = ", ".join(self.label_names) if self.label_names else "none: embed with labels to get some"
            where = f"{self.source}: " if self.source else ""
            raise UnknownLabelError(f"{where}no label {name!r} (labels: {known})")
        column = self.y if self.y.ndim == 1 else self.y[:, self.label_names.index(name)]
        if not as_names or name not in self.classes:
            return column
        names = np.asarray(list(self.classes[name]) + ["unknown"], dtype=object)
        return names[np.where(column < 0, len(names) - 1, column)]

    def to_frame(self):
        """A pandas DataFrame: the features as ``ae0..`` columns, then the labels, indexed by path."""
        import pandas as pd  # deferred: pandas is optional here and slow to import (0.4 s)

        frame = pd.DataFrame(self.X, columns=[f"ae{i}" for i in range(self.X.shape[1])], index=pd.Index(self.paths, name="path"))
        for name in self.label_names:
            frame[name] = self.target(name)
        return frame


def load_features(path) -> Features:
    """Read a features ``.npz`` written by ``aekit embed`` (never unpickling anything)."""
    path = Path(path)
    arrays = read_npz(path, "features .npz", FeatureFileError)
    missing = [k for k in ("features", "paths", "model_id", "meta") if k not in arrays]
    if missing:
        hint = "; it is a latent file from `aekit compress`, make features with `aekit embed`" if "latents" in arrays else ""
        raise FeatureFileError(f"{path}: not an aekit features file (missing {', '.join(missing)}){hint}")
    meta = parse_json(str(arrays["meta"]), f"{path}: damaged metadata", FeatureFileError)  # deep nesting too: one line
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise FeatureFileError(f"{path}: not an aekit features file (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise FeatureFileError(f"{path}: written by a newer aekit (features format {meta['format_version']}); upgrade aekit")
    X = arrays["features"]
    paths = [str(p) for p in arrays["paths"]]
    if X.ndim != 2 or X.dtype.kind != "f" or len(X) != len(paths):
        raise FeatureFileError(f"{path}: {len(paths)} paths for features of shape {X.shape} ({X.dtype})")
    if not np.isfinite(X).all():
        raise FeatureFileError(f"{path}: features contain NaN or infinite values")
    files = [str(p) for p in arrays["files"]] if "files" in arrays else [""] * len(paths)
    y, label_names = arrays.get("labels"), [str(n) for n in arrays.get("label_names", np.zeros(0, str))]
    if y is not None:
        columns = 1 if y.ndim == 1 else (y.shape[1] if y.ndim == 2 else -1)
        if len(y) != len(X) or columns != len(label_names) or y.dtype.kind not in "iu":
            raise FeatureFileError(f"{path}: labels of shape {y.shape} do not fit {len(X)} images and {len(label_names)} label names")
        y = y.astype(np.int64, copy=False)
    elif label_names:
        raise FeatureFileError(f"{path}: label names without labels")
    photo, face, box = _placements(arrays, len(paths), path)
    return Features(X.astype(np.float32, copy=False), y, label_names, paths, files, str(arrays["model_id"]), meta, str(path),
                    photo, face, box)


def _placements(arrays, n: int, path) -> tuple[list[str] | None, np.ndarray | None, np.ndarray | None]:
    """The optional ``photo``, ``face`` and ``box`` columns, checked (None where a file has none)."""
    photo = face = box = None
    if "photo" in arrays:
        if arrays["photo"].shape != (n,):
            raise FeatureFileError(f"{path}: photo column of shape {arrays['photo'].shape} does not fit {n} images")
        photo = [str(p) for p in arrays["photo"]]
    if "face" in arrays:
        face = arrays["face"]
        if face.shape != (n,) or face.dtype.kind not in "iu":
            raise FeatureFileError(f"{path}: face column of shape {face.shape} ({face.dtype}) does not fit {n} images")
        face = face.astype(np.int64, copy=False)
    if "box" in arrays:
        box = arrays["box"]
        if box.shape != (n, 4) or box.dtype.kind != "f":
            raise FeatureFileError(f"{path}: box column of shape {box.shape} ({box.dtype}) does not fit {n} images")
        box = box.astype(np.float32, copy=False)
    return photo, face, box


def save_features(path, features: np.ndarray, paths, model, labels: dict[str, np.ndarray] | None = None,
                  files=None, meta: dict | None = None, label_classes: dict[str, list[str]] | None = None,
                  feature_set: str = "latent", placements: dict[str, np.ndarray] | None = None) -> None:
    """Write a features ``.npz`` atomically (see the module docstring for the format).

    `labels` maps label names to (N,) integer columns (-1 = unknown); `label_classes` gives the
    class names of the columns whose values index a list of names. `meta` adds JSON-able fields.
    `placements` (``aekit.alignment.placement_columns``: ``photo``, ``face``, ``box``) says where
    each row came from; without it the file has no such columns (each row is read as a whole image).
    """
    features = np.asarray(features, dtype=np.float32)
    paths = [str(p) for p in paths]
    if features.ndim != 2 or len(features) != len(paths):
        raise FeatureFileError(f"need (N, D) features and N paths, got {features.shape} and {len(paths)} paths")
    if not np.isfinite(features).all():
        raise FeatureFileError("features contain NaN or infinite values")
    files = [str(f) for f in files] if files is not None else [""] * len(paths)
    labels = dict(labels or {})
    arrays = {"features": features, "paths": np.asarray(paths, dtype=str), "files": np.asarray(files, dtype=str)}
    if labels:
        columns = [np.asarray(v, dtype=np.int64).reshape(-1) for v in labels.values()]
        if any(len(c) != len(paths) for c in columns):
            raise FeatureFileError(f"every label column needs {len(paths)} values")
        arrays["labels"] = columns[0] if len(columns) == 1 else np.stack(columns, axis=1)
        arrays["label_names"] = np.asarray(list(labels), dtype=str)
    for name, value in (placements or {}).items():
        if name not in ("photo", "face", "box"):
            raise FeatureFileError(f"unknown placement column {name!r} (photo, face, box)")
        value = np.asarray(value, dtype={"photo": str, "face": np.int64, "box": np.float32}[name])
        if len(value) != len(paths) or value.shape[1:] != ((4,) if name == "box" else ()):
            raise FeatureFileError(f"the {name} column needs {len(paths)} rows, got shape {value.shape}")
        arrays[name] = value
    config = model.config.to_dict()
    info = {"format": FORMAT, "format_version": FORMAT_VERSION, "aekit_version": __version__,
            "architecture": architecture_name(model), "config": config, "image_size": config.get("image_size"),
            "latent_dim": int(features.shape[1]), "feature_set": feature_set, "dimension": int(features.shape[1]),
            **(meta or {}),
            "label_classes": {k: [str(c) for c in v] for k, v in (label_classes or {}).items() if k in labels}}
    arrays["model_id"] = np.asarray(model_fingerprint(model))
    arrays["meta"] = np.asarray(json.dumps(info, default=io.json_default))
    with io.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:  # a handle: np.savez would add ".npz" to the temporary name
            np.savez(fh, **arrays)


__all__ = ["FORMAT", "FORMAT_VERSION", "FeatureFileError", "Features", "UNKNOWN", "UnknownLabelError", "load_features", "save_features"]
