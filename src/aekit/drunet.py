"""A DRUNet-style denoiser (Zhang et al. 2021, KAIR): a residual U-Net without BatchNorm, told the noise level.

Per scale: plain residual blocks (conv-ReLU-conv + identity), a 2x2 strided conv down, and on the
way up a 2x2 transposed conv whose output is added to the same scale's features. The input gets a
fourth channel, a constant map of the noise sigma (FFDNet's noise-level map): by default each
image's own estimate (``estimate_noise_sigma``), so the model works blind, and a caller may set the
level instead (``aekit denoise --sigma 0.05``): lower keeps more detail, higher removes more.

The output is the input plus a learned correction (the last conv starts at zero, so an untrained
model is the identity). It is a denoiser, not a codec: ``encode`` gives the bottleneck averaged
over space (its ``latent_dim`` is the last width), and ``decode`` is refused.

Preset ``drunet`` is registered by the core.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from .denoising import estimate_noise_sigma  # the estimator lives with model.denoise (also aekit.drunet.*)
from .errors import AekitError
from .model import Autoencoder

# The sigma map holds sigma (on the [0, 1] pixel scale) times this, so the usual range 0-0.3 spans 0-3.
SIGMA_MAP_SCALE = 10.0


@dataclass(frozen=True)
class DRUNetConfig:
    """Sizes of the denoiser: a width and `blocks` residual blocks per scale, the last width at the bottom."""

    image_size: int = 64
    channels: int = 3
    widths: tuple[int, ...] = (32, 64, 128, 256)
    blocks: int = 2
    noise_map: bool = True  # a fourth input channel holding the noise sigma (estimated unless given)

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "noise_map", bool(self.noise_map))
        scale = 2 ** (len(self.widths) - 1)
        if not self.widths or min(self.widths) < 1 or self.blocks < 1 or self.channels < 1:
            raise ValueError(f"invalid denoiser config: {self}")
        if self.image_size % scale or self.image_size < scale:
            raise ValueError(f"image_size {self.image_size} must be a multiple of {scale} for {len(self.widths)} scales")

    @property
    def latent_dim(self) -> int:
        """What ``encode`` gives: the bottleneck's channels, averaged over space."""
        return self.widths[-1]

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        data = dataclasses.asdict(self)
        data["widths"] = list(self.widths)
        return data


