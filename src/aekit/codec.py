"""The ``codec`` preset: a face codec trained for rate and distortion together (Ballé et al. 2018, as CompressAI).

Analysis: ``downsamplings`` 5x5 stride-2 convolutions with GDN between them, 64x64 -> a spatial latent (M, s, s)
(4x4 by default). Synthesis: the mirror, transposed convolutions with inverse GDN. One model codes at
``qualities`` rates (Cui et al. 2021's gained units): quality q multiplies the latent by a learned gain vector
before rounding, divides by another after, and has its own ``FactorizedPrior``. Training minimises, per image,
``lambda_q * 255^2 * MSE + bits per pixel`` (quality drawn per image) plus the priors' quantile losses; the rate
sees additive uniform noise, the synthesis the rounded latent through a straight-through gradient
(``decoder_quantization="ste"``; Minnen & Singh 2020) or the noisy one (``"noise"``).

Coding is exact by construction where it matters:

- the priors become integer tables once (``fix_entropy_tables``, run by ``aekit models package``), held as
  buffers of the model (``table_*``, saved in ``model.safetensors``, in the fingerprint): coding reads only them;
- the latents that are rounded into symbols come from the analysis run in float64 on the CPU (`coding_latents`),
  whatever ``--runtime``: float32 results differ by ~1e-6 between batch sizes, thread counts and ONNX Runtime, so
  a few latents a face would round the other way; float64's ~1e-15 makes that practically never happen
  (tests/test_codec.py checks the integers across batch sizes 1/7/64, 1 and 2 threads and runtimes);
- symbols go to bytes with ``aekit.entropy``'s rANS (integers only), so a stream decodes to the same symbols on
  any machine. Only the synthesis (symbols -> pixels) is float32, on the runtime chosen.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .entropy import FactorizedPrior, IntegerTables, decode, encode
from .errors import AekitError
from .model import Autoencoder, as_model_input
from .validate import Limit


class CodecError(AekitError):
    """A codec asked for what it cannot do: a quality it does not have, coding before its tables are fixed."""


@dataclass(frozen=True)
class CodecConfig:
    """Sizes and rates of the codec; the defaults are for 64x64 faces at about 50-600 bytes a face."""

    image_size: int = 64
    channels: int = 3
    width: int = 96  # the synthesis's channels (N)
    # the analysis's: narrower, as it runs in float64 for exact symbols (64 keeps encoding 1,000 faces within 2x of
    # the latent codec's time on a CPU; 96 is about 1.7x slower to encode)
    analysis_width: int = 64
    latent_channels: int = 128  # M: the latent is (M, s, s), s = image_size / 2**downsamplings
    downsamplings: int = 4
    qualities: int = 6
    # lambda per quality, low rate first: the weight of 255^2 * MSE against bits per pixel
    lambdas: tuple[float, ...] = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016)
    default_quality: int = 4  # what reconstruct / eval / compress use when no quality is given (1 = lowest rate)
    decoder_quantization: str = "ste"  # the synthesis sees the rounded latent ("ste") or the noisy one ("noise")
    table_width: int = 0  # the integer tables' length (0: not fixed yet; set by fix_entropy_tables)

    LIMITS = {"image_size": Limit(8, 1024), "channels": Limit(1, 16), "width": Limit(1, 1024), "analysis_width": Limit(1, 1024),
              "latent_channels": Limit(1, 1024), "downsamplings": Limit(1, 6), "qualities": Limit(1, 32),
              "default_quality": Limit(1, 32), "table_width": Limit(0, 4096)}

    def __post_init__(self):
        object.__setattr__(self, "lambdas", tuple(float(v) for v in self.lambdas))
        if self.image_size % (1 << self.downsamplings) or self.image_size >> self.downsamplings < 1:
            raise ValueError(f"image_size {self.image_size} must be a multiple of {1 << self.downsamplings} "
                             f"for {self.downsamplings} downsamplings")
        if min(self.width, self.analysis_width, self.latent_channels, self.channels, self.qualities) < 1:
            raise ValueError(f"invalid codec config: {self}")
        if len(self.lambdas) != self.qualities or not all(math.isfinite(v) and v > 0 for v in self.lambdas):
            raise ValueError(f"lambdas must be {self.qualities} positive numbers (one per quality), got {self.lambdas}")
        if not 1 <= self.default_quality <= self.qualities:
            raise ValueError(f"default_quality must be from 1 to {self.qualities}, got {self.default_quality}")
        if self.decoder_quantization not in ("ste", "noise"):
            raise ValueError(f"decoder_quantization must be ste or noise, got {self.decoder_quantization!r}")
        if self.table_width < 0:
            raise ValueError(f"table_width must be 0 or more, got {self.table_width}")

    @property
    def latent_side(self) -> int:
        return self.image_size >> self.downsamplings

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(M, s, s): one face's latent, and one face's symbols."""
        return (self.latent_channels, self.latent_side, self.latent_side)

    @property
    def latent_dim(self) -> int:
        """``encode``'s width: the latent flattened."""
        return self.latent_channels * self.latent_side**2

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        data = dataclasses.asdict(self)
        data["lambdas"] = list(self.lambdas)
        return data


