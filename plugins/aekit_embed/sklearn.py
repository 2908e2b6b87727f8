"""``AutoencoderEmbedder``: an aekit model's encoder as a scikit-learn transformer (images -> latents)."""

from __future__ import annotations

import os

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from aekit.errors import AekitError

MIN_FLAT_SIDE = 8  # a flattened 2-D row must be an RGB image of at least 8x8 pixels (192 values)


class EmbedderError(AekitError, ValueError):
    """Input the embedder cannot take, or a checkpoint that changed since the embedder was fitted."""


# scikit-learn's generic checks that cannot apply: each feeds small random tabular data (1-20 columns: make_blobs,
# uniform noise...) that is not an image, so fit/transform refuse it with an EmbedderError naming the expected width.
# check_estimator(..., expected_failed_checks=dict.fromkeys(NOT_IMAGE_CHECKS, reason)) in tests/test_embed.py.
NOT_IMAGE_CHECKS = (
    "check_fit_score_takes_y", "check_estimators_overwrite_params", "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self", "check_readonly_memmap_input", "check_n_features_in_after_fitting",
    "check_estimators_nan_inf", "check_positive_only_tag_during_fit", "check_estimators_dtypes", "check_dtype_object",
    "check_pipeline_consistency", "check_estimators_pickle", "check_f_contiguous_array_estimator",
    "check_array_api_input", "check_transformer_data_not_an_array", "check_transformer_general",
    "check_transformer_preserve_dtypes", "check_methods_sample_order_invariance", "check_methods_subset_invariance",
    "check_fit2d_1sample", "check_dict_unchanged", "check_fit_idempotent", "check_fit_check_is_fitted",
    "check_n_features_in", "check_fit2d_predict1d",
)


