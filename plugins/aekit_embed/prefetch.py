"""Reading the inputs of ``aekit embed`` quickly: JPEGs decoded at a reduced scale, and decoding ahead of the model."""

from __future__ import annotations


def reduced_files(source, files=None):
    """`source` with its image files (folders, named files) decoded at a reduced JPEG scale, for speed.

    Returns a view whose ``read_reduced`` opens the image's file with Pillow's draft (see
    ``aekit.data.ImageSource.read_reduced``), or `source` itself when its ``iter_images`` is its own
    (e.g. synthetic faces drawn at the target size) and would not use it. `files` (one path or None
    per image, as ``FileResolver.file`` gives) saves resolving them again.
    """
    from aekit.data import ImageSource, supports_reduced
    from aekit.images import open_image

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
            return open_image(path, draft_size=size) if path is not None else source.read_reduced(index, size)

        def byte_size(self, index):
            return source.byte_size(index)

    return ReducedFiles()


def prefetch(iterator, depth: int = 2):
    """Run `iterator` in a background thread, `depth` items ahead (decoding overlaps the model's work)."""
    import queue
    import threading

    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        items.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put((done, None))
        except BaseException as exc:  # handed to the consumer, raised there
            items.put((done, exc))

    thread = threading.Thread(target=produce, daemon=True, name="aekit-prefetch")
    thread.start()
    try:
        while True:
            item, error = items.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting to put, then let it finish
            try:
                items.get(timeout=0.1)
            except queue.Empty:
                pass
        if hasattr(iterator, "close"):
            iterator.close()
