"""The explorer's model work, without HTTP: faces in, latents and pictures (PNG data URLs) out.

``Explorer(model, denoiser=None, features=None, gallery_dir=None)`` holds everything the page uses:
the model, its latent directions (``directions.safetensors`` beside the checkpoint), its fitted prior
(else N(0, I) with a note), an optional denoiser, an optional features file to search for the
nearest faces, and a small LRU of the faces a user uploaded or picked, by token. An upload is a photo:
its largest face is found and aligned (``align``: auto, on or off, as ``--align`` of the commands) before
it is encoded, and its edits are shown in the photo itself, the change between the edited face's decoding
and its reconstruction put back under a soft mask (``aekit_edit.photos``). Every method takes
and returns plain JSON-able values; a bad request raises ``ExplorerError`` (with an HTTP status),
which the web app turns into ``{"error": "one line"}``. Uploads are decoded within a ``DecodeBudget``:
an image's size is read from its header first, and one over the per-upload limit (413) or one that
does not fit beside the uploads decoding now (503, "busy") is refused before any pixel is decoded.
"""

from __future__ import annotations

import base64
import contextlib
import io
import math
import os
import secrets
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aekit.errors import AekitError, first_line

MAX_FACES = 32  # uploaded/picked faces kept in memory (least recently used dropped)
GALLERY_SAMPLES = 8  # prior samples in the gallery, seeds 0..7 of one draw
GALLERY_FILES = 24  # at most this many images from --gallery DIR
GALLERY_SEED = 0
PHOTO_SIDE = 256  # an upload is kept (for denoising) at most this big on its longer side
MAX_SAMPLES = 16
MAX_STEPS = 16
MAX_NEIGHBOURS = 24
MAX_AMOUNT = 10.0  # a direction slider's amount, either way
MAX_NOISE = 1.0
NOISE_CHOICES = ("gaussian", "saltpepper", "speckle", "mask")  # noise models whose amount is in [0, 1]
PRIOR_ORDER = ("gmm", "gaussian")  # what `aekit generate` uses when fitted
NO_DIRECTIONS = "no directions: run `aekit directions fit --model {model} --data SOURCE` to get sliders"
# An upload takes about 4 bytes a pixel while decoded (Pillow's RGB), about 8 while converted (alpha, 16-bit).
MAX_UPLOAD_MP = 40.0  # millions of pixels of one upload, as decoded (a JPEG at its reduced scale: a camera's, < 1)
DECODE_BUDGET_MP = 64.0  # millions of pixels of all the uploads decoding at once (at least MAX_UPLOAD_MP)
DECODE_SLOTS = 4  # uploads decoding at once, whatever their size
BUSY = "the server is busy decoding other uploads; try again in a moment"
OUT_OF_MEMORY = "the server ran out of memory on this request; try again in a moment, or with a smaller image"


