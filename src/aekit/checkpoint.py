"""Checkpoints: a folder with ``model.safetensors`` + ``config.json``; loading never unpickles anything.

Also the training state for ``--resume`` (``training_state.safetensors``: weights, optimizer
tensors, RNG states, and the rest as JSON metadata, in one file written atomically), and the
"latest run" pointer that commands use when ``--model`` is not given.

Files and folders only: what a name means (an installed pretrained model, ``latest``, a hub id) is read
above this module, by ``aekit.loading`` (``aekit.load``) with ``aekit.pretrained``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch
from torch import nn
import safetensors  # called as safetensors.safe_open / safetensors.torch.save_file: looked up at each call
import safetensors.torch  # (tests put faults in through those module attributes)

from . import io
from ._version import __version__
from .errors import ENCODER_ONLY_MESSAGE, CheckpointError, NoDecoderError, first_line
from .factory import create_model, list_models, model_config  # noqa: F401  (re-exported: aekit.checkpoint.create_model)
from .paths import aekit_home  # noqa: F401  (re-exported)
from .registry import get_registry
from .run_config import TrainConfig
from .text import printable
from .validate import MODEL_SIZE_LIMITS, check_fields, parse_json, read_json

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
STATE_NAME = "training_state.safetensors"
FORMAT = "aekit-checkpoint"
FORMAT_VERSION = 1
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")
# what a checkpoint's files may hold before they are parsed (the folder may be a stranger's): aekit writes a
# config.json of 1-2 KB, and the largest model MODEL_SIZE_LIMITS allows has a header of about 0.6 MB (a 4 MB
# header of 55,000 tiny tensors is read and refused in half a second, under 300 MB; safetensors reads 100 MB)
MAX_CONFIG_BYTES = 1 << 20
MAX_HEADER_BYTES = 4 << 20


def architecture_name(model) -> str:
    """The registry name of the model's architecture (stored on the model when it was created)."""
    return getattr(model, "architecture", None) or "article"


def save_model(model, directory, training: dict | None = None, architecture: str | None = None) -> Path:
    """Save weights then config; each file atomic, config last so a complete config means complete weights."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with io.atomic_path(directory / WEIGHTS_NAME) as tmp:
        safetensors.torch.save_file(state, str(tmp), metadata={"format": "pt"})
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "aekit_version": __version__,
        "architecture": architecture or architecture_name(model),
        "config": model.config.to_dict() if hasattr(model.config, "to_dict") else dataclasses.asdict(model.config),
        "parameters": model.num_parameters() if hasattr(model, "num_parameters") else None,
        "training": training or getattr(model, "training_summary", None) or {},
    }
    io.write_json(directory / CONFIG_NAME, config)
    return directory


def read_config(directory) -> dict:
    """Parse and check a checkpoint's config.json: its format and version, and the types of what it records
    (the model's own config fields are checked against the architecture's dataclass by `load_checkpoint`)."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{directory}: not an aekit checkpoint (no {CONFIG_NAME})")
    # NaN may stand in the training record (a diverged validation loss); fields that build the model are checked
    config = read_json(path, CheckpointError, allow_nan=True, max_bytes=MAX_CONFIG_BYTES,
                       hint=f"an aekit {CONFIG_NAME} is a few KB")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an aekit config (missing \"format\": \"{FORMAT}\")")
    version = config.get("format_version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: \"format_version\" must be a whole number from 1, got {version!r}"[:300])
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer aekit (checkpoint format {version}, this aekit reads up to "
                              f"{FORMAT_VERSION}); upgrade aekit")
    if not isinstance(config.get("config"), dict) or not isinstance(config.get("architecture"), str):
        raise CheckpointError(f"{path}: needs \"architecture\" (a name) and \"config\" (an object)")
    training = config.get("training")
    if training is not None and not isinstance(training, dict):
        raise CheckpointError(f"{path}: \"training\" must be an object (the training record), got {type(training).__name__}")
    for key in ("settings", "final"):
        if (training or {}).get(key) is not None and not isinstance(training[key], dict):
            raise CheckpointError(f"{path}: \"training\".\"{key}\" must be an object, got {type(training[key]).__name__}")
    check_fields(TrainConfig, (training or {}).get("settings") or {}, f"{path}: training setting", CheckpointError)
    parameters = config.get("parameters")
    if parameters is not None and not (isinstance(parameters, dict) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in parameters.values())):
        raise CheckpointError(f"{path}: \"parameters\" must be an object of whole numbers (parameter counts)")
    if not isinstance(config.get("aekit_version", ""), str):
        raise CheckpointError(f"{path}: \"aekit_version\" must be text")
    return config