class AutoencoderEmbedder(TransformerMixin, BaseEstimator):
    """Encode face images to an aekit autoencoder's features, for scikit-learn pipelines.

    The model is pretrained: ``fit`` loads it (and checks ``X``), it learns nothing from the data, and
    ``transform`` returns the (N, D) float32 features of the feature set ``features``, named
    ``multiscale0``, ``multiscale1``, ... (the set's name and an index) by ``get_feature_names_out`` (so
    ``set_output(transform="pandas")`` gives a DataFrame)::

        from sklearn.pipeline import make_pipeline
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import cross_val_score

        pipe = make_pipeline(AutoencoderEmbedder(model="runs/synth"), StandardScaler(), LogisticRegression(max_iter=2000))
        cross_val_score(pipe, images, y, cv=5)

    Parameters
    ----------
    model : str or None
        A pretrained model's name, a checkpoint folder or a Hugging Face hub id (None: the default
        model for features, see ``aekit models``: the pretrained feature extractor, else the codec). A string, so the estimator clones, pickles and grid-searches
        cheaply: the weights are re-loaded from it.
    features : str
        The feature set (``aekit.feature_sets``): ``"multiscale"`` (the default: the encoder's
        stages pooled, plus the latent), ``"grid"`` or ``"latent"`` (the latent alone); a
        grid-searchable parameter.
    batch_size : int
        Images encoded at a time (memory stays bounded for long inputs such as lists of files).
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    float_range : tuple of two floats
        The value range of float pixel inputs: ``(-1, 1)`` (the model's own, the default), ``(0, 1)``
        or ``(0, 255)``. uint8 inputs are always 0..255. Values outside the range are an error.
    runtime : str
        What computes the features: ``"auto"`` (ONNX Runtime on a CPU when ``aekit[onnx]`` is installed,
        exported once into the cache and checked against PyTorch; PyTorch otherwise), ``"onnx"`` or
        ``"torch"``: the features agree within 1e-4. ``"onnx-int8"``: ONNX Runtime's int8-quantised graph,
        faster on a CPU and close to them (``aekit.onnx_int8``).
    align : str
        Faces in photos (``aekit.alignment``, like ``aekit embed --align``), one row per image: ``"auto"``
        (the default: an image already framed like CelebA's faces, or with no usable face, is used as it
        is; otherwise its largest face is aligned), ``"on"`` (the largest face of every image, aligned; an
        image without one raises an ``EmbedderError`` naming it and why) or ``"off"`` (each image resized
        as it is). It applies to every input form, arrays included (their images are searched as 8-bit
        pixels; an image used as it is keeps its exact values).

    Accepted ``X`` (one image per sample; images are resized to the model's size like ``model.encode``):

    * uint8 arrays (N, H, W, 3), or float arrays (N, 3, H, W) / (N, H, W, 3) in `float_range`;
    * 2-D arrays (N, S*S*3) of flattened RGB images, ``images.reshape(len(images), -1)`` of an
      (N, S, S, 3) array (S of at least 8); ``n_features_in_`` records S*S*3 and ``transform``
      refuses another width; a pandas DataFrame of such rows works too;
    * a list (or 1-D array / Series) of image file paths, or of PIL images.

    Fitted attributes: ``model_`` (the loaded torch model), ``model_id_`` (its fingerprint),
    ``image_size_``, ``n_features_out_`` (the feature set's size), and ``n_features_in_`` when ``fit``
    got a 2-D array. Pickling drops ``model_``; unpickling re-loads it from `model` and refuses a
    checkpoint whose weights changed since (the features would silently change otherwise).

    scikit-learn's generic estimator checks (``check_estimator``) feed small random tabular data
    (1 to 20 columns) that is not an image, so the checks that fit or transform such data fail on
    purpose with a clear ValueError: those named in ``NOT_IMAGE_CHECKS``. ``tests/test_embed.py`` runs
    every check, requires these to fail and all others to pass, and tests the properties behind them
    (pickling, subset and order invariance, idempotent fit, dtypes, ``n_features_in_``, read-only input,
    pandas output) on image-shaped data instead.
    """

    def __init__(self, model=None, features="multiscale", batch_size=64, device="auto", float_range=(-1.0, 1.0),
                 runtime="auto", align="auto"):
        self.model = model
        self.features = features
        self.runtime = runtime
        self.batch_size = batch_size
        self.device = device
        self.float_range = float_range
        self.align = align

    # --- scikit-learn API ---------------------------------------------------------------------------

    def fit(self, X, y=None):
        """Load the model into ``model_`` and check `X` (nothing is learnt: the model is pretrained)."""
        self._check_params()
        self._set_model(self._load_model())
        try:
            kind, n = self._inspect(X, reset=True)
            if n == 0:
                raise EmbedderError("X holds 0 images; at least one is required")
            if kind not in ("paths", "pil"):  # check pixel values now rather than at transform time
                step = max(self.batch_size, 1024)
                for start in range(0, n, step):
                    self._batch(X, kind, start, min(n, start + step), aligned=False)  # the faces: at transform
        except BaseException:
            for name in ("model_", "model_id_", "image_size_", "n_features_out_", "n_features_in_"):
                self.__dict__.pop(name, None)  # a failed fit leaves the estimator unfitted
            raise
        return self

    def transform(self, X):
        """The (N, D) float32 features (the ``features`` set) of the images in `X`."""
        check_is_fitted(self, "model_id_")
        self._align_mode()  # a bad align set after fit fails before any work
        kind, n = self._inspect(X, reset=False)
        if n == 0:
            raise EmbedderError("X holds 0 images; at least one is required")
        model = self._model()
        runner = self._onnx_runner(model)
        out = np.empty((n, self.n_features_out_), dtype=np.float32)
        for start in range(0, n, self.batch_size):
            batch = self._batch(X, kind, start, min(n, start + self.batch_size))
            if runner is None:
                out[start : start + len(batch)] = model.features(batch, self.features, batch_size=self.batch_size).numpy()
            else:
                from aekit.model import as_model_input

                out[start : start + len(batch)] = runner.run(as_model_input(batch, self.image_size_).numpy())  # [-1, 1] at the model size
        return out

    def get_feature_names_out(self, input_features=None):
        """``multiscale0``, ``multiscale1``, ... (the feature set's name and an index) one name per feature."""
        check_is_fitted(self, "model_id_")
        return np.asarray([f"{self.features}{i}" for i in range(self.n_features_out_)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # latents are float32 whatever the input
        tags.input_tags.two_d_array = True  # flattened images; also 4-D arrays and lists of paths
        tags.input_tags.string = True  # file paths
        tags.input_tags.allow_nan = False
        tags.target_tags.required = False
        tags.non_deterministic = False
        return tags

    # --- pickling: keep the path, drop the weights ----------------------------------------------------

    def __getstate__(self):
        state = super().__getstate__()
        state = dict(state)
        state.pop("model_", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "model_id_" in self.__dict__:
            self._set_model(self._load_model(), expect=self.model_id_)

    # --- helpers --------------------------------------------------------------------------------------

    def _check_params(self):
        if not isinstance(self.batch_size, (int, np.integer)) or isinstance(self.batch_size, bool) or self.batch_size < 1:
            raise EmbedderError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.model is not None and not isinstance(self.model, (str, os.PathLike)):
            raise EmbedderError(f"model must be a checkpoint folder or hub id (a string), got {type(self.model).__name__}; "
                                "save a model with model.save_pretrained(DIR) and pass DIR")
        from aekit import feature_sets
        from aekit.errors import RegistryError

        try:
            feature_sets.get(self.features)
        except (RegistryError, TypeError):
            raise EmbedderError(f"features must be a registered feature set ({', '.join(feature_sets.names())}), "
                                f"got {self.features!r}") from None
        if self.runtime not in ("auto", "torch", "onnx", "onnx-int8"):
            raise EmbedderError(f"runtime must be 'auto', 'torch', 'onnx' or 'onnx-int8', got {self.runtime!r}")
        low, high = self._range()
        if not low < high:
            raise EmbedderError(f"float_range must be (low, high) with low < high, got {self.float_range!r}")
        self._align_mode()

    def _align_mode(self) -> str:
        from aekit.alignment import ALIGN_MODES

        if not isinstance(self.align, str) or self.align not in ALIGN_MODES:
            raise EmbedderError(f"align must be one of {', '.join(repr(m) for m in ALIGN_MODES)}, got {self.align!r}")
        return self.align

    def _face_input(self, image, name: str, aligner) -> np.ndarray | None:
        """One image's model input under ``align`` (its largest face, aligned), or None: used as it is (``auto``:
        framed like CelebA already, or no usable face). ``on`` without a face raises, naming the image."""
        from aekit.alignment import AlignmentError, model_inputs

        try:
            crops, placements = model_inputs(image, self.align, self.image_size_, aligner=aligner, largest=True, name=name)
        except AlignmentError as exc:
            if self.align == "on":
                raise EmbedderError(str(exc)) from None
            return None  # auto: one row per image, so an image without a usable face is used as it is
        return crops[0] if placements[0].aligned else None

    def _aligner(self):
        from aekit.alignment import AlignmentError, aligner_for

        try:
            return aligner_for(self.align)  # None: off, or auto with no aligner installed (images as they are)
        except AlignmentError as exc:
            raise EmbedderError(f"{exc} (align='off' here)") from None

    def _onnx_runner(self, model):
        """ONNX Runtime for the features when ``runtime`` resolves to it (auto: on a CPU with the onnx extra), else None."""
        from aekit.runtime import OnnxFeatures, resolve_runtime

        try:
            runtime = resolve_runtime(self.runtime, next(model.parameters()).device)
        except AekitError as exc:
            raise EmbedderError(str(exc)) from None
        return OnnxFeatures(model, self.features, int8=runtime == "onnx-int8") if runtime != "torch" else None

    def _range(self) -> tuple[float, float]:
        try:
            low, high = (float(v) for v in self.float_range)
        except (TypeError, ValueError):
            raise EmbedderError(f"float_range must be two numbers such as (-1, 1) or (0, 1), got {self.float_range!r}") from None
        return low, high

    def _device(self):
        from aekit.devices import resolve_device
        from aekit.errors import DeviceError

        try:
            return resolve_device(self.device)
        except DeviceError as exc:
            raise EmbedderError(str(exc)) from None

    def _load_model(self):
        import aekit

        return aekit.load(str(self.model) if self.model is not None else None, device=self._device(), task="features")

    def _set_model(self, model, expect: str | None = None):
        import aekit

        model_id = aekit.model_fingerprint(model)
        if expect is not None and model_id != expect:
            raise EmbedderError(f"{self.model}: the checkpoint changed since this embedder was fitted "
                                f"(model {expect}, now {model_id}); fit it again")
        self.model_ = model
        self.model_id_ = model_id
        self.image_size_ = int(model.config.image_size)
        from aekit.feature_sets import dimension

        self.n_features_out_ = dimension(model, self.features)

    def _model(self):
        if getattr(self, "model_", None) is None:  # e.g. attributes copied without the model
            self._set_model(self._load_model(), expect=self.model_id_)
        return self.model_

    def _inspect(self, X, reset: bool) -> tuple[str, int]:
        """('paths' | 'pil' | 'flat' | 'nhwc' | 'nchw', number of images); sets/checks ``n_features_in_``."""
        if X is None:
            raise EmbedderError("X is None; give images: an (N, H, W, 3) array, flattened (N, S*S*3) rows or a list of file paths")
        if hasattr(X, "iloc") and getattr(X, "ndim", 2) == 1:  # a pandas Series of paths
            X = list(X)
        if isinstance(X, (list, tuple)) or (isinstance(X, np.ndarray) and X.dtype.kind in "UO" and X.ndim == 1):
            kind = self._list_kind(X)
            if reset:
                self._forget_n_features()
            return kind, len(X)
        if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
            raise TypeError("AutoencoderEmbedder does not take sparse input: give images as a dense array")
        array = X.to_numpy() if hasattr(X, "to_numpy") and hasattr(X, "columns") else X
        if not hasattr(array, "shape") or not hasattr(array, "dtype"):
            raise EmbedderError(f"cannot read images from a {type(X).__name__}")
        if array.dtype.kind == "c":
            raise EmbedderError("Complex data not supported: images are real numbers")
        if array.dtype.kind not in "uif":
            raise EmbedderError(f"image arrays must be numeric (uint8 or float), got dtype {array.dtype}")
        if array.ndim == 2:
            width = array.shape[1]
            if width == 0:  # scikit-learn's own wording for an empty row
                raise EmbedderError(f"Found array with 0 feature(s) (shape={tuple(array.shape)}) while a minimum of "
                                    f"{3 * MIN_FLAT_SIDE ** 2} is required (flattened S*S*3 RGB images)")
            side = int(round((width / 3) ** 0.5))
            if width != 3 * side * side or side < MIN_FLAT_SIDE:
                raise EmbedderError(
                    f"Found array with {width} feature(s) (shape={tuple(array.shape)}), but 2-D X must be flattened RGB "
                    f"images of S*S*3 values (S >= {MIN_FLAT_SIDE}; this model's images are {self.image_size_}x{self.image_size_}, "
                    f"i.e. {3 * self.image_size_ ** 2} features): images.reshape(len(images), -1) of an (N, S, S, 3) array")
            if reset:
                self.n_features_in_ = width
            elif getattr(self, "n_features_in_", width) != width:
                raise EmbedderError(f"X has {width} features, but AutoencoderEmbedder is expecting "
                                    f"{self.n_features_in_} features as input (flattened images of the size it was fitted on)")
            return "flat", len(array)
        if array.ndim == 4 and (array.shape[-1] == 3 or array.shape[1] == 3):
            if reset:
                self._forget_n_features()
            uint8 = array.dtype == np.uint8
            channels_last = array.shape[-1] == 3 and (uint8 or array.shape[1] != 3)
            return ("nhwc" if channels_last else "nchw"), len(array)
        raise EmbedderError(f"images must be (N, H, W, 3) or (N, 3, H, W) arrays, flattened (N, S*S*3) rows, "
                            f"or a list of file paths; got an array of shape {tuple(array.shape)}")

    def _forget_n_features(self):
        self.__dict__.pop("n_features_in_", None)

    @staticmethod
    def _list_kind(X) -> str:
        from PIL import Image

        if all(isinstance(x, Image.Image) for x in X):
            return "pil"
        if all(isinstance(x, (str, os.PathLike)) for x in X):
            return "paths"
        kinds = sorted({type(x).__name__ for x in X})
        raise EmbedderError(f"a list X must hold image file paths or PIL images, got {', '.join(kinds)}")

    def _batch(self, X, kind, start, stop, aligned: bool = True):
        """Images start..stop of X as a float tensor (B, 3, H, W) in [-1, 1]; with `aligned`, under ``align``."""
        import torch

        from aekit.pixels import images_to_tensor, to_signed

        align = aligned and self._align_mode() != "off"
        if kind in ("paths", "pil"):
            from aekit.images import open_image, resize_rgb

            items = list(X[start:stop]) if not hasattr(X, "iloc") else list(X.iloc[start:stop])
            size = self.image_size_
            try:
                if not align:
                    images = [resize_rgb(open_image(x, draft_size=size) if kind == "paths" else x.convert("RGB"), size)
                              for x in items]
                else:  # read in full: the face is found and aligned at the photo's own resolution
                    aligner, images = self._aligner(), []
                    for j, x in enumerate(items):
                        picture = np.asarray(open_image(x) if kind == "paths" else x.convert("RGB"), dtype=np.uint8)
                        face = self._face_input(picture, str(x) if kind == "paths" else f"X[{start + j}]", aligner)
                        images.append(resize_rgb(picture, size) if face is None else face)
            except AekitError as exc:
                raise EmbedderError(str(exc)) from None
            return images_to_tensor(np.stack(images))
        array = X.iloc[start:stop].to_numpy() if hasattr(X, "iloc") else np.asarray(X[start:stop])
        if kind == "flat":
            side = int(round((array.shape[1] / 3) ** 0.5))
            array = array.reshape(len(array), side, side, 3)
            kind = "nhwc"
        if kind == "nhwc":
            array = array.transpose(0, 3, 1, 2)
        if array.dtype == np.uint8:
            x = to_signed(np.ascontiguousarray(array))  # C order, like the float path below
        else:
            x = torch.from_numpy(np.array(array, dtype=np.float32, order="C"))  # a copy: inputs may be read-only
            if not torch.isfinite(x).all():
                raise EmbedderError("Input X contains NaN or infinity: images must hold finite pixel values")
            if array.dtype.kind in "iub":  # integers other than uint8: read as 0..255
                low, high = 0.0, 255.0
            else:
                low, high = self._range()
            tolerance = 1e-3 * (high - low)
            if x.numel() and (float(x.min()) < low - tolerance or float(x.max()) > high + tolerance):
                got = f"[{float(x.min()):.3g}, {float(x.max()):.3g}]"
                if array.dtype.kind in "iub":
                    raise EmbedderError(f"integer pixels must lie in 0..255, got {got}")
                raise EmbedderError(f"float pixels must lie in float_range={tuple(self.float_range)}, got {got}; "
                                    "set float_range=(0, 1) or (0, 255) to match your images")
            if (low, high) != (-1.0, 1.0):
                x = (x - low) * (2.0 / (high - low)) - 1.0
        x = x.clamp_(-1, 1)
        return self._aligned_arrays(x, start) if align else x

    def _aligned_arrays(self, x, start: int):
        """`x` (B, 3, H, W) in [-1, 1] with each image whose largest face is aligned replaced by that face; the
        others as they are (all at the model's size when any face was aligned). Faces are searched in 8-bit pixels."""
        import torch

        from aekit.model import as_model_input
        from aekit.pixels import images_to_tensor, to_uint8

        aligner = self._aligner()
        pixels = to_uint8(x).permute(0, 2, 3, 1).numpy()  # the exact bytes for uint8 input
        faces = {}
        try:
            for j, image in enumerate(pixels):
                face = self._face_input(np.ascontiguousarray(image), f"X[{start + j}]", aligner)
                if face is not None:
                    faces[j] = face
        except EmbedderError:
            raise
        except AekitError as exc:
            raise EmbedderError(str(exc)) from None
        if not faces:
            return x  # every image as it is: exactly the pixels given
        out = as_model_input(x, self.image_size_).clone()
        for j, face in faces.items():
            out[j] = images_to_tensor(face)[0]
        return out.to(torch.float32)


__all__ = ["AutoencoderEmbedder", "EmbedderError"]
