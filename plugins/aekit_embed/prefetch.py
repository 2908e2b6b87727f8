"""Reading the inputs of ``aekit embed`` quickly: JPEGs decoded at a reduced scale, and decoding ahead of the model."""

from __future__ import annotations

from aekit.data import prefetch  # noqa: F401  (decoding ahead lives in the core: compress uses it too)


def reduced_files(source, files=None):
    """`source` with its image files (folders, named files) decoded at a reduced JPEG scale, for speed.

    Returns a view whose ``read_reduced`` opens the image's file with Pillow's draft (see
    ``aekit.data.ImageSource.read_reduced``), or `source` itself when its ``iter_images`` is its own
    (e.g. synthetic faces drawn at the target size) and would not use it. `files` (one path or None
    per image, as ``FileResolver.file`` gives) saves resolving them again.
    """
    from aekit.data import ImageSource, supports_reduced
    from aekit.images import open_image
    from aekit.paths import refuse_special_file

    from .lookup import FileResolver

    if not supports_reduced(source):
        return source
    if files is None:
        resolver = FileResolver(source)
        files = [resolver.file(i) for i in range(len(source))]

    class ReducedFiles(ImageSource):
        description = source.description

        def keys(self):
            return source.keys()

        def fingerprint(self):
            return source.fingerprint()

        def attributes(self):
            return source.attributes()

        def read(self, index):
            return source.read(index)

        def read_reduced(self, index, size):
            path = files[index]
            if path is None:
                return source.read_reduced(index, size)
            refuse_special_file(path)  # a FIFO named like an image: skipped, never opened (that would block)
            return open_image(path, draft_size=size)

        def byte_size(self, index):
            return source.byte_size(index)

    return ReducedFiles()
