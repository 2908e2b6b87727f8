"""The improved design: the same 128-d latent, an exact 64x64 decoder, fewer and cheaper layers.

A stem, then per stage a strided conv and residual blocks down to a 4x4 map, a Linear to the latent
(``ResNetEncoder``), and the mirror image back up (``ResNetDecoder``). Options: a linear path that
starts as PCA of the training images (``linear_path``), a decoder that refines that linear image
(``refine``), and skip connections that make it a U-Net denoiser (``skips``). Presets ``improved``
and ``unet`` are registered by the core.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import ENCODER_ONLY_MESSAGE, AekitError, NoDecoderError
from .model import Autoencoder
from .pixels import to_signed


@dataclass(frozen=True)
class ResNetConfig:
    """Sizes of the improved autoencoder: a stem, then per stage a strided conv and residual blocks."""

    image_size: int = 64
    channels: int = 3
    latent_dim: int = 128
    widths: tuple[int, ...] = (32, 64, 128, 256)
    blocks_per_stage: int = 1
    skips: bool = False  # U-Net skip connections + residual output: a denoiser, not a codec
    linear_path: bool = False  # a PCA-initialised linear encoder/decoder beside the convolutional one
    linear_lr_scale: float = 0.05  # the linear path's learning rate relative to --lr (keeps the PCA start)
    refine: bool = False  # the decoder also sees the linear path's image through its own down path (U-Net style)
    negative_slope: float = 0.01

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "skips", bool(self.skips))
        object.__setattr__(self, "linear_path", bool(self.linear_path))
        object.__setattr__(self, "refine", bool(self.refine))
        if self.refine and not self.linear_path:
            raise ValueError("refine needs linear_path: it refines the linear path's reconstruction")
        if self.skips and self.linear_path:
            raise ValueError("skips and linear_path do not combine: a skip model's output is not decoded from the latent")
        if self.latent_dim < 1 or not self.widths or self.blocks_per_stage < 0 or min(self.widths) < 1:
            raise ValueError(f"invalid autoencoder config: {self}")
        if self.image_size % 2 ** len(self.widths) or self.image_size < 2 ** len(self.widths):
            raise ValueError(f"image_size {self.image_size} must be a multiple of {2 ** len(self.widths)} "
                             f"for {len(self.widths)} stages")

    @property
    def grid(self) -> int:
        """Spatial size of the innermost stage (4 for 64x64 and four stages)."""
        return self.image_size // 2 ** len(self.widths)

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        data = dataclasses.asdict(self)
        data["widths"] = list(self.widths)
        return data


def conv_bn(dim_in, dim_out, stride=1, slope=0.01):
    """3x3 conv (padding 1) -> BatchNorm2d -> LeakyReLU."""
    return nn.Sequential(nn.Conv2d(dim_in, dim_out, 3, stride, 1, bias=False), nn.BatchNorm2d(dim_out), nn.LeakyReLU(slope))


class ResBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity shortcut."""

    def __init__(self, dim: int, slope=0.01):
        super().__init__()
        self.body = nn.Sequential(conv_bn(dim, dim, slope=slope), nn.Conv2d(dim, dim, 3, 1, 1, bias=False), nn.BatchNorm2d(dim))
        self.act = nn.LeakyReLU(slope)

    def forward(self, x):
        return self.act(x + self.body(x))


class Upsample(nn.Module):
    """Nearest x2 then a 3x3 conv-BN-LeakyReLU (no checkerboard, exact sizes)."""

    def __init__(self, dim_in, dim_out, slope=0.01):
        super().__init__()
        self.conv = conv_bn(dim_in, dim_out, slope=slope)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def down_path(cfg: "ResNetConfig") -> tuple[nn.Module, nn.ModuleList]:
    """A stem conv, then per width a strided conv and residual blocks (the encoder's, and the refining decoder's)."""
    slope, widths = cfg.negative_slope, cfg.widths
    stem, stages, previous = conv_bn(cfg.channels, widths[0], slope=slope), nn.ModuleList(), widths[0]
    for width in widths:
        blocks = [ResBlock(width, slope) for _ in range(cfg.blocks_per_stage)]
        stages.append(nn.Sequential(conv_bn(previous, width, stride=2, slope=slope), *blocks))
        previous = width
    return stem, stages


def down_path_features(stem, stages, x) -> list[torch.Tensor]:
    """The feature map after the stem and after every stage, full size first."""
    feats = [stem(x)]
    for stage in stages:
        feats.append(stage(feats[-1]))
    return feats