class PlainResBlock(nn.Module):
    """conv3x3 -> ReLU -> conv3x3, plus the input (DRUNet's block: no normalisation, no bias)."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, 1, 1, bias=False))

    def forward(self, x):
        return x + self.body(x)


def _blocks(width: int, count: int) -> nn.Sequential:
    return nn.Sequential(*(PlainResBlock(width) for _ in range(count)))


class DRUNetEncoder(nn.Module):
    """image (N, 3, S, S) [+ sigma] -> the feature map at every scale, full size first (timm's forward_features)."""

    def __init__(self, cfg: DRUNetConfig):
        super().__init__()
        self.config = cfg
        self.head = nn.Conv2d(cfg.channels + int(cfg.noise_map), cfg.widths[0], 3, 1, 1, bias=False)
        self.down = nn.ModuleList()
        for width, deeper in zip(cfg.widths[:-1], cfg.widths[1:]):
            self.down.append(nn.Sequential(_blocks(width, cfg.blocks), nn.Conv2d(width, deeper, 2, 2, 0, bias=False)))
        self.body = _blocks(cfg.widths[-1], cfg.blocks)

    def model_input(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        """`x` with the sigma map appended (`sigma`: None to estimate it, a number, or one per image)."""
        if not self.config.noise_map:
            return x
        if sigma is None:
            sigma = estimate_noise_sigma(x)
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
        level = sigma * SIGMA_MAP_SCALE * torch.ones_like(x[:, :1])  # (N, 1, H, W); broadcasting keeps N dynamic in ONNX
        return torch.cat([x, level], dim=1)

    def forward_features(self, x, sigma=None) -> list[torch.Tensor]:
        """[head (N, w0, S, S), then one map per scale down to the body's (N, w_last, S/2^k, S/2^k)]."""
        feats = [self.head(self.model_input(x, sigma))]
        for stage in self.down:
            feats.append(stage(feats[-1]))
        feats[-1] = self.body(feats[-1])
        return feats

    def latent_from_features(self, x, feats) -> torch.Tensor:
        return feats[-1].mean(dim=(2, 3))  # (N, w_last)

    def forward(self, x, sigma=None):
        return self.latent_from_features(x, self.forward_features(x, sigma))


class DRUNetDecoder(nn.Module):
    """The feature maps (full size first) -> a correction to the image (N, 3, S, S)."""

    def __init__(self, cfg: DRUNetConfig):
        super().__init__()
        self.up = nn.ModuleList()
        for width, deeper in zip(reversed(cfg.widths[:-1]), reversed(cfg.widths[1:])):
            self.up.append(nn.Sequential(nn.ConvTranspose2d(deeper, width, 2, 2, 0, bias=False), _blocks(width, cfg.blocks)))
        self.tail = nn.Conv2d(cfg.widths[0], cfg.channels, 3, 1, 1, bias=False)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        h = feats[-1]
        for i, stage in enumerate(self.up):
            h = stage(h + feats[-1 - i])  # the skip enters before each step up, as in DRUNet
        return self.tail(h + feats[0])


class DRUNetDenoiser(Autoencoder):
    """``DRUNetEncoder`` + ``DRUNetDecoder``: a blind or noise-level-conditioned residual U-Net denoiser."""

    decodes_latents = False

    def __init__(self, config: DRUNetConfig | None = None):
        nn.Module.__init__(self)
        self.config = cfg = config or DRUNetConfig()
        self.encoder = DRUNetEncoder(cfg)
        self.decoder = DRUNetDecoder(cfg)
        nn.init.zeros_(self.decoder.tail.weight)  # start as the identity
        # DRUNet's blocks have no normalisation: scale each block's last conv down so the sum of many
        # residual branches starts near the identity (as Fixup / SkipInit do).
        for module in self.modules():
            if isinstance(module, PlainResBlock):
                module.body[-1].weight.data.mul_(1 / math.sqrt(2 * cfg.blocks * len(cfg.widths)))

    @property
    def takes_noise_level(self) -> bool:
        """Whether ``forward(x, sigma)`` uses a noise level (``aekit denoise --sigma``)."""
        return self.config.noise_map

    @staticmethod
    def tensor_count(cfg: DRUNetConfig) -> int:
        """How many tensors the state dict holds (see ``Autoencoder.tensor_count``): bias-free convs only."""
        scales = len(cfg.widths)
        encoder = 1 + (scales - 1) * (2 * cfg.blocks + 1) + 2 * cfg.blocks
        decoder = (scales - 1) * (1 + 2 * cfg.blocks) + 1
        return encoder + decoder

    def forward(self, x, sigma=None):
        # x: (N, 3, S, S) in [-1, 1]; sigma: None (estimate), a number or (N,) on the [0, 1] scale
        return (x + self.decoder(self.encoder.forward_features(x, sigma))).clamp(-1, 1)

    @torch.inference_mode()
    def decode(self, latents, batch_size: int = 256) -> torch.Tensor:
        raise AekitError("this model has skip connections (a drunet denoiser): its output needs the noisy image, not "
                         "a latent, so it cannot decode latents; use a bottleneck model (article, small, improved)")

    def optimize_latents(self, images, steps: int = 40, lr: float = 0.2, batch_size: int = 256) -> torch.Tensor:
        raise AekitError("this model has skip connections (a drunet denoiser): its latents are not decoded alone")


DRUNET = DRUNetConfig()


__all__ = ["DRUNET", "DRUNetConfig", "DRUNetDenoiser", "estimate_noise_sigma"]
