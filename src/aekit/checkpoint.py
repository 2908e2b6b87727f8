"""Checkpoints: a folder with ``model.safetensors`` + ``config.json``; loading never unpickles anything.

Also the training state for ``--resume`` (``training_state.safetensors``: weights, optimizer
tensors, RNG states, and the rest as JSON metadata, in one file written atomically), and the
"latest run" pointer that commands use when ``--model`` is not given.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import torch

from . import io
from .errors import CheckpointError, first_line
from .factory import create_model, list_models  # noqa: F401  (re-exported: aekit.checkpoint.create_model)
from .paths import aekit_home  # noqa: F401  (re-exported)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
STATE_NAME = "training_state.safetensors"
FORMAT = "aekit-checkpoint"
FORMAT_VERSION = 1
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class CheckpointMixin:
    """``save_pretrained`` / ``from_pretrained`` / ``push_to_hub``, like huggingface_hub's mixin but strict."""

    def save_pretrained(self, directory, training: dict | None = None, architecture: str | None = None) -> Path:
        """Write ``model.safetensors`` then ``config.json`` into `directory` (created if needed)."""
        return save_model(self, directory, training=training, architecture=architecture)

    @classmethod
    def from_pretrained(cls, path_or_hub_id, device="cpu"):
        """Load a checkpoint folder (or hub id) strictly; refuses pickles and mismatched weights."""
        model = load(path_or_hub_id, device=device)
        if not isinstance(model, cls):
            raise CheckpointError(f"{path_or_hub_id}: holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def push_to_hub(self, repo_id: str, private: bool = False, token: str | None = None, commit_message: str = "aekit model"):
        """Upload config.json + model.safetensors to a Hugging Face model repo; returns its URL."""
        import tempfile

        from huggingface_hub import HfApi

        api = HfApi(token=token)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                self.save_pretrained(tmp, training=getattr(self, "training_summary", None))
                _copy_pretrained_extras(self, Path(tmp))
                api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
                api.upload_folder(folder_path=tmp, repo_id=repo_id, repo_type="model", commit_message=commit_message)
        except Exception as exc:  # network, auth: one clear line
            raise CheckpointError(f"could not push to the hub repo {repo_id!r}: {first_line(exc)}") from exc
        return f"https://huggingface.co/{repo_id}"


def _copy_pretrained_extras(model, folder: Path) -> None:
    """A pretrained model travels with its model card and the files fitted on it (priors, directions: every
    ``*.safetensors`` beside the weights, each tagged with the model's fingerprint), as its package ships them."""
    import shutil

    from .pretrained import get_pretrained

    name = getattr(model, "pretrained_name", None)
    if not name:
        return  # a run folder may hold anything: only the model itself leaves it
    shipped = get_pretrained(name)
    for file_name in shipped.sha256:
        if file_name == "README.md" or (file_name.endswith(".safetensors") and file_name != WEIGHTS_NAME):
            shutil.copyfile(shipped.directory / file_name, folder / file_name)


def architecture_name(model) -> str:
    """The registry name of the model's architecture (stored on the model when it was created)."""
    return getattr(model, "architecture", None) or "article"


def save_model(model, directory, training: dict | None = None, architecture: str | None = None) -> Path:
    """Save weights then config; each file atomic, config last so a complete config means complete weights."""
    from safetensors.torch import save_file

    from . import __version__

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with io.atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
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
    """Parse and check a checkpoint's config.json."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{directory}: not an aekit checkpoint (no {CONFIG_NAME})")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an aekit config (missing \"format\": \"{FORMAT}\")")
    if not isinstance(config.get("config"), dict) or not isinstance(config.get("architecture"), str):
        raise CheckpointError(f"{path}: needs \"architecture\" (a name) and \"config\" (an object)")
    return config


def _refuse_pickle(path: Path):
    raise CheckpointError(
        f"{path}: refusing to load a pickle-based file ({path.suffix}); aekit loads only "
        f"{WEIGHTS_NAME} + {CONFIG_NAME} (convert it with safetensors' save_file)"
    )


def resolve_checkpoint_dir(path_or_hub_id) -> Path:
    """A local checkpoint folder for a path, an installed pretrained model's name, ``latest`` or a hub id.

    A folder that exists wins over a name; a hub id is downloaded when it is not cached.
    """
    from .pretrained import LATEST, get_pretrained, is_pretrained_name

    text = str(path_or_hub_id)
    path = Path(text).expanduser()
    if not path.exists():
        if is_pretrained_name(text):
            return get_pretrained(text).verified_dir()
        if text == LATEST:
            return latest_run()
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES:
            _refuse_pickle(path)
        if path.name in (WEIGHTS_NAME, CONFIG_NAME) or path.suffix == ".safetensors":
            return path.parent
        raise CheckpointError(f"{path}: not a checkpoint; give the folder holding {WEIGHTS_NAME} and {CONFIG_NAME}")
    if path.is_dir():
        return path
    if HUB_ID.match(text) and not text.startswith((".", "/")):
        return _download(text)
    raise CheckpointError(f"{text}: no such checkpoint folder (and not a hub id like 'user/model')")


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, "*.md"]))
    except Exception as exc:
        raise CheckpointError(
            f"could not fetch model {repo_id!r} from the Hugging Face hub ({first_line(exc)}); "
            "offline, pass a local checkpoint folder instead"
        ) from None


def load(path_or_hub_id=None, device="cpu", task: str = "codec"):
    """Load a model strictly from a checkpoint folder, a pretrained model's name (``"faces-64"``) or a hub id.

    ``None`` loads the default model for `task` (``"codec"`` or ``"denoise"``): the user's default
    (``aekit models default``), else the installed pretrained model for the task, else the latest
    ``aekit train`` run; see ``aekit.pretrained``.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    from .plugins import get_registry
    from .pretrained import is_pretrained_name, resolve_model

    if path_or_hub_id is None:
        path_or_hub_id = resolve_model(None, task).spec
    directory = resolve_checkpoint_dir(path_or_hub_id)
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
    fields = _config_fields(meta["config"])
    try:
        with safe_open(str(weights), framework="pt") as fh:  # the header only: names and shapes
            stored_shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
        model_class = registry.get("model", meta["architecture"])
        upgrade = getattr(model_class, "upgrade_state_dict", lambda state: state)
        stored_shapes = upgrade(stored_shapes)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights}: unreadable safetensors file ({first_line(exc)})") from None
    try:
        with torch.device("meta"):  # the config's model without memory: a config that disagrees fails here
            skeleton = create_model(meta["architecture"], **fields)
    except CheckpointError as exc:
        raise CheckpointError(f"{directory / CONFIG_NAME}: {exc}") from None
    except Exception:  # an architecture that cannot be built on the meta device: checked once built
        skeleton = None
    if skeleton is not None:
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
        state = upgrade(load_file(str(weights)))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights}: unreadable safetensors file ({first_line(exc)})") from None
    _load_state_strict(model, state, weights)
    broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise CheckpointError(f"{weights}: {len(broken)} tensor(s) hold NaN or infinite values (e.g. {broken[0]}); "
                              "the model is broken")
    model.training_summary = meta.get("training") or {}
    model.checkpoint_dir = directory
    model.pretrained_name = str(path_or_hub_id) if is_pretrained_name(str(path_or_hub_id)) and not Path(str(path_or_hub_id)).exists() else None
    model.eval()
    return model.to(device)


def _config_fields(config: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}


def _load_state_strict(model, state: dict, source) -> None:
    _check_shapes({k: tuple(v.shape) for k, v in model.state_dict().items()},
                  {k: tuple(v.shape) for k, v in state.items()}, source)
    model.load_state_dict(state, strict=True)


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


def save_training_state(directory, model, optimizer, scheduler, info: dict) -> None:
    """Everything `--resume` needs, in one safetensors file written atomically."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
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
    with io.atomic_path(Path(directory) / STATE_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"aekit": json.dumps(meta, default=io.json_default)})


def load_training_state(directory, model, optimizer, scheduler) -> dict:
    """Restore weights, optimizer, scheduler and RNG from `save_training_state`; return its info."""
    from safetensors import SafetensorError, safe_open

    path = Path(directory) / STATE_NAME
    if not path.is_file():
        raise CheckpointError(f"{directory}: nothing to resume (no {STATE_NAME})")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads(fh.metadata()["aekit"])
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable training state ({first_line(exc)})") from None
    own = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    _load_state_strict(model, model.upgrade_state_dict(own) if hasattr(model, "upgrade_state_dict") else own, path)
    slots: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
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

