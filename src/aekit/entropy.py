"""Entropy models and coding for aekit's codecs: learned per-channel densities, integer tables, bytes.

Three layers, each usable alone:

- ``FactorizedPrior``: one learned density per latent channel (Ballé et al. 2018's "entropy bottleneck",
  as in CompressAI and tensorflow-compression): a monotonic cumulative function per channel, a small
  MLP whose weights pass through softplus. While training, ``forward(y)`` adds uniform noise in
  [-0.5, 0.5) to the latent and returns each value's likelihood, whose ``-log2`` is its rate in bits;
  ``quantile_loss()`` moves the coding range onto the density's tails (it touches no other parameter).
- ``IntegerTables``: the densities as integer frequency tables (every symbol at least 1, each channel
  summing to ``2**PRECISION``) with each channel's median and range, made once from a trained prior
  (``IntegerTables.from_prior``) and stored with the model. Coding reads only these integers, never
  the floats of the network, so a bitstream decodes to the same symbols on any machine.
- ``encode`` / ``decode``: rANS (Duda 2013; a 32-bit state and 16-bit words, as ryg_rans) over the
  integer symbols of each image, one ``bytes`` per image, vectorised across images with numpy integer
  arithmetic. A stream that does not end exactly where it should (truncated, corrupted, or coded with
  other tables) raises ``BitstreamError``.

Latent values outside a channel's range are clamped to its ends (the tables hold the tails' mass at
the ends, 1e-9 of it at training's ranges), so there is no escape code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import AekitError

PRECISION = 16  # frequencies sum to 2**PRECISION per channel
_STATE_LOW = 1 << 16  # the rANS state stays in [2**16, 2**32) between symbols
_WORD_BITS = 16
_MAX_SYMBOLS = 4096  # the longest table a channel may have (a wider range is a prior gone wrong)
TAIL_MASS = 1e-9  # the density's mass left outside a channel's coding range


class BitstreamError(AekitError):
    """A bitstream that cannot be decoded with these tables: truncated, corrupted or another model's."""


