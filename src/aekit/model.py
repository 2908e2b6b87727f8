"""The article's residual convolutional autoencoder for 64x64 faces, in one readable file.

Encoder: four residual Blocks (3->32->64->128->256, each halving the size), Flatten, Linear to a
128-d latent. Decoder: Linear(128, 4096), a per-sample normalisation, Unflatten to (256, 4, 4), four
transposed Blocks back to 3 channels (79x79), nearest resize to 64x64, a 1x1 conv and Tanh.
Images are float tensors in [-1, 1], channels first.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import CheckpointMixin
from .pixels import images_to_tensor, to_signed


@dataclass(frozen=True)
class AutoencoderConfig:
    """Sizes of the autoencoder; the defaults are the article's."""

    image_size: int = 64
    channels: int = 3
    latent_dim: int = 128
    widths: tuple[int, ...] = (32, 64, 128, 256)
    convs_per_half: int = 4  # the article's Block: 4 convs at dim_in, 1 strided, 4 at dim_out
    decoder_start: int = 4  # spatial size the decoder's Linear unflattens to
    negative_slope: float = 0.01  # LeakyReLU's default

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if self.image_size < 16 or self.latent_dim < 1 or not self.widths or self.convs_per_half < 0:
            raise ValueError(f"invalid autoencoder config: {self}")
        if self.encoder_grid < 1:
            raise ValueError(f"image_size {self.image_size} is too small for {len(self.widths)} blocks")

    @property
    def encoder_grid(self) -> int:
        """Spatial size after the encoder's blocks (3 for the article's 64x64 input)."""
        size = self.image_size
        for _ in self.widths:
            size = (size - 3) // 2 + 1
        return size

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        data = dataclasses.asdict(self)
        data["widths"] = list(self.widths)
        return data


class FeatureNorm(nn.Module):
    """Normalise each sample over its features, no parameters.

    The article's ``InstanceNorm1d(4096)`` on a (batch, 4096) tensor is treated by PyTorch as one
    unbatched sample with `batch` channels, i.e. each row is normalised over its 4096 features.
    This is that maths (biased variance, eps 1e-5) without the warning.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features, self.eps = num_features, eps

    def forward(self, x):
        return F.layer_norm(x, (self.num_features,), eps=self.eps)


def conv_bn_act(conv: type[nn.Module], dim_in, dim_out, stride=1, padding=1, slope=0.01):
    """One conv (3x3) -> BatchNorm2d -> LeakyReLU, as the article's ``block()`` helper."""
    return [conv(dim_in, dim_out, 3, stride=stride, padding=padding), nn.BatchNorm2d(dim_out), nn.LeakyReLU(slope)]


class Block(nn.Module):
    """The article's residual block: 9 conv-BN-LeakyReLU layers (5th strided) plus a strided conv shortcut."""

    def __init__(self, dim_in: int, dim_out: int, is_encoder: bool = True, convs_per_half: int = 4, slope=0.01):
        super().__init__()
        conv = nn.Conv2d if is_encoder else nn.ConvTranspose2d
        layers = []
        for _ in range(convs_per_half):
            layers += conv_bn_act(conv, dim_in, dim_in, slope=slope)
        layers += conv_bn_act(conv, dim_in, dim_out, stride=2, padding=0, slope=slope)
        for _ in range(convs_per_half):
            layers += conv_bn_act(conv, dim_out, dim_out, slope=slope)
        self.s = nn.Sequential(*layers)
        self.res = conv(dim_in, dim_out, 3, stride=2, padding=0)

    def forward(self, x):
        return self.s(x) + self.res(x)


def build_encoder(cfg: AutoencoderConfig) -> nn.Sequential:
    """Blocks 3->32->64->128->256, Flatten, Linear(256*3*3, latent)."""
    dims = (cfg.channels, *cfg.widths)
    blocks = [Block(a, b, True, cfg.convs_per_half, cfg.negative_slope) for a, b in zip(dims, dims[1:])]
    flat = cfg.widths[-1] * cfg.encoder_grid**2
    return nn.Sequential(*blocks, nn.Flatten(), nn.Linear(flat, cfg.latent_dim))


