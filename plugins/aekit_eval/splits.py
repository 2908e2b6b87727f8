"""Which images the report uses: the evaluation data, the training split, and the refusal to mix them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aekit.errors import AekitError


NO_TRAINING_RECORD = ("the checkpoint records no training data, so the baselines and probes have no training split: "
                      "give --train-data SOURCE (images the evaluation data does not contain)")


def missing_training_data(record) -> str | None:
    """Why the model's recorded training images cannot be read here (a model from another machine, a deleted
    folder, an offline hub set), or None when they can; without a record, that there is none."""
    from aekit.data import open_source, split_slice
    from aekit.errors import first_line

    if record is None:
        return "the checkpoint records no training data"
    try:
        open_source(split_slice(record.data)[0])
    except AekitError as exc:
        return f"the images the model trained on are not here ({first_line(exc)})"
    return None


class OverlapError(AekitError):
    """The evaluation images are (some of) the images the model or the baselines were fitted on."""


@dataclass
class Images:
    """uint8 (N, S, S, 3) images with their names and attribute columns, and where they came from."""

    images: np.ndarray
    names: list[str]
    attributes: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""
    description: str = ""
    skipped: list[str] = field(default_factory=list)
    total: int = 0  # images in the split before a --train-limit subset
    # --align auto / on: where each image came from (aekit.alignment.Placement: photo, face index, box); None: off
    placements: list | None = None
    photos: int = 0  # --align auto / on: the photos read (before faces were found)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def photo_names(self) -> list[str]:
        """The photo each image came from (its own name under --align off): what a labels CSV is keyed by."""
        return [p.photo for p in self.placements] if self.placements is not None else list(self.names)


def _hwc(images) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(images).transpose(0, 2, 3, 1))


def _aligned(spec: str, size: int, align: str, progress: bool, pick=None):
    """``--data`` text read under --align auto / on: (PreparedImages of each face, placements, photos read, description).

    The photos are chosen first (the ``[START:STOP]`` window, then ``pick(indices)``), then their faces found
    (``aekit.alignment.aligned_source``): one image per face, the attributes following the faces; photos that give
    none (no face under on, unreadable) are the skipped ones.
    """
    from aekit.alignment import aligned_source
    from aekit.data import SubsetSource, open_source, prepare, select_indices, split_slice
    from aekit.errors import DataSourceError

    base, window = split_slice(spec)
    source = open_source(base)
    keys = source.keys()
    indices = select_indices(keys, 0, None, None, window)
    if pick is not None:
        indices = pick(indices)
    if not indices:
        raise DataSourceError(f"{source.description}: no images selected (it has {len(keys)})")
    chosen = source if indices == list(range(len(keys))) else SubsetSource(source, indices)
    faces = aligned_source(chosen, align, size, progress=progress)
    # the faces are found (and kept) once, here: the image cache would only copy them
    data = prepare(faces, size, progress=progress, use_cache=False)
    where = dict(zip(faces.keys(), faces.placements()))
    return data, [where[name] for name in data.names], len(indices), source.description


def load_eval(spec: str, size: int, limit: int | None, progress: bool, align: str = "off") -> Images:
    """The evaluation images of ``--data`` (its first `limit`); with `align` auto / on, each face of them
    (``aekit.alignment``: `limit` counts the photos, as the check for overlap with the training data does)."""
    from aekit.alignment import check_mode
    from aekit.data import prepare

    if check_mode(align) == "off":
        data = prepare(spec, size, limit=limit, progress=progress)
        return Images(_hwc(data.images), list(data.names), dict(data.attributes), spec, data.source, list(data.skipped),
                      len(data))
    data, placements, photos, description = _aligned(spec, size, align, progress,
                                                     pick=(lambda indices: indices[:limit]) if limit is not None else None)
    return Images(_hwc(data.images), list(data.names), dict(data.attributes), spec, description, list(data.skipped),
                  len(data), placements, photos)


def recorded_training(model):
    """The model's ``aekit.train.TrainingRecord`` (what its checkpoint says trained it), or None."""
    from aekit.train import training_record

    return training_record(model)


