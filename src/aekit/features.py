"""The features file that ``aekit embed`` writes, and ``aekit.load_features`` to read it for scikit-learn.

A features file is a plain ``.npz`` (``np.load(path, allow_pickle=False)`` reads it; nothing is pickled):

===============  ==================================================================================
``features``     (N, D) float32: one feature vector per image (the feature set ``meta`` names)
``paths``        (N,) str: the image names as the source gave them (relative to an input folder,
                 a file name as given, ``synthetic-0-000012``, ...)
``files``        (N,) str: the absolute file of each image, ``""`` for images that are not files
``labels``       optional, int64: (N,) for one label column, (N, L) for several; ``-1`` = unknown
``label_names``  optional, (L,) str: the label columns' names (always 1-D, also for one column)
``model_id``     () str: ``aekit.model_fingerprint`` of the model that made the features
``meta``         () str: JSON: ``format`` ("aekit-features"), ``format_version``, the model
                 (``model``, ``architecture``, ``config``, ``image_size``), ``feature_set`` (e.g.
                 ``multiscale``, ``latent``) and its ``dimension`` D, the
                 ``inputs`` as given and the ``cwd`` they were relative to, ``label_sources``
                 (name -> where it came from) and ``label_classes`` (name -> class names, for
                 labels whose values index a list of names, such as class subfolders)
===============  ==================================================================================

In Python::

    feats = aekit.load_features("feats.npz")
    feats.X, feats.y, feats.label_names, feats.paths     # ready for scikit-learn
    feats.feature_set, feats.model_id                    # which features, of which model
    y = feats.target("Male")                             # one label column by name
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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

    @property
    def feature_set(self) -> str:
        """Which feature set the file holds (``aekit embed --features``); files without the field hold latents."""
        return str(self.meta.get("feature_set", "latent"))

    def __len__(self) -> int:
        return len(self.X)

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
        import pandas as pd

        frame = pd.DataFrame(self.X, columns=[f"ae{i}" for i in range(self.X.shape[1])], index=pd.Index(self.paths, name="path"))
        for name in self.label_names:
            frame[name] = self.target(name)
        return frame


def load_features(path) -> Features:
    """Read a features ``.npz`` written by ``aekit embed`` (never unpickling anything)."""
    from .arrays import read_npz

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
    return Features(X.astype(np.float32, copy=False), y, label_names, paths, files, str(arrays["model_id"]), meta, str(path))


def save_features(path, features: np.ndarray, paths, model, labels: dict[str, np.ndarray] | None = None,
                  files=None, meta: dict | None = None, label_classes: dict[str, list[str]] | None = None,
                  feature_set: str = "latent") -> None:
    """Write a features ``.npz`` atomically (see the module docstring for the format).

    `labels` maps label names to (N,) integer columns (-1 = unknown); `label_classes` gives the
    class names of the columns whose values index a list of names. `meta` adds JSON-able fields.
    """
    from . import __version__, io
    from .checkpoint import architecture_name, model_fingerprint

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
