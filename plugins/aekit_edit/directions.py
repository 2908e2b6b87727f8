"""Latent directions: one per labelled attribute, plus the principal axes of the latents; their file.

A direction is a vector in latent space scaled so that an amount of 1 means "the typical gap":

- an attribute direction (``Smiling``) moves a latent by the difference between the mean latent of
  the faces that have the attribute and the mean latent of those that do not (``method="mean"``),
  or along a logistic classifier's normal, scaled to the same gap projected on it
  (``method="logistic"``);
- a principal axis (``pc1``, ``pc2``, ...) is an eigenvector of the latents' covariance scaled by
  its standard deviation, so ``pc1=2`` moves two standard deviations along the largest axis.

The file ``directions.safetensors`` sits beside the checkpoint (like the priors): the vectors and
the latents' mean as tensors; the names, kinds, per-direction details, the fitting information and
the model's fingerprint as string metadata. Directions fitted for another model are refused.
Nothing is pickled.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aekit.errors import AekitError, first_line
from aekit.validate import parse_json

DIRECTIONS_FILE = "directions.safetensors"
DIRECTIONS_FORMAT = "aekit-directions"
DIRECTIONS_FORMAT_VERSION = 1
METHODS = ("mean", "logistic")
ATTRIBUTE, PRINCIPAL = "attribute", "principal"
MIN_PER_CLASS = 5  # fewer faces on one side give a direction made of noise
DEFAULT_AXES = 10
FIT_SEED = 0
_EDIT = re.compile(r"^(?P<name>[^=]+)=\s*(?P<amount>[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)$")


class DirectionsError(AekitError):
    """Directions are missing, damaged, unknown, or were fitted for another model."""


@dataclass
class LatentDirections:
    """Named latent directions: ``vectors[i]`` is the direction called ``names[i]`` (amount 1 = one gap)."""

    names: list[str]
    kinds: list[str]
    vectors: np.ndarray  # (K, d) float32
    mean: np.ndarray  # (d,) float32: the mean latent of the faces they were fitted on
    details: list[dict] = field(default_factory=list)  # per direction: faces with/without, accuracy, std...
    info: dict = field(default_factory=dict)  # the source, number of images, method

    def __post_init__(self):
        self.vectors = np.asarray(self.vectors, dtype=np.float32).reshape(len(self.names), -1)
        self.mean = np.asarray(self.mean, dtype=np.float32).reshape(-1)
        if not self.details:
            self.details = [{} for _ in self.names]
        if not (len(self.names) == len(self.kinds) == len(self.vectors) == len(self.details)):
            raise DirectionsError("names, kinds, vectors and details must have one entry per direction")
        if len(set(self.names)) != len(self.names):
            raise DirectionsError("direction names must be unique")

    @property
    def latent_dim(self) -> int:
        return int(self.mean.shape[0])

    def named(self, kind: str) -> list[str]:
        return [n for n, k in zip(self.names, self.kinds) if k == kind]

    def vector(self, name: str) -> np.ndarray:
        """The direction called `name` (case-insensitive), DirectionsError listing the known ones otherwise."""
        return self.vectors[self.index(name)]

    def index(self, name: str) -> int:
        if name in self.names:
            return self.names.index(name)
        folded = {n.lower(): i for i, n in enumerate(self.names)}
        if name.lower() in folded:
            return folded[name.lower()]
        raise DirectionsError(f"no direction {name!r}; known: {_listing(self.names)}")

    def apply(self, latents, edits) -> np.ndarray:
        """Latents moved by ``sum(amount * vector)`` over `edits` ({name: amount} or [(name, amount)])."""
        z = np.array(latents, dtype=np.float32, copy=True)
        if z.shape[-1] != self.latent_dim:
            raise DirectionsError(f"latents have {z.shape[-1]} dimensions, the directions {self.latent_dim}")
        for name, amount in (edits.items() if isinstance(edits, dict) else edits):
            if not math.isfinite(float(amount)):
                raise DirectionsError(f"{name}: the amount must be a finite number, got {amount}")
            z += np.float32(amount) * self.vector(name)
        return z

    def sweep(self, latent, name: str, amounts) -> np.ndarray:
        """(len(amounts), d): one latent moved by each amount along `name`."""
        base = np.asarray(latent, dtype=np.float32).reshape(1, -1)
        return np.concatenate([self.apply(base, {name: a}) for a in amounts])


def _listing(names, limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "") if names else "(none)"


def parse_edit(text: str) -> tuple[str, float]:
    """``NAME=AMOUNT`` -> (NAME, AMOUNT); DirectionsError for anything else."""
    match = _EDIT.match(str(text).strip())
    if not match:
        raise DirectionsError(f"{text!r}: expected NAME=AMOUNT, e.g. Smiling=1.5 or pc1=-2")
    amount = float(match["amount"])
    if not math.isfinite(amount):
        raise DirectionsError(f"{text!r}: the amount must be a finite number")
    return match["name"].strip(), amount


# --- fitting -------------------------------------------------------------------------------------------


def _check_latents(latents) -> np.ndarray:
    z = np.asarray(latents, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 1:
        raise DirectionsError(f"latents must be a 2-D (N, d) array, got shape {z.shape}")
    if len(z) < 2:
        raise DirectionsError(f"need at least 2 latents to fit directions, got {len(z)}")
    if not np.isfinite(z).all():
        raise DirectionsError("latents contain NaN or infinite values; is the model broken?")
    return z


def binary_attributes(attributes: dict) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The 0/1 columns (-1 = unknown) of an attributes dict, and why each other column was left out."""
    kept, left_out = {}, {}
    for name, column in attributes.items():
        values = np.asarray(column).reshape(-1)
        known = set(np.unique(values[values >= 0]).tolist())
        if known <= {0, 1}:
            kept[name] = values.astype(np.int8)
        else:
            left_out[name] = f"not a 0/1 column (values {sorted(known)[:5]})"
    return kept, left_out


