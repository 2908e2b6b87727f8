"""Noise specs: ``NAME:ARG`` names a registered noise model; ``A+B`` applies A then B; ``A|B`` picks one per image.

``gaussian:0.1`` (sigma on the [0, 1] pixel scale), ``gaussian:0.05|gaussian:0.2`` (a blind denoiser's
training mix), ``gaussian:0.05+saltpepper:0.02`` (both at once). The noise models themselves come from
plugins through ``register_noise_models``; this module only parses specs and applies them.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import NoiseSpecError, RegistryError
from .registry import get_registry


class Noise:
    """A parsed noise spec: call ``noise(images, rng)`` on float images in [0, 1], (N, H, W, 3)."""

    def __init__(self, spec: str, choices: list[list[tuple[str, object]]]):
        self.spec = spec
        self._choices = choices  # alternatives (|) of chains (+) of (part spec, add_noise)

    def __repr__(self) -> str:
        return f"Noise({self.spec!r})"

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        images = np.asarray(images, dtype=np.float32)
        if images.ndim == 3:
            return self(images[None], rng)[0]
        if len(self._choices) == 1:
            return self._chain(self._choices[0], images, rng)
        pick = rng.integers(len(self._choices), size=len(images))
        out = np.empty_like(images)
        for i, chain in enumerate(self._choices):
            rows = np.flatnonzero(pick == i)
            if len(rows):
                out[rows] = self._chain(chain, images[rows], rng)
        return out

    @staticmethod
    def _chain(chain, images, rng):
        for part, add_noise in chain:
            images = np.asarray(add_noise(images, rng), dtype=np.float32)
            if images.ndim != 4:
                raise NoiseSpecError(f"noise model {part!r} returned an array of shape {images.shape}")
        return np.clip(images, 0.0, 1.0)

    def apply_to_tensor(self, x: torch.Tensor, generator_seed: int) -> torch.Tensor:
        """Noisy copy of a model-input batch (N, 3, H, W) in [-1, 1], reproducible from `generator_seed`."""
        rng = np.random.default_rng(generator_seed)
        images = ((x.detach().float().cpu().permute(0, 2, 3, 1).numpy() + 1) / 2).clip(0, 1)
        noisy = self(images, rng)
        return torch.from_numpy(noisy).permute(0, 3, 1, 2).to(x.device, x.dtype) * 2 - 1


def parse_noise(spec: str) -> Noise:
    """Parse a noise spec against the registered noise models; NoiseSpecError names what is wrong."""
    if not isinstance(spec, str) or not spec.strip():
        raise NoiseSpecError("empty noise spec; expected NAME:ARG, e.g. gaussian:0.1")
    registry = get_registry()
    choices = []
    for alternative in spec.split("|"):
        chain = []
        for part in alternative.split("+"):
            part = part.strip()
            name, _, argument = part.partition(":")
            try:
                make_noise = registry.get("noise_model", name)
            except RegistryError as exc:
                raise NoiseSpecError(f"noise {part!r}: {exc}") from None
            try:
                chain.append((part, make_noise(argument)))
            except (ValueError, TypeError) as exc:
                raise NoiseSpecError(f"noise {part!r}: {exc}") from None
        choices.append(chain)
    return Noise(spec.strip(), choices)
