"""Creating models from the registry (timm's ``_factory.py``, beside the registry itself in ``registry.py``)."""

from __future__ import annotations

import dataclasses

from .errors import CheckpointError


def create_model(name: str = "article", **overrides):
    """Build a registered model preset, optionally overriding config fields (timm's create_model)."""
    from .plugins import get_registry

    entry = get_registry().entry("model", name)
    base = entry.extra["config"]
    fields = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise CheckpointError(f"model {name!r} has no config field(s) {', '.join(unknown)} (fields: {', '.join(sorted(fields))})")
    try:
        config = dataclasses.replace(base, **overrides)
        model = entry.obj(config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"invalid config for model {name!r}: {exc}") from exc
    model.architecture = name
    return model


def list_models() -> list[str]:
    """Names of the registered model presets."""
    from .plugins import get_registry

    return get_registry().names("model")
