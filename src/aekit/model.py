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
from PIL import Image
from torch import nn

from . import feature_sets
from .denoising import denoise_any
from .errors import ENCODER_ONLY_MESSAGE, AekitError, NoDecoderError
from .loading import CheckpointMixin
from .pixels import images_to_tensor


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
    ``optimizer_groups(lr)`` (the optimizer's parameter groups, nanoGPT's ``configure_optimizers``). A model may
    also define ``training_loss(pred, target)`` (the trainer then minimises it instead of the reconstruction loss:
    the codec's rate-distortion loss) and ``prepare_to_ship()`` (``aekit models package`` calls it on the weights as
    shipped: the codec fixes its integer entropy tables).
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

    @staticmethod
    def tensor_count(cfg: AutoencoderConfig) -> int:
        """How many tensors the state dict of ``Autoencoder(cfg)`` holds, counted without building it: `load`
        compares it with the weights file's header before building anything (a test checks it against the
        built model's; a subclass that changes the layout without its own ``tensor_count`` is not counted)."""
        conv_bn_act = 2 + 5  # conv weight + bias; BatchNorm weight, bias, running mean and variance, batch count
        block = (2 * cfg.convs_per_half + 1) * conv_bn_act + 2  # + the strided conv shortcut
        encoder = len(cfg.widths) * block + 2  # + the Linear to the latent
        decoder = 2 + len(cfg.widths) * block + 2  # the Linear from the latent, the blocks, the 1x1 conv
        return encoder + decoder

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
    def features(self, images, kind: str = "latent", batch_size: int = 256) -> torch.Tensor:
        """Feature set `kind` of images (as ``encode`` takes them): (N, D) float32, in eval mode.

        ``"latent"`` is ``encode``'s latent; ``"multiscale"`` and ``"grid"`` pool the encoder's
        intermediate maps (``aekit.feature_sets``); plugins may register more.
        """
        feature_sets.get(kind)  # an unknown kind fails before any work
        x = as_model_input(images, self.config.image_size)
        return self._batched(lambda batch: feature_sets.compute(self, batch, kind), x, batch_size)

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
        if getattr(self, "encoder_only", False):
            raise NoDecoderError(ENCODER_ONLY_MESSAGE)
        if not self.decodes_latents:
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
    def denoise(self, images, method: str = "auto", batch_size: int = 256, sigma=None):
        """Denoise images of any size; returns the same type and size as given.

        Accepts a float tensor (N, 3, H, W) in [-1, 1], a uint8 array (H, W, 3) or (N, H, W, 3), a PIL
        image or a list of PIL images. The model sees its own size (64x64); other sizes go through
        `method`: ``"resize"`` denoises a 64x64 copy and adds the removed-noise estimate, upsampled,
        back to the full-size image (noise finer than 64x64 can resolve stays); ``"tile"`` denoises
        overlapping 64x64 tiles at full resolution and blends them (right for local denoisers such as
        the ``unet`` architecture, wrong for face-level bottleneck models); ``"auto"`` picks tile for
        models with skip connections and resize otherwise. `sigma` (models that take a noise level,
        such as ``drunet``): ``None``/``"auto"`` estimates each image's, a number in [0, 1] sets it.
        """
        return denoise_any(self, images, method, batch_size, sigma=sigma)

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


def as_model_input(images, image_size: int) -> torch.Tensor:
    """Convert images to a float tensor (N, 3, S, S) in [-1, 1], resizing with bicubic when needed."""
    if isinstance(images, Image.Image):
        images = [images]
    if isinstance(images, (list, tuple)) and images and isinstance(images[0], Image.Image):
        images = np.stack([np.asarray(im.convert("RGB").resize((image_size, image_size), Image.BICUBIC)) for im in images])
    from_pixels = False  # uint8 pixels are finite: no check needed
    if isinstance(images, np.ndarray):
        if images.dtype == np.uint8:
            from_pixels = True
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
    if not from_pixels and not torch.isfinite(x).all():
        raise ValueError("images contain NaN or infinite values")
    if x.shape[-2:] != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bicubic", align_corners=False, antialias=True)
    elif from_pixels:  # pixels map into [-1, 1] exactly; only bicubic resizing can overshoot
        return x
    return x.clamp(-1, 1)


ARTICLE = AutoencoderConfig()
SMALL = AutoencoderConfig(widths=(16, 32, 64, 128), convs_per_half=1)
