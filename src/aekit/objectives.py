"""Training objectives: what `aekit train --objective NAME[:ARG][=WEIGHT]` adds to the reconstruction loss.

An objective is a registry kind (``register_objectives``): ``register(name, factory, help="")``, where
``factory(argument, model)`` gets the text after ``NAME:`` (or ``""``) and the model about to be trained, and
returns an `Objective`: a ``torch.nn.Module`` (it may own parameters, e.g. a projector head) whose
``loss(model, x, rng)`` returns a scalar tensor. The trainer minimises

    reconstruction loss (MSE by default) + sum over objectives of WEIGHT * objective.loss(model, x, rng)

where ``x`` is the clean batch (N, 3, S, S) in [-1, 1] after the trainer's own flips, shifts and colour jitter,
and ``rng`` a ``numpy.random.Generator`` seeded by the step's position (seed, epoch, batch) and the
objective's place on the command line: draw every random choice from it (`two_views` does) and `--resume`
continues exactly. An objective's parameters train in their own optimizer group at ``--lr``, are saved in
``training_state.safetensors`` as ``objective.NAME.PARAM`` and restored by ``--resume``; they are never part of
``model.safetensors`` (the shipped model is the autoencoder alone).

Built in (registered by the core): ``vicreg``, ``infonce`` and ``masked``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import AekitError, ObjectiveSpecError, RegistryError, first_line
from .feature_sets import encoder_maps, output_width
from .registry import get_registry

SYNTAX = "NAME[:ARG][=WEIGHT]"


class Objective(nn.Module):
    """A training objective: ``loss(model, x, rng)`` -> a scalar tensor the trainer adds with its weight.

    ``model`` is the autoencoder being trained (train mode, in the trainer's memory layout); ``x`` the clean
    batch (N, 3, S, S) in [-1, 1]; ``rng`` a seeded ``numpy.random.Generator`` for the objective's own random
    choices. The trainer calls it under the run's autocast (bf16 on CUDA): compute what must be precise in
    float32. Parameters and buffers of the module are trained and checkpointed with the run.
    """

    def loss(self, model, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, model, x, rng):
        return self.loss(model, x, rng)


# --- the spec on the command line ---------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectiveSpec:
    """One ``--objective`` value: the registered name, its argument ("" when none), its weight, and the text."""

    name: str
    argument: str
    weight: float
    text: str


def parse_objective(text: str) -> ObjectiveSpec:
    """``NAME[:ARG][=WEIGHT]`` -> an `ObjectiveSpec` (weight 1 when not given); ObjectiveSpecError naming the
    value when the name is not registered (listing those that are) or the weight is not a positive number."""
    where = f"--objective {text!r}"
    if not isinstance(text, str) or not text.strip():
        raise ObjectiveSpecError(f"{where}: give {SYNTAX}, e.g. vicreg=0.5")
    body, sep, weight_text = text.rpartition("=") if "=" in text else (text, "", "")
    weight = 1.0
    if sep:
        try:
            weight = float(weight_text)
        except ValueError:
            raise ObjectiveSpecError(f"{where}: the weight after '=' must be a positive number, got {weight_text!r}") from None
        if not (math.isfinite(weight) and weight > 0):
            raise ObjectiveSpecError(f"{where}: the weight after '=' must be a positive number, got {weight_text!r}")
    name, _, argument = body.partition(":")
    name = name.strip()
    if not name:
        raise ObjectiveSpecError(f"{where}: no objective name; give {SYNTAX}, e.g. vicreg=0.5")
    try:
        get_registry().entry("objective", name)
    except RegistryError as exc:  # "unknown training objective 'x' (known: ...)"
        raise ObjectiveSpecError(f"{where}: {exc}") from None
    return ObjectiveSpec(name, argument.strip(), weight, text)


def parse_objectives(texts) -> list[ObjectiveSpec]:
    """Every ``--objective`` value parsed; each objective at most once (its state is saved under its name)."""
    specs, seen = [], set()
    for text in texts or ():
        spec = parse_objective(text)
        if spec.name in seen:
            raise ObjectiveSpecError(f"--objective {text!r}: objective {spec.name!r} is given twice; give it once")
        seen.add(spec.name)
        specs.append(spec)
    return specs


def build_objectives(specs, model) -> nn.ModuleDict:
    """The objectives of `specs` for `model`, keyed by name in command-line order (factories' errors named)."""
    built = nn.ModuleDict()
    for spec in specs:
        factory = get_registry().get("objective", spec.name)
        try:
            objective = factory(spec.argument, model)
        except (AekitError, ValueError) as exc:
            raise ObjectiveSpecError(f"--objective {spec.text!r}: {first_line(exc)}") from None
        if not isinstance(objective, Objective):
            raise ObjectiveSpecError(f"--objective {spec.text!r}: its factory returned {type(objective).__name__}, "
                                     "not an aekit.objectives.Objective")
        built[spec.name] = objective
    return built


# --- what objectives share ----------------------------------------------------------------------------


def embedding(model, x: torch.Tensor, where: str = "latent") -> torch.Tensor:
    """(N, D): the encoder's latent (``where="latent"``) or its last feature map averaged over space (``"pooled"``)."""
    maps, latent = encoder_maps(model, x)
    if where == "pooled":
        return maps[-1].mean(dim=(2, 3))
    return latent.flatten(1)


@torch.no_grad()
def embedding_size(model, where: str = "latent") -> int:
    """How many values `embedding` gives per image for this model (two images of zeros, in eval mode)."""
    if not isinstance(getattr(model, "encoder", None), nn.Module):
        raise ObjectiveSpecError(f"needs a model with an encoder ({type(model).__name__} has none)")
    return output_width(model, lambda x: embedding(model, x, where), count=2)  # two: BatchNorm needs a batch


def projector(inputs: int, width: int = 512, outputs: int = 512) -> nn.Sequential:
    """A 2-layer MLP head, Linear-BatchNorm-ReLU-Linear (SimCLR's and VICReg's projector, smaller)."""
    return nn.Sequential(nn.Linear(inputs, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True), nn.Linear(width, outputs))


def random_resized_crops(x: torch.Tensor, rng: np.random.Generator, scale=(0.6, 1.0), ratio=(3 / 4, 4 / 3),
                         flip: bool = True) -> torch.Tensor:
    """A random crop of each image (area `scale` of the image, aspect `ratio`), resized back to the image's size
    (bilinear), and mirrored with probability 1/2: torchvision's RandomResizedCrop + RandomHorizontalFlip, batched."""
    n, _, height, width = x.shape
    draws = rng.random((5, n))
    area = scale[0] + (scale[1] - scale[0]) * draws[0]
    aspect = np.exp(np.log(ratio[0]) + (np.log(ratio[1]) - np.log(ratio[0])) * draws[1])
    half_w = np.minimum(1.0, np.sqrt(area * aspect))  # half-widths in grid_sample's [-1, 1] coordinates
    half_h = np.minimum(1.0, np.sqrt(area / aspect))
    centre_x = (2 * draws[2] - 1) * (1 - half_w)
    centre_y = (2 * draws[3] - 1) * (1 - half_h)
    mirror = np.where(flip & (draws[4] < 0.5), -1.0, 1.0)
    theta = np.zeros((n, 2, 3))
    theta[:, 0, 0], theta[:, 0, 2] = half_w * mirror, centre_x
    theta[:, 1, 1], theta[:, 1, 2] = half_h, centre_y
    theta = torch.from_numpy(theta).to(device=x.device, dtype=torch.float32)
    grid = F.affine_grid(theta, [n, x.shape[1], height, width], align_corners=False)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out.to(x.dtype)


def color_jitter(x: torch.Tensor, rng: np.random.Generator, strength: float = 0.1) -> torch.Tensor:
    """Each image's saturation and contrast scaled by 1 ± `strength`, ± `strength` brightness, clamped to [-1, 1]."""
    if not strength:
        return x
    saturation, contrast, brightness = torch.from_numpy(
        rng.uniform(-strength, strength, size=(3, len(x), 1, 1, 1))).to(x)
    gray = x.mean(1, keepdim=True)
    x = gray + (x - gray) * (1 + saturation)
    mean = x.mean((1, 2, 3), keepdim=True)
    return ((x - mean) * (1 + contrast) + mean + brightness).clamp(-1, 1)


def two_views(x: torch.Tensor, rng: np.random.Generator, scale=(0.6, 1.0), jitter: float = 0.1):
    """Two augmented views of a batch in [-1, 1] for joint-embedding objectives: for each, a random resized crop
    (`scale` of the area, back to S x S), a horizontal flip with probability 1/2 and a small colour jitter, every
    draw from `rng` (so a resumed run sees the same views). Returned in `x`'s memory layout."""
    layout = torch.channels_last if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(
        memory_format=torch.channels_last) else torch.contiguous_format
    views = []
    for _ in range(2):
        view = color_jitter(random_resized_crops(x, rng, scale=scale), rng, jitter)
        views.append(view.contiguous(memory_format=layout))
    return views[0], views[1]


def _off_diagonal(matrix: torch.Tensor) -> torch.Tensor:
    n = matrix.shape[0]
    return matrix.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def vicreg_loss(a: torch.Tensor, b: torch.Tensor, sim_coeff: float = 25.0, std_coeff: float = 25.0,
                cov_coeff: float = 1.0) -> torch.Tensor:
    """VICReg's loss between two batches of embeddings (N, D), as facebookresearch/vicreg's main_vicreg.py:
    invariance (MSE between the views) + variance (a hinge keeping each dimension's std at 1 or more) +
    covariance (the squared off-diagonal covariances, over D), weighted 25 / 25 / 1. Computed in float32."""
    with torch.autocast(a.device.type, enabled=False):
        a, b = a.float(), b.float()
        n, d = a.shape
        invariance = F.mse_loss(a, b)
        a = a - a.mean(dim=0)
        b = b - b.mean(dim=0)
        std_a = torch.sqrt(a.var(dim=0) + 1e-4)
        std_b = torch.sqrt(b.var(dim=0) + 1e-4)
        variance = torch.mean(F.relu(1 - std_a)) / 2 + torch.mean(F.relu(1 - std_b)) / 2
        cov_a = (a.T @ a) / (n - 1)
        cov_b = (b.T @ b) / (n - 1)
        covariance = _off_diagonal(cov_a).pow(2).sum() / d + _off_diagonal(cov_b).pow(2).sum() / d
        return sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance


def nt_xent_loss(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent between two batches of embeddings (N, D): each embedding's positive is the other view of
    its image, its negatives the 2N - 2 others; cosine similarities over `temperature`. Computed in float32."""
    with torch.autocast(a.device.type, enabled=False):
        z = F.normalize(torch.cat([a, b]).float(), dim=1)
        n = len(a)
        logits = z @ z.T / temperature
        logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
        targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
        return F.cross_entropy(logits, targets)


def _number(argument: str, default: float, what: str, low: float, high: float, open_low: bool = True) -> float:
    if not argument:
        return default
    try:
        value = float(argument)
    except ValueError:
        raise ObjectiveSpecError(f"{what} must be a number, got {argument!r}") from None
    if not (math.isfinite(value) and (low < value if open_low else low <= value) and value < high):
        raise ObjectiveSpecError(f"{what} must be in {'(' if open_low else '['}{low:g}, {high:g}), got {argument}")
    return value


# --- the built-in objectives --------------------------------------------------------------------------


class VICReg(Objective):
    """VICReg (Bardes, Ponce & LeCun, "VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised
    Learning", ICLR 2022; facebookresearch/vicreg): two augmented views of each image (`two_views`) go through the
    encoder and a projector (Linear 512 - BatchNorm - ReLU - Linear 512); the loss is `vicreg_loss` with the
    paper's 25 / 25 / 1 coefficients. Argument: ``latent`` (default: embed the latent) or ``pooled`` (the
    encoder's last feature map, averaged over space)."""

    def __init__(self, inputs: int, where: str = "latent", width: int = 512):
        super().__init__()
        self.where = where
        self.projector = projector(inputs, width, width)

    def loss(self, model, x, rng):
        first, second = two_views(x, rng)
        a = self.projector(embedding(model, first, self.where))
        b = self.projector(embedding(model, second, self.where))
        return vicreg_loss(a, b)


def make_vicreg(argument: str, model) -> VICReg:
    where = argument or "latent"
    if where not in ("latent", "pooled"):
        raise ObjectiveSpecError(f"vicreg's argument is latent or pooled, got {argument!r}")
    return VICReg(embedding_size(model, where), where)


class InfoNCE(Objective):
    """InfoNCE as SimCLR's NT-Xent (Chen, Kornblith, Norouzi & Hinton, "A Simple Framework for Contrastive
    Learning of Visual Representations", ICML 2020; van den Oord et al. 2018 for InfoNCE): two augmented views
    (`two_views`) of each image go through the encoder as one batch, their latents through a projector
    (Linear 512 - BatchNorm - ReLU - Linear 128), and `nt_xent_loss` contrasts them. Argument: the temperature
    (default 0.2)."""

    def __init__(self, inputs: int, temperature: float = 0.2, width: int = 512, outputs: int = 128):
        super().__init__()
        self.temperature = temperature
        self.projector = projector(inputs, width, outputs)

    def loss(self, model, x, rng):
        first, second = two_views(x, rng)
        z = self.projector(embedding(model, torch.cat([first, second])))
        return nt_xent_loss(z[: len(x)], z[len(x):], self.temperature)


def make_infonce(argument: str, model) -> InfoNCE:
    temperature = _number(argument, 0.2, "infonce's temperature", 0.0, 10.0)
    return InfoNCE(embedding_size(model), temperature)


class MaskedReconstruction(Objective):
    """A masked-image-modelling term in the style of a convolutional MAE (He et al., "Masked Autoencoders Are
    Scalable Vision Learners", CVPR 2022; for convolutions, SimMIM, Xie et al. 2022, and ConvNeXt V2's FCMAE,
    Woo et al. 2023): a random `fraction` of each image's `patch` x `patch` patches is hidden (set to 0, mid-grey),
    the model reconstructs the whole clean image from the masked input, and the loss is the MSE on the hidden
    pixels only. No parameters. Argument: the hidden fraction (default 0.6)."""

    def __init__(self, fraction: float = 0.6, patch: int = 8):
        super().__init__()
        self.fraction, self.patch = fraction, patch

    def mask(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """(N, 1, H, W): 1 on the hidden patches, exactly round(fraction * patches) of them per image."""
        n, _, height, width = x.shape
        rows, cols = -(-height // self.patch), -(-width // self.patch)
        count = rows * cols
        hidden_count = min(count - 1, max(1, round(self.fraction * count))) if count > 1 else 1
        order = np.argsort(rng.random((n, count)), axis=1)[:, :hidden_count]
        hidden = np.zeros((n, count), dtype=np.float32)
        np.put_along_axis(hidden, order, 1.0, axis=1)
        mask = torch.from_numpy(hidden).reshape(n, 1, rows, cols).to(device=x.device, dtype=x.dtype)
        mask = mask.repeat_interleave(self.patch, 2).repeat_interleave(self.patch, 3)
        return mask[:, :, :height, :width]

    def loss(self, model, x, rng):
        mask = self.mask(x, rng)
        prediction = model(x * (1 - mask)).float()
        with torch.autocast(x.device.type, enabled=False):
            error = (prediction - x.float()).pow(2) * mask
            return error.sum() / (mask.sum() * x.shape[1]).clamp_min(1)


def make_masked(argument: str, model) -> MaskedReconstruction:
    return MaskedReconstruction(_number(argument, 0.6, "masked's hidden fraction", 0.0, 1.0))


BUILT_IN = {
    "vicreg": (make_vicreg, "VICReg (Bardes et al. 2022) on two augmented views' projected latents; "
                            "argument: latent (default) or pooled"),
    "infonce": (make_infonce, "SimCLR's NT-Xent (InfoNCE) on two augmented views' projected latents; "
                              "argument: temperature (default 0.2)"),
    "masked": (make_masked, "conv-MAE style: reconstruct the image from one with a fraction of its 8x8 patches "
                            "hidden, MSE on the hidden ones; argument: fraction (default 0.6)"),
}