class ResNetEncoder(nn.Module):
    """image (N, 3, S, S) -> latent (N, latent_dim): stem + strided stages to a 4x4 map, Linear to the latent,
    plus (with ``linear_path``) a linear projection of the pixels, PCA at the start of training."""

    def __init__(self, cfg: ResNetConfig):
        super().__init__()
        self.linear_path = cfg.linear_path
        self.stem, self.down = down_path(cfg)
        self.to_latent = nn.Sequential(nn.Flatten(), nn.Linear(cfg.widths[-1] * cfg.grid**2, cfg.latent_dim))
        if cfg.linear_path:
            pixels = cfg.channels * cfg.image_size**2
            self.register_buffer("pixel_mean", torch.zeros(pixels))
            self.linear_in = nn.Linear(pixels, cfg.latent_dim, bias=False)

    def forward_features(self, x) -> list[torch.Tensor]:
        """The feature map after the stem and after every stage (timm's ``forward_features``), full size first."""
        return down_path_features(self.stem, self.down, x)

    def latent_from_features(self, x, feats) -> torch.Tensor:
        z = self.to_latent(feats[-1])  # (N, latent_dim)
        if self.linear_path:
            z = z + self.linear_in(x.flatten(1) - self.pixel_mean)
        return z

    def forward(self, x):
        return self.latent_from_features(x, self.forward_features(x))


class ResNetDecoder(nn.Module):
    """latent (N, latent_dim) -> image (N, 3, S, S) in [-1, 1]: the encoder's mirror image; with ``linear_path``
    the linear reconstruction plus a convolutional correction (``refine``: computed from that reconstruction)."""

    def __init__(self, cfg: ResNetConfig):
        super().__init__()
        self.config = cfg
        slope, widths = cfg.negative_slope, cfg.widths
        self.from_latent = nn.Sequential(nn.Linear(cfg.latent_dim, widths[-1] * cfg.grid**2),
                                         nn.Unflatten(1, (widths[-1], cfg.grid, cfg.grid)),
                                         nn.BatchNorm2d(widths[-1]), nn.LeakyReLU(slope))
        self.up = nn.ModuleList()
        outer = (widths[0], *widths[:-1])  # the width of each stage's input, i.e. what each up step returns to
        for width, target in zip(reversed(widths), reversed(outer)):
            blocks = [ResBlock(width, slope) for _ in range(cfg.blocks_per_stage)]
            self.up.append(nn.Sequential(*blocks, Upsample(width, target, slope)))
        self.head = nn.Conv2d(widths[0], cfg.channels, 3, 1, 1)
        if cfg.linear_path:
            pixels = cfg.channels * cfg.image_size**2
            self.register_buffer("pixel_mean", torch.zeros(pixels))
            self.linear_out = nn.Linear(cfg.latent_dim, pixels, bias=False)
        if cfg.refine:  # the decoder's own down path over the linear reconstruction, added at every size
            self.refine_stem, self.refine_down = down_path(cfg)

    def trunk(self, z, feats=None) -> torch.Tensor:
        """The up path from `z` to a full-size map; `feats` (full size first) are added at each size."""
        h = self.from_latent(z)
        for i, stage in enumerate(self.up):
            if feats is not None:
                h = h + feats[-1 - i]
            h = stage(h)
        if feats is not None:
            h = h + feats[0]
        return h

    def forward(self, z):
        cfg = self.config
        if not cfg.linear_path:
            return torch.tanh(self.head(self.trunk(z)))
        linear = (self.linear_out(z) + self.pixel_mean).view(-1, cfg.channels, cfg.image_size, cfg.image_size)
        feats = None
        if cfg.refine:  # still a function of z alone: the linear image is decoded from z
            feats = down_path_features(self.refine_stem, self.refine_down, linear.clamp(-1, 1))
        return (self.head(self.trunk(z, feats)) + linear).clamp(-1, 1)


# where each tensor of the ResNet models lived before the encoder and decoder became their own modules
_LEGACY_PREFIXES = {"stem.": "encoder.stem.", "down.": "encoder.down.", "to_latent.": "encoder.to_latent.",
                    "linear_in.": "encoder.linear_in.", "from_latent.": "decoder.from_latent.", "up.": "decoder.up.",
                    "head.": "decoder.head.", "linear_out.": "decoder.linear_out.",
                    "refine_stem.": "decoder.refine_stem.", "refine_down.": "decoder.refine_down."}


