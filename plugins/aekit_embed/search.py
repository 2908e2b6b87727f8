"""Face search: the nearest faces of a features file by cosine similarity on standardised features.

The index is a features ``.npz`` from ``aekit embed`` (any feature set). Each feature is standardised
with the index's own mean and standard deviation, each vector scaled to unit length, and a query's
neighbours are the index rows with the largest dot product (cosine similarity, 1 = the same
direction). Exact search runs in numpy over row chunks, so memory stays bounded (``CHUNK_ROWS`` x the
number of queries scores at a time) up to about a million faces. ``engine="faiss"`` (``pip install
faiss-cpu``) uses faiss's exact inner-product index instead, with the same results; ``auto`` picks
numpy, which measured faster than faiss's exact index on 100,000 faces (``benchmarks/face_search.py``).
"""

from __future__ import annotations

import numpy as np

from aekit.errors import AekitError

CHUNK_ROWS = 65_536
ENGINES = ("auto", "numpy", "faiss")
TILE = 96  # px, a picture of the contact sheet
BOX_COLOUR = (255, 214, 0)  # a face's box drawn on its photo (yellow, with a dark edge: seen on any picture)


class SearchError(AekitError):
    """An index that cannot be searched, or a query that does not fit it."""


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class FaceIndex:
    """Standardised, unit-length rows of an (N, D) feature matrix, searchable by cosine similarity."""

    def __init__(self, features: np.ndarray, engine: str = "auto"):
        X = np.asarray(features, dtype=np.float32)
        if X.ndim != 2 or len(X) == 0:
            raise SearchError(f"the index holds no faces (features of shape {X.shape})")
        if engine not in ENGINES:
            raise SearchError(f"unknown search engine {engine!r} (engines: {', '.join(ENGINES)})")
        if engine == "faiss" and not faiss_available():
            raise SearchError("--engine faiss: faiss is not installed (pip install faiss-cpu)")
        self.mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
        std = X.std(axis=0, dtype=np.float64).astype(np.float32)
        self.std = np.where(std > 1e-12, std, 1.0).astype(np.float32)  # a constant feature carries nothing
        self.rows = np.empty_like(X)
        for start in range(0, len(X), CHUNK_ROWS):  # in chunks: no second full-size float64 copy
            self.rows[start : start + CHUNK_ROWS] = self.normalise(X[start : start + CHUNK_ROWS])
        self.engine = "numpy" if engine == "auto" else engine
        self._faiss = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def dimension(self) -> int:
        return self.rows.shape[1]

    def normalise(self, X: np.ndarray) -> np.ndarray:
        """Standardise with the index's statistics, then scale each row to unit length."""
        Z = (np.asarray(X, dtype=np.float32) - self.mean) / self.std
        norms = np.linalg.norm(Z, axis=1, keepdims=True)
        return (Z / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    def search(self, queries: np.ndarray, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """(indices (M, k), cosine similarities (M, k)) of each query's k nearest rows, best first."""
        Q = np.asarray(queries, dtype=np.float32)
        if Q.ndim != 2 or Q.shape[1] != self.dimension:
            raise SearchError(f"queries have shape {Q.shape}, the index {self.dimension} features per face")
        k = max(1, min(int(k), len(self)))
        Q = self.normalise(Q)
        if self.engine == "faiss":
            return self._search_faiss(Q, k)
        best_scores = np.full((len(Q), 0), -np.inf, dtype=np.float32)
        best_rows = np.zeros((len(Q), 0), dtype=np.int64)
        for start in range(0, len(self), CHUNK_ROWS):
            scores = Q @ self.rows[start : start + CHUNK_ROWS].T  # (M, chunk)
            take = min(k, scores.shape[1])
            top = np.argpartition(-scores, take - 1, axis=1)[:, :take]
            best_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], axis=1)
            best_rows = np.concatenate([best_rows, top + start], axis=1)
            if best_scores.shape[1] > k:  # keep the k best seen so far
                keep = np.argpartition(-best_scores, k - 1, axis=1)[:, :k]
                best_scores = np.take_along_axis(best_scores, keep, axis=1)
                best_rows = np.take_along_axis(best_rows, keep, axis=1)
        # best first; equal scores in index order, so both engines agree on ties
        order = np.lexsort((best_rows, -best_scores), axis=1)
        return np.take_along_axis(best_rows, order, axis=1), np.take_along_axis(best_scores, order, axis=1)

    def _search_faiss(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        if self._faiss is None:
            self._faiss = faiss.IndexFlatIP(self.dimension)
            self._faiss.add(self.rows)
        scores, rows = self._faiss.search(Q, k)
        order = np.lexsort((rows, -scores), axis=1)
        return np.take_along_axis(rows.astype(np.int64), order, axis=1), np.take_along_axis(scores, order, axis=1)


def framed_tile(photo, box, face: np.ndarray | None = None, tile: int = TILE) -> np.ndarray:
    """A (tile, tile, 3) picture of a face found in a larger photo: the whole photo, shrunk to fit the tile
    (centred on grey), the face's box drawn on it, and `face` (its aligned model input) small in the corner
    farthest from the box, so the box is never covered.

    `photo` is a PIL image or (H, W, 3) uint8 array; `box` is x, y, width, height in its pixels.
    """
    from PIL import Image, ImageDraw

    picture = photo.convert("RGB") if isinstance(photo, Image.Image) else Image.fromarray(np.asarray(photo, dtype=np.uint8))
    width, height = picture.size
    scale = tile / max(width, height, 1)
    shown = (max(1, round(width * scale)), max(1, round(height * scale)))
    canvas = Image.new("RGB", (tile, tile), (221, 221, 221))
    left, top = (tile - shown[0]) // 2, (tile - shown[1]) // 2
    canvas.paste(picture.resize(shown, Image.BICUBIC, reducing_gap=2.0), (left, top))
    draw = ImageDraw.Draw(canvas)
    x, y, w, h = (float(v) for v in box)
    x0, y0 = left + x * scale, top + y * scale
    x1, y1 = x0 + max(w * scale, 3.0), y0 + max(h * scale, 3.0)
    draw.rectangle([x0 - 1, y0 - 1, x1 + 1, y1 + 1], outline=(0, 0, 0), width=1)  # a dark edge around the box
    draw.rectangle([x0, y0, x1, y1], outline=BOX_COLOUR, width=2)
    if face is not None:
        inset = max(8, tile // 3)
        centre = ((x0 + x1) / 2, (y0 + y1) / 2)
        ix = 1 if centre[0] > tile / 2 else tile - inset - 1  # the corner away from the face
        iy = 1 if centre[1] > tile / 2 else tile - inset - 1
        draw.rectangle([ix - 1, iy - 1, ix + inset, iy + inset], outline=(255, 255, 255), width=1)
        canvas.paste(Image.fromarray(np.asarray(face, dtype=np.uint8)).resize((inset, inset), Image.BICUBIC), (ix, iy))
    return np.asarray(canvas)


def contact_sheet(queries: list[np.ndarray], query_names: list[str], neighbours: list[list[np.ndarray | None]],
                  scores: np.ndarray, title: str, tile: int = TILE):
    """A picture: one row per query, the query first, then its neighbours with their cosine similarity.

    A picture already `tile` pixels square (a `framed_tile`: a face shown in its photo) is drawn as it is.
    """
    from PIL import Image, ImageDraw

    k = max((len(row) for row in neighbours), default=0)
    pad, caption = 6, 16
    width = pad + (k + 1) * (tile + pad) + pad
    height = 22 + len(queries) * (tile + caption + pad) + pad
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 5), title, fill="black")
    for r, (query, name) in enumerate(zip(queries, query_names)):
        y = 22 + r * (tile + caption + pad)
        sheet.paste(_tile(query, tile), (pad, y))
        draw.rectangle([pad - 2, y - 2, pad + tile + 1, y + tile + 1], outline="#d33", width=2)
        draw.text((pad, y + tile + 2), _short(name, tile), fill="#d33")
        for c, image in enumerate(neighbours[r]):
            x = pad + (c + 1) * (tile + pad) + pad
            if image is None:
                draw.rectangle([x, y, x + tile - 1, y + tile - 1], fill="#eee")
                draw.text((x + 4, y + tile // 2 - 6), "not found", fill="#888")
            else:
                sheet.paste(_tile(image, tile), (x, y))
            draw.text((x, y + tile + 2), f"{c + 1}. {scores[r][c]:.3f}", fill="black")
    return sheet


def _tile(image: np.ndarray, tile: int):
    from PIL import Image

    picture = Image.fromarray(image)
    return picture if picture.size == (tile, tile) else picture.resize((tile, tile), Image.BICUBIC)


def _short(text: str, tile: int) -> str:
    limit = max(4, tile // 6)
    return text if len(text) <= limit else "…" + text[-(limit - 1):]