def attribute_direction(latents: np.ndarray, labels: np.ndarray, method: str = "mean") -> tuple[np.ndarray, dict]:
    """One attribute's direction (d,) and its details; DirectionsError when a side has too few faces."""
    if method not in METHODS:
        raise DirectionsError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    z = _check_latents(latents)
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(z):
        raise DirectionsError(f"{len(labels)} labels for {len(z)} latents")
    positive, negative = labels == 1, labels == 0
    n_pos, n_neg = int(positive.sum()), int(negative.sum())
    if min(n_pos, n_neg) < MIN_PER_CLASS:
        raise DirectionsError(f"{n_pos} faces with it and {n_neg} without; need at least {MIN_PER_CLASS} on each side")
    gap = z[positive].mean(axis=0) - z[negative].mean(axis=0)
    details = {"with": n_pos, "without": n_neg}
    if method == "mean":
        vector = gap
    else:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        known = positive | negative
        scaler = StandardScaler().fit(z[known])
        classifier = LogisticRegression(C=0.1, max_iter=2000).fit(scaler.transform(z[known]), labels[known])
        normal = classifier.coef_[0] / scaler.scale_  # back to latent units
        normal /= np.linalg.norm(normal) or 1.0
        vector = normal * float(gap @ normal)  # amount 1 moves by the class-mean gap along the normal
        details["train_accuracy"] = round(float(classifier.score(scaler.transform(z[known]), labels[known])), 4)
    # how well the direction separates the two sides on its own (a sanity number for `directions list`)
    unit = vector / (np.linalg.norm(vector) or 1.0)
    projected = z @ unit
    threshold = 0.5 * (projected[positive].mean() + projected[negative].mean())
    details["separation_accuracy"] = round(float(((projected > threshold) == positive)[positive | negative].mean()), 4)
    details["norm"] = round(float(np.linalg.norm(vector)), 6)
    return vector.astype(np.float32), details