class FactorizedPrior(nn.Module):
    """A learned density per channel of latents (N, C, *spatial): likelihoods for training, tables for coding.

    `filters` are the hidden widths of each channel's cumulative MLP (3, 3, 3 as in the paper);
    `init_scale` the initial width of the densities.
    """

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        self.channels = channels
        widths = (1, *filters, 1)
        scale = init_scale ** (1 / (len(widths) - 1))
        self.matrices, self.biases, self.factors = nn.ParameterList(), nn.ParameterList(), nn.ParameterList()
        for i in range(len(widths) - 1):
            # softplus(init) = 1 / (scale * width): the composed map starts as a cumulative of width init_scale
            init = math.log(math.expm1(1 / scale / widths[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, widths[i + 1], widths[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, widths[i + 1], 1, generator=torch.Generator().manual_seed(i)) - 0.5))
            if i < len(widths) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, widths[i + 1], 1)))
        self.quantiles = nn.Parameter(torch.tensor([-init_scale, 0.0, init_scale]).repeat(channels, 1, 1))  # (C, 1, 3)

    def _cumulative_logits(self, x: torch.Tensor, detached: bool = False) -> torch.Tensor:
        """x (C, 1, K) -> the logit of each channel's cumulative at x: (C, 1, K)."""
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            if detached:
                matrix, bias = matrix.detach(), bias.detach()
            x = torch.matmul(F.softplus(matrix), x) + bias
            if i < len(self.factors):
                factor = self.factors[i].detach() if detached else self.factors[i]
                x = x + torch.tanh(factor) * torch.tanh(x)
        return x

    def medians(self) -> torch.Tensor:
        """(C,): where each channel's density is centred (its symbols count from there)."""
        return self.quantiles[:, 0, 1]

    def likelihood(self, y: torch.Tensor) -> torch.Tensor:
        """The probability mass of [y - 0.5, y + 0.5) under each value's channel density; y (N, C, *spatial)."""
        shape = y.shape
        x = y.transpose(0, 1).reshape(self.channels, 1, -1)  # (C, 1, N * spatial)
        lower, upper = self._cumulative_logits(x - 0.5), self._cumulative_logits(x + 0.5)
        # subtract on the side of the median where the sigmoids are not both close to 1 (precision)
        sign = -torch.sign(lower + upper).detach()
        mass = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        return mass.reshape(self.channels, shape[0], *shape[2:]).transpose(0, 1).clamp_min(1e-9)

    def forward(self, y: torch.Tensor, noise: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(y_hat, likelihoods): y plus uniform noise while training (`noise` None: ``self.training``), else
        rounded around the medians as coding rounds it; the rate in bits is ``-log2(likelihoods).sum()``."""
        noise = self.training if noise is None else noise
        if noise:
            y_hat = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        else:
            medians = self.medians().detach().reshape(1, -1, *([1] * (y.ndim - 2)))
            y_hat = torch.round(y - medians) + medians
        return y_hat, self.likelihood(y_hat)

    def quantile_loss(self) -> torch.Tensor:
        """How far the coding range's ends are from the density's TAIL_MASS / 2 quantiles (and the median from
        its middle); it trains only ``quantiles`` (an auxiliary loss, CompressAI's ``aux_loss``)."""
        edge = math.log(2 / TAIL_MASS - 1)
        target = torch.tensor([-edge, 0.0, edge], device=self.quantiles.device)
        return (self._cumulative_logits(self.quantiles, detached=True) - target).abs().sum()


@dataclass(frozen=True)
class IntegerTables:
    """What coding needs of a prior, as integers (plus each channel's median, to place its symbols).

    ``frequencies`` (C, L) uint32: channel c's symbol k (0 <= k < lengths[c]) stands for the value
    ``k - offsets[c] + medians[c]``; entries past ``lengths[c]`` are 0. Each row sums to 2**PRECISION.
    """

    frequencies: np.ndarray
    lengths: np.ndarray
    offsets: np.ndarray
    medians: np.ndarray

    def __post_init__(self):
        f, lengths = self.frequencies, self.lengths
        if f.ndim != 2 or f.dtype != np.uint32 or lengths.shape != (len(f),) or self.offsets.shape != (len(f),) \
                or self.medians.shape != (len(f),):
            raise AekitError("entropy tables: frequencies must be (C, L) uint32 with lengths, offsets and medians (C,)")
        if (lengths < 1).any() or (lengths > f.shape[1]).any() or (self.offsets < 0).any() or (self.offsets >= lengths).any():
            raise AekitError("entropy tables: a channel's length or offset is out of range")
        inside = np.arange(f.shape[1])[None, :] < lengths[:, None]
        if (f.astype(np.int64).sum(axis=1) != 1 << PRECISION).any() or (f[inside] == 0).any() or (f[~inside] != 0).any():
            raise AekitError(f"entropy tables: each channel's frequencies must be >= 1 and sum to 2**{PRECISION}")

    @property
    def channels(self) -> int:
        return len(self.frequencies)

    @property
    def starts(self) -> np.ndarray:
        """(C, L + 1) uint64: the cumulative frequency before each symbol."""
        out = np.zeros((self.channels, self.frequencies.shape[1] + 1), np.uint64)
        np.cumsum(self.frequencies, axis=1, dtype=np.uint64, out=out[:, 1:])
        return out

    @classmethod
    @torch.no_grad()
    def from_prior(cls, prior: FactorizedPrior, margin: int = 0) -> IntegerTables:
        """The prior's densities on integer offsets from each channel's median, quantised to integers; `margin`
        more symbols on each side of the learned coding range, each at least 1/2**16 (a latent past the range is
        clamped to it, so a range learned too narrow costs far more distortion than these few bits)."""
        quantiles = prior.quantiles.detach().float().cpu()
        medians = quantiles[:, 0, 1]
        below = (torch.ceil(medians - quantiles[:, 0, 0]) + margin).clamp(0, _MAX_SYMBOLS // 2).long()
        above = (torch.ceil(quantiles[:, 0, 2] - medians) + margin).clamp(0, _MAX_SYMBOLS // 2 - 1).long()
        lengths = below + above + 1
        width = int(lengths.max())
        steps = torch.arange(width, dtype=torch.float32)[None, :] - below[:, None]  # (C, L) offsets from the median
        values = (steps + medians[:, None]).to(next(prior.parameters()).device)
        mass = prior.likelihood(values[None]).squeeze(0).double().cpu()  # (C, L): likelihood takes (N, C, L)
        inside = torch.arange(width)[None, :] < lengths[:, None]
        mass = torch.where(inside, mass, torch.zeros_like(mass)).numpy()
        return cls(_quantised(mass, lengths.numpy()), lengths.numpy().astype(np.int32), below.numpy().astype(np.int32),
                   medians.numpy().astype(np.float32))

    def symbols(self, y: torch.Tensor | np.ndarray) -> np.ndarray:
        """Latents (N, C, *spatial) -> int32 symbols, each rounded around its channel's median and clamped
        to the channel's range."""
        y = torch.as_tensor(y, dtype=torch.float32).cpu()
        shape = (1, -1, *([1] * (y.ndim - 2)))
        steps = torch.round(y - torch.from_numpy(self.medians).reshape(shape)).to(torch.int64)
        k = steps + torch.from_numpy(self.offsets.astype(np.int64)).reshape(shape)
        top = torch.from_numpy(self.lengths.astype(np.int64) - 1).reshape(shape)
        return torch.minimum(k.clamp_min(0), top).numpy().astype(np.int32)

    def values(self, symbols: np.ndarray) -> torch.Tensor:
        """int32 symbols (N, C, *spatial) -> the latents they stand for (float32)."""
        s = torch.from_numpy(np.asarray(symbols, dtype=np.int64))
        shape = (1, -1, *([1] * (s.ndim - 2)))
        return (s - torch.from_numpy(self.offsets.astype(np.int64)).reshape(shape)).float() \
            + torch.from_numpy(self.medians).reshape(shape)

    def bits(self, symbols: np.ndarray) -> np.ndarray:
        """Each image's ideal code length in bits under the tables (N,): what ``encode`` reaches within ~32 bits."""
        s = np.asarray(symbols)
        channel = np.broadcast_to(np.arange(self.channels).reshape(1, -1, *([1] * (s.ndim - 2))), s.shape)
        p = self.frequencies[channel, s].astype(np.float64) / (1 << PRECISION)
        return -np.log2(p).reshape(len(s), -1).sum(axis=1)

    def to_tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """The tables as tensors for a safetensors file (frequencies as int32: safetensors has no uint32)."""
        return {f"{prefix}frequencies": torch.from_numpy(self.frequencies.astype(np.int32)),
                f"{prefix}lengths": torch.from_numpy(self.lengths), f"{prefix}offsets": torch.from_numpy(self.offsets),
                f"{prefix}medians": torch.from_numpy(self.medians)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str = "") -> IntegerTables:
        try:
            return cls(tensors[f"{prefix}frequencies"].numpy().astype(np.uint32),
                       tensors[f"{prefix}lengths"].numpy().astype(np.int32),
                       tensors[f"{prefix}offsets"].numpy().astype(np.int32),
                       tensors[f"{prefix}medians"].numpy().astype(np.float32))
        except KeyError as exc:
            raise AekitError(f"entropy tables: {exc.args[0]} is missing") from None


def _quantised(mass: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Probability masses (C, L) -> uint32 frequencies, each >= 1 inside a channel's length, summing to 2**PRECISION."""
    total = 1 << PRECISION
    out = np.zeros(mass.shape, np.uint32)
    for c, (row, n) in enumerate(zip(mass, lengths)):
        p = np.maximum(row[:n], 0)
        p = p / p.sum() if p.sum() > 0 else np.full(n, 1 / n)
        f = 1 + np.floor(p * (total - n)).astype(np.int64)  # at least 1 each; the rounding's remainder goes below
        f[np.argmax(p)] += total - f.sum()  # exactly total: the most likely symbol takes what rounding left
        out[c, :n] = f
    return out


def encode(symbols: np.ndarray, tables: IntegerTables) -> list[bytes]:
    """int32 symbols (N, C, *spatial) -> one rANS bitstream per image (big-endian 16-bit words, the state first)."""
    s = np.asarray(symbols)
    if s.ndim < 2 or s.shape[1] != tables.channels:
        raise ValueError(f"symbols must be (N, {tables.channels}, ...), got {s.shape}")
    n = len(s)
    flat = s.reshape(n, -1).astype(np.int64)
    channel = np.repeat(np.arange(tables.channels), flat.shape[1] // tables.channels)  # (S,): C-major order
    if ((flat < 0) | (flat >= tables.lengths[channel][None, :])).any():
        raise ValueError("a symbol is outside its channel's table")
    frequencies, starts = tables.frequencies.astype(np.uint64), tables.starts
    state = np.full(n, _STATE_LOW, np.uint64)
    words = np.zeros((flat.shape[1], n), np.uint16)
    emitted = np.zeros((flat.shape[1], n), bool)
    for t in range(flat.shape[1] - 1, -1, -1):  # rANS is a stack: encode backwards so that decoding runs forwards
        c, k = channel[t], flat[:, t]
        f, start = frequencies[c, k], starts[c, k]
        full = state >= (f << np.uint64(32 - PRECISION))  # the state would leave 32 bits: emit its low word
        words[t, full] = (state[full] & np.uint64(0xFFFF)).astype(np.uint16)
        emitted[t] = full
        state = np.where(full, state >> np.uint64(_WORD_BITS), state)
        state = ((state // f) << np.uint64(PRECISION)) + state % f + start
    head = np.stack([state >> np.uint64(16), state & np.uint64(0xFFFF)]).astype(np.uint16)  # (2, N)
    return [np.concatenate([head[:, i], words[emitted[:, i], i]]).astype(">u2").tobytes() for i in range(n)]


def decode(streams: list[bytes], tables: IntegerTables, shape: tuple[int, ...]) -> np.ndarray:
    """`encode`'s bitstreams -> int32 symbols (N, *shape), shape = (C, *spatial); a BitstreamError for a stream
    that does not decode to exactly its own length and rANS's initial state (truncated, corrupted, other tables)."""
    if not shape or shape[0] != tables.channels:
        raise ValueError(f"shape must start with the {tables.channels} channels, got {shape}")
    n, size = len(streams), int(np.prod(shape))
    for i, stream in enumerate(streams):
        if len(stream) < 4 or len(stream) % 2:
            raise BitstreamError(f"bitstream {i}: {len(stream)} bytes is not a whole rANS stream")
    counts = np.array([len(b) // 2 for b in streams], np.int64)
    padded = np.zeros((n, max(counts.max(initial=2), 2) + 1), np.uint64)  # one spare word: reads past the end land there
    for i, stream in enumerate(streams):
        padded[i, : counts[i]] = np.frombuffer(stream, ">u2")
    state = (padded[:, 0] << np.uint64(16)) | padded[:, 1]
    position = np.full(n, 2, np.int64)
    channel = np.repeat(np.arange(tables.channels), size // tables.channels)
    frequencies, starts = tables.frequencies.astype(np.uint64), tables.starts
    mask, rows = np.uint64((1 << PRECISION) - 1), np.arange(n)
    out = np.empty((n, size), np.int32)
    for t in range(size):
        c = channel[t]
        slot = state & mask
        k = np.searchsorted(starts[c, 1 : tables.lengths[c] + 1], slot, side="right")  # the symbol whose span holds slot
        out[:, t] = k
        state = frequencies[c, k] * (state >> np.uint64(PRECISION)) + slot - starts[c, k]
        low = state < _STATE_LOW
        read = np.minimum(position, padded.shape[1] - 1)
        state = np.where(low, (state << np.uint64(_WORD_BITS)) | padded[rows, read], state)
        position += low
    bad = (position != counts) | (state != _STATE_LOW)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise BitstreamError(f"bitstream {i} does not decode with this model's tables (truncated, corrupted or "
                             "another model's)")
    return out.reshape(n, *shape)


__all__ = ["BitstreamError", "FactorizedPrior", "IntegerTables", "PRECISION", "TAIL_MASS", "decode", "encode"]