class ExplorerError(AekitError):
    """A request the explorer refuses; `status` is the HTTP status the web app answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class DecodeBudget:
    """How many pixels one upload may have, and how many the uploads decoding at once may have together.

    A decode that does not fit is refused at once (ExplorerError, 503), never queued: a storm of uploads
    holds at most `total_pixels` decoded pixels and `slots` threads, however many requests it sends.
    Thread-safe; `max_pixels` over Pillow's own limit (``Image.MAX_IMAGE_PIXELS``) changes nothing.
    """

    def __init__(self, max_pixels: int = round(MAX_UPLOAD_MP * 1e6), total_pixels: int | None = None,
                 slots: int = DECODE_SLOTS):
        total_pixels = max(round(DECODE_BUDGET_MP * 1e6), max_pixels) if total_pixels is None else total_pixels
        if max_pixels < 1 or slots < 1:
            raise ValueError(f"max_pixels and slots must be at least 1, got {max_pixels} and {slots}")
        if total_pixels < max_pixels:  # an upload under the limit but over the budget would be "busy" forever
            raise ValueError(f"total_pixels ({total_pixels}) must be at least max_pixels ({max_pixels})")
        self.max_pixels, self.total_pixels, self.slots = int(max_pixels), int(total_pixels), int(slots)
        self._lock = threading.Lock()
        self.decoding = 0  # uploads decoding now
        self.pixels = 0  # their pixels

    @contextlib.contextmanager
    def admit(self, name: str, width: int, height: int):
        """Hold `width` x `height` pixels of the budget while the block decodes `name`."""
        pixels = width * height
        if pixels > self.max_pixels:
            raise ExplorerError(f"{name}: {width}x{height} is {pixels / 1e6:.3g} million pixels, more than the server's "
                                f"limit of {self.max_pixels / 1e6:g} million (`aekit serve --max-upload-mp`)", status=413)
        with self._lock:
            if self.decoding >= self.slots or self.pixels + pixels > self.total_pixels:
                raise ExplorerError(BUSY, status=503)
            self.decoding += 1
            self.pixels += pixels
        try:
            yield
        finally:
            with self._lock:
                self.decoding -= 1
                self.pixels -= pixels


@dataclass
class Face:
    name: str
    photo: object  # PIL RGB image, at most PHOTO_SIDE on its longer side (for denoising)
    pixels: np.ndarray  # (S, S, 3) uint8: what the model sees
    latent: np.ndarray  # (d,) float32
    target: object = None  # an upload's aekit_edit.PhotoFace: where an edit's change goes back into `photo`


def data_url(image) -> str:
    """A PNG data URL of a PIL image or an (H, W, 3) uint8 array."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image, dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _number(value, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExplorerError(f"{what} must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an int with hundreds of digits
        number = math.inf
    if not math.isfinite(number) or not low <= number <= high:
        raise ExplorerError(f"{what} must be between {low:g} and {high:g}, got {number:g}")
    return number


