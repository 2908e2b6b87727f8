"""Loading a model from whatever names it: ``aekit.load``, ``--model`` and ``from_pretrained``.

A checkpoint folder (or a file in one), an installed pretrained model's name (``"faces-64"``), ``latest``
(the latest ``aekit train`` run) or a Hugging Face hub id, read by `aekit.pretrained.read_spec`; ``None``
is the default model for a task (`aekit.pretrained.resolve_model`). This module sits above both:
``pretrained`` says what a name means, ``checkpoint`` reads the files.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .checkpoint import CONFIG_NAME, WEIGHTS_NAME, checkpoint_folder, latest_run, load_checkpoint, save_model
from .errors import CheckpointError, first_line
from .pretrained import get_pretrained, named_model, read_spec, resolve_model


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
        from huggingface_hub import HfApi  # deferred: only pushing needs the hub client (a quarter second to import)

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
    name = getattr(model, "pretrained_name", None)
    if not name:
        return  # a run folder may hold anything: only the model itself leaves it
    shipped = get_pretrained(name)
    for file_name in shipped.sha256:
        if file_name == "README.md" or (file_name.endswith(".safetensors") and file_name != WEIGHTS_NAME):
            shutil.copyfile(shipped.directory / file_name, folder / file_name)


def resolve_checkpoint_dir(path_or_hub_id) -> Path:
    """A local checkpoint folder for a path, an installed pretrained model's name, ``latest`` or a hub id.

    Read by `aekit.pretrained.read_spec`: a bare pretrained name (or ``latest``) is never a folder of that name
    in the current directory (``./NAME`` is); a hub id is downloaded when it is not cached.
    """
    kind, found = read_spec(path_or_hub_id)
    if kind == "pretrained":
        return found.verified_dir()
    if kind == "latest":
        return latest_run()
    if kind == "hub":
        return _download(found)
    if not (found.is_file() or found.is_dir()):
        raise CheckpointError(f"{path_or_hub_id}: no such checkpoint folder (and not a hub id like 'user/model')")
    return checkpoint_folder(found)


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download  # deferred: only a hub id needs the hub client

        return Path(snapshot_download(repo_id, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, "*.md"]))
    except Exception as exc:
        raise CheckpointError(
            f"could not fetch model {repo_id!r} from the Hugging Face hub ({first_line(exc)}); "
            "offline, pass a local checkpoint folder instead"
        ) from None


def load(path_or_hub_id=None, device="cpu", task: str = "codec"):
    """Load a model strictly from a checkpoint folder, a pretrained model's name (``"faces-64"``) or a hub id.

    ``None`` loads the default model for `task` (``"codec"``, ``"denoise"`` or ``"features"``): the user's default
    (``aekit models default``), else the installed pretrained model for the task, else the latest
    ``aekit train`` run; see ``aekit.pretrained``.
    """
    if path_or_hub_id is None:
        path_or_hub_id = resolve_model(None, task).spec
    model = load_checkpoint(resolve_checkpoint_dir(path_or_hub_id), device=device)
    named = named_model(path_or_hub_id)
    model.pretrained_name = named.name if named is not None else None
    return model