def principal_axes(latents, count: int = DEFAULT_AXES) -> tuple[np.ndarray, list[dict]]:
    """The `count` largest principal axes (count, d), each scaled by its standard deviation."""
    z = _check_latents(latents)
    count = max(0, min(int(count), z.shape[1]))
    cov = np.cov(z, rowvar=False).reshape(z.shape[1], z.shape[1])
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][:count]
    total = float(values.clip(min=0).sum()) or 1.0
    axes, details = [], []
    for i in order:
        std = math.sqrt(max(float(values[i]), 0.0))
        v = vectors[:, i]
        v = v * (1.0 if v[np.argmax(np.abs(v))] >= 0 else -1.0)  # a fixed sign, so pc1 means the same each fit
        axes.append(v * std)
        details.append({"std": round(std, 6), "explained_variance": round(float(values[i]) / total, 6)})
    return np.asarray(axes, dtype=np.float32).reshape(count, z.shape[1]), details


def fit_directions(latents, attributes: dict | None = None, method: str = "mean", axes: int = DEFAULT_AXES,
                   info: dict | None = None) -> tuple[LatentDirections, dict[str, str]]:
    """Directions for every 0/1 attribute with enough faces on both sides, plus `axes` principal axes.

    Returns the directions and {attribute: why it was left out} for the others.
    """
    z = _check_latents(latents)
    kept, left_out = binary_attributes(attributes or {})
    names, kinds, vectors, details = [], [], [], []
    for name, column in kept.items():
        if len(column) != len(z):
            raise DirectionsError(f"attribute {name!r} has {len(column)} values for {len(z)} latents")
        try:
            vector, detail = attribute_direction(z, column, method)
        except DirectionsError as exc:
            left_out[name] = str(exc)
            continue
        names.append(name), kinds.append(ATTRIBUTE), vectors.append(vector), details.append(detail)
    pcs, pc_details = principal_axes(z, axes)
    for i, (vector, detail) in enumerate(zip(pcs, pc_details), start=1):
        names.append(f"pc{i}"), kinds.append(PRINCIPAL), vectors.append(vector), details.append(detail)
    if not names:
        raise DirectionsError("nothing to fit: no 0/1 attribute with enough faces and no principal axis asked for")
    fitted = LatentDirections(names=names, kinds=kinds, vectors=np.asarray(vectors), mean=z.mean(axis=0),
                              details=details, info={"method": method, "images": len(z), **(info or {})})
    return fitted, left_out


# --- the file ------------------------------------------------------------------------------------------


def directions_path(directory) -> Path:
    return Path(directory) / DIRECTIONS_FILE


