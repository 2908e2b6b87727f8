"""Built-in data sources: celeba (the article's), hf:NAME, image folders, .npy/.npz arrays, synthetic."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from aekit import hookimpl
from aekit.arrays import read_npy, read_npz
from aekit.data import ImageSource, files_fingerprint, scan_image_folder
from aekit.errors import DataSourceError, ImageReadError, first_line
from aekit.images import IMAGE_EXTENSIONS, open_image
from aekit.paths import refuse_special_file

CELEBA_HUB_ID = "lansinuote/gen.1.celeba"
OTHER_SOURCES = "synthetic, a folder of images, a .npy/.npz array, or hf:PATH to a local copy"


@hookimpl
def register_data_sources(register):
    register("folder", FolderSource, help="a folder of images, recursive (jpg, png, webp, bmp); PATH", claims=_is_image_folder)
    register("array", ArraySource, help="a .npy/.npz array of images, (N,H,W,3) uint8 or (N,3,H,W) float", claims=_is_array_file)
    register("hf", open_hf_source, help="hf:NAME[@SPLIT]: a Hugging Face image data set (hub id, save_to_disk folder or parquet)", claims=_is_hf_path)
    register("celeba", open_celeba, help=f"the article's CelebA ({CELEBA_HUB_ID}), shuffled with seed 0; celeba:PATH for a local copy")
    register("synthetic", SyntheticSource.from_argument, help="synthetic[:N[:SEED]]: built-in procedural faces with attribute labels (default 2000)")


# --- folders of image files -------------------------------------------------------------------------


def _is_hf_dir(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def _is_image_folder(spec: str) -> bool:
    path = Path(spec)
    return path.is_dir() and not _is_hf_dir(path)


class FolderSource(ImageSource):
    """Every image file under a folder (recursive, sorted); labels from an `attributes.csv` at its root."""

    def __init__(self, folder: str):
        self.root = Path(folder)
        if not self.root.is_dir():
            raise DataSourceError(f"{folder}: no such folder")
        self.description = str(self.root)
        # string operations, not Path objects: a cached start over 10,000 files is otherwise mostly listing
        self._keys = scan_image_folder(self.root, IMAGE_EXTENSIONS)
        if not self._keys:
            raise DataSourceError(f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
        prefix = "" if str(self.root) == "." else os.path.join(str(self.root), "")  # str(root / key), faster
        self._paths = [prefix + key for key in self._keys]

    def __len__(self):
        return len(self._keys)

    def keys(self):
        return list(self._keys)

    def fingerprint(self):
        return "folder:" + files_fingerprint(self._paths + [os.path.join(self.root, "attributes.csv")])

    def is_photo(self, index):
        return True

    def read(self, index):
        # a FIFO, socket or device named like an image stays a key, so every command lists it as skipped
        # ("not a regular file"), but is never opened: opening a FIFO blocks until something writes to it
        refuse_special_file(self._paths[index])
        return open_image(self._paths[index])

    def read_reduced(self, index, size):  # JPEG draft decoding for streaming commands; the cache never uses it
        refuse_special_file(self._paths[index])
        return open_image(self._paths[index], draft_size=size)

    def byte_size(self, index):
        try:
            return os.stat(self._paths[index]).st_size
        except OSError:
            return None

    def attributes(self):
        csv_path = self.root / "attributes.csv"
        return read_attributes_csv(csv_path, self.keys()) if csv_path.is_file() else {}


def read_attributes_csv(path: Path, keys: list[str]) -> dict[str, np.ndarray]:
    """Integer columns of a CSV keyed by file name (first column), aligned with `keys`; CelebA's -1/1 become 0/1."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataSourceError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    if len(rows) < 2:
        return {}
    header, body = rows[0], {r[0]: r[1:] for r in rows[1:] if r}
    columns = {}
    for j, name in enumerate(header[1:]):
        values = []
        for key in keys:
            row = body.get(key) or body.get(key.rsplit("/", 1)[-1])
            try:
                values.append(int(row[j]) if row is not None else -999)
            except (ValueError, IndexError):
                break
        else:
            col = np.asarray(values, dtype=np.int64)
            if set(np.unique(col[col != -999]).tolist()) <= {-1, 1}:
                col = np.where(col == -999, -1, (col + 1) // 2)  # CelebA's -1/1 -> 0/1, unknown -> -1
            columns[name] = col.astype(np.int8) if np.abs(col).max(initial=0) < 128 else col
    return columns


# --- arrays --------------------------------------------------------------------------------------------


def _is_array_file(spec: str) -> bool:
    return Path(spec).suffix.lower() in (".npy", ".npz") and Path(spec).exists()


class ArraySource(ImageSource):
    """Images from a .npy/.npz: (N, H, W, 3) or (N, 3, H, W); uint8, or float in [-1, 1] (or [0, 1])."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.description = str(self.path)
        self._attributes, self._names = {}, None
        if self.path.suffix.lower() == ".npz":
            arrays = read_npz(self.path, "image array", DataSourceError)
            keys = list(arrays)
            image_key = "images" if "images" in keys else next((k for k in keys if arrays[k].ndim == 4), None)
            if image_key is None:
                raise DataSourceError(f"{path}: no 'images' array (N, H, W, 3) in this .npz (keys: {', '.join(keys)})")
            array = arrays[image_key]
            for k, value in arrays.items():
                if k == "names" and value.ndim == 1:
                    if len(value) != len(array):
                        raise DataSourceError(f"{path}: 'names' has {len(value)} entries for {len(array)} images")
                    self._names = [str(v) for v in value]
                elif k != image_key and value.ndim == 1 and len(value) == len(array) and value.dtype.kind in "biuf":
                    self._attributes[k] = value
        else:
            array = read_npy(self.path, "image array", DataSourceError)
        self.array = _check_image_array(array, path)

    def keys(self):
        return self._names or [f"{self.path.stem}[{i}]" for i in range(len(self.array))]

    def fingerprint(self):
        st = self.path.stat()  # inode and ctime too: a file replaced keeping its size and mtime is read again
        return f"array:{self.path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{st.st_ctime_ns}"

    def attributes(self):
        return self._attributes

    def read(self, index):
        image = np.asarray(self.array[index])
        if image.shape[0] == 3 and image.shape[-1] != 3:
            image = image.transpose(1, 2, 0)
        if image.dtype == np.uint8:
            return image
        image = image.astype(np.float32)
        if not np.isfinite(image).all():
            raise ImageReadError(f"{self.keys()[index]}: contains NaN or infinite values")
        scaled = (image + 1) * 127.5 if self._signed else image * 255.0
        return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)

    @property
    def _signed(self) -> bool:
        # floats with any negative value are read as [-1, 1] (the article's format), else as [0, 1]
        if not hasattr(self, "_signed_cache"):
            sample = np.asarray(self.array[: min(len(self.array), 256)], dtype=np.float32)
            self._signed_cache = bool(np.nanmin(sample) < 0)
        return self._signed_cache


def _check_image_array(array, path):
    if array.dtype.kind not in "uf" or (array.dtype.kind == "u" and array.dtype != np.uint8):
        raise DataSourceError(f"{path}: images must be uint8 or float, got {array.dtype}")
    if array.ndim != 4 or 3 not in (array.shape[1], array.shape[3]):
        raise DataSourceError(f"{path}: images must be (N, H, W, 3) or (N, 3, H, W), got shape {array.shape}")
    if 0 in array.shape[1:]:
        raise DataSourceError(f"{path}: images must be at least 1x1 pixels, got shape {array.shape}")
    if len(array) == 0:
        raise DataSourceError(f"{path}: the array holds no images")
    if array.dtype.kind == "f":
        sample = np.asarray(array[: min(len(array), 1024)], dtype=np.float32)
        if not np.isfinite(sample).all():
            raise DataSourceError(f"{path}: images contain NaN or infinite values")
        if sample.min() < -1.001 or sample.max() > 1.001:
            raise DataSourceError(f"{path}: float images must lie in [-1, 1] or [0, 1], got [{sample.min():.3g}, {sample.max():.3g}]")
    return array


# --- Hugging Face data sets ------------------------------------------------------------------------------


def _is_hf_path(spec: str) -> bool:
    path = Path(spec)
    return (path.is_file() and path.suffix == ".parquet") or (path.is_dir() and _is_hf_dir(path))


class HFSource(ImageSource):
    """A `datasets.Dataset` with an image column; integer/bool columns become attributes."""

    def __init__(self, dataset, description: str, fingerprint: str):
        self.description, self._fingerprint = description, fingerprint
        self.image_column = _image_column(dataset, description)
        self.dataset = _undecoded(dataset, self.image_column)

    def keys(self):
        for name in ("image_id", "file_name", "filename", "id"):
            if name in self.dataset.column_names:
                return [str(v) for v in self.dataset[name]]
        return [f"{self.description}[{i}]" for i in range(len(self.dataset))]

    def fingerprint(self):
        return self._fingerprint

    def attributes(self):
        from datasets import ClassLabel, Value

        columns = [name for name, feature in self.dataset.features.items()
                   if isinstance(feature, ClassLabel) or (isinstance(feature, Value) and (feature.dtype.startswith(("int", "uint")) or feature.dtype == "bool"))]
        if not columns:
            return {}
        table = self.dataset.select_columns(columns).with_format("numpy")[:]
        out = {}
        for name in columns:
            raw = np.asarray(table[name])
            if raw.dtype == object:  # nullable column with missing values: not usable as a label
                continue
            col = raw.astype(np.int64)
            if set(np.unique(col).tolist()) <= {-1, 1}:
                col = (col + 1) // 2  # CelebA's -1/1 -> 0/1
            out[name] = col
        return out

    def read(self, index):
        return self.iter_rows([index])[0]

    def iter_rows(self, indices):
        from aekit.images import to_rgb

        indices = list(indices)
        out = []
        for i, item in zip(indices, self.dataset.select_columns([self.image_column])[indices][self.image_column]):
            if isinstance(item, dict):  # an image file's bytes or path (see _undecoded)
                item = _decode_cell(item, f"{self.description}[{i}]")
            if item is None:
                out.append(ImageReadError(f"{self.description}[{i}]: empty image"))
            elif isinstance(item, Exception):
                out.append(item)
            else:
                out.append(to_rgb(item) if hasattr(item, "mode") else np.asarray(item, dtype=np.uint8))
        return out

    def iter_images(self, indices, size):
        from concurrent.futures import ThreadPoolExecutor

        from aekit.images import resize_rgb

        indices = list(indices)
        chunks = [indices[i : i + 256] for i in range(0, len(indices), 256)]

        def work(chunk):
            try:
                rows = self.iter_rows(chunk)
            except MemoryError:  # not the rows' fault: never skipped (and cached) as unreadable
                raise
            except Exception as exc:  # one damaged row fails its whole batch: retry one by one
                rows = []
                for i in chunk:
                    try:
                        rows.extend(self.iter_rows([i]))
                    except MemoryError:
                        raise
                    except Exception as row_exc:
                        rows.append(ImageReadError(f"{self.description}[{i}]: unreadable image ({type(row_exc).__name__})"))
                del exc
            return [(i, None, str(r)) if isinstance(r, Exception) else (i, resize_rgb(r, size), None) for i, r in zip(chunk, rows)]

        with ThreadPoolExecutor(2) as pool:
            for results in pool.map(work, chunks):
                yield from results


def _undecoded(dataset, column: str):
    """`dataset` with its Image feature column giving each image file's bytes (or path), not a decoded image.

    `datasets` decodes with Pillow guessing the format from the content, which can hand an EPS file to
    Ghostscript: aekit's own reader decodes them instead, with its formats only (``aekit.images``).
    """
    from datasets import Image as HFImage

    feature = dataset.features[column]
    if isinstance(feature, HFImage) and feature.decode:
        return dataset.cast_column(column, HFImage(decode=False))  # only the feature changes: no data is rewritten
    return dataset


def _decode_cell(item: dict, name: str):
    """An image column's cell {"bytes", "path"} as an RGB image, or the ImageReadError saying why not
    (None when it holds neither)."""
    from aekit.images import decode_image_bytes

    data, path = item.get("bytes"), item.get("path")
    try:
        if data:
            return decode_image_bytes(data, name)
        if path:
            if "://" in path or "::" in path:  # streamed data sets are not read (nor are remote files)
                return ImageReadError(f"{name}: the image is a remote file ({path}), not on this machine")
            return open_image(path)
    except ImageReadError as exc:
        return exc
    return None


def _image_column(dataset, description):
    from datasets import Image as HFImage

    for name, feature in dataset.features.items():
        if isinstance(feature, HFImage):
            return name
    for name in ("image", "img"):
        if name in dataset.column_names:
            return name
    raise DataSourceError(f"{description}: no image column (columns: {', '.join(dataset.column_names)})")


def load_hf_dataset(name: str, split: str = "train", split_given: bool = False):
    """A `datasets.Dataset` from a hub id, a save_to_disk folder, or parquet file(s); DataSourceError offline."""
    try:
        import datasets
    except ImportError:
        raise DataSourceError("the 'datasets' package is needed for Hugging Face data sources: pip install datasets") from None
    path = Path(name)
    try:
        if path.is_dir() and _is_hf_dir(path):
            loaded = datasets.load_from_disk(str(path))
        elif path.suffix == ".parquet" or (path.is_dir() and any(path.glob("**/*.parquet"))):
            files = [str(path)] if path.is_file() else sorted(str(p) for p in path.glob("**/*.parquet"))
            loaded = datasets.load_dataset("parquet", data_files={split: files}, split=split)
        elif path.exists():
            raise DataSourceError(f"{name}: not a Hugging Face data set (a save_to_disk folder or .parquet)")
        else:
            loaded = datasets.load_dataset(name, split=split)
    except DataSourceError:
        raise
    except Exception as exc:
        first = first_line(exc)[:160]
        raise DataSourceError(f"could not load the Hugging Face data set {name!r} ({first}); offline, use {OTHER_SOURCES}") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataSourceError(f"{name}: no split {split!r} (splits: {', '.join(loaded)})")
        loaded = loaded[split]
    elif split_given and split != "train":
        raise DataSourceError(f"{name}: holds a single data set without splits; drop @{split}")
    return loaded


def open_hf_source(argument: str) -> HFSource:
    """hf:NAME[@SPLIT] (split defaults to train)."""
    name, _, split = argument.partition("@")
    if not name:
        raise DataSourceError("hf: needs a data set name or path, e.g. hf:user/faces or hf:./faces_parquet")
    dataset = load_hf_dataset(name, split or "train", split_given=bool(split))
    return HFSource(dataset, f"hf:{argument}", f"hf:{name}@{split or 'train'}|{dataset._fingerprint}")


def open_celeba(argument: str = "") -> HFSource:
    """The article's CelebA: the train split, shuffled with seed 0 (take the first N with --limit)."""
    # keep_in_memory: the shuffled index is small, and a local copy's folder must not be written to
    dataset = load_hf_dataset(argument or CELEBA_HUB_ID, "train").shuffle(seed=0, keep_in_memory=True)
    label = f"celeba:{argument}" if argument else "celeba"
    return HFSource(dataset, label, f"celeba:{argument or CELEBA_HUB_ID}|{dataset._fingerprint}")


# --- synthetic faces -------------------------------------------------------------------------------------


class SyntheticSource(ImageSource):
    """Procedurally drawn faces with known attributes (aekit.synthetic); deterministic, offline."""

    def __init__(self, n: int = 2000, seed: int = 0):
        if n < 1:
            raise DataSourceError("synthetic:N needs N of at least 1")
        if seed < 0:
            raise DataSourceError("synthetic:N:SEED needs SEED of at least 0")
        self.n, self.seed = n, seed
        self.description = f"synthetic:{n}:{seed}"

    @classmethod
    def from_argument(cls, argument: str = ""):
        parts = argument.split(":") if argument else []
        if len(parts) > 2:
            raise DataSourceError(f"synthetic:{argument}: expected synthetic[:N[:SEED]]")
        try:  # an empty part keeps its default: synthetic::5 is the default N with seed 5
            values = dict((k, int(p)) for k, p in zip(("n", "seed"), parts) if p)
        except ValueError:
            raise DataSourceError(f"synthetic:{argument}: expected synthetic[:N[:SEED]] with integers") from None
        return cls(**values)

    def keys(self):
        return [f"synthetic-{self.seed}-{i:06d}" for i in range(self.n)]

    def fingerprint(self):
        from aekit import synthetic

        return f"synthetic:{self.n}:{self.seed}:{getattr(synthetic, 'VERSION', 1)}"

    def attributes(self):
        from aekit import synthetic

        if not hasattr(self, "_attributes"):
            attrs = {name: np.zeros(self.n, dtype=np.int8) for name in synthetic.ATTRIBUTE_NAMES}
            for i in range(self.n):
                for name, value in synthetic.face_attributes(i, self.seed).items():
                    attrs[name][i] = value
            self._attributes = attrs
        return self._attributes

    def read(self, index):
        return self.read_at(index, 64)

    def read_at(self, index, size):
        from aekit import synthetic

        return synthetic.draw_face(index, self.seed, size=max(size, 16))[0]

    def iter_images(self, indices, size):
        from aekit.images import resize_rgb

        for i in indices:  # drawing at the target size beats drawing at 64 and resizing
            yield i, resize_rgb(self.read_at(i, size), size), None
