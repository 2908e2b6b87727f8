"""Creating models from the registry (timm's ``_factory.py``, beside the registry itself in ``registry.py``)."""

from __future__ import annotations

import dataclasses

from .errors import CheckpointError, first_line
from .registry import get_registry

# what a config the model cannot be built from raises (a RuntimeError is not one: `load` builds on the meta
# device first, where some models cannot be built); torch's messages for a size past int64 hold a 13-line C++
# stack trace: only their first line is shown
_BAD_CONFIG = (TypeError, ValueError, OverflowError)


def model_config(name: str = "article", **overrides):
    """The config dataclass of a registered model preset with `overrides` applied, the model not built."""
    base = get_registry().entry("model", name).extra["config"]
    fields = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise CheckpointError(f"model {name!r} has no config field(s) {', '.join(unknown)} (fields: {', '.join(sorted(fields))})")
    try:
        return dataclasses.replace(base, **overrides)
    except _BAD_CONFIG as exc:
        raise CheckpointError(f"invalid config for model {name!r}: {first_line(exc)}") from exc


def create_model(name: str = "article", **overrides):
    """Build a registered model preset, optionally overriding config fields (timm's create_model)."""
    config = model_config(name, **overrides)
    try:
        model = get_registry().entry("model", name).obj(config)
    except _BAD_CONFIG as exc:
        raise CheckpointError(f"invalid config for model {name!r}: {first_line(exc)}") from exc
    model.architecture = name
    return model


def list_models() -> list[str]:
    """Names of the registered model presets."""
    return get_registry().names("model")