def load_train(model, train_data: str | None, size: int, limit: int | None, seed: int, progress: bool,
               align: str = "off") -> Images:
    """The training split: ``--train-data``, else the images the model's run trained on (its validation share left out).

    The attribute columns stay aligned with the images. With `limit`, a seeded random subset of that many images.
    With `align` auto / on, the faces of ``--train-data``'s images (a `limit` subset of its photos is taken first);
    the model's recorded training images are used as the run read them.
    """
    from aekit.alignment import check_mode
    from aekit.data import prepare

    if train_data and check_mode(align) != "off":
        in_split = []

        def pick(indices):  # the same seeded subset as below, of the photos rather than of the faces
            in_split.append(len(indices))
            if limit is None or len(indices) <= limit:
                return indices
            keep = np.sort(np.random.default_rng(seed).choice(len(indices), size=limit, replace=False))
            return [indices[k] for k in keep]

        data, placements, photos, _ = _aligned(train_data, size, align, progress, pick)
        description = f"{train_data} (--train-data)"
        if photos < in_split[0]:
            description += f"; the faces of a random {limit} of its {in_split[0]} images"
        # total: the images of the split before the subset (photos; the faces of the subset are len(...))
        return Images(_hwc(data.images), list(data.names), dict(data.attributes), train_data, description,
                      list(data.skipped), in_split[0], placements, photos)
    if train_data:
        data = prepare(train_data, size, progress=progress)
        images, attributes = data.images, dict(data.attributes)
        names, source = list(data.names), train_data
        description = f"{train_data} (--train-data)"
    else:
        record = recorded_training(model)
        if record is None:
            raise AekitError(NO_TRAINING_RECORD)
        split = record.load(size, progress=progress)
        images, attributes, names, data = split.images, split.attributes, split.names, split.data
        source = record.data
        description = f"{record.describe()}: the images the model trained on"
    total = len(images)
    if limit is not None and total > limit:
        keep = np.sort(np.random.default_rng(seed).choice(total, size=limit, replace=False))
        images = np.asarray(images[keep])
        attributes = {k: np.asarray(v)[keep] for k, v in attributes.items()}
        names = [names[i] for i in keep]
        description += f"; a random {limit} of its {total}"
    return Images(_hwc(images), names, attributes, source, description, list(data.skipped), total)


# --- no overlap ------------------------------------------------------------------------------------------


def _same_source(a: str, b: str) -> bool:
    """Whether two --data texts (without windows) name the same source: equal text or the same folder/file."""
    if a.rstrip("/") == b.rstrip("/"):
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    try:
        return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()
    except OSError:
        return False


def overlap(eval_spec: str, eval_limit: int | None, train_spec: str, skip: int = 0, limit: int | None = None,
            files=None) -> int | None:
    """How many evaluation images are also training images, when both name the same source (else None).

    Compares the selected positions of one source (``SOURCE[START:STOP]`` windows, --skip, --limit,
    --files); the synthetic source also compares across sizes (``synthetic:64`` is in ``synthetic:2000``).
    """
    from aekit.data import open_source, select_indices, split_slice

    eval_base, eval_window = split_slice(eval_spec)
    train_base, train_window = split_slice(train_spec)
    synthetic = eval_base.split(":")[0] == "synthetic" == train_base.split(":")[0]
    if not (synthetic or _same_source(eval_base, train_base)):
        return None
    try:
        eval_source, train_source = open_source(eval_base), open_source(train_base)
        eval_keys, train_keys = eval_source.keys(), train_source.keys()
        eval_idx = select_indices(eval_keys, 0, eval_limit, None, eval_window)
        train_idx = select_indices(train_keys, skip, limit, files, train_window)
    except Exception:  # a source that cannot be opened here (offline hub...): fall back to comparing the text
        return None
    if synthetic:  # keys name (seed, index), which fix the image
        return len({eval_keys[i] for i in eval_idx} & {train_keys[i] for i in train_idx})
    return len(set(eval_idx) & set(train_idx))


def check_eval_data(eval_spec: str, eval_limit: int | None, record, train_data: str | None) -> None:
    """Refuse evaluation data that the model trained on (`record`: its TrainingRecord), or that the baselines would be fitted on."""
    if record is not None:
        cfg = record.config
        held_out = f"; evaluate on held-out images, e.g. --data {cfg.val_data}" if cfg.val_data else \
            "; evaluate on images it never saw, e.g. a [START:STOP] window the run did not use"
        if eval_spec.strip() == str(record.data).strip():
            share = f" (its {cfg.val_fraction:g} validation share is mixed in with them)" if cfg.val_fraction else ""
            raise OverlapError(f"--data {eval_spec} is the data the model trained on{share}{held_out}")
        shared = overlap(eval_spec, eval_limit, cfg.data, cfg.skip, cfg.limit, cfg.files)
        if shared:
            raise OverlapError(f"--data {eval_spec}: {shared} of its images are among the {cfg.data} images the model "
                               f"trained on{held_out}")
    if train_data:
        if eval_spec.strip() == train_data.strip():
            raise OverlapError(f"--train-data and --data are both {eval_spec}; fit the baselines on other images")
        shared = overlap(eval_spec, eval_limit, train_data)
        if shared:
            raise OverlapError(f"--data {eval_spec}: {shared} of its images are also in --train-data {train_data}; "
                               "fit the baselines on other images")
