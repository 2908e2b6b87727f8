"""A training run's settings and records: ``TrainConfig`` (one way to write and read it), the run's
train/validation split, and ``training_record`` -- the typed answer to "which images trained this model".
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import prepare
from .errors import AekitError, DataSourceError, TrainingError, first_line
from .factory import model_config
from .noise import parse_noise
from .objectives import parse_objectives
from .validate import MODEL_SIZE_LIMITS, check_fields, read_json

SCHEDULES = ("linear", "onecycle", "constant")


LOSSES = ("mse", "psnr")  # --loss: see TrainConfig.loss

@dataclass
class TrainConfig:
    """Everything that defines a training run; saved in the run so `--resume` can continue it."""

    data: str = "celeba"
    arch: str = "article"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-4
    weight_decay: float = 0.0
    seed: int = 0
    skip: int = 0
    limit: int | None = None
    files: str | None = None
    val_fraction: float = 0.0
    val_data: str | None = None  # a separate held-out source, e.g. "faces/[9000:]"
    sample_every: int = 1
    device: str = "auto"
    precision: str = "auto"
    init: str | None = None
    model_config: dict = dataclasses.field(default_factory=dict)  # overrides of the preset's config fields
    on_nan: str = "stop"  # a non-finite loss: "stop" the run, or "skip" that step (counted in metrics.jsonl)
    clip_grad: float = 0.0  # clip the gradients' total norm to this before each step (0: no clipping)
    schedule: str = "linear"  # the article's LinearLR 1 -> 0; "onecycle" warms up to --lr then anneals; "constant"
    flip: bool = False  # random horizontal flips (faces are roughly symmetric: twice the data for free)
    shift: int = 0  # random translations of up to this many pixels, edges reflected
    color_jitter: float = 0.0  # random brightness, contrast and saturation changes of up to this fraction
    noise: str | None = None  # noisy-input training (a denoiser): e.g. "gaussian:0.1", fresh noise every batch
    # the reconstruction loss: "mse" over the batch, or "psnr" (the mean of each image's log MSE: every image's
    # relative error counts alike, so faint noise is not drowned by strong noise; what PSNR per image averages)
    loss: str = "mse"
    # training objectives added to the reconstruction loss, each NAME[:ARG][=WEIGHT], e.g. ("vicreg=0.5",)
    objectives: tuple[str, ...] = ()

    def __post_init__(self):
        # run.json gives a list; a single text (the Python API) is one objective
        self.objectives = (self.objectives,) if isinstance(self.objectives, str) else tuple(self.objectives or ())

    def to_dict(self) -> dict:
        """The run's settings as plain JSON values: what run.json, the training state and config.json record."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, settings: dict) -> "TrainConfig":
        """A TrainConfig from recorded settings, lenient: fields this aekit does not know are dropped (a later
        aekit resumes and reads an earlier or later run), missing ones take their defaults; known ones must have
        their declared JSON type (TrainingError otherwise)."""
        if not isinstance(settings, dict):
            raise TrainingError(f"training settings must be a JSON object, got {type(settings).__name__}")
        check_fields(cls, settings, "training setting", TrainingError)  # "10" for epochs would fail mid-run
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in settings.items() if k in known})

    def check(self) -> None:
        """Raise TrainingError on values that cannot work."""
        problems = []
        if self.epochs < 1:
            problems.append(f"--epochs must be at least 1 (got {self.epochs})")
        if self.batch_size < 1:
            problems.append(f"--batch-size must be at least 1 (got {self.batch_size})")
        elif self.batch_size == 1:
            problems.append("--batch-size must be at least 2: BatchNorm needs two images per batch to train")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            problems.append(f"--lr must be a positive number (got {self.lr})")
        if self.weight_decay < 0:
            problems.append(f"--weight-decay must be zero or more (got {self.weight_decay})")
        if not 0 <= self.val_fraction < 1:
            problems.append(f"--val-fraction must be in [0, 1) (got {self.val_fraction})")
        if self.val_data and self.val_fraction:
            problems.append("give either --val-data or --val-fraction, not both")
        if self.sample_every < 0:
            problems.append("--sample-every must be zero (never) or more")
        if self.precision not in ("auto", "fp32", "bf16"):
            problems.append(f"--precision must be auto, fp32 or bf16 (got {self.precision})")
        if self.shift < 0:
            problems.append(f"--shift must be zero or more pixels (got {self.shift})")
        if not 0 <= self.color_jitter < 1:
            problems.append(f"--color-jitter must be in [0, 1) (got {self.color_jitter})")
        if not (self.clip_grad >= 0 and math.isfinite(self.clip_grad)):
            problems.append(f"--clip-grad must be zero (off) or a positive norm (got {self.clip_grad})")
        if self.on_nan not in ("stop", "skip"):
            problems.append(f"--on-nan must be stop or skip (got {self.on_nan})")
        if self.loss not in LOSSES:
            problems.append(f"--loss must be one of {', '.join(LOSSES)} (got {self.loss})")
        if self.schedule not in SCHEDULES:
            problems.append(f"--schedule must be one of {', '.join(SCHEDULES)} (got {self.schedule})")
        if problems:
            raise TrainingError("; ".join(problems))
        if self.noise:
            parse_noise(self.noise)  # NoiseSpecError names the unknown model or bad argument now, not mid-run
        parse_objectives(self.objectives)  # ObjectiveSpecError: an unknown name, a bad weight, one given twice



