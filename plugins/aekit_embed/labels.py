"""Labels for ``aekit embed``: class subfolders, a CSV keyed by file name, or the data source's own attributes.

Every label column is (N,) int64 with -1 for "unknown". Binary CelebA-style -1/1 columns become 0/1;
text columns (and class subfolders) become indices into a sorted list of class names.
"""

from __future__ import annotations

import csv
from pathlib import Path, PurePosixPath

import numpy as np

from aekit.errors import AekitError

UNKNOWN = -1
FOLDER_LABEL = "class"


class LabelError(AekitError):
    """Labels that cannot be read or matched to the images."""


def _base(name: str) -> str:
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def encode_classes(values: list[str | None]) -> tuple[np.ndarray, list[str]]:
    """Class names (None = unknown) to indices into their sorted unique names."""
    classes = sorted({v for v in values if v is not None})
    index = {c: i for i, c in enumerate(classes)}
    return np.asarray([index[v] if v is not None else UNKNOWN for v in values], dtype=np.int64), classes


def folder_classes(names: list[str], named_files: list[bool], files: list[Path | None]) -> tuple[np.ndarray, list[str]]:
    """The class of each image: the first folder of its name (files named on the command line: their folder)."""
    values = []
    for name, named, file in zip(names, named_files, files):
        if named and file is not None:
            values.append(file.parent.name or None)
            continue
        parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("/", ".", "..")]
        values.append(parts[0] if len(parts) >= 2 else None)
    column, classes = encode_classes(values)
    if not classes:
        raise LabelError("--labels-from-folders: no image is inside a class subfolder (expected INPUT/CLASS/image.jpg)")
    return column, classes


def read_label_csv(path, names: list[str], columns: list[str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, list[str]], int]:
    """Label columns of a CSV keyed by file name (first column), aligned with `names`.

    Rows match an image by its full name, else by its base name. Integer columns are kept (CelebA's
    -1/1 become 0/1), text columns become class indices. Returns (columns, class names, unmatched).
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if r and any(cell.strip() for cell in r)]
    except FileNotFoundError:
        raise LabelError(f"{path}: no such labels file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LabelError(f"{path}: cannot read the labels file ({exc.__class__.__name__})") from None
    if len(rows) < 2 or len(rows[0]) < 2:
        raise LabelError(f"{path}: expected a header row (file name, then label columns) and one row per image")
    header = [h.strip() for h in rows[0]]
    available = header[1:]
    wanted = columns or available
    unknown = [c for c in wanted if c not in available]
    if unknown:
        raise LabelError(f"{path}: no column {unknown[0]!r} (columns: {', '.join(available)})")
    body: dict[str, list[str]] = {}
    for row in rows[1:]:
        body.setdefault(row[0].strip(), row[1:])
        body.setdefault(_base(row[0].strip()), row[1:])
    matched = [body.get(n) if n in body else body.get(_base(n)) for n in names]
    unmatched = sum(m is None for m in matched)
    if unmatched == len(names):
        example = names[0] if names else "?"
        raise LabelError(f"{path}: none of the {len(names)} images has a row (e.g. no row for {example!r}; "
                         f"the first column must hold file names)")
    out, classes = {}, {}
    for name in wanted:
        j = available.index(name)
        raw = [(m[j].strip() if m is not None and j < len(m) else "") for m in matched]
        ints = _as_ints(raw)
        if ints is not None:
            present = np.asarray([r != "" for r in raw], dtype=bool)
            if present.any() and set(np.unique(ints[present]).tolist()) <= {-1, 1}:
                ints = np.where(present, (ints + 1) // 2, UNKNOWN)  # CelebA's -1/1 -> 0/1
            out[name] = ints.astype(np.int64)
        else:
            out[name], classes[name] = encode_classes([r or None for r in raw])
    return out, classes, unmatched


def _as_ints(raw: list[str]) -> np.ndarray | None:
    values = []
    for text in raw:
        if text == "":
            values.append(UNKNOWN)
            continue
        try:
            values.append(int(text))
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return None
            if not number.is_integer():
                return None
            values.append(int(number))
    return np.asarray(values, dtype=np.int64)


def source_labels(attributes: dict[str, np.ndarray], indices: list[int]) -> tuple[dict[str, np.ndarray], list[str]]:
    """The data source's own integer attribute columns for the kept images; also the names left out."""
    out, dropped = {}, []
    for name, column in attributes.items():
        column = np.asarray(column)[indices]
        if column.dtype.kind == "b":
            column = column.astype(np.int64)
        if column.dtype.kind == "f":
            if not (np.isfinite(column).all() and np.all(column == np.round(column))):
                dropped.append(str(name))
                continue
        elif column.dtype.kind not in "iu":
            dropped.append(str(name))
            continue
        column = column.astype(np.int64)
        column[column == -999] = UNKNOWN  # aekit_sources' marker for a file without a CSV row
        out[str(name)] = column
    return out, dropped


def labels_for_keys(source, keys, labels_csv, label_columns, from_folders):
    """Label columns for every key of the source (before any image is read, so bad options fail fast).

    Returns (columns, class names, where each came from, notes).
    """
    from .lookup import FileResolver

    columns, classes, origin, notes = {}, {}, {}, []
    if from_folders:
        resolver = FileResolver(source)
        named = [resolver.is_named_file(i) for i in range(len(keys))]
        files = [resolver.file(i) if named[i] else None for i in range(len(keys))]
        columns[FOLDER_LABEL], classes[FOLDER_LABEL] = folder_classes(keys, named, files)
        origin[FOLDER_LABEL] = "folders"
        unknown = int((columns[FOLDER_LABEL] < 0).sum())
        if unknown:
            notes.append(f"{unknown} image(s) are not in a class subfolder (label {FOLDER_LABEL} = -1)")
    if labels_csv:
        found, found_classes, unmatched = read_label_csv(labels_csv, keys, list(label_columns) or None)
        clash = sorted(set(found) & set(columns))
        if clash:
            raise AekitError(f"{labels_csv}: column {clash[0]!r} clashes with the class-subfolder label; rename it")
        columns.update(found)
        classes.update(found_classes)
        origin.update({name: f"csv:{Path(labels_csv).name}" for name in found})
        if unmatched:
            notes.append(f"{unmatched} image(s) have no row in {labels_csv} (their labels are -1)")
    elif label_columns or not from_folders:
        attributes = source.attributes()
        if label_columns:
            missing = [c for c in label_columns if c not in attributes]
            if missing:
                known = ", ".join(attributes) if attributes else "none"
                raise AekitError(f"--label-column {missing[0]!r}: the input has no such attribute (attributes: {known}); "
                                 "give a CSV with --labels FILE.csv")
            attributes = {c: attributes[c] for c in label_columns}
        found, dropped = source_labels(attributes, list(range(len(keys))))
        if dropped:
            notes.append(f"attribute(s) {', '.join(dropped)} are not integer classes; left out")
        if from_folders and FOLDER_LABEL in found:
            raise AekitError(f"the input has its own attribute {FOLDER_LABEL!r}, which clashes with --labels-from-folders")
        columns.update(found)
        origin.update({name: "source" for name in found})
    return columns, classes, origin, notes