def _integer(value, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ExplorerError(f"{what} must be a whole number, got {value!r}"[:200])
    if not low <= value <= high:
        shown = str(value) if abs(value) < 10**30 else "a number of more than 30 digits"  # a long int is not echoed
        raise ExplorerError(f"{what} must be between {low} and {high}, got {shown}")
    return value


def model_label(model) -> str:
    directory = getattr(model, "checkpoint_dir", None)
    return Path(directory).name if directory else type(model).__name__


class Explorer:
    """The model work behind the page (thread-safe: one model call at a time)."""

    def __init__(self, model, denoiser=None, features=None, features_path=None, gallery_dir=None,
                 max_faces: int = MAX_FACES, log=None, budget: DecodeBudget | None = None, align: str = "auto",
                 feature_model=None):
        from aekit import model_fingerprint
        from aekit.alignment import aligner_for, check_mode

        if not getattr(model, "decodes_latents", True):
            raise ExplorerError(f"{getattr(model, 'checkpoint_dir', 'this model')}: a skip-connection denoiser has no "
                                "latent space to explore; give it as --denoiser and a codec as --model")
        self.model = model.eval()
        self.denoiser = denoiser.eval() if denoiser is not None else None
        self.size = int(model.config.image_size)
        self.latent_dim = int(model.config.latent_dim)
        self.fingerprint = model_fingerprint(model)
        # what embeds a query for the nearest faces: the model that made the index (by default the feature
        # extractor `aekit embed` uses), which need not be the codec the page explores
        self.feature_model = feature_model.eval() if feature_model is not None else self.model
        self.feature_fingerprint = model_fingerprint(self.feature_model) if feature_model is not None else self.fingerprint
        self.log = log or (lambda message: None)
        self.max_faces = max_faces
        self.budget = budget or DecodeBudget()  # the web app passes its own to encode_upload
        self.align = check_mode(align)
        self.aligner = aligner_for(self.align)  # on with none installed: one line now, not per upload
        if self.aligner is None:
            self.align = "off"  # auto with none installed: uploads as they are
        self._faces: OrderedDict[str, Face] = OrderedDict()
        self._lock = threading.RLock()
        self.notes: list[str] = []
        self.directions, self.directions_note = self._load_directions()
        self.sampler_name, self.sampler, self.prior_note = self._load_prior()
        self.features, self.features_path = features, features_path
        self.index, self.neighbour_images, self.neighbour_note = None, None, None
        if features is not None:
            self._load_index(features, features_path)
        self.gallery_dir = Path(gallery_dir) if gallery_dir else None
        self._gallery: list[dict] | None = None
        self._gallery_faces: dict[str, np.ndarray] = {}

    # --- what is there --------------------------------------------------------------------------------

    def _load_directions(self):
        from aekit_edit import DirectionsError, directions_path, load_directions

        directory = getattr(self.model, "checkpoint_dir", None)
        if directory is None:
            return None, "no directions: this model was not loaded from a checkpoint folder"
        try:
            return load_directions(self.model), None
        except DirectionsError as exc:
            if not directions_path(directory).exists():
                return None, NO_DIRECTIONS.format(model=directory)
            return None, f"no directions: {first_line(exc)}"  # damaged or another model's: said, not fatal

    def _load_prior(self):
        from aekit.plugins import get_registry
        from aekit_generate import NormalSampler, PriorError, fitted_priors, load_prior

        directory = getattr(self.model, "checkpoint_dir", None)
        if directory is not None:
            have, registered = fitted_priors(directory), get_registry().names("sampler")
            for name in PRIOR_ORDER:
                if name in have and name in registered:
                    try:
                        return name, load_prior(self.model, name), None
                    except PriorError as exc:
                        self.log(f"note: {first_line(exc)}")
        note = ("no fitted prior: samples are N(0, I) like the article's, often blurry or broken "
                f"(run `aekit fit-prior --model {directory or 'MODEL'}` for better ones)")
        return "normal", NormalSampler(latent_dim=self.latent_dim), note

    def _load_index(self, features, features_path) -> None:
        from aekit_embed.lookup import images_for
        from aekit_embed.search import FaceIndex

        where = features_path or "the features file"
        if features.model_id != self.feature_fingerprint:
            by = getattr(self.feature_model, "checkpoint_dir", None) or "this model"
            raise ExplorerError(f"{where}: made by model {features.model_id} ({features.meta.get('model') or 'unknown'}), "
                                f"not by {by}; give the --model that made it, or embed the faces again")
        self.index = FaceIndex(features.X)
        try:
            source, why = images_for(features)
        except AekitError as exc:
            source, why = None, first_line(exc)
        self.neighbour_images = source
        if source is None:
            self.neighbour_note = f"neighbours shown by name: {why}"

    def info(self) -> dict:
        from aekit.plugins import get_registry

        directions = []
        if self.directions is not None:
            directions = [{"name": n, "kind": k} for n, k in zip(self.directions.names, self.directions.kinds)]
        return {
            "model": model_label(self.model),
            "model_path": str(getattr(self.model, "checkpoint_dir", "") or ""),
            "model_id": self.fingerprint,
            "image_size": self.size,
            "latent_dim": self.latent_dim,
            "directions": directions,
            "directions_note": self.directions_note,
            "has_denoiser": self.denoiser is not None,
            "denoiser": model_label(self.denoiser) if self.denoiser is not None else None,
            "noise_models": [n for n in NOISE_CHOICES if n in get_registry().names("noise_model")],
            "has_prior": self.prior_note is None,
            "sampler": self.sampler_name,
            "prior_note": self.prior_note,
            "has_index": self.index is not None,
            "index_size": len(self.index) if self.index is not None else 0,
            "index_note": self.neighbour_note,
            "max_amount": MAX_AMOUNT,
            "align": self.align,
        }

    # --- the model, under one lock ----------------------------------------------------------------------

    def _encode(self, pixels: np.ndarray) -> np.ndarray:
        with self._lock:
            return self.model.encode(pixels).float().numpy()

    def _decode(self, latents: np.ndarray) -> np.ndarray:
        from aekit.images import to_uint8_hwc

        return to_uint8_hwc(self._decode_raw(latents))

    def _decode_raw(self, latents: np.ndarray):
        with self._lock:
            return self.model.decode(np.asarray(latents, dtype=np.float32))

    def latent(self, value) -> np.ndarray:
        """A latent from JSON: a list of `latent_dim` finite numbers."""
        if not isinstance(value, list) or len(value) != self.latent_dim:
            raise ExplorerError(f"latent must be a list of {self.latent_dim} numbers")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise ExplorerError("latent must hold numbers only")
        try:
            z = np.asarray(value, dtype=np.float64)
        except OverflowError:  # an int with hundreds of digits
            z = np.full(len(value), np.inf)
        if not np.isfinite(z).all() or np.abs(z).max(initial=0) > 1e6:
            raise ExplorerError("latent holds a value that is not finite or is absurdly large")
        return z.astype(np.float32)

    # --- faces ------------------------------------------------------------------------------------------

    def _remember(self, face: Face) -> str:
        token = secrets.token_urlsafe(9)
        with self._lock:
            self._faces[token] = face
            while len(self._faces) > self.max_faces:
                self._faces.popitem(last=False)
        return token

    def face(self, token) -> Face:
        if not isinstance(token, str):
            raise ExplorerError("token must be the text /api/encode returned")
        with self._lock:
            face = self._faces.get(token)
            if face is not None:
                self._faces.move_to_end(token)
        if face is None:
            raise ExplorerError("this face is no longer in memory (or never was); choose it again", status=404)
        return face

    def _add(self, name: str, photo, target=None) -> dict:
        """Remember a face: `photo` resized for the model, or with `target` (an upload's aligned face, an
        ``aekit_edit.PhotoFace``) its pixels, and then its edits are shown in `photo` (``"photo"``)."""
        from aekit.images import resize_rgb

        pixels = target.pixels if target is not None else resize_rgb(photo, self.size)
        latent = self._encode(pixels[None])[0]
        reconstruction = self._decode(latent[None])[0]
        face = Face(name=name, photo=photo, pixels=pixels, latent=latent, target=target)
        token = self._remember(face)
        return {"token": token, "name": name, "latent": latent.tolist(), "original": data_url(pixels),
                "reconstruction": data_url(reconstruction), "photo": data_url(photo) if target is not None else None}

    def _aligned(self, name: str, image):
        """The face of an upload the model sees (its largest, aligned, under the explorer's `align`) and where its
        change goes back: an ``aekit_edit.PhotoFace``; no usable face (``on``, or only faces too small) is a 400."""
        from aekit_edit import photo_faces

        faces, why = photo_faces(np.asarray(image, dtype=np.uint8), name, self.align, self.size, self.aligner,
                                 largest=True)
        if why is not None:
            raise ExplorerError(f"{why} (the explorer aligns uploads: `aekit serve --align {self.align}`; "
                                "--align off takes the picture as it is)")
        return faces[0]

    def encode_upload(self, data: bytes, filename: str = "upload", budget: DecodeBudget | None = None) -> dict:
        """An uploaded file's bytes, read by the CLI's safe reader (``aekit.images.open_image``) within `budget`
        (else the explorer's own): its size comes from its header, before any pixel is decoded."""
        from aekit.errors import ImageReadError
        from aekit.images import open_checked, open_image, read_errors

        budget = budget or self.budget
        name = Path(str(filename or "upload").replace("\\", "/")).name[:120] or "upload"
        if not data:
            raise ExplorerError(f"{name}: the upload is empty")
        suffix = Path(name).suffix.lower()[:8] if Path(name).suffix.isascii() else ""
        with tempfile.TemporaryDirectory(prefix="aekit-serve-") as folder:
            path = Path(folder) / f"upload{suffix}"
            path.write_bytes(data)
            try:
                with read_errors(path), open_checked(path) as header:
                    if header.format == "JPEG":  # as open_image decodes it: at a reduced scale, far fewer pixels
                        header.draft("RGB", (PHOTO_SIDE, PHOTO_SIDE))
                    width, height = header.size
                with budget.admit(name, width, height):
                    image = open_image(path, draft_size=PHOTO_SIDE)
                    image.thumbnail((PHOTO_SIDE, PHOTO_SIDE))  # the full-size pixels go before the budget is given back
            except ImageReadError as exc:
                message = first_line(exc).replace(str(path), name)
                raise ExplorerError(message) from None
            except MemoryError:  # the reader's too: the server's state, not the upload's fault
                raise ExplorerError(OUT_OF_MEMORY, status=503) from None
        return self._add(name, image, self._aligned(name, image))

    def encode_gallery(self, item) -> dict:
        from PIL import Image

        self.gallery()
        if not isinstance(item, str) or item not in self._gallery_faces:
            raise ExplorerError(f"no gallery face {str(item)[:40]!r}", status=404)
        label = next(g["label"] for g in self._gallery if g["id"] == item)
        return self._add(label, Image.fromarray(self._gallery_faces[item]))

    def encode_latent(self, value, name: str = "sample") -> dict:
        from PIL import Image

        z = self.latent(value)
        pixels = self._decode(z[None])[0]
        return self._add(str(name)[:120], Image.fromarray(pixels))

    def gallery(self) -> list[dict]:
        """Faces to pick: prior samples with fixed seeds, then the images of --gallery DIR (no dataset ships)."""
        from aekit.errors import ImageReadError
        from aekit.images import IMAGE_EXTENSIONS, open_image, resize_rgb

        with self._lock:
            if self._gallery is not None:
                return self._gallery
            items = []
            z = np.asarray(self.sampler.sample(GALLERY_SAMPLES, GALLERY_SEED), dtype=np.float32)
            for i, pixels in enumerate(self._decode(z)):
                self._gallery_faces[f"sample-{i}"] = pixels
                items.append({"id": f"sample-{i}", "label": f"{self.sampler_name} sample {i}"})
            if self.gallery_dir is not None:
                files = sorted(p for p in self.gallery_dir.iterdir()
                               if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
                for i, path in enumerate(files[:GALLERY_FILES]):
                    try:
                        image = open_image(path)
                    except ImageReadError as exc:
                        self.log(f"gallery: skipped {first_line(exc)}")
                        continue
                    image.thumbnail((PHOTO_SIDE, PHOTO_SIDE))
                    self._gallery_faces[f"file-{i}"] = np.asarray(image)
                    items.append({"id": f"file-{i}", "label": path.name})
            for item in items:
                item["image"] = data_url(resize_rgb(self._gallery_faces[item["id"]], self.size))
            self._gallery = items
            return items

    # --- what the sliders and buttons ask for -----------------------------------------------------------

    def edits(self, value) -> dict[str, float]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ExplorerError("edits must be an object {direction: amount}")
        if value and self.directions is None:
            raise ExplorerError(self.directions_note or "this model has no directions")
        from aekit_edit import DirectionsError

        edits = {}
        for name, amount in value.items():
            try:
                self.directions.index(str(name))
            except DirectionsError as exc:
                raise ExplorerError(first_line(exc)) from None
            edits[str(name)] = _number(amount, f"the amount of {name}", -MAX_AMOUNT, MAX_AMOUNT)
        return edits

    def decode(self, latent=None, token=None, edits=None) -> dict:
        """The face `latent` (or the face `token`'s latent) moved along `edits`, decoded (``"image"``); for an
        uploaded photo's `token` also ``"photo"``: the photo with the change (the moved face's decoding less the
        reconstruction) put back under the face's soft mask, at the photo's size."""
        from aekit.images import to_uint8_hwc

        face = self.face(token) if latent is None else None
        base = face.latent if face is not None else self.latent(latent)
        moves = self.edits(edits)
        z = self.directions.apply(base[None], moves) if moves else base[None]
        if face is None or face.target is None:
            return {"image": data_url(self._decode(z)[0]), "latent": z[0].tolist(), "photo": None}
        from aekit_edit import grey_levels, put_changes

        edited = self._decode_raw(z)
        change = grey_levels(edited)[0] - grey_levels(self._decode_raw(base[None]))[0]  # each as /api/encode decodes it
        photo = put_changes(np.asarray(face.photo, dtype=np.uint8), [face.target], [change], self.aligner)
        return {"image": data_url(to_uint8_hwc(edited)[0]), "latent": z[0].tolist(), "photo": data_url(photo)}

    def denoise(self, token, noise="gaussian", amount=0.1, seed=0) -> dict:
        from aekit.denoising import denoise_any
        from aekit.errors import NoiseSpecError
        from aekit.noise import parse_noise

        if self.denoiser is None:
            raise ExplorerError("no denoiser: start `aekit serve --denoiser NAME_OR_DIR`", status=404)
        if noise not in NOISE_CHOICES:
            raise ExplorerError(f"noise must be one of {', '.join(NOISE_CHOICES)}, got {str(noise)[:40]!r}")
        amount = _number(amount, "the noise amount", 0.0, MAX_NOISE)
        seed = _integer(seed, "seed", 0, 2**31 - 1)
        face = self.face(token)
        photo = np.asarray(face.photo, dtype=np.uint8)
        spec = f"{noise}:{amount:g}" if amount > 0 else "none"  # amount 0: what the denoiser does to a clean face
        noisy = photo
        if amount > 0:
            try:
                add_noise = parse_noise(spec)
            except NoiseSpecError as exc:
                raise ExplorerError(first_line(exc)) from None
            noisy = add_noise(photo.astype(np.float32) / 255.0, np.random.default_rng(seed)) * 255.0 + 0.5
            noisy = noisy.clip(0, 255).astype(np.uint8)
        with self._lock:
            clean = denoise_any(self.denoiser, noisy)
        return {"spec": spec, "noisy": data_url(noisy), "denoised": data_url(clean)}

    def sample(self, seed=0, n=8) -> dict:
        seed = _integer(seed, "seed", 0, 2**31 - 1)
        n = _integer(n, "n", 1, MAX_SAMPLES)
        z = np.asarray(self.sampler.sample(n, seed), dtype=np.float32).reshape(n, self.latent_dim)
        return {"sampler": self.sampler_name, "note": self.prior_note, "seed": seed, "latents": z.tolist(),
                "images": [data_url(image) for image in self._decode(z)]}

    def interpolate(self, a, b, steps=8) -> dict:
        za, zb = self.latent(a), self.latent(b)
        steps = _integer(steps, "steps", 2, MAX_STEPS)
        t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
        return {"t": t[:, 0].round(4).tolist(), "images": [data_url(im) for im in self._decode((1 - t) * za + t * zb)]}

    def neighbours(self, token, k=8) -> dict:
        from aekit_embed.lookup import read_images

        if self.index is None:
            raise ExplorerError("no index: start `aekit serve --features FEATURES.npz` (from `aekit embed`)", status=404)
        k = _integer(k, "k", 1, MAX_NEIGHBOURS)
        face = self.face(token)
        with self._lock:
            query = self.feature_model.features(face.pixels[None], kind=self.features.feature_set).float().numpy()
        rows, scores = self.index.search(query, k)
        rows, scores = rows[0].tolist(), scores[0].tolist()
        pictures = {}
        if self.neighbour_images is not None:
            try:
                pictures = read_images(self.neighbour_images, sorted(set(rows)), self.size)
            except Exception as exc:  # files gone since start: names only
                self.log(f"neighbours: could not read the index's images ({first_line(exc)})")
        found = [{"name": os.fsencode(self.features.paths[r]).decode("utf-8", "replace"), "similarity": round(s, 4),
                  "image": data_url(pictures[r]) if r in pictures else None} for r, s in zip(rows, scores)]
        return {"neighbours": found, "note": self.neighbour_note, "feature_set": self.features.feature_set}