def save_directions(directions: LatentDirections, path, fingerprint: str) -> Path:
    """Write the directions atomically as safetensors, tagged with the model's fingerprint."""
    from safetensors.numpy import save_file

    from aekit import io

    path = Path(path)
    metadata = {
        "format": DIRECTIONS_FORMAT,
        "format_version": str(DIRECTIONS_FORMAT_VERSION),
        "model_fingerprint": fingerprint,
        "names": json.dumps(directions.names),
        "kinds": json.dumps(directions.kinds),
        "details": json.dumps(directions.details, default=io.json_default),
        "info": json.dumps(directions.info, default=io.json_default),
    }
    tensors = {"vectors": np.ascontiguousarray(directions.vectors), "mean": np.ascontiguousarray(directions.mean)}
    with io.atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def read_directions(path, fingerprint: str | None = None) -> LatentDirections:
    """The directions in `path`; refuses another model's file when `fingerprint` is given."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="np") as fh:
            metadata = dict(fh.metadata() or {})
            if metadata.get("format") != DIRECTIONS_FORMAT:
                raise DirectionsError(f"{path}: not an aekit directions file")
            if set(fh.keys()) != {"vectors", "mean"}:
                raise DirectionsError(f"{path}: damaged directions file (tensors {sorted(fh.keys())})")
            vectors, mean = fh.get_tensor("vectors"), fh.get_tensor("mean")
    except FileNotFoundError:
        raise DirectionsError(f"{path}: no such file") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise DirectionsError(f"{path}: unreadable directions file ({first_line(exc)})") from None
    refit = "refit with `aekit directions fit`"
    version = metadata.get("format_version", str(DIRECTIONS_FORMAT_VERSION))
    if version.isdigit() and int(version) > DIRECTIONS_FORMAT_VERSION:
        raise DirectionsError(f"{path}: written by a newer aekit (directions format {version}, this aekit reads up to "
                              f"{DIRECTIONS_FORMAT_VERSION}); upgrade aekit, or {refit}")
    if fingerprint is not None and metadata.get("model_fingerprint") != fingerprint:
        raise DirectionsError(f"{path} was fitted for a different model (fingerprint {metadata.get('model_fingerprint')}, "
                              f"this model is {fingerprint}); {refit}")
    for name, array in (("vectors", vectors), ("mean", mean)):
        # a NaN vector or mean turns every edited face black; ints or bools would be cast silently
        if array.dtype.kind != "f":
            raise DirectionsError(f"{path}: damaged directions file ({name} stored as {array.dtype}, not floats); {refit}")
        if not np.isfinite(array).all():
            raise DirectionsError(f"{path}: damaged directions file ({name} holds NaN or infinite values); {refit}")
    missing = [key for key in ("names", "kinds") if key not in metadata]
    if missing:
        raise DirectionsError(f"{path}: damaged directions file (no {' or '.join(missing)} metadata); {refit}")

    def parsed(key: str, default: str, allow_nan: bool = False):
        return parse_json(metadata.get(key) or default, f"{path}: damaged directions file: metadata {key!r}",
                          DirectionsError, allow_nan=allow_nan, hint=refit)

    # the details and the info only describe the fit: a NaN there is news, not damage
    names, kinds = parsed("names", ""), parsed("kinds", "")
    details, info = parsed("details", "[]", allow_nan=True), parsed("info", "{}", allow_nan=True)
    try:
        if not (isinstance(names, list) and isinstance(kinds, list) and all(isinstance(v, str) for v in names + kinds)):
            raise ValueError("names and kinds must be lists of text")
        if not (isinstance(details, list) and all(isinstance(d, dict) for d in details) and isinstance(info, dict)):
            raise ValueError("details must be a list of objects and info an object")
        if vectors.ndim != 2 or mean.ndim != 1 or vectors.shape[1] != mean.shape[0]:
            raise ValueError(f"vectors {vectors.shape}, mean {mean.shape}")
        return LatentDirections(names=names, kinds=kinds, vectors=vectors, mean=mean,
                                details=details or [{} for _ in names], info=info)
    except (ValueError, TypeError, DirectionsError) as exc:
        raise DirectionsError(f"{path}: damaged directions file ({first_line(exc)}); {refit}") from None


def model_directory(model) -> Path:
    directory = getattr(model, "checkpoint_dir", None)
    if directory is None:
        raise DirectionsError("this model was not loaded from a checkpoint folder; pass the directions file")
    return Path(directory)


def load_directions(model, path=None) -> LatentDirections:
    """The directions stored beside `model` (or in `path`), checked against the model's fingerprint."""
    from aekit import model_fingerprint

    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise DirectionsError(f"{path}: no such file" if not path.exists() else f"{path}: is not a file")
    path = path if path is not None else directions_path(model_directory(model))
    if not path.is_file():
        folder = path.parent
        raise DirectionsError(f"no latent directions for {folder} (no {path.name}); "
                              f"run `aekit directions fit --model {folder} --data SOURCE`")
    directions = read_directions(path, fingerprint=model_fingerprint(model))
    if directions.latent_dim != model.config.latent_dim:
        raise DirectionsError(f"{path}: {directions.latent_dim}-d directions for a {model.config.latent_dim}-d model")
    return directions
