"""One registry for everything plugins contribute, in the style of timm/torchvision's model registry.

The ground floor: this module imports nothing of aekit but ``errors``. It owns the one registry; the plugin
manager (``aekit.plugins``) fills it and installs, at import, the loader that `get_registry` runs first, so
every module below the plugin manager (the factory, the checkpoint reader, the data sources) reads the
registry from here without importing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import RegistryError

KINDS = ("model", "data_source", "noise_model", "sampler", "command", "demo", "pretrained", "feature_set", "aligner",
         "objective")
KIND_LABELS = {
    "model": "model",
    "data_source": "data source",
    "noise_model": "noise model",
    "sampler": "sampler",
    "command": "command",
    "demo": "demo part",
    "pretrained": "pretrained model",
    "feature_set": "feature set",
    "aligner": "face aligner",
    "objective": "training objective",
}


@dataclass(frozen=True)
class Entry:
    """One registered thing: its kind, unique name, the object, and the plugin that registered it."""

    kind: str
    name: str
    obj: Any
    plugin: str
    help: str = ""
    extra: dict = field(default_factory=dict)


class Registry:
    """Maps (kind, name) to an Entry and refuses duplicate names within a kind."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        # why names may be missing (set by the plugin manager when AEKIT_LOAD_PLUGINS leaves plugins out)
        self.missing_hint = ""

    def add(self, kind: str, name: str, obj: Any, plugin: str, help: str = "", **extra) -> Entry:
        """Add an entry; raise RegistryError when the name is taken or malformed."""
        if kind not in self._entries:
            raise RegistryError(f"unknown registry kind {kind!r} (kinds: {', '.join(KINDS)})")
        if not isinstance(name, str) or not name or ":" in name or name != name.strip():
            raise RegistryError(f"invalid {KIND_LABELS[kind]} name {name!r}: use a non-empty name without ':'")
        existing = self._entries[kind].get(name)
        if existing is not None:
            raise RegistryError(
                f"{KIND_LABELS[kind]} {name!r} from plugin {plugin!r} is already registered "
                f"by plugin {existing.plugin!r}"
            )
        entry = Entry(kind, name, obj, plugin, help or "", dict(extra))
        self._entries[kind][name] = entry
        return entry

    def entry(self, kind: str, name: str) -> Entry:
        """The entry for `name`, or RegistryError listing the known names."""
        try:
            return self._entries[kind][name]
        except KeyError:
            known = ", ".join(sorted(self._entries[kind])) or "none"
            raise RegistryError(f"unknown {KIND_LABELS[kind]} {name!r} (known: {known}){self.missing_hint}") from None

    def get(self, kind: str, name: str) -> Any:
        """The registered object for `name`."""
        return self.entry(kind, name).obj

    def names(self, kind: str) -> list[str]:
        """Registered names of one kind, sorted."""
        return sorted(self._entries[kind])

    def entries(self, kind: str | None = None) -> list[Entry]:
        """All entries (of one kind, when given), in registration order."""
        kinds = [kind] if kind else list(KINDS)
        return [e for k in kinds for e in self._entries[k].values()]

    def remove_plugin(self, plugin: str) -> None:
        """Drop everything one plugin registered (used when its hook fails half-way)."""
        for kind in KINDS:
            for name in [n for n, e in self._entries[kind].items() if e.plugin == plugin]:
                del self._entries[kind][name]


_REGISTRY = Registry()
_loader: Callable[[], object] | None = None


def set_loader(loader: Callable[[], object] | None) -> None:
    """Install what `get_registry` calls before answering: the plugin manager's ``load_plugins``, which
    fills the registry once (and returns at once after that)."""
    global _loader
    _loader = loader


def current_registry() -> Registry:
    """The registry as it stands, loading nothing (what the plugin manager fills)."""
    return _REGISTRY


def get_registry() -> Registry:
    """The registry, with plugins loaded (by the loader ``aekit.plugins`` installs when it is imported)."""
    if _loader is not None:
        _loader()
    return _REGISTRY
