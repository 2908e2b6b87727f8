"""The plugin manager: finds plugins through the ``aekit.plugins`` entry points and fills the registry.

The registry itself lives on the ground floor (``aekit.registry``); this module fills it, and installs
`load_plugins` there as the loader ``aekit.registry.get_registry`` runs on first use.

Built-in plugins are ordinary entry points of the ``aekit`` distribution, so they load (and can be
switched off) exactly like third-party ones. ``AEKIT_LOAD_PLUGINS`` restricts loading to a
comma-separated list of entry-point names (an empty value loads none).
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pluggy

from . import hookspecs
from ._version import __version__
from .errors import AekitError, PluginError, RegistryError, first_line
from .pretrained import TASKS, PretrainedModel
from .registry import KINDS, Registry, current_registry, get_registry, set_loader

ENTRY_POINT_GROUP = "aekit.plugins"
LOAD_ENV = "AEKIT_LOAD_PLUGINS"
CORE_NAME = "aekit"
# The core's own contributions (the article's model, the core commands) go through the same hooks.
CORE_MODULE = "aekit.core_hooks"

HOOKS = {
    "register_models": "model",
    "register_data_sources": "data_source",
    "register_noise_models": "noise_model",
    "register_samplers": "sampler",
    "register_commands": "command",
    "register_demos": "demo",
    "register_pretrained": "pretrained",
    "register_feature_sets": "feature_set",
    "register_aligners": "aligner",
    "register_objectives": "objective",
}


@dataclass
class PluginInfo:
    """What `aekit plugins` shows about one plugin."""

    name: str
    version: str | None
    module: str
    error: str | None = None
    hooks: list[str] = field(default_factory=list)
    distribution: str | None = None  # what `pip install` / `pip uninstall` take
    requires: list[str] = field(default_factory=list)  # the plugins whose modules it imports (AEKIT_REQUIRES)


pm = pluggy.PluginManager("aekit")
pm.add_hookspecs(hookspecs)
registry = current_registry()  # the one registry (aekit.registry owns it): this module fills it
plugin_infos: dict[str, PluginInfo] = {}
_loaded = False


def _warn(message: str) -> None:
    print(f"Warning: {message}", file=sys.stderr)


def _allowed_names() -> set[str] | None:
    value = os.environ.get(LOAD_ENV)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def _make_register(kind: str, plugin: str):
    """A `register` function for one hook of one plugin: records who registered what."""
    if kind == "command":

        def register_command(command, help: str = ""):
            name = getattr(command, "name", None)
            if not name:
                raise RegistryError(f"plugin {plugin!r} registered a command without a name")
            registry.add("command", name, command, plugin, help or (command.get_short_help_str() or ""))

        return register_command
    if kind == "model":

        def register_model(name, model_class, config, help: str = ""):
            registry.add("model", name, model_class, plugin, help, config=config)

        return register_model
    if kind == "pretrained":

        def register_pretrained(name, directory, tasks=("codec",), help: str = "", metrics=None, sha256=None):
            if isinstance(tasks, str):
                tasks = (tasks,)
            unknown = sorted(set(tasks) - set(TASKS))
            if unknown or not tasks:
                raise RegistryError(f"pretrained model {name!r}: tasks must be some of {', '.join(TASKS)} "
                                    f"(got {', '.join(map(str, tasks)) or 'none'})")
            info = plugin_infos.get(plugin)
            model = PretrainedModel(name=name, directory=Path(directory), tasks=tuple(tasks), help=help,
                                    metrics=dict(metrics or {}), sha256=dict(sha256 or {}), plugin=plugin,
                                    distribution=info.distribution if info else None)
            registry.add("pretrained", name, model, plugin, help)

        return register_pretrained

    def register(name, obj, help: str = "", **extra):
        registry.add(kind, name, obj, plugin, help, **extra)

    return register


def _register_contributions(plugin_name: str) -> list[str]:
    """Call each hook the plugin implements; on any failure drop all it registered and re-raise."""
    used = []
    try:
        for hook_name, kind in HOOKS.items():
            # Called one plugin at a time (not pm.hook.X()) so that one failing plugin is isolated.
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                if impl.plugin_name == plugin_name:
                    used.append(hook_name)
                    impl.function(register=_make_register(kind, plugin_name))
    except Exception:
        registry.remove_plugin(plugin_name)
        raise
    return used


def _load_one(name: str, version: str | None, module_name: str, loader, distribution: str | None = None,
              installed: frozenset[str] = frozenset()) -> None:
    info = PluginInfo(name=name, version=version, module=module_name, distribution=distribution)
    plugin_infos[name] = info
    try:
        module = loader()
        # A plugin that uses another plugin's modules declares it: AEKIT_REQUIRES = ("embed",)
        info.requires = [str(r) for r in getattr(module, "AEKIT_REQUIRES", ())]
        missing = [r for r in info.requires if r not in installed]
        if missing:
            raise PluginError(f"it needs the plugin(s) {', '.join(missing)}, not installed")
        pm.register(module, name=name)
        _register_contributions(name)
        info.hooks = sorted(caller.name for caller in pm.get_hookcallers(module) or [])
    except Exception as exc:  # a broken plugin must never take the others down
        if pm.has_plugin(name):
            pm.unregister(name=name)
        detail = first_line(exc)
        info.error = type(exc).__name__ if detail == type(exc).__name__ else f"{type(exc).__name__}: {detail}"
        _warn(f"plugin {name!r} failed to load ({info.error}); other commands still work")


def _distribution_name(dist) -> str | None:
    if dist is None:
        return None
    try:
        return dist.metadata["Name"] or getattr(dist, "name", None)
    except (KeyError, AttributeError):
        return getattr(dist, "name", None)


def load_plugins() -> Registry:
    """Load the core and every allowed entry-point plugin once; return the filled registry."""
    global _loaded
    if _loaded:
        return registry
    _loaded = True
    _load_one(CORE_NAME, __version__, CORE_MODULE, lambda: importlib.import_module(CORE_MODULE), distribution=CORE_NAME)
    allowed = _allowed_names()
    seen: dict[str, str] = {}
    entry_points = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    installed = frozenset(ep.name for ep in entry_points)
    for ep in entry_points:
        if ep.name in seen:  # the same name twice: the same distribution on sys.path twice, or a clash
            if ep.value != seen[ep.name]:
                _warn(f"two plugins are named {ep.name!r} ({seen[ep.name]} and {ep.value}); only the first is loaded")
            continue
        seen[ep.name] = ep.value
        if allowed is not None and ep.name not in allowed:
            continue
        dist = getattr(ep, "dist", None)
        version = dist.version if dist is not None else None
        _load_one(ep.name, version, ep.value, ep.load, distribution=_distribution_name(dist), installed=installed)
    left_out = sorted(set(seen) - set(plugin_infos))
    if left_out:
        registry.missing_hint = (f"; {LOAD_ENV}={os.environ.get(LOAD_ENV, '')!r} leaves out the installed "
                                 f"plugin(s) {', '.join(left_out)} (unset it to load them)")
    return registry


def reset() -> None:
    """Forget every loaded plugin and registered thing (tests use it to reload)."""
    global _loaded
    for name in list(plugin_infos):
        if pm.has_plugin(name):
            pm.unregister(name=name)
    plugin_infos.clear()
    registry.__init__()
    _loaded = False


set_loader(load_plugins)  # aekit.registry.get_registry() loads the plugins on first use (get_registry: re-exported)


def describe_plugins() -> list[dict]:
    """One dict per plugin: name, version, module, hooks, what it registered, error."""
    load_plugins()
    rows = []
    for info in plugin_infos.values():
        registered = {}
        for kind in KINDS:
            names = [e.name for e in registry.entries(kind) if e.plugin == info.name]
            if names:
                registered[kind] = names
        rows.append(
            {
                "name": info.name,
                "version": info.version,
                "distribution": info.distribution,
                "module": info.module,
                "hooks": info.hooks,
                "requires": info.requires,
                "registered": registered,
                "error": info.error,
            }
        )
    return rows


def call_isolated(hook_name: str, **kwargs) -> None:
    """Call a notification hook on every plugin; a failing plugin is reported and skipped."""
    load_plugins()
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        try:
            impl.function(**kwargs)
        except Exception as exc:
            _warn(f"plugin {impl.plugin_name!r} failed in {hook_name} ({type(exc).__name__}: {first_line(exc)})")


def failed_plugins() -> dict[str, str]:
    """Plugin name -> error, for plugins that failed to load."""
    load_plugins()
    return {name: info.error for name, info in plugin_infos.items() if info.error}


__all__ = [
    "AekitError",
    "ENTRY_POINT_GROUP",
    "LOAD_ENV",
    "describe_plugins",
    "failed_plugins",
    "get_registry",
    "load_plugins",
    "pm",
    "registry",
    "reset",
]