def build_decoder(cfg: AutoencoderConfig) -> nn.Sequential:
    """Linear(latent, 256*4*4), FeatureNorm, Unflatten, transposed Blocks 256->...->3, resize, 1x1 conv, Tanh."""
    dims = (*reversed(cfg.widths), cfg.channels)
    flat = cfg.widths[-1] * cfg.decoder_start**2
    blocks = [Block(a, b, False, cfg.convs_per_half, cfg.negative_slope) for a, b in zip(dims, dims[1:])]
    return nn.Sequential(
        nn.Linear(cfg.latent_dim, flat),
        FeatureNorm(flat),
        nn.Unflatten(1, (cfg.widths[-1], cfg.decoder_start, cfg.decoder_start)),
        *blocks,
        nn.Upsample(size=cfg.image_size, mode="nearest"),
        nn.Conv2d(cfg.channels, cfg.channels, 1),
        nn.Tanh(),
    )


class Autoencoder(CheckpointMixin, nn.Module):
    """Encoder + decoder; ``encode`` gives (N, latent_dim) latents, ``decode`` images in [-1, 1].

    Subclasses declare what they can do instead of callers probing their config:
    ``decodes_latents`` (False for a skip-connection denoiser, whose output needs the input image),
    ``initialize_from_data(images)`` (called once before training from scratch; default: nothing) and
    ``optimizer_groups(lr)`` (the optimizer's parameter groups, nanoGPT's ``configure_optimizers``).
    """

    decodes_latents = True

    def __init__(self, config: AutoencoderConfig | None = None):
        super().__init__()
        self.config = config or AutoencoderConfig()
        self.encoder = build_encoder(self.config)
        self.decoder = build_decoder(self.config)

    def forward(self, x):
        return self.decoder(self.encoder(x))

    def initialize_from_data(self, images) -> None:
        """Prepare to train from scratch on uint8 (N, 3, S, S) `images`; the article's model needs nothing."""

    def optimizer_groups(self, lr: float) -> list[dict]:
        """The optimizer's parameter groups: every parameter at `lr`."""
        return [{"params": list(self.parameters()), "lr": lr}]

    @staticmethod
    def upgrade_state_dict(state: dict) -> dict:
        """Rename tensors of a checkpoint written by an earlier layout of this class (default: none)."""
        return state

    def identity_state_dict(self) -> dict:
        """The tensors ``model_fingerprint`` hashes: the state dict under the names its checkpoints were first
        written with, so a model keeps its id (in latent files and priors) when the class's layout changes."""
        return self.state_dict()

    @torch.inference_mode()
    def encode(self, images, batch_size: int = 256) -> torch.Tensor:
        """Latents of images (tensor in [-1, 1], uint8 arrays NHWC/HWC, or PIL images), in eval mode."""
        x = as_model_input(images, self.config.image_size)
        return self._batched(self.encoder, x, batch_size)

    @torch.inference_mode()
    def decode(self, latents, batch_size: int = 256) -> torch.Tensor:
        """Images in [-1, 1] (N, 3, H, W) from latents (N, latent_dim)."""
        z = torch.as_tensor(np.asarray(latents) if not torch.is_tensor(latents) else latents, dtype=torch.float32)
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(f"latents must have shape (N, {self.config.latent_dim}), got {tuple(z.shape)}")
        return self._batched(self.decoder, z, batch_size)

    def optimize_latents(self, images, steps: int = 40, lr: float = 0.2, batch_size: int = 256) -> torch.Tensor:
        """Latents that the decoder turns back into `images` better than the encoder's own guess.

        Starts from ``encode(images)`` and takes `steps` Adam steps (learning rate `lr`) per image on
        the reconstruction's mean squared error, weights frozen. Same size and format as ``encode``'s
        latents, decoded by the same ``decode``; costs about `steps` decoder forward + backward passes.
        """
        if not self.decodes_latents:
            from .errors import AekitError

            raise AekitError("this model has skip connections (a denoiser): its latents are not decoded alone")
        if steps < 0 or not lr > 0:
            raise ValueError(f"need steps >= 0 and lr > 0, got steps={steps}, lr={lr}")
        x = as_model_input(images, self.config.image_size)
        latents = self.encode(x, batch_size)
        if steps == 0 or len(x) == 0:
            return latents
        latents = latents.clone()  # encode returns an inference tensor, which cannot be written to
        was_training, device = self.training, next(self.parameters()).device
        frozen = [(p, p.requires_grad) for p in self.parameters()]
        self.eval()
        try:
            for p, _ in frozen:
                p.requires_grad_(False)
            with torch.inference_mode(False), torch.enable_grad():
                for i in range(0, len(x), batch_size):
                    target = x[i : i + batch_size].to(device)
                    z = latents[i : i + batch_size].clone().to(device).requires_grad_(True)
                    optimizer = torch.optim.Adam([z], lr=lr)
                    for _ in range(steps):
                        loss = (self.decoder(z) - target).pow(2).mean()
                        optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        optimizer.step()
                    latents[i : i + batch_size] = z.detach().float().cpu()
        finally:
            for p, requires_grad in frozen:
                p.requires_grad_(requires_grad)
            self.train(was_training)
        return latents

    @torch.inference_mode()
    def reconstruct(self, images, batch_size: int = 256) -> torch.Tensor:
        """The model's output for images at its own size (decode(encode(images)) for a bottleneck model)."""
        x = as_model_input(images, self.config.image_size)
        return self._batched(self, x, batch_size)

    @torch.inference_mode()
    def denoise(self, images, method: str = "auto", batch_size: int = 256):
        """Denoise images of any size; returns the same type and size as given.

        Accepts a float tensor (N, 3, H, W) in [-1, 1], a uint8 array (H, W, 3) or (N, H, W, 3), a PIL
        image or a list of PIL images. The model sees its own size (64x64); other sizes go through
        `method`: ``"resize"`` denoises a 64x64 copy and adds the removed-noise estimate, upsampled,
        back to the full-size image (noise finer than 64x64 can resolve stays); ``"tile"`` denoises
        overlapping 64x64 tiles at full resolution and blends them (right for local denoisers such as
        the ``unet`` architecture, wrong for face-level bottleneck models); ``"auto"`` picks tile for
        models with skip connections and resize otherwise.
        """
        from .denoising import denoise_any

        return denoise_any(self, images, method, batch_size)

    def _batched(self, module, x, batch_size):
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        try:
            outs = [module(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(outs) if outs else torch.empty(0)

    def num_parameters(self) -> dict[str, int]:
        """Parameter counts of the encoder, the decoder and the total."""
        enc = sum(p.numel() for p in self.encoder.parameters())
        dec = sum(p.numel() for p in self.decoder.parameters())
        return {"encoder": enc, "decoder": dec, "total": enc + dec}


# --- the improved design: same 128-d latent, exact 64x64 decoder, fewer and cheaper layers -------------


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
        if not self.decodes_latents:
            from .errors import AekitError

            raise AekitError("this model has skip connections (a denoiser): its output is not a function of the latent alone, "
                             "so it cannot decode latents; use a bottleneck model (article, small, improved)")
        return super().decode(latents, batch_size)

    def num_parameters(self) -> dict[str, int]:
        """Parameter counts of the encoder, the decoder and the total."""
        enc = sum(p.numel() for p in self.encoder.parameters())
        dec = sum(p.numel() for p in self.decoder.parameters())
        return {"encoder": enc, "decoder": dec, "total": enc + dec}


def as_model_input(images, image_size: int) -> torch.Tensor:
    """Convert images to a float tensor (N, 3, S, S) in [-1, 1], resizing with bicubic when needed."""
    from PIL import Image

    if isinstance(images, Image.Image):
        images = [images]
    if isinstance(images, (list, tuple)) and images and isinstance(images[0], Image.Image):
        images = np.stack([np.asarray(im.convert("RGB").resize((image_size, image_size), Image.BICUBIC)) for im in images])
    if isinstance(images, np.ndarray):
        if images.dtype == np.uint8:
            if images.ndim == 3:
                images = images[None]
            if images.ndim != 4 or images.shape[-1] != 3:
                raise ValueError(f"uint8 image arrays must be (N, H, W, 3) or (H, W, 3), got {images.shape}")
            images = images_to_tensor(images)
        else:
            images = torch.from_numpy(np.asarray(images, dtype=np.float32))
    if not torch.is_tensor(images):
        raise TypeError(f"expected a tensor, a uint8 array or PIL images, got {type(images).__name__}")
    x = images.float()
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"image tensors must be (N, 3, H, W) in [-1, 1], got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("images contain NaN or infinite values")
    if x.shape[-2:] != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bicubic", align_corners=False, antialias=True)
    return x.clamp(-1, 1)


ARTICLE = AutoencoderConfig()
SMALL = AutoencoderConfig(widths=(16, 32, 64, 128), convs_per_half=1)
IMPROVED = ResNetConfig(linear_path=True, refine=True)
UNET = ResNetConfig(skips=True)
