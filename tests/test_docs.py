"""docs/ARCHITECTURE.md matches the code: its paths exist, its commands are registered, its dotted names import,
and it names every core module, built-in plugin, registry kind and hook (so a new one without a line fails here)."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "ARCHITECTURE.md"
TOP_FOLDERS = ("src/", "plugins/", "tests/", "benchmarks/", "docs/", "examples/")
DOTTED = re.compile(r"^(aekit(?:_\w+)?(?:\.\w+)+)(?:\(.*\))?$")  # aekit.x.y or aekit_plugin.x, maybe called


def _spans() -> list[str]:
    """Every inline `code` span of the page (fenced blocks left out)."""
    text = re.sub(r"^```.*?^```", "", PAGE.read_text(encoding="utf-8"), flags=re.M | re.S)
    return [span.strip() for span in re.findall(r"`([^`\n]+)`", text)]


def _repository_paths() -> list[str]:
    return [s for s in _spans() if not re.search(r"\s", s) and "/" in s and "://" not in s
            and (s.endswith(".py") or s.startswith(TOP_FOLDERS))]


def _hook_names() -> list[str]:
    from aekit import hookspecs

    return sorted(name for name, obj in vars(hookspecs).items()
                  if inspect.isfunction(obj) and hasattr(obj, "aekit_spec"))


def test_the_page_is_there_and_about_a_page_long():
    lines = PAGE.read_text(encoding="utf-8").splitlines()
    assert 100 <= len(lines) <= 300, f"{PAGE.name} has {len(lines)} lines; it is meant to be one or two printed pages"


def test_every_repository_path_on_the_page_exists():
    paths = _repository_paths()
    assert len(paths) > 40  # the extraction works: the page names every core module
    missing = sorted({p for p in paths if not (ROOT / p.rstrip("/")).exists()})
    assert not missing, f"{PAGE.name} names paths that do not exist: {', '.join(missing)}"


def test_every_command_on_the_page_is_registered():
    from aekit.plugins import get_registry

    registry = get_registry()
    commands = [s.split() for s in _spans() if s.startswith("aekit ")]
    assert len(commands) > 10
    wrong = []
    for words in commands:
        name = words[1]
        if name not in registry.names("command"):
            wrong.append(" ".join(words))
            continue
        command = registry.get("command", name)
        # a group's subcommand (`aekit directions fit`, `aekit models default`) must be one of the group's
        if isinstance(command, click.Group) and len(words) > 2 and not words[2].startswith("-"):
            if words[2] not in command.commands:
                wrong.append(" ".join(words))
    assert not wrong, f"{PAGE.name} names commands that are not registered: {', '.join(sorted(set(wrong)))}"


def test_every_dotted_name_on_the_page_imports():
    names = sorted({m.group(1) for s in _spans() if (m := DOTTED.match(s))})
    assert len(names) > 20
    broken = []
    for name in names:
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            try:
                for attribute in parts[cut:]:
                    obj = getattr(obj, attribute)
            except AttributeError:
                broken.append(name)
            break
        else:
            broken.append(name)
    assert not broken, f"{PAGE.name} names what the code does not have: {', '.join(broken)}"


def test_every_core_module_has_a_line():
    spans = set(_spans())
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "src" / "aekit").rglob("*.py")
                     if "__pycache__" not in p.parts)
    assert "src/aekit/cli.py" in modules
    missing = [m for m in modules if m not in spans]
    assert not missing, f"core modules without a line in {PAGE.name}: {', '.join(missing)}"


def test_every_builtin_plugin_has_a_line():
    spans = set(_spans())
    plugins = sorted(f"plugins/{p.parent.name}/" for p in (ROOT / "plugins").glob("*/__init__.py"))
    assert "plugins/aekit_embed/" in plugins
    missing = [p for p in plugins if p not in spans]
    assert not missing, f"built-in plugins without a line in {PAGE.name}: {', '.join(missing)}"


def test_every_registry_kind_and_hook_is_on_the_page():
    from aekit.registry import KINDS

    spans = set(_spans())
    hooks = _hook_names()
    assert len(hooks) >= 8
    missing = [k for k in KINDS if k not in spans] + [h for h in hooks if h not in spans]
    assert not missing, f"registry kinds or hooks not on {PAGE.name}: {', '.join(missing)}"


def test_the_readme_links_to_the_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(r"\]\((?:\./)?docs/ARCHITECTURE\.md(?:#[^)]*)?\)", readme), \
        "README.md does not link to docs/ARCHITECTURE.md"


def test_the_readmes_hook_examples_take_the_arguments_hookspecs_gives():
    import inspect
    import re

    from aekit import hookspecs

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = dict(re.findall(r"^def ((?:register_|on_)\w+)\(([^)]*)\):", readme, flags=re.MULTILINE))
    specs = {name: list(inspect.signature(obj).parameters) for name, obj in vars(hookspecs).items()
             if inspect.isfunction(obj) and hasattr(obj, "aekit_spec")}
    assert set(documented) == set(specs)
    for name, arguments in documented.items():
        assert [a.strip() for a in arguments.split(",") if a.strip()] == specs[name], name