class GDN(nn.Module):
    """Generalised divisive normalisation (Ballé et al. 2016): x / sqrt(beta + gamma @ x^2) per position; the
    inverse (the synthesis's IGDN) multiplies instead. beta and gamma are kept non-negative by their use."""

    def __init__(self, channels: int, inverse: bool = False):
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(0.1 * torch.eye(channels))

    def forward(self, x):
        gamma = self.gamma.abs()[:, :, None, None].to(x.dtype)
        norm = F.conv2d(x * x, gamma, self.beta.abs().clamp_min(1e-6).to(x.dtype))
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)


def _analysis(cfg: CodecConfig) -> nn.Sequential:
    layers, dims = [], [cfg.channels] + [cfg.analysis_width] * (cfg.downsamplings - 1) + [cfg.latent_channels]
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        layers.append(nn.Conv2d(a, b, 5, stride=2, padding=2))
        if i < cfg.downsamplings - 1:
            layers.append(GDN(b))
    return nn.Sequential(*layers, nn.Flatten())


def _synthesis(cfg: CodecConfig) -> nn.Sequential:
    layers, dims = [nn.Unflatten(1, cfg.latent_shape)], [cfg.latent_channels] + [cfg.width] * (cfg.downsamplings - 1) + [cfg.channels]
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        layers.append(nn.ConvTranspose2d(a, b, 5, stride=2, padding=2, output_padding=1))
        if i < cfg.downsamplings - 1:
            layers.append(GDN(b, inverse=True))
    return nn.Sequential(*layers, nn.Hardtanh())  # images in [-1, 1]


TABLE_MARGIN = 256  # symbols added on each side of every channel's learned coding range when the tables are fixed


