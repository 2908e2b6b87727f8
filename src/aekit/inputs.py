"""Command-line ``INPUT...`` as one image source: image files, folders, array files and ``--data`` texts mixed."""

from __future__ import annotations

from pathlib import Path

from .data import ImageSource, SubsetSource, files_fingerprint, open_source, split_slice
from .errors import DataSourceError
from .images import IMAGE_EXTENSIONS, open_image
from .paths import refuse_special_file, why_not_regular


class FileListSource(ImageSource):
    """Image files named one by one (as given on a command line)."""

    def __init__(self, paths):
        self.paths = [Path(p) for p in paths]
        self.description = f"{len(self.paths)} file(s)"

    def keys(self):
        return [str(p) for p in self.paths]

    def fingerprint(self):
        return "files:" + files_fingerprint(self.paths)

    def read(self, index):
        refuse_special_file(self.paths[index])  # a FIFO named like an image would block the reader forever
        return open_image(self.paths[index])

    def read_reduced(self, index, size):
        refuse_special_file(self.paths[index])
        return open_image(self.paths[index], draft_size=size)

    def is_photo(self, index):
        return True

    def byte_size(self, index):
        try:
            return self.paths[index].stat().st_size
        except OSError:
            return None


class ConcatSource(ImageSource):
    """Several sources one after the other; names get the source's label as a prefix when ambiguous."""

    def __init__(self, sources: list[ImageSource], labels: list[str]):
        self.sources = sources
        self.description = " + ".join(s.description for s in sources)
        self._keys, self._where = [], []
        for s_index, (source, label) in enumerate(zip(sources, labels)):
            for k_index, key in enumerate(source.keys()):
                self._keys.append(f"{label}/{key}" if label else key)
                self._where.append((s_index, k_index))

    def keys(self):
        return self._keys

    def fingerprint(self):
        return "concat:" + "|".join(s.fingerprint() for s in self.sources)

    def attributes(self):
        return {}

    def read(self, index):
        s, k = self._where[index]
        return self.sources[s].read(k)

    def is_photo(self, index):
        s, k = self._where[index]
        return self.sources[s].is_photo(k)

    def read_reduced(self, index, size):
        s, k = self._where[index]
        return self.sources[s].read_reduced(k, size)

    def byte_size(self, index):
        s, k = self._where[index]
        return self.sources[s].byte_size(k)


def open_inputs(inputs, skip_missing_images: bool = False) -> ImageSource:
    """Command-line INPUT...: image files, folders, array files or any ``--data`` text, as one source.

    With `skip_missing_images`, image names that are not readable files (missing, a broken link, a
    link loop) become images that fail to read, so a batch command skips and lists them. A FIFO, socket
    or device is an image file that fails to read ("not a regular file"), never opened.
    """
    inputs = [str(i) for i in inputs]
    if not inputs:
        raise DataSourceError("no input given: name image files, a folder, an array file or a data source")
    array_suffixes = (".npy", ".npz", ".parquet")
    files = [i for i in inputs if ((Path(i).is_file() or why_not_regular(i)) and Path(i).suffix.lower() not in array_suffixes)
             or (skip_missing_images and Path(i).suffix.lower() in IMAGE_EXTENSIONS and not Path(i).is_dir())]
    if len(files) == len(inputs):
        return FileListSource(files)
    sources, labels = [], []
    if files:
        sources.append(FileListSource(files))
        labels.append("")
    others = [i for i in inputs if i not in files]
    for spec in others:
        base, window = split_slice(spec)
        source = open_source(base)
        if window is not None:
            source = SubsetSource(source, list(range(len(source)))[window])
        sources.append(source)
        labels.append(Path(base.rstrip("/")).name if len(inputs) > 1 else "")
    return sources[0] if len(sources) == 1 and not labels[0] else ConcatSource(sources, labels)