def _refuse_pickle(path: Path):
    raise CheckpointError(
        f"{path}: refusing to load a pickle-based file ({path.suffix}); aekit loads only "
        f"{WEIGHTS_NAME} + {CONFIG_NAME} (convert it with safetensors' save_file)"
    )


def checkpoint_folder(path) -> Path:
    """The checkpoint folder a local path names: the folder itself, or the folder of a file in it
    (``model.safetensors``, ``config.json``); a pickle-based file is refused."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES:
            _refuse_pickle(path)
        if path.name in (WEIGHTS_NAME, CONFIG_NAME) or path.suffix == ".safetensors":
            return path.parent
        raise CheckpointError(f"{path}: not a checkpoint; give the folder holding {WEIGHTS_NAME} and {CONFIG_NAME}")
    if path.is_dir():
        return path
    raise CheckpointError(f"{path}: no such checkpoint folder")


def load_checkpoint(path, device="cpu"):
    """Load a model strictly from a checkpoint folder (or a file in one); refuses pickles and mismatched weights.

    A path only: ``aekit.load`` (``aekit.loading``) also takes a pretrained model's name, ``latest`` or a hub id.
    """
    directory = checkpoint_folder(path)
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        pickles = [p for p in sorted(directory.iterdir()) if p.suffix.lower() in PICKLE_SUFFIXES]
        if pickles:
            _refuse_pickle(pickles[0])
        if not (directory / CONFIG_NAME).exists():
            raise CheckpointError(f"{directory}: not an aekit checkpoint (no {CONFIG_NAME} or {WEIGHTS_NAME})")
        raise CheckpointError(f"{directory}: no {WEIGHTS_NAME}")
    meta = read_config(directory)
    registry = get_registry()
    if meta["architecture"] not in registry.names("model"):
        raise CheckpointError(
            f"{directory}: architecture {meta['architecture']!r} is not registered "
            f"(known: {', '.join(registry.names('model'))}); is its plugin installed?"
        )
    # a string is iterable and NaN is a float: the dataclass would take "3264" as widths (3, 2, 6, 4) and NaN as a
    # slope; and a size out of bounds would take minutes and gigabytes to build before any other check
    config_class = type(registry.entry("model", meta["architecture"]).extra["config"])
    check_fields(config_class, meta["config"], f"{directory / CONFIG_NAME}: config field", CheckpointError,
                 limits=getattr(config_class, "LIMITS", MODEL_SIZE_LIMITS))
    fields = _config_fields(meta["config"])
    model_class = registry.get("model", meta["architecture"])
    upgrade = getattr(model_class, "upgrade_state_dict", lambda state: state)
    _check_header_size(weights)
    try:
        with safetensors.safe_open(str(weights), framework="pt") as fh:  # the header only: names and shapes
            stored_shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
        stored_shapes = upgrade(stored_shapes)
    except (safetensors.SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights}: unreadable safetensors file ({first_line(exc)})") from None
    try:
        config = model_config(meta["architecture"], **fields)
    except CheckpointError as exc:
        raise CheckpointError(f"{directory / CONFIG_NAME}: {exc}") from None
    encoder_only = _parts(meta, directory) == ENCODER_ONLY
    if "tensor_count" in vars(model_class) and not encoder_only:  # its own count: an inherited one may not fit a subclass's
        expected = model_class.tensor_count(config)
        # before building: a config's model far larger than the file's is refused unbuilt; a near miss (a tensor
        # missing or extra) is built on the meta device, bounded by the size limits, to name the tensors
        if expected > 2 * len(stored_shapes) + 16:
            raise CheckpointError(f"{weights}: weights do not match config.json: it describes a model of {expected:,} "
                                  f"tensors ({meta['architecture']!r}), the file holds {len(stored_shapes):,}")
    try:
        with torch.device("meta"):  # the config's model without memory: a config that disagrees fails here
            skeleton = create_model(meta["architecture"], **fields)
    except CheckpointError as exc:
        raise CheckpointError(f"{directory / CONFIG_NAME}: {exc}") from None
    except Exception:  # an architecture that cannot be built on the meta device: checked once built
        skeleton = None
    if skeleton is not None:
        if encoder_only:
            without_decoder(skeleton)
        _check_shapes({k: tuple(v.shape) for k, v in skeleton.state_dict().items()}, stored_shapes, weights)
    if skeleton is not None and set(dict(skeleton.named_buffers())) <= set(skeleton.state_dict()):
        # every tensor comes from the file (strict load below): memory without a random initialisation
        model = skeleton.to_empty(device="cpu")
    else:  # a buffer the file does not hold must be built by the model itself
        try:
            model = create_model(meta["architecture"], **fields)
        except CheckpointError as exc:
            raise CheckpointError(f"{directory / CONFIG_NAME}: {exc}") from None
    try:
        state = upgrade(safetensors.torch.load_file(str(weights)))
    except (safetensors.SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights}: unreadable safetensors file ({first_line(exc)})") from None
    if encoder_only:
        without_decoder(model)
    _load_state_strict(model, state, weights)
    _check_values(model, state, weights)
    model.training_summary = meta.get("training") or {}
    model.checkpoint_dir = directory
    model.eval()
    return model.to(device)


ENCODER_ONLY = ["encoder"]  # config.json's "parts" of a feature extractor shipped without its decoder


def _parts(meta: dict, directory) -> list[str]:
    """config.json's ``parts``: absent for a whole model, ``["encoder"]`` for an encoder alone."""
    parts = meta.get("parts", ["encoder", "decoder"])
    if parts not in (ENCODER_ONLY, ["encoder", "decoder"]):
        raise CheckpointError(f"{directory / CONFIG_NAME}: \"parts\" must be [\"encoder\"] or absent, got {parts!r}")
    return parts