class FaceCodec(Autoencoder):
    """GDN analysis / synthesis with a quality input, per-quality gains and priors, and integer tables for coding.

    ``encode`` gives the analysis's latent flattened (N, latent_dim) and ``decode`` the synthesis of one (so the
    generic runtimes, ONNX export and feature tools work); the codec itself is `compress_faces` / `decompress_faces`
    (``aekit compress``). ``forward(x, quality=None)`` is training's and ``reconstruct``'s: the quality drawn per
    image in training, ``default_quality`` otherwise.
    """

    entropy_coded = True  # what ``aekit compress`` looks for: this model writes bitstreams, not latents
    # an ONNX graph of the synthesis is kept when within 1e-3 of PyTorch's output scale (about 1/8 of a level of 255):
    # its inverse GDN amplifies float32's rounding past the 1e-4 other graphs meet; the symbols are unaffected
    onnx_tolerance = 1e-3
    quantises_to_int8 = False  # ModelOnRuntime refuses --runtime onnx-int8 with this reason
    int8_refusal = "its GDN layers are far off in int8 and its bitstreams come from an exact float64 analysis"

    def __init__(self, config: CodecConfig | None = None):
        nn.Module.__init__(self)
        self.config = cfg = config or CodecConfig()
        self.encoder = _analysis(cfg)
        self.decoder = _synthesis(cfg)
        # gain q starts at 2**(q - default): coarse steps at low qualities, finer at high ones
        start = torch.pow(2.0, torch.arange(cfg.qualities, dtype=torch.float32) - (cfg.default_quality - 1))
        self.gain = nn.Parameter(start[:, None].repeat(1, cfg.latent_channels))
        self.inverse_gain = nn.Parameter(1 / start[:, None].repeat(1, cfg.latent_channels))
        self.priors = nn.ModuleList(FactorizedPrior(cfg.latent_channels) for _ in range(cfg.qualities))
        q, m, width = cfg.qualities, cfg.latent_channels, cfg.table_width
        # the integer tables (empty until fixed): frequencies sum to 2**16 per channel (aekit.entropy.IntegerTables)
        self.register_buffer("table_frequencies", torch.zeros(q, m, width, dtype=torch.int32))
        self.register_buffer("table_lengths", torch.zeros(q, m, dtype=torch.int32))
        self.register_buffer("table_offsets", torch.zeros(q, m, dtype=torch.int32))
        self.register_buffer("table_medians", torch.zeros(q, m, dtype=torch.float32))
        self._tables: dict[int, IntegerTables] = {}
        self._float64: dict[str, nn.Module] = {}  # the float64 analysis, made once (a dict: not a submodule)
        self.last_bits = None  # the last forward's rate per image (bits), and its qualities
        self.last_quality = None

    # -- training --------------------------------------------------------------------------------------

    def forward(self, x, quality=None):
        cfg = self.config
        y = self.encoder(x).float().reshape(-1, *cfg.latent_shape)  # -1: an exported graph takes any batch
        if not self.training and (quality is None or isinstance(quality, int)):
            # one quality for the whole batch: no row masks, so an exported graph (reconstruct) takes any batch
            q = cfg.default_quality if quality is None else quality
            with torch.autocast(x.device.type, enabled=False):
                y_hat, bits = self._quantized(y, q)
            self.last_bits, self.last_quality = bits, torch.full((len(bits),), q)
            return self.decoder(y_hat.flatten(1))
        if quality is None:
            quality = torch.randint(1, cfg.qualities + 1, (len(x),)) if self.training else cfg.default_quality
        quality = self._qualities(quality, len(x)).to(x.device)
        y_hat = torch.empty_like(y)
        bits = torch.zeros(len(x), device=x.device)
        with torch.autocast(x.device.type, enabled=False):  # likelihoods in float32, never bf16
            for q in quality.unique().tolist():
                rows = quality == q
                y_hat[rows], bits[rows] = self._quantized(y[rows], q)
        self.last_bits, self.last_quality = bits, quality
        return self.decoder(y_hat.flatten(1))

    def _quantized(self, y: torch.Tensor, q: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(the synthesis's input, each image's bits) for latents `y` (N, M, s, s) at quality `q`: noise for the
        rate and a straight-through rounding for the synthesis in training, rounding around the medians otherwise."""
        prior = self.priors[q - 1]
        v = y * self.gain[q - 1].abs()[None, :, None, None]
        v_noisy, likelihoods = prior(v)
        if self.training and self.config.decoder_quantization == "ste":
            medians = prior.medians().detach()[None, :, None, None]
            v_hat = v + (torch.round(v - medians) + medians - v).detach()
        else:
            v_hat = v_noisy  # rounded around the medians outside training
        return v_hat * self.inverse_gain[q - 1].abs()[None, :, None, None], -torch.log2(likelihoods).flatten(1).sum(1)

    def training_loss(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The rate-distortion loss of the last ``forward`` (the trainer's model-provided loss): the mean over images
        of ``lambda_q * 255^2 * MSE + bpp`` (MSE on the [0, 1] scale), with the gradient of the priors' quantile losses
        added (not their value); and its parts for metrics.jsonl (``bpp``, ``mse``, ``psnr``, ``quantile``)."""
        lambdas = torch.tensor(self.config.lambdas, device=pred.device)[self.last_quality - 1]
        mse = ((pred.float() - target.float()) / 2).pow(2).flatten(1).mean(1)
        bpp = self.last_bits / (target.shape[-1] * target.shape[-2])
        quantile = sum(prior.quantile_loss() for prior in self.priors)
        psnr = (-10 * torch.log10(mse.detach().clamp_min(1e-10))).mean()
        rd = (lambdas * 255**2 * mse + bpp).mean()
        # the quantile loss trains only the coding ranges (its own gradient); its value, hundreds while the ranges
        # settle, is left out of the loss the trainer records, which stays the rate-distortion loss
        loss = rd + (quantile - quantile.detach())
        return loss, {"bpp": bpp.mean().item(), "mse": mse.mean().item(), "psnr": psnr.item(), "quantile": quantile.item()}

    def optimizer_groups(self, lr: float) -> list[dict]:
        """Every parameter at `lr`, the priors' coding ranges (``quantiles``, trained only by the quantile loss) at
        10x (CompressAI gives them an optimizer of their own at 1e-3)."""
        quantiles = [p for name, p in self.named_parameters() if name.endswith("quantiles")]
        others = [p for name, p in self.named_parameters() if not name.endswith("quantiles")]
        # the ranges' quantile loss is not the rate-distortion loss: --clip-grad leaves its gradients alone
        return [{"params": others, "lr": lr}, {"params": quantiles, "lr": 10 * lr, "clip": False}]

    def _qualities(self, quality, count: int) -> torch.Tensor:
        q = torch.as_tensor(np.asarray(quality) if not torch.is_tensor(quality) else quality).long().reshape(-1)
        if q.numel() == 1:
            q = q.expand(count)
        if q.numel() != count:
            raise CodecError(f"{q.numel()} qualities for {count} images")
        if len(q) and (int(q.min()) < 1 or int(q.max()) > self.config.qualities):
            raise CodecError(f"quality must be from 1 to {self.config.qualities}, got {int(q.min() if q.min() < 1 else q.max())}")
        return q

    # -- the integer tables ---------------------------------------------------------------------------------

    @property
    def tables_fixed(self) -> bool:
        return self.config.table_width > 0

    @torch.no_grad()
    def fix_entropy_tables(self) -> None:
        """Quantise each quality's prior to integer tables and keep them as buffers (``config.table_width`` set):
        what ``aekit models package`` does once, on the weights as shipped. Coding never recomputes them."""
        cfg = self.config
        # the learned ranges can be too narrow at the high qualities (faces-64-codec's clamped 0.5% of its quality-6
        # symbols, by up to 125 steps, costing 10 dB): TABLE_MARGIN more symbols a side cost ~3 bytes a face
        tables = [IntegerTables.from_prior(prior.float().cpu(), TABLE_MARGIN) for prior in self.priors]
        width = max(t.frequencies.shape[1] for t in tables)
        frequencies = np.zeros((cfg.qualities, cfg.latent_channels, width), np.int32)
        for i, t in enumerate(tables):
            frequencies[i, :, : t.frequencies.shape[1]] = t.frequencies
        device = self.table_medians.device
        self.table_frequencies = torch.from_numpy(frequencies).to(device)
        self.table_lengths = torch.from_numpy(np.stack([t.lengths for t in tables])).to(device)
        self.table_offsets = torch.from_numpy(np.stack([t.offsets for t in tables])).to(device)
        # medians exact in float16: the packaged weights are float16 and the tables must survive that cast unchanged
        medians = np.stack([t.medians for t in tables]).astype(np.float16).astype(np.float32)
        self.table_medians = torch.from_numpy(medians).to(device)
        self.config = dataclasses.replace(cfg, table_width=width)
        self._tables = {}
        for q in range(1, cfg.qualities + 1):
            self.tables(q)  # checked now: a table that does not sum to 2**16 fails at packaging, not at decoding

    def prepare_to_ship(self) -> None:
        """What ``aekit.pretrained.package_model`` calls on the weights as shipped: fix the integer tables."""
        self.fix_entropy_tables()

    def tables(self, quality: int) -> IntegerTables:
        """Quality `quality`'s integer tables, read from the buffers (a CodecError before they are fixed)."""
        if not self.tables_fixed:
            raise CodecError("this codec's entropy tables are not fixed yet: package it first "
                             "(`aekit models package RUN --task codec ...`), or call model.fix_entropy_tables()")
        if quality not in self._tables:
            i = quality - 1
            self._tables[quality] = IntegerTables(
                self.table_frequencies[i].cpu().numpy().astype(np.uint32), self.table_lengths[i].cpu().numpy(),
                self.table_offsets[i].cpu().numpy(), self.table_medians[i].cpu().numpy().astype(np.float32))
        return self._tables[quality]

    def train(self, mode: bool = True):
        self._float64 = {}  # weights may change from here: the float64 analysis is copied again when next needed
        return super().train(mode)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        self._tables, self._float64 = {}, {}  # new weights: new tables and a new float64 analysis
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- coding -------------------------------------------------------------------------------------------------

    def coding_latents(self, images, batch_size: int = 256) -> torch.Tensor:
        """The analysis's latents (N, M, s, s) in float64 on the CPU: what is rounded into symbols (see the module)."""
        x = as_model_input(images, self.config.image_size)
        if "analysis" not in self._float64:
            self._float64["analysis"] = copy.deepcopy(self.encoder).cpu().double().eval()
        analysis = self._float64["analysis"]
        outs = []
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                outs.append(analysis(x[i : i + batch_size].double()).reshape(-1, *self.config.latent_shape))
        return torch.cat(outs) if outs else torch.empty(0, *self.config.latent_shape, dtype=torch.float64)

    def symbols(self, latents: torch.Tensor, quality: int) -> np.ndarray:
        """float64 latents (N, M, s, s) -> int32 symbols at `quality`: the gained latent rounded around the table's
        medians (in float64) and clamped to each channel's range."""
        tables = self.tables(quality)
        shape = (1, -1, 1, 1)
        gain = self.gain.detach()[quality - 1].abs().double().cpu().reshape(shape)
        v = latents.double() * gain - torch.from_numpy(tables.medians.astype(np.float64)).reshape(shape)
        k = torch.round(v).long() + torch.from_numpy(tables.offsets.astype(np.int64)).reshape(shape)
        top = torch.from_numpy(tables.lengths.astype(np.int64) - 1).reshape(shape)
        return torch.minimum(k.clamp_min(0), top).numpy().astype(np.int32)

    def dequantized(self, symbols: np.ndarray, quality: int) -> torch.Tensor:
        """int32 symbols (N, M, s, s) at `quality` -> the synthesis's input (N, latent_dim), float32."""
        values = self.tables(quality).values(symbols)
        gain = self.inverse_gain.detach()[quality - 1].abs().float().cpu().reshape(1, -1, 1, 1)
        return (values * gain).flatten(1)

    def encode_streams(self, symbols: np.ndarray, quality: int) -> list[bytes]:
        """One rANS bitstream per face from its symbols at `quality`."""
        return encode(symbols, self.tables(quality))

    def decode_streams(self, streams: list[bytes], quality: int) -> np.ndarray:
        """`encode_streams`' bitstreams -> symbols (an ``aekit.entropy.BitstreamError`` for a damaged one)."""
        return decode(streams, self.tables(quality), self.config.latent_shape)

    def compress_faces(self, images, quality, batch_size: int = 256) -> list[bytes]:
        """Bitstreams of images (as ``encode`` takes them), one per face, at `quality` (one, or one per face)."""
        latents = self.coding_latents(images, batch_size)
        qualities = self._qualities(quality, len(latents)).numpy()
        streams: list[bytes] = [b""] * len(latents)
        for q in np.unique(qualities):
            rows = np.flatnonzero(qualities == q)
            for i, stream in zip(rows, self.encode_streams(self.symbols(latents[rows], int(q)), int(q))):
                streams[i] = stream
        return streams

    def decompress_faces(self, streams: list[bytes], quality, decode=None, batch_size: int = 256) -> torch.Tensor:
        """Images in [-1, 1] (N, 3, S, S) from `compress_faces`' bitstreams; `decode` turns the synthesis's input
        into images (default ``self.decode``; ONNX Runtime's for ``--runtime onnx``)."""
        decode = decode or self.decode
        qualities = self._qualities(quality, len(streams)).numpy()
        size = self.config.image_size
        out = torch.empty(len(streams), self.config.channels, size, size)
        for q in np.unique(qualities):
            rows = np.flatnonzero(qualities == q)
            symbols = self.decode_streams([streams[i] for i in rows], int(q))
            out[torch.from_numpy(rows)] = decode(self.dequantized(symbols, int(q)), batch_size=batch_size).float()
        return out


def choose_qualities(sizes: np.ndarray, distortions: np.ndarray, target: float) -> np.ndarray:
    """A quality per face (0-based column of `sizes`) whose mean size is as close to `target` as the choices allow,
    spending bytes where they buy the most: faces pick argmin(D + lam * R) for a Lagrange multiplier found by
    bisection, then the faces that change between the two multipliers around the target switch one by one in
    order of their D-R slope (sizes and distortions (N, Q): each face's bytes and error at each quality)."""
    sizes, distortions = np.asarray(sizes, np.float64), np.asarray(distortions, np.float64)
    n = len(sizes)

    def pick(lam: float) -> np.ndarray:
        return np.argmin(distortions + lam * sizes, axis=1)

    def mean_size(choice: np.ndarray) -> float:
        return float(sizes[np.arange(n), choice].mean())

    # lam small: every face at its best quality (largest); lam large: its smallest. Bisect on log(lam).
    scale = max(float(np.abs(distortions).max()), 1e-12) / max(float(sizes.min()), 1.0)
    low, high = math.log(scale * 1e-9), math.log(scale * 1e6)
    if mean_size(pick(math.exp(low))) <= target:
        return pick(math.exp(low))
    if mean_size(pick(math.exp(high))) >= target:
        return pick(math.exp(high))
    for _ in range(60):
        middle = (low + high) / 2
        if mean_size(pick(math.exp(middle))) > target:
            low = middle
        else:
            high = middle
    above, below = pick(math.exp(low)), pick(math.exp(high))  # mean size above and below the target
    changed = np.flatnonzero(above != below)
    # the cheapest distortion per byte first: switch faces from the smaller to the larger choice
    gain = (distortions[changed, below[changed]] - distortions[changed, above[changed]]) / np.maximum(
        sizes[changed, above[changed]] - sizes[changed, below[changed]], 1e-9)
    choice, best = below.copy(), below.copy()
    for i in changed[np.argsort(-gain, kind="stable")]:
        choice[i] = above[i]
        if abs(mean_size(choice) - target) < abs(mean_size(best) - target):
            best = choice.copy()
        if mean_size(choice) > target:
            break
    return best if abs(mean_size(best) - target) <= abs(mean_size(above) - target) else above


CODEC = CodecConfig()

__all__ = ["CODEC", "CodecConfig", "CodecError", "FaceCodec", "GDN", "choose_qualities"]
