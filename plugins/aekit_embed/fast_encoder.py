"""The fast path of ``aekit embed``: an inference copy of the model (BatchNorm folded, channels_last) fed in batches."""

from __future__ import annotations

import numpy as np

from aekit.inference import fold_batchnorm  # noqa: F401  (aekit_embed.fold_batchnorm, as before)

from .prefetch import prefetch


class FastEncoder:
    """uint8 (N, S, S, 3) images -> float32 features (``kind``: a feature set; ``latent`` is what
    ``model.encode`` gives), as ``model.features`` gives them, faster.

    Runs an inference copy of the model: eval mode, BatchNorm folded into the convolutions,
    channels_last memory (the uint8 NHWC batch already is channels_last once permuted, so no copy),
    under ``torch.inference_mode``, in float32. The first batch is checked against the plain encoder
    (within 1e-4 of the latents' scale); a model whose copy disagrees, or that has no ``encoder``,
    silently uses ``model.encode`` instead.
    """

    # PyTorch on a CPU ran the shipped encoders 5-20% faster in batches of 64 than of 128 or 256 (2 cores,
    # AVX-512); ONNX Runtime gains from larger batches, so the caller's batch goes to it whole
    CPU_BATCH = 64

    def __init__(self, model, channels_last: bool = True, kind: str = "latent", runtime: str = "torch"):
        import torch

        from aekit import feature_sets
        from aekit.inference import inference_copy

        feature_sets.get(kind)  # an unknown feature set fails before any work
        self.model, self.kind = model, kind
        self.device = next(model.parameters()).device
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.fast = None
        self.onnx = None
        if runtime in ("onnx", "onnx-int8"):  # ONNX Runtime computes the features (aekit.runtime); checked when made
            from aekit.runtime import OnnxFeatures

            self.onnx = OnnxFeatures(model, kind, int8=runtime == "onnx-int8")
        elif callable(getattr(model, "encoder", None)):
            self.fast = inference_copy(model).to(memory_format=self.memory_format)
        self.checked = False

    def _input(self, images):
        import torch

        from aekit.pixels import to_signed

        # uint8 to the device (a quarter of float32's bytes), scaled there; the permuted NHWC view is channels_last
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2)
        return to_signed(x).contiguous(memory_format=self.memory_format)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch

        from aekit import feature_sets

        if self.onnx is not None:
            return self.onnx(images)
        if self.fast is None:
            return self.model.features(images, self.kind).numpy()
        step = self.CPU_BATCH if self.device.type == "cpu" else len(images)
        if len(images) > step:  # PyTorch's CPU convolutions run faster on smaller batches (caches)
            return np.concatenate([self(images[i : i + step]) for i in range(0, len(images), step)])
        with torch.inference_mode():
            z = feature_sets.compute(self.fast, self._input(images), self.kind).cpu()
            if not self.checked:
                self.checked = True
                plain = self.model.features(images[:8], self.kind).float()
                scale = max(float(plain.abs().max()), 1.0)
                if not torch.allclose(z[: len(plain)], plain, rtol=0, atol=1e-4 * scale):
                    self.fast = None  # a structure folding does not suit: the plain path from now on
                    return self.model.features(images, self.kind).numpy()
        return z.numpy()


def encode_share(model, source, indices, batch_size: int, strict: bool, progress: bool, reduced: bool = True,
                 kind: str = "latent", runtime: str = "torch"):
    """Encode `source`'s images at `indices` with the fast path, as feature set `kind`.

    Returns (latents (M, D) float32, the indices that were read, skip messages, an error or None);
    with `strict` the first unreadable image is an error. `reduced` allows JPEG draft decoding.
    """
    from aekit.data import SubsetSource, iter_batches

    view = source if len(indices) == len(source) else SubsetSource(source, indices)
    skipped, kept, chunks = [], [], []
    encoder = FastEncoder(model, kind=kind, runtime=runtime)
    batches = iter_batches(view, model.config.image_size, batch_size, skipped, progress, "embedding",
                           reduced=reduced)
    for batch in prefetch(batches):
        if strict and skipped:
            break
        chunks.append(encoder(batch.images))
        kept += [indices[i] for i in batch.indices]
    error = skipped[0] if strict and skipped else None
    if chunks:
        latents = np.concatenate(chunks)
    else:
        from aekit.feature_sets import dimension

        latents = np.zeros((0, dimension(model, kind)), np.float32)
    return latents.astype(np.float32, copy=False), kept, skipped, error
