"""The meta-tests (datasette's tests/test_docs.py): what checks the docs and the registry, not behaviour.

docs/ARCHITECTURE.md matches the code: its paths exist, its commands are registered, its dotted names import,
and it names every core module, built-in plugin, registry kind and hook (so a new one without a line fails here).
Every hook is implemented with its spec's arguments, documented in the README and used by a test. Every command
has rows in tests/test_reliability.py's bad-input matrix, every row is run, and every ``--help`` shows an example.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections import Counter
from pathlib import Path

import click
import pytest

import test_reliability as reliability  # the bad-input matrix (tests/ is on sys.path: it has no __init__.py)
from helpers import run_cli

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


# --- every hook: implemented with its spec's arguments, documented in the README, used by a test (datasette's) ------

HOOK_IMPL_FILES = ["src/aekit/core_hooks.py", "plugins/*/**/*.py", "examples/aekit-plugin-example/**/*.py"]


def _hook_specs() -> dict[str, list[str]]:
    from aekit import hookspecs

    return {name: list(inspect.signature(getattr(hookspecs, name)).parameters) for name in _hook_names()}


def _hook_implementations() -> list[tuple[str, str, list[str]]]:
    """(where, hook name, argument names) of every function decorated with ``hookimpl`` / ``aekit.hookimpl`` in the
    core and the built-in and example plugins (read from the source, so an unloaded plugin is checked too)."""
    import ast

    found = []
    for pattern in HOOK_IMPL_FILES:
        for path in sorted(ROOT.glob(pattern)):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                for decorator in node.decorator_list:
                    call = decorator if isinstance(decorator, ast.Call) else None
                    target = call.func if call else decorator
                    if not (isinstance(target, ast.Name) and target.id == "hookimpl"
                            or isinstance(target, ast.Attribute) and target.attr == "hookimpl"):
                        continue
                    named = [k.value.value for k in (call.keywords if call else [])
                             if k.arg == "specname" and isinstance(k.value, ast.Constant)]
                    arguments = [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]
                    found.append((f"{path.relative_to(ROOT)}:{node.lineno}", named[0] if named else node.name, arguments))
    return found


def test_every_hook_is_registered_with_the_plugin_manager():
    import aekit.plugins
    from aekit.plugins import HOOKS

    hooks = _hook_names()
    assert len(hooks) >= 8 and set(HOOKS) < set(hooks)  # register_* hooks fill the registry; on_* notify
    assert all(hasattr(aekit.plugins.pm.hook, name) for name in hooks)


def test_every_hook_implementation_takes_its_specs_arguments():
    """pluggy passes a hook implementation the arguments it names, which must be its spec's (a subset, in order)."""
    specs = _hook_specs()
    implementations = _hook_implementations()
    assert len(implementations) >= 20 and {"src/aekit/core_hooks.py"} <= {w.split(":")[0] for w, _, _ in implementations}
    assert any(w.startswith("examples/aekit-plugin-example/") for w, _, _ in implementations)
    wrong = [f"{where}: {name}({', '.join(arguments)})" + (f", the spec takes ({', '.join(specs[name])})" if name in specs
                                                            else ", no such hook in aekit.hookspecs")
             for where, name, arguments in implementations
             if name not in specs or arguments != [a for a in specs[name] if a in arguments]]
    assert not wrong, "hook implementations that do not match their spec:\n" + "\n".join(wrong)


@pytest.mark.parametrize("hook", _hook_names())
def test_every_hook_is_documented_in_the_readme_and_used_by_a_test(hook):
    assert f"def {hook}(" in (ROOT / "README.md").read_text(encoding="utf-8"), f"{hook} is not in the README's plugin section"
    implemented = [p.name for p in (ROOT / "tests").glob("*.py") if f"def {hook}(" in p.read_text(encoding="utf-8")]
    assert implemented, f"no test implements {hook} in a test plugin"


# --- tests/test_reliability.py's bad-input matrix covers every command; every command's --help shows an example ----


def test_every_registered_command_has_a_row_in_the_matrix():
    import aekit.plugins

    commands = reliability.registered_commands()
    assert [c for c in commands if " " not in c] == aekit.plugins.get_registry().names("command")
    assert "models default" in commands and "models package" in commands  # sub-commands are walked
    missing = reliability.uncovered_commands()
    assert missing == [], (f"commands with no bad input in tests/test_reliability.py's matrix: {', '.join(missing)}; "
                           "give each a BASE_ARGS entry and rows (a kind's command list, BAD_OPTIONS, BAD_OUTPUTS)")
    stale = sorted(set(reliability.MATRIX) - set(commands) - set(reliability.OPTIONAL_COMMANDS))
    assert stale == [], f"matrix rows for commands aekit does not have: {stale}"


def test_a_new_command_without_a_row_is_named(install_plugin):
    install_plugin("aekit-shiny", "shiny", "aekit_shiny_commands", '''
        import click
        import aekit

        @aekit.hookimpl
        def register_commands(register):
            @click.command("shiny")
            def shiny():
                """Do something new.

                Example:
                  aekit shiny
                """
            register(shiny)
    ''')
    assert "shiny" in reliability.registered_commands() and reliability.uncovered_commands() == ["shiny"]


def _parametrised_rows() -> list:
    """The rows the parametrised tests of tests/test_reliability.py run (read from their parametrize marks)."""
    found = []
    for name, test in sorted(vars(reliability).items()):
        for mark in getattr(test, "pytestmark", []) if name.startswith("test_") else []:
            if mark.name == "parametrize" and mark.args[0] == "row":
                found += [param.values[0] for param in mark.args[1]]
    return found


def test_bad_input_counts_per_command():
    """Every command has bad inputs, every matrix row is run by a test, and the table printed is what runs."""
    run = _parametrised_rows()
    in_matrix = [row for command_rows in reliability.MATRIX.values() for row in command_rows]
    assert Counter(map(str, run)) == Counter(map(str, in_matrix)), "matrix rows that no test runs, or tests outside the matrix"
    assert len(set(map(str, run))) == len(run), "two rows with the same id"
    counts = reliability.bad_input_counts()
    assert {command: sum(row.values()) for command, row in counts.items()} == Counter(row.command for row in run)
    commands = [c for c in reliability.registered_commands() if c not in reliability.OPTIONAL_COMMANDS]
    assert [c for c in commands if sum(counts.get(c, {}).values()) == 0] == []
    every_file_kind = ("images", "arrays", "latents", "checkpoints", "features")
    assert all(counts[c]["options"] + counts[c]["outputs"] + sum(counts[c][k] for k in every_file_kind) > 0 for c in counts)
    print("\nbad inputs tried per command\n" + reliability.format_counts())


def test_every_command_help_shows_an_example():
    """`aekit COMMAND --help` has an Example(s) section with a line running that command."""
    lacking = []
    for command in reliability.registered_commands():
        result = run_cli(*command.split(), "--help")
        assert result.exit_code == 0, (command, result.output)
        example_lines = [line.strip() for line in result.output.splitlines() if line.strip().startswith(f"aekit {command}")]
        if "Example" not in result.output or not example_lines:
            lacking.append(command)
    assert lacking == [], f"--help shows no example for: {', '.join(lacking)}"