class NoDecoder(nn.Module):
    """Where the decoder of an encoder-only model (a feature extractor) would be: every use is a one-line error."""

    def forward(self, *args, **kwargs):
        raise NoDecoderError(ENCODER_ONLY_MESSAGE)

    def __getattr__(self, name):  # decoder.head, decoder.trunk...: the same error
        try:
            return super().__getattr__(name)
        except AttributeError:
            raise NoDecoderError(ENCODER_ONLY_MESSAGE) from None


def without_decoder(model):
    """`model` with its decoder dropped (an encoder-only checkpoint): ``decodes_latents`` False, ``encoder_only``
    True, and every decoding use a one-line AekitError."""
    model.decoder = NoDecoder()
    model.decodes_latents = False
    model.encoder_only = True
    return model


def _check_header_size(weights: Path) -> None:
    """CheckpointError unless the safetensors header (its length: the file's first 8 bytes) is one aekit reads;
    safetensors itself parses up to 100 MB of it."""
    try:
        with open(weights, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise CheckpointError(f"{weights}: unreadable safetensors file ({exc.strerror or type(exc).__name__})") from None
    if len(head) < 8:
        raise CheckpointError(f"{weights}: unreadable safetensors file (shorter than its 8-byte header length)")
    length = int.from_bytes(head, "little")
    if length > MAX_HEADER_BYTES:
        raise CheckpointError(f"{weights}: unreadable safetensors file (a {length:,}-byte header, more than the "
                              f"{MAX_HEADER_BYTES:,} aekit reads)")


def _config_fields(config: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}


def _load_state_strict(model, state: dict, source) -> None:
    own = model.state_dict()
    _check_shapes({k: tuple(v.shape) for k, v in own.items()}, {k: tuple(v.shape) for k, v in state.items()}, source)
    # load_state_dict casts silently: int8 or bool weights would become a model that computes nonsense
    wrong = [k for k, v in state.items() if v.is_floating_point() != own[k].is_floating_point() or v.is_complex()]
    if wrong:
        k = wrong[0]
        raise CheckpointError(f"{source}: {len(wrong)} tensor(s) stored as the wrong kind of number (e.g. {k}: "
                              f"{str(state[k].dtype).removeprefix('torch.')} where the model has "
                              f"{str(own[k].dtype).removeprefix('torch.')}); save the weights in the model's dtypes")
    model.load_state_dict(state, strict=True)


def _check_values(model, state: dict, source) -> None:
    """CheckpointError for values that make every output NaN (a black picture): NaN or infinite tensors, and
    negative BatchNorm running variances (their square root is NaN)."""
    broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise CheckpointError(f"{source}: {len(broken)} tensor(s) hold NaN or infinite values (e.g. {broken[0]}); "
                              "the model is broken")
    negative = [f"{name}.running_var" for name, module in model.named_modules()
                if isinstance(module, torch.nn.modules.batchnorm._NormBase)
                and isinstance(module.running_var, torch.Tensor) and bool((module.running_var < 0).any())]
    if negative:
        raise CheckpointError(f"{source}: {len(negative)} BatchNorm running variance(s) hold negative values "
                              f"(e.g. {negative[0]}); the model is broken")


def _check_shapes(own: dict, stored: dict, source) -> None:
    """CheckpointError unless the stored tensor names and shapes are exactly the model's."""
    missing = sorted(set(own) - set(stored))
    unexpected = sorted(set(stored) - set(own))
    shapes = [k for k in own if k in stored and own[k] != stored[k]]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} of the wrong shape (e.g. {k}: {stored[k]} vs {own[k]})")
        raise CheckpointError(f"{source}: weights do not match config.json: {'; '.join(parts)} tensors")


