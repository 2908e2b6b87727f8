"""Pretrained models shipped inside installed packages, and which model a command uses without ``--model``.

A package ships weights the way spaCy ships model packages: the files live in the package (so they
work offline right after ``pip install``) and the ``register_pretrained`` hook names them::

    @aekit.hookimpl
    def register_pretrained(register):
        aekit.pretrained.register_manifest(register, Path(__file__).parent / "pretrained.json")

``pretrained.json`` (written by ``aekit models package``) lists each model's folder, tasks, headline
metrics and the SHA-256 of every file; a file that does not match is refused with a message naming
it and the distribution to reinstall.

Which model a command uses (`resolve_model`):

1. ``--model NAME_OR_DIR_OR_HUB_ID`` (``--model latest``: the most recent ``aekit train`` run);
2. the user's default for the command's task (``aekit models default NAME --task denoise``);
3. the user's default for every task (``aekit models default NAME_OR_DIR``);
4. the first installed pretrained model that does the task (``faces-64`` codes, ``faces-64-denoise``
   denoises);
5. for ``features`` (what ``embed`` and ``similar`` use), when no installed model does it: the model
   ``codec`` resolves to by rules 2-6 (every codec embeds); likewise for ``compress`` (what ``aekit compress``
   uses): a bitstream codec when one is installed for it, else the ``codec`` task's model (its latents);
6. only when no installed pretrained model does the task: the latest ``aekit train`` run.

How a model spec is read (`read_spec`; ``aekit.load`` and every ``--model`` follow it):

- ``hf:USER/REPO`` is always a Hugging Face hub id;
- a bare word (no ``/``, not starting with ``.`` or ``~``) that names an installed pretrained model is that
  model, even when a folder of that name is in the current directory: write the folder as a path
  (``./faces-64`` or ``faces-64/``) to use it. The word ``latest`` likewise means the latest run;
- otherwise a path that exists is a checkpoint folder (or a file in one), ``USER/REPO`` included;
- else ``USER/REPO`` is a hub id. A ``pathlib.Path`` is always a path.

So a folder in the current directory never stands in for a pretrained model: defaults never consult the
current directory at all (a folder is stored as its absolute path, a hub id as ``hf:USER/REPO``).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import safetensors.torch  # called as safetensors.torch.save_file: looked up at each call, as in aekit.checkpoint
import torch

from . import io
from .checkpoint import CONFIG_NAME, ENCODER_ONLY, WEIGHTS_NAME, latest_run, load_checkpoint
from .errors import CheckpointError
from .paths import aekit_home
from .registry import get_registry
from .text import printable
from .validate import read_json

TASKS = {
    "codec": "encode and decode faces (compress, decompress, generate, edit, eval, info)",
    "denoise": "remove noise from photos (denoise)",
    "features": "embed faces as features (embed, similar, the scikit-learn transformer); a codec when no feature "
                "extractor is installed",
    "compress": "entropy-code faces to bitstreams (compress); the codec task's model (latents) when no such codec "
                "is installed",
}
# a task no installed model does is done by this one's model: `aekit compress` stores faces-64's latents until a
# bitstream codec (the `codec` architecture, packaged with --task compress) is installed, then uses that
FALLBACK_TASK = {"features": "codec", "compress": "codec"}
MANIFEST_FORMAT = "aekit-pretrained"
MANIFEST_NAME = "pretrained.json"
DEFAULTS_NAME = "default-model.json"
LATEST = "latest"
HUB_PREFIX = "hf:"  # `hf:user/repo`: always the hub, never a folder (no registered name holds ':')
ALL_TASKS = ""  # the key of the default that applies to every task
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class PretrainedModel:
    """One registered pretrained model: a checkpoint folder inside an installed package."""

    name: str
    directory: Path
    tasks: tuple[str, ...]
    help: str = ""
    metrics: dict = field(default_factory=dict)
    sha256: dict = field(default_factory=dict)  # file name -> hex digest, for every file of the folder
    plugin: str = ""
    distribution: str | None = None

    def size_bytes(self) -> int:
        """Bytes on disk of the files the model records."""
        files = self.sha256 or {p.name: "" for p in self.directory.iterdir() if p.is_file()}
        return sum((self.directory / name).stat().st_size for name in files if (self.directory / name).is_file())

    def reinstall_hint(self) -> str:
        dist = self.distribution or self.plugin
        return f"reinstall the package that ships it: pip install --force-reinstall --no-deps {dist}"

    def verified_dir(self) -> Path:
        """The checkpoint folder, after checking every recorded file against its SHA-256."""
        for file_name, expected in self.sha256.items():
            path = self.directory / file_name
            if not path.is_file():
                raise CheckpointError(f"pretrained model {self.name!r}: {path} is missing; {self.reinstall_hint()}")
            if file_sha256(path) != expected:
                raise CheckpointError(f"pretrained model {self.name!r}: {path} is damaged (its SHA-256 does not match "
                                      f"the recorded one); {self.reinstall_hint()}")
        return self.directory


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- the registry's view -----------------------------------------------------------------------------


def pretrained_models() -> list[PretrainedModel]:
    """Every registered pretrained model, in registration order."""
    return [entry.obj for entry in get_registry().entries("pretrained")]


def get_pretrained(name: str) -> PretrainedModel:
    """The registered pretrained model `name`; RegistryError listing the known names."""
    return get_registry().get("pretrained", name)


def is_pretrained_name(text) -> bool:
    return isinstance(text, str) and text in get_registry().names("pretrained")


def pretrained_for(task: str) -> PretrainedModel | None:
    """The first registered pretrained model that does `task`, or None."""
    return next((m for m in pretrained_models() if task in m.tasks), None)


# --- reading a model spec: a name, a path or a hub id ---------------------------------------------------------


def written_as_path(text: str) -> bool:
    """Whether a spec is written as a path: it holds a separator (``runs/x``, ``faces-64/``) or starts with
    ``.`` or ``~`` (``./faces-64``, ``~/models/x``). A bare word is read as a name first."""
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return any(sep in text for sep in separators) or text.startswith((".", "~"))


def read_spec(spec) -> tuple[str, object]:
    """How a model spec is read, by the rule in this module's docstring: ("pretrained", PretrainedModel),
    ("latest", None), ("hub", repo id) or ("path", Path) (a path that may not exist)."""
    if isinstance(spec, os.PathLike):
        return "path", Path(spec).expanduser()
    text = str(spec)
    if text.startswith(HUB_PREFIX):
        repo = text[len(HUB_PREFIX):]
        if not HUB_ID.match(repo):
            raise CheckpointError(f"{text}: not a hub id (write hf:USER/REPO)")
        return "hub", repo
    path = Path(text).expanduser()
    bare = not written_as_path(text)
    if bare and is_pretrained_name(text):
        return "pretrained", get_pretrained(text)
    if bare and text == LATEST:
        return "latest", None
    if path.exists():
        return "path", path
    if is_pretrained_name(text):  # a registered name holding a '/', with no such path here
        return "pretrained", get_pretrained(text)
    if HUB_ID.match(text) and not text.startswith((".", "/")):
        return "hub", text
    return "path", path


def named_model(spec) -> PretrainedModel | None:
    """The installed pretrained model `spec` names by that rule, or None (a path, a hub id, ``latest``)."""
    kind, value = read_spec(spec)
    return value if kind == "pretrained" else None


def shadowed_folder_note(spec) -> str | None:
    """The line that says so when `spec` is a bare name (a pretrained model's or ``latest``) and also a folder here,
    which it does not mean; None otherwise."""
    if spec is None or isinstance(spec, os.PathLike):
        return None
    text = str(spec)
    if written_as_path(text) or not Path(text).exists():
        return None
    kind, _ = read_spec(text)
    if kind == "pretrained":
        meant = f"the pretrained model {text}"
    elif kind == "latest":
        meant = "the latest `aekit train` run"
    else:
        return None
    return (f"note: {printable(text)} means {meant}, not the folder {printable(text)} here; to use the folder, "
            f"write it as a path: ./{printable(text)}")


# --- manifests: what a package ships ------------------------------------------------------------------


def read_manifest(path) -> dict[str, dict]:
    """The models a ``pretrained.json`` lists: {name: {"path", "tasks", "help", "metrics", "sha256"}}."""
    path = Path(path)
    manifest = read_json(path, CheckpointError, hint="an unreadable pretrained-model manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT or not isinstance(manifest.get("models"), dict):
        raise CheckpointError(f"{path}: not an aekit pretrained-model manifest (needs \"format\": \"{MANIFEST_FORMAT}\" and \"models\")")
    return manifest["models"]


def register_manifest(register, path) -> None:
    """Register every model of a package's ``pretrained.json``; folders are relative to the manifest."""
    path = Path(path)
    for name, entry in read_manifest(path).items():
        register(name, path.parent / entry["path"], tasks=tuple(entry["tasks"]), help=entry.get("help", ""),
                 metrics=entry.get("metrics") or {}, sha256=entry.get("sha256") or {})


def package_model(run_dir, out_dir, name: str, tasks, help: str = "", metrics: dict | None = None,
                  dtype: str = "float16", encoder_only: bool = False) -> dict:
    """Write a trained run as a shippable folder and record it in ``out_dir``'s parent ``pretrained.json``.

    The folder gets ``model.safetensors`` (weights cast to `dtype`; loading casts them back to float32; a model with
    ``prepare_to_ship()`` gets it called on the cast weights first: the codec fixes its integer tables there),
    ``config.json``, and every other ``*.safetensors`` and ``README.md`` already in `out_dir` (fit
    priors and directions on the packaged model: their fingerprint is of the weights as shipped). Returns the entry.
    `encoder_only` ships the encoder alone (a feature extractor for the ``features`` task: ``"parts": ["encoder"]``
    in config.json; it embeds but cannot decode).
    """
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown or not tasks:
        raise CheckpointError(f"tasks must be some of {', '.join(TASKS)} (got {', '.join(tasks) or 'none'})")
    out_dir = Path(out_dir)
    if out_dir.resolve() == Path(run_dir).resolve():
        raise CheckpointError(f"--out {out_dir}: is the run folder itself; packaging would overwrite its weights "
                              "(give a folder inside your package)")
    model = load_checkpoint(run_dir)  # a run folder: RUN_DIR is a path, never a name
    out_dir.mkdir(parents=True, exist_ok=True)
    if encoder_only and set(tasks) - {"features"}:
        raise CheckpointError("an encoder alone can only do the features task (it cannot decode or denoise)")
    cast = getattr(torch, dtype)
    ships_prepared = hasattr(model, "prepare_to_ship") and not encoder_only
    if ships_prepared:  # on the weights as shipped (e.g. the codec's integer entropy tables, fixed once here)
        with torch.no_grad():
            for tensor in [*model.parameters(), *model.buffers()]:
                if tensor.is_floating_point():
                    tensor.copy_(tensor.to(cast).float())
        model.prepare_to_ship()
    state = {k: (v.to(cast) if v.is_floating_point() else v).detach().cpu().contiguous() for k, v in model.state_dict().items()
             if not encoder_only or k.startswith("encoder.")}
    with io.atomic_path(out_dir / WEIGHTS_NAME) as tmp:
        safetensors.torch.save_file(state, str(tmp), metadata={"format": "pt", "dtype": dtype})
    config = read_json(Path(run_dir) / CONFIG_NAME, CheckpointError)
    if ships_prepared:  # preparing may set config fields (the codec's table_width)
        config["config"] = model.config.to_dict()
    if encoder_only:
        config["parts"] = list(ENCODER_ONLY)
        count = sum(v.numel() for v in state.values())
        config["parameters"] = {"encoder": count, "total": count}
    io.write_json(out_dir / CONFIG_NAME, _without_machine_paths(config))
    return record_in_manifest(out_dir, name, tasks, help=help, metrics=metrics)


_PATH_SETTINGS = ("data", "val_data", "init")  # training settings that may name folders of the packager's machine


def _without_machine_paths(config: dict) -> dict:
    """`config` with each absolute path among the training settings cut to its last part (``/home/me/runs/a`` ->
    ``a``, ``/data/faces[:9000]`` -> ``faces[:9000]``): a shipped file names no folder of the machine it came from."""
    training = config.get("training")
    if not isinstance(training, dict):
        return config
    for record in (training, training.get("settings")):
        if isinstance(record, dict):
            for key in _PATH_SETTINGS:
                value = record.get(key)
                if isinstance(value, str) and (value.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", value)):
                    record[key] = re.split(r"[\\/]", value.rstrip("/\\"))[-1]
    return config


def record_in_manifest(model_dir, name: str, tasks, help: str = "", metrics: dict | None = None) -> dict:
    """(Re)write `name`'s entry in the ``pretrained.json`` beside `model_dir`, with fresh SHA-256 sums."""
    model_dir = Path(model_dir)
    manifest_path = model_dir.parent / MANIFEST_NAME
    models = read_manifest(manifest_path) if manifest_path.is_file() else {}
    previous = models.get(name, {})
    files = sorted(p.name for p in model_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    entry = {
        "path": model_dir.name,
        "tasks": list(tasks),
        "help": help or previous.get("help", ""),
        "metrics": metrics if metrics is not None else previous.get("metrics", {}),
        "sha256": {file_name: file_sha256(model_dir / file_name) for file_name in files},
    }
    models[name] = entry
    io.write_json(manifest_path, {"format": MANIFEST_FORMAT, "models": models})
    return entry


# --- the user's default -------------------------------------------------------------------------------


def _defaults_path() -> Path:
    return aekit_home() / DEFAULTS_NAME


def read_defaults() -> dict[str, str]:
    """The user's defaults: {task or "" (every task): model name, folder or hub id}."""
    path = _defaults_path()
    if not path.is_file():
        return {}
    data = read_json(path, CheckpointError, hint="an unreadable default-model file: fix or delete it, or run "
                                                  "`aekit models default --clear`")
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _check_task(task: str | None) -> str:
    if task is None or task == ALL_TASKS:
        return ALL_TASKS
    if task not in TASKS:
        raise CheckpointError(f"unknown task {task!r} (tasks: {', '.join(TASKS)})")
    return task


def set_default(model: str, task: str | None = None) -> str:
    """Make `model` (a pretrained name, checkpoint folder, hub id or ``latest``) the default; returns what was stored.

    `model` is read by `read_spec`; what is stored never depends on the current directory again: a name as
    itself, a folder as its absolute path, a hub id as ``hf:USER/REPO``."""
    key = _check_task(task)
    text = str(model).strip()
    kind, found = read_spec(model if isinstance(model, os.PathLike) else text)
    if kind == "pretrained":
        value = found.name
    elif kind == "latest":
        value = LATEST
    elif kind == "hub":
        value = HUB_PREFIX + found
    elif found.exists():
        load_checkpoint(found)  # refuse what is no loadable checkpoint now, not at the next command
        value = str(found.resolve())
    else:
        raise CheckpointError(f"{text}: no such checkpoint folder, and not an installed pretrained model, `latest` "
                              "or a hub id like 'user/model' (see `aekit models`)")
    defaults = read_defaults()
    defaults[key] = value
    path = _defaults_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    io.write_json(path, defaults)
    return value


def clear_default(task: str | None = None) -> bool:
    """Forget the default for `task` (None: every default); True when there was one."""
    defaults = read_defaults()
    if task is None:
        removed = bool(defaults)
        defaults = {}
    else:
        removed = defaults.pop(_check_task(task), None) is not None
    if removed:
        io.write_json(_defaults_path(), defaults)
    return removed


# --- resolution ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelChoice:
    """Which model a command uses and why: ``spec`` is what `aekit.load` takes; ``note`` a line to print
    beside it, or "" (a name typed that is also a folder here, which it does not mean)."""

    spec: str
    reason: str
    note: str = ""

    def describe(self) -> str:
        return printable(f"Using model {self.spec} ({self.reason})")  # a folder's name may hold anything


def resolve_model(model_path=None, task: str = "codec") -> ModelChoice:
    """The model for `task` by the rules in this module's docstring; CheckpointError when there is none."""
    _check_task(task)
    if model_path is not None and str(model_path).strip():
        note = shadowed_folder_note(model_path) or ""
        if read_spec(model_path)[0] == "latest":
            return ModelChoice(str(latest_run()), "the latest `aekit train` run", note)
        spec = model_path if isinstance(model_path, os.PathLike) else str(model_path)  # a Path stays a path
        return ModelChoice(spec, "--model", note)
    defaults = read_defaults()
    for key, reason in ((task, f"your default for {task}"), (ALL_TASKS, "your default")):
        if defaults.get(key):
            value = defaults[key]
            if value == LATEST:
                return ModelChoice(str(latest_run()), f"{reason}: the latest `aekit train` run")
            fix = "pick another with `aekit models default NAME` or forget it with `aekit models default --clear`"
            # what was stored is read without the current directory: a folder in it never stands in for a default
            if Path(value).is_absolute():
                if not Path(value).is_dir():
                    raise CheckpointError(f"your default model {value} no longer exists; {fix}")
            elif is_pretrained_name(value):
                pass  # read_spec takes a registered name as the pretrained model before any folder
            elif value.startswith(HUB_PREFIX) or HUB_ID.match(value):
                value = HUB_PREFIX + value.removeprefix(HUB_PREFIX)  # stored bare by earlier aekit: still the hub
            else:
                raise CheckpointError(f"your default model {value!r} is no longer installed; {fix}")
            return ModelChoice(value, f"{reason}; change it with `aekit models default`")
    pretrained = pretrained_for(task)
    if pretrained is not None:
        return ModelChoice(pretrained.name, f"the pretrained {task} model; pick another with --model")
    if task in FALLBACK_TASK:
        fallback = resolve_model(None, FALLBACK_TASK[task])
        return ModelChoice(fallback.spec, f"no {task} model is installed: {fallback.reason}", fallback.note)
    try:
        return ModelChoice(str(latest_run()), f"no pretrained {task} model is installed: the latest `aekit train` run")
    except CheckpointError:
        raise CheckpointError(
            f"no --model given, no pretrained {task} model installed and no trained run found; pass --model "
            "DIR_OR_HUB_ID, or train one with `aekit train --data synthetic --epochs 3`"
        ) from None