class ResNetAutoencoder(Autoencoder):
    """A ``ResNetEncoder`` and a ``ResNetDecoder``, exactly 64x64 -> latent -> 64x64.

    With ``skips`` the decoder adds the encoder's feature map at each size (a U-Net) and predicts a
    correction to its input: a denoiser whose output no longer passes through the latent alone.
    """

    def __init__(self, config: ResNetConfig | None = None):
        nn.Module.__init__(self)
        self.config = cfg = config or ResNetConfig()
        self.decodes_latents = not cfg.skips  # a U-Net's output needs the image, not the latent alone
        self.encoder = ResNetEncoder(cfg)
        self.decoder = ResNetDecoder(cfg)
        if cfg.skips:  # start as the identity: the residual output adds nothing until trained
            nn.init.zeros_(self.decoder.head.weight)
            nn.init.zeros_(self.decoder.head.bias)

    @staticmethod
    def upgrade_state_dict(state: dict) -> dict:
        """Checkpoints written before the encoder/decoder split name their tensors ``stem.*``, ``pixel_mean``...:
        rename them (the shared pixel mean goes to both halves)."""
        if not any(k.startswith(tuple(_LEGACY_PREFIXES)) or k == "pixel_mean" for k in state):
            return state
        upgraded = {}
        for key, value in state.items():
            if key == "pixel_mean":
                upgraded["encoder.pixel_mean"] = upgraded["decoder.pixel_mean"] = value
                continue
            old = next((p for p in _LEGACY_PREFIXES if key.startswith(p)), None)
            upgraded[_LEGACY_PREFIXES[old] + key[len(old):] if old else key] = value
        return upgraded

    @staticmethod
    def tensor_count(cfg: ResNetConfig) -> int:
        """How many tensors the state dict of ``ResNetAutoencoder(cfg)`` holds, counted without building it (see
        ``Autoencoder.tensor_count``)."""
        conv_bn = 1 + 5  # a conv without bias; BatchNorm weight, bias, running mean and variance, batch count
        res_block = conv_bn + 1 + 5
        stages = len(cfg.widths)
        down = conv_bn + stages * (conv_bn + cfg.blocks_per_stage * res_block)  # the stem, per stage a strided conv
        linear = 2 if cfg.linear_path else 0  # the pixel mean and the bias-free Linear, in each half
        encoder = down + 2 + linear
        decoder = (2 + 5) + stages * (cfg.blocks_per_stage * res_block + conv_bn) + 2 + linear
        return encoder + decoder + (down if cfg.refine else 0)

    def identity_state_dict(self) -> dict:
        """The state dict under the legacy names (one ``pixel_mean``): model ids stay those of the flat layout."""
        legacy = {new: old for old, new in _LEGACY_PREFIXES.items()}
        state = {}
        for key, value in self.state_dict().items():
            if key == "decoder.pixel_mean":
                continue  # the same tensor as encoder.pixel_mean, stored once before the split
            if key == "encoder.pixel_mean":
                state["pixel_mean"] = value
                continue
            new = next((p for p in legacy if key.startswith(p)), None)
            state[legacy[new] + key[len(new):] if new else key] = value
        return state

    @torch.no_grad()
    def initialize_from_data(self, images) -> None:
        """Start as PCA of `images` (uint8 (N, 3, S, S)): the linear path holds the top principal components
        and the convolutional path's last layers are zeroed, so training begins at PCA's reconstruction
        and only adds what the convolutions learn on top."""
        if not self.config.linear_path:
            return
        encoder, decoder = self.encoder, self.decoder
        x = to_signed(np.asarray(images[:20000])).flatten(1)  # to_signed copies: the images may be read-only
        mean = x.mean(0)
        k = min(self.config.latent_dim, len(x) - 1)
        _, _, v = torch.svd_lowrank(x - mean, q=min(k + 16, len(x), x.shape[1]), niter=4)
        components = torch.zeros(self.config.latent_dim, x.shape[1])
        components[:k] = v[:, :k].T
        encoder.pixel_mean.copy_(mean)
        decoder.pixel_mean.copy_(mean)
        encoder.linear_in.weight.copy_(components)
        decoder.linear_out.weight.copy_(components.T)
        nn.init.zeros_(encoder.to_latent[1].weight)
        nn.init.zeros_(encoder.to_latent[1].bias)
        nn.init.zeros_(decoder.head.weight)
        nn.init.zeros_(decoder.head.bias)

    def optimizer_groups(self, lr: float) -> list[dict]:
        """Parameter groups for the optimizer: the linear path learns slower so it keeps its PCA start."""
        if not self.config.linear_path:
            return [{"params": list(self.parameters()), "lr": lr}]
        linear = [self.encoder.linear_in.weight, self.decoder.linear_out.weight]
        ids = {id(p) for p in linear}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": rest, "lr": lr}, {"params": linear, "lr": lr * self.config.linear_lr_scale}]

    def forward(self, x):
        if not self.config.skips:
            return self.decoder(self.encoder(x))
        feats = self.encoder.forward_features(x)
        z = self.encoder.latent_from_features(x, feats)
        return (x + self.decoder.head(self.decoder.trunk(z, feats))).clamp(-1, 1)

    @torch.inference_mode()
    def decode(self, latents, batch_size: int = 256) -> torch.Tensor:
        """Images in [-1, 1] from latents; refused for a skip-connection model (its output needs the image)."""
        if getattr(self, "encoder_only", False):
            raise NoDecoderError(ENCODER_ONLY_MESSAGE)
        if not self.decodes_latents:
            raise AekitError("this model has skip connections (a denoiser): its output is not a function of the latent alone, "
                             "so it cannot decode latents; use a bottleneck model (article, small, improved)")
        return super().decode(latents, batch_size)

    def num_parameters(self) -> dict[str, int]:
        """Parameter counts of the encoder, the decoder and the total."""
        enc = sum(p.numel() for p in self.encoder.parameters())
        dec = sum(p.numel() for p in self.decoder.parameters())
        return {"encoder": enc, "decoder": dec, "total": enc + dec}


IMPROVED = ResNetConfig(linear_path=True, refine=True)
UNET = ResNetConfig(skips=True)