def model_fingerprint(model) -> str:
    """A short sha256 of the model's architecture, config and weights: its identity."""
    digest = hashlib.sha256()
    digest.update(architecture_name(model).encode())
    digest.update(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    state = model.identity_state_dict() if hasattr(model, "identity_state_dict") else model.state_dict()
    for key, value in sorted(state.items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


# --- training state -----------------------------------------------------------------------------


OBJECTIVE_PREFIX = "objective."  # a training objective's tensors in the training state: objective.NAME.PARAM


def save_training_state(directory, model, optimizer, scheduler, info: dict, objectives=None,
                        objective_specs=()) -> None:
    """Everything `--resume` needs, in one safetensors file written atomically.

    `objectives` (a module keyed by objective name, e.g. the trainer's ``nn.ModuleDict``) adds its tensors as
    ``objective.NAME.PARAM``, and `objective_specs` (the ``--objective`` values) are recorded beside them, so
    that `load_training_state` refuses a state of other objectives than the run's. Without objectives the
    file is what it always was."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if objectives is not None:
        tensors.update({f"{OBJECTIVE_PREFIX}{k}": v.detach().cpu().contiguous() for k, v in objectives.state_dict().items()})
    opt = optimizer.state_dict()
    for index, slots in opt["state"].items():
        for key, value in slots.items():
            value = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    meta = {
        "info": info,
        "param_groups": opt["param_groups"],
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
    }
    if objective_specs:
        meta["objectives"] = list(objective_specs)
    with io.atomic_path(Path(directory) / STATE_NAME) as tmp:
        safetensors.torch.save_file(tensors, str(tmp), metadata={"aekit": json.dumps(meta, default=io.json_default)})


def load_training_state(directory, model, optimizer, scheduler, objectives=None, objective_specs=()) -> dict:
    """Restore weights, optimizer, scheduler and RNG from `save_training_state`; return its info.

    Strict about objectives too: the state must record exactly the run's `objective_specs` and hold exactly
    the tensors of `objectives` (a state of a run with other objectives, or none, is refused)."""
    path = Path(directory) / STATE_NAME
    if not path.is_file():
        raise CheckpointError(f"{directory}: nothing to resume (no {STATE_NAME})")
    _check_header_size(path)  # as for model.safetensors: a header of millions of entries is refused unread
    try:
        with safetensors.safe_open(str(path), framework="pt") as fh:
            text = (fh.metadata() or {})["aekit"]
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (safetensors.SafetensorError, OSError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable training state ({first_line(exc)})") from None
    meta = parse_json(text, f"{path}: metadata", CheckpointError, allow_nan=True)  # aekit's own record, as written
    if not isinstance(meta, dict) or not isinstance(meta.get("info"), dict) or "rng.torch" not in tensors:
        raise CheckpointError(f"{path}: damaged training state (no info or RNG state)")
    own = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    own = model.upgrade_state_dict(own) if hasattr(model, "upgrade_state_dict") else own
    _load_state_strict(model, own, path)
    _check_values(model, own, path)
    _load_objective_state(objectives, objective_specs, meta, tensors, path)
    slots: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = (key.split(".", 2) + ["", ""])[:3]
            if not index.isdigit() or not name:
                raise CheckpointError(f"{path}: damaged training state (optimizer entry {printable(key)!r})")
            slots.setdefault(int(index), {})[name] = value
    try:
        optimizer.load_state_dict({"state": slots, "param_groups": meta["param_groups"]})
        if scheduler is not None and meta.get("scheduler"):
            scheduler.load_state_dict(meta["scheduler"])
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: optimizer state does not fit this run ({first_line(exc)})") from None
    torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states[: torch.cuda.device_count()])
    return meta["info"]


def _load_objective_state(objectives, specs, meta: dict, tensors: dict, path: Path) -> None:
    """Restore the training objectives' tensors; CheckpointError unless the state is of the same objectives."""
    recorded = meta.get("objectives", [])
    if not isinstance(recorded, list) or not all(isinstance(s, str) for s in recorded):
        raise CheckpointError(f"{path}: damaged training state (\"objectives\" must be a list of texts)")
    stored = {k[len(OBJECTIVE_PREFIX):]: v for k, v in tensors.items() if k.startswith(OBJECTIVE_PREFIX)}
    own = objectives.state_dict() if objectives is not None else {}
    stored_names = sorted({k.split(".", 1)[0] for k in stored})
    if list(specs) != recorded or set(stored_names) - set(objectives.keys() if objectives is not None else ()):
        def listed(values):
            return ", ".join(printable(v) for v in values) or "none"
        raise CheckpointError(f"{path}: this training state is of a run with the objective(s) "
                              f"{listed(recorded or stored_names)}, this run has {listed(specs)}; "
                              "resume a run with its own settings (run.json)")
    missing, unexpected = sorted(set(own) - set(stored)), sorted(set(stored) - set(own))
    shapes = [k for k in own if k in stored and tuple(own[k].shape) != tuple(stored[k].shape)]
    if missing or unexpected or shapes:
        parts = [f"{len(missing)} missing (e.g. {OBJECTIVE_PREFIX}{missing[0]})" if missing else "",
                 f"{len(unexpected)} unexpected (e.g. {OBJECTIVE_PREFIX}{printable(unexpected[0])})" if unexpected else "",
                 f"{len(shapes)} of the wrong shape (e.g. {OBJECTIVE_PREFIX}{shapes[0]}: "
                 f"{tuple(stored[shapes[0]].shape)} vs {tuple(own[shapes[0]].shape)})" if shapes else ""]
        raise CheckpointError(f"{path}: the objectives' tensors do not match this run's objectives: "
                              f"{'; '.join(p for p in parts if p)} tensors")
    broken = [k for k, v in stored.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise CheckpointError(f"{path}: {len(broken)} objective tensor(s) hold NaN or infinite values "
                              f"(e.g. {OBJECTIVE_PREFIX}{broken[0]})")
    if objectives is not None and own:
        objectives.load_state_dict(stored, strict=True)


# --- the latest run -------------------------------------------------------------------------------


def record_latest(directory) -> None:
    """Remember `directory` as the model commands use when --model is not given."""
    home = aekit_home()
    try:
        home.mkdir(parents=True, exist_ok=True)
        io.write_text(home / "latest-run", str(Path(directory).resolve()) + "\n")
    except OSError:
        pass  # a read-only home must not break training


def latest_run() -> Path:
    """The most recently trained run (see `record_latest`), or a CheckpointError saying how to make one."""
    pointer = aekit_home() / "latest-run"
    if pointer.is_file():
        path = Path(pointer.read_text(encoding="utf-8", errors="surrogateescape").strip())  # any file name
        if (path / CONFIG_NAME).is_file():
            return path
    raise CheckpointError(
        "no --model given and no trained run found; train one with "
        "`aekit train --data synthetic --epochs 3` or pass --model DIR_OR_HUB_ID"
    )