def split_train_val(count: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, validation) indices of a run's images: a seeded random `val_fraction` is held out."""
    n_val = int(round(count * val_fraction))
    order = np.random.default_rng(seed).permutation(count)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def read_run_config(out) -> TrainConfig:
    """The TrainConfig a run was started with (for --resume), from its run.json."""
    path = Path(out) / "run.json"
    if not path.is_file():
        raise TrainingError(f"{out}: not a training run (no run.json); nothing to resume")
    stored = read_json(path, TrainingError)
    try:
        config = TrainConfig.from_dict(stored["config"])
    except (ValueError, KeyError, TypeError, TrainingError) as exc:
        raise TrainingError(f"{path}: damaged run file ({first_line(exc)})") from None
    _check_model_sizes(config, path)
    return config


def _check_model_sizes(config: TrainConfig, path: Path) -> None:
    """TrainingError when run.json's model settings are out of the bounds a checkpoint's config.json is held to
    (a stranger's run folder must not build a model of millions of blocks on --resume)."""
    if not isinstance(config.model_config, dict) or not config.model_config:
        return
    try:
        config_class = type(model_config(config.arch))
    except AekitError:  # an unknown preset: the trainer says so when it builds the model
        return
    check_fields(config_class, config.model_config, f"{path}: model setting", TrainingError,
                 limits=getattr(config_class, "LIMITS", MODEL_SIZE_LIMITS))


@dataclass(frozen=True)
class TrainingImages:
    """The images a run trained on: the prepared source and, when it held out a validation share, the kept rows."""

    data: object  # aekit.data.PreparedImages
    indices: np.ndarray | None  # sorted training rows of `data`; None: all of them

    def __len__(self) -> int:
        return len(self.data) if self.indices is None else len(self.indices)

    @property
    def images(self) -> np.ndarray:
        """uint8 (N, 3, S, S): the whole source (a memory map) or a copy of the training rows."""
        return self.data.images if self.indices is None else np.asarray(self.data.images[self.indices])

    @property
    def names(self) -> list[str]:
        names = list(self.data.names)
        return names if self.indices is None else [names[i] for i in self.indices]

    @property
    def attributes(self) -> dict[str, np.ndarray]:
        if self.indices is None:
            return dict(self.data.attributes)
        return {k: np.asarray(v)[self.indices] for k, v in self.data.attributes.items()}


@dataclass(frozen=True)
class TrainingRecord:
    """What a checkpoint records of the run that trained it (``config.json``'s "training"): its settings, typed.

    Read a model's recorded settings through this (``training_record``), never from the dict by hand: it reads
    every layout aekit has written (see ``training_record``) and tells a recorded setting from a default."""

    config: TrainConfig
    recorded: frozenset[str] | None = None  # the settings the checkpoint recorded (the rest are defaults); None: all

    @property
    def settings(self) -> dict:
        """The recorded settings as plain JSON values (for display): what was recorded, no defaults filled in."""
        values = self.config.to_dict()
        return values if self.recorded is None else {k: v for k, v in values.items() if k in self.recorded}

    @property
    def data(self) -> str | None:
        """The --data source the run trained on; None when the checkpoint records none."""
        return self.config.data if self.recorded is None or "data" in self.recorded else None

    @property
    def noise(self) -> str | None:
        """The --noise spec of a denoiser's run (noisy-input training); None for a plain autoencoder."""
        return self.config.noise or None

    @property
    def objectives(self) -> tuple[str, ...]:
        """The --objective values the run trained with (NAME[:ARG][=WEIGHT]); () for reconstruction alone."""
        return tuple(self.config.objectives)

    def describe(self) -> str:
        """`data` with the selection options that narrowed it, e.g. ``faces/ (--limit 9000)``."""
        cfg = self.config
        selection = [f"--skip {cfg.skip}" if cfg.skip else "", f"--limit {cfg.limit}" if cfg.limit else "",
                     f"--files {cfg.files}" if cfg.files else ""]
        text = (self.data or "no recorded data") + (f" ({' '.join(s for s in selection if s)})" if any(selection) else "")
        return text + (f", less its {cfg.val_fraction:g} validation share" if cfg.val_fraction else "")

    def load(self, image_size: int, progress: bool = True) -> TrainingImages:
        """Prepare the recorded source at `image_size` and keep the training rows (DataSourceError when it is gone)."""
        cfg = self.config
        if self.data is None:
            raise DataSourceError("the checkpoint records no training data")
        data = prepare(cfg.data, image_size, cfg.skip, cfg.limit, cfg.files, progress=progress)
        if not cfg.val_fraction:
            return TrainingImages(data, None)
        train_idx, _ = split_train_val(len(data), cfg.val_fraction, cfg.seed)
        return TrainingImages(data, train_idx)


def training_record(source, require_data: bool = True) -> TrainingRecord | None:
    """The training record of a model (or of a ``config.json`` "training" dict); None when it records no data
    (with ``require_data=False``, a record all the same, ``data`` None, for the settings it does record).

    Layouts read: the settings under "settings" (written by `aekit train`); the data source and the noise spec
    beside them, as earlier aekit also wrote them (the shipped pretrained models) and as hand-written records
    (``save_pretrained(training={"data": ...})``) still give them. A setting under "settings" wins.
    """
    training = source if isinstance(source, dict) else (getattr(source, "training_summary", None) or {})
    training = training if isinstance(training, dict) else {}
    settings = training.get("settings")
    settings = dict(settings) if isinstance(settings, dict) else {}
    for key in ("data", "noise"):  # the older layout: beside the settings
        if not settings.get(key) and isinstance(training.get(key), str) and training[key]:
            settings[key] = training[key]
    if not settings.get("data"):
        if require_data:
            return None
        settings.pop("data", None)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainingRecord(TrainConfig.from_dict(settings), frozenset(settings) & known)


def training_images(settings: dict, image_size: int, progress: bool = True) -> np.ndarray:
    """The uint8 (N, 3, S, S) images a run trained on, from its recorded settings (validation share left out)."""
    return TrainingRecord(TrainConfig.from_dict(settings)).load(image_size, progress).images
