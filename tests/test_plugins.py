"""Plugin discovery through real `aekit.plugins` entry points, failure isolation, and the Registry."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

import aekit
import aekit.plugins
from aekit.cli import cli
from aekit.data import open_source
from aekit.errors import DataSourceError, RegistryError
from helpers import error_line
from aekit.registry import KINDS, Registry

TESTPLUGIN = '''
import click

import aekit


@click.command("hello")
@click.option("--name", default="world")
def hello(name):
    """Say hello from the test plugin."""
    click.echo(f"hello {name} from testplugin")


def make_test_noise(argument=""):
    return ("testnoise", argument)


class TestSampler:
    pass


@aekit.hookimpl
def register_commands(register):
    register(hello)


@aekit.hookimpl
def register_noise_models(register):
    register("testnoise", make_test_noise, help="noise for tests")


@aekit.hookimpl
def register_samplers(register):
    register("testsampler", TestSampler, help="a sampler for tests")
'''

DUPLICATE = '''
import click

import aekit


@click.command("dupcmd")
def dupcmd():
    click.echo("should never run")


@aekit.hookimpl
def register_data_sources(register):
    register("dupsource", lambda argument: None, help="dropped with the rest")


@aekit.hookimpl
def register_noise_models(register):
    register("othernoise", lambda argument="": None)
    register("testnoise", lambda argument="": None)  # taken by testplugin


@aekit.hookimpl
def register_commands(register):
    register(dupcmd)
'''

BROKEN = '''
raise RuntimeError("boom at import\\nsecond line of the message")
'''

def _rows():
    return {row["name"]: row for row in aekit.plugins.describe_plugins()}


# --- discovery ----------------------------------------------------------------------------------------


def test_builtin_plugins_come_from_entry_points():
    rows = _rows()
    assert {"aekit", "sources"} <= set(rows)
    core = rows["aekit"]
    assert core["version"] == aekit.__version__ and core["error"] is None
    assert core["registered"]["model"] == ["article", "small", "improved", "unet", "drunet", "codec"]
    assert {"train", "info", "plugins"} <= set(core["registered"]["command"])
    sources = rows["sources"]
    assert sources["module"] == "aekit_sources" and sources["error"] is None
    assert sources["version"] == aekit.__version__  # from the installed aekit distribution's metadata
    assert sorted(sources["registered"]["data_source"]) == ["array", "celeba", "folder", "hf", "synthetic"]
    assert sources["hooks"] == ["register_data_sources"]


def test_test_plugin_is_discovered_with_version_and_registrations(install_plugin):
    install_plugin("aekit-testplugin", "testplugin", "aekit_testplugin", TESTPLUGIN)
    row = _rows()["testplugin"]
    assert row["version"] == "1.2.3"
    assert row["module"] == "aekit_testplugin"
    assert row["error"] is None
    assert row["registered"] == {"noise_model": ["testnoise"], "sampler": ["testsampler"], "command": ["hello"]}
    assert set(row["hooks"]) == {"register_noise_models", "register_samplers", "register_commands"}

    registry = aekit.plugins.get_registry()
    noise = registry.entry("noise_model", "testnoise")
    assert noise.plugin == "testplugin" and noise.help == "noise for tests"
    assert noise.obj("3") == ("testnoise", "3")
    assert registry.get("sampler", "testsampler").__name__ == "TestSampler"
    assert registry.entry("command", "hello").help == "Say hello from the test plugin."
    assert aekit.plugins.failed_plugins() == {}


def test_cli_lists_and_runs_plugin_command(install_plugin):
    install_plugin("aekit-testplugin", "testplugin", "aekit_testplugin", TESTPLUGIN)
    runner = CliRunner()
    listing = runner.invoke(cli, ["--help"])
    assert listing.exit_code == 0, listing.output
    assert "hello" in listing.stdout and "Say hello from the test plugin." in listing.stdout
    assert "train" in listing.stdout
    run = runner.invoke(cli, ["hello", "--name", "tests"])
    assert run.exit_code == 0, run.output
    assert run.stdout.strip() == "hello tests from testplugin"


def test_plugins_command_json_and_text(install_plugin):
    install_plugin("aekit-testplugin", "testplugin", "aekit_testplugin", TESTPLUGIN)
    runner = CliRunner()
    result = runner.invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert {"aekit", "sources", "testplugin"} <= set(rows)
    assert rows["testplugin"]["version"] == "1.2.3"
    assert rows["testplugin"]["registered"]["noise_model"] == ["testnoise"]
    assert rows["testplugin"]["error"] is None
    text = runner.invoke(cli, ["plugins"])
    assert text.exit_code == 0
    assert "testplugin 1.2.3  (aekit_testplugin; pip: aekit-testplugin)" in text.stdout  # what pip install takes
    assert rows["testplugin"]["distribution"] == "aekit-testplugin" and rows["embed"]["distribution"] == "aekit"
    assert "noise_model: testnoise" in text.stdout and "FAILED" not in text.stdout


# --- failures are isolated ------------------------------------------------------------------------------


def test_duplicate_name_fails_the_second_plugin_only(install_plugin):
    install_plugin("aekit-testplugin", "testplugin", "aekit_testplugin", TESTPLUGIN)
    install_plugin("aekit-testplugin-dup", "testplugin_dup", "aekit_testplugin_dup", DUPLICATE, version="0.1")
    rows = _rows()
    assert rows["testplugin"]["error"] is None
    error = rows["testplugin_dup"]["error"]
    assert error is not None and error.startswith("RegistryError")
    assert "'testplugin'" in error and "'testplugin_dup'" in error and "testnoise" in error
    assert aekit.plugins.failed_plugins() == {"testplugin_dup": error}
    # everything the failed plugin registered is dropped, even what came before the clash
    assert rows["testplugin_dup"]["registered"] == {}
    registry = aekit.plugins.get_registry()
    assert registry.entry("noise_model", "testnoise").plugin == "testplugin"
    assert "othernoise" not in registry.names("noise_model")
    assert "dupsource" not in registry.names("data_source")
    assert "dupcmd" not in registry.names("command")
    assert not aekit.plugins.pm.has_plugin("testplugin_dup")

    runner = CliRunner()
    assert runner.invoke(cli, ["hello"]).stdout.strip() == "hello world from testplugin"
    assert runner.invoke(cli, ["dupcmd"]).exit_code != 0
    listing = runner.invoke(cli, ["plugins"])
    assert listing.exit_code == 0 and "testplugin_dup 0.1  (aekit_testplugin_dup; pip: aekit-testplugin-dup) FAILED: RegistryError" in listing.stdout


def test_duplicate_warning_is_one_line_on_stderr(install_plugin, capsys):
    install_plugin("aekit-testplugin", "testplugin", "aekit_testplugin", TESTPLUGIN)
    install_plugin("aekit-testplugin-dup", "testplugin_dup", "aekit_testplugin_dup", DUPLICATE)
    aekit.plugins.load_plugins()
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "testplugin_dup" in lines[0] and lines[0].startswith("Warning:")
    assert captured.out == ""


def test_plugin_that_raises_at_import_is_reported(install_plugin):
    install_plugin("aekit-testplugin-broken", "broken", "aekit_testplugin_broken", BROKEN)
    row = _rows()["broken"]
    assert row["error"] == "RuntimeError: boom at import"  # first line only
    assert row["version"] == "1.2.3" and row["registered"] == {}
    assert _rows()["sources"]["error"] is None

    aekit.plugins.reset()
    runner = CliRunner()
    result = runner.invoke(cli, ["plugins"])
    assert result.exit_code == 0, result.output
    assert "FAILED: RuntimeError: boom at import" in result.stdout
    assert "sources" in result.stdout
    warning = result.stderr.strip().splitlines()
    assert len(warning) == 1 and "'broken'" in warning[0] and "boom at import" in warning[0]

    aekit.plugins.reset()
    help_result = runner.invoke(cli, ["info", "--help"])
    assert help_result.exit_code == 0, help_result.output
    assert "Show a checkpoint" in help_result.stdout
    assert len(help_result.stderr.strip().splitlines()) == 1


# --- AEKIT_LOAD_PLUGINS ---------------------------------------------------------------------------------


def test_load_plugins_env_selects_plugins(install_plugin, monkeypatch):
    install_plugin("aekit-testplugin", "testplugin", "aekit_testplugin", TESTPLUGIN)
    monkeypatch.setenv("AEKIT_LOAD_PLUGINS", "testplugin")
    aekit.plugins.reset()
    assert set(_rows()) == {"aekit", "testplugin"}
    registry = aekit.plugins.get_registry()
    assert registry.names("data_source") == []
    assert registry.names("noise_model") == ["testnoise"]
    with pytest.raises(DataSourceError, match="AEKIT_LOAD_PLUGINS=.testplugin. leaves out"):
        open_source("synthetic")

    monkeypatch.setenv("AEKIT_LOAD_PLUGINS", " sources , testplugin ")
    aekit.plugins.reset()
    assert set(_rows()) == {"aekit", "sources", "testplugin"}


def test_empty_load_plugins_env_loads_only_the_core(install_plugin, monkeypatch):
    install_plugin("aekit-testplugin", "testplugin", "aekit_testplugin", TESTPLUGIN)
    monkeypatch.setenv("AEKIT_LOAD_PLUGINS", "")
    aekit.plugins.reset()
    assert set(_rows()) == {"aekit"}
    registry = aekit.plugins.get_registry()
    assert {"train", "info", "plugins"} <= set(registry.names("command"))
    assert "hello" not in registry.names("command")
    result = CliRunner().invoke(cli, ["hello"])
    assert result.exit_code != 0 and "No such command" in result.output
    assert CliRunner().invoke(cli, ["plugins"]).exit_code == 0


def test_a_plugin_needing_a_missing_plugin_is_refused_naming_it(install_plugin, runner):
    install_plugin("aekit-needy", "needy", "aekit_needy", """
        import aekit
        AEKIT_REQUIRES = ("embed", "nosuchplugin")

        @aekit.hookimpl
        def register_noise_models(register):
            register("needynoise", lambda argument: None)
        """)
    registry = aekit.plugins.get_registry()
    assert "needynoise" not in registry.names("noise_model")
    assert aekit.plugins.failed_plugins()["needy"] == "PluginError: it needs the plugin(s) nosuchplugin, not installed"
    lines = runner.invoke(cli, ["plugins"]).output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("eval "))
    block = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        block.append(line)
    assert "  uses the plugin(s): compress, embed" in block


def _imported_modules(folder) -> set[str]:
    """The top-level names of the absolute imports in the .py files under `folder`, but for those in a ``try:``
    (optional: the code copes without them)."""
    import ast
    from pathlib import Path

    names = set()
    for path in Path(folder).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        guarded = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try) for stmt in t.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if id(node) in guarded:
                continue
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def _builtin_plugins() -> dict[str, str]:
    """entry-point name -> package of the built-in plugins (pyproject.toml)."""
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    return pyproject["project"]["entry-points"]["aekit.plugins"]


def test_every_builtin_plugins_requires_names_exactly_the_plugins_it_imports():
    import importlib
    from pathlib import Path

    plugins = _builtin_plugins()
    by_package = {package: name for name, package in plugins.items()}
    for name, package in plugins.items():
        imported = {by_package[m] for m in _imported_modules(Path(__file__).parents[1] / "plugins" / package)
                    if m in by_package and m != package}
        declared = set(getattr(importlib.import_module(package), "AEKIT_REQUIRES", ()))
        assert declared == imported, f"{package}: AEKIT_REQUIRES {sorted(declared)}, imports {sorted(imported)}"


def test_the_core_imports_no_plugin_by_name():
    from pathlib import Path

    core = Path(__file__).parents[1] / "src" / "aekit"
    assert not _imported_modules(core) & set(_builtin_plugins().values())


# what each core command does with no plugin loaded: run (status 0) or say why in one line naming the env var
CORE_ONLY_RUNS = {
    "train": (["train", "--epochs", "1", "--out", "{tmp}/run", "-q"], "AEKIT_LOAD_PLUGINS=''"),
    "demo": (["demo", "--quick", "--out", "{tmp}/demo"], "AEKIT_LOAD_PLUGINS=''"),
    "info": (["info"], "no --model given"),
    "models": (["models"], None),
    "plugins": (["plugins"], None),
}


def test_every_core_command_works_or_says_why_without_plugins(monkeypatch, tmp_path):
    monkeypatch.setenv("AEKIT_LOAD_PLUGINS", "")
    aekit.plugins.reset()
    assert sorted(aekit.plugins.get_registry().names("command")) == sorted(CORE_ONLY_RUNS)
    for name, (args, reason) in CORE_ONLY_RUNS.items():
        result = CliRunner().invoke(cli, [a.replace("{tmp}", str(tmp_path)) for a in args])
        if reason is None:
            assert result.exit_code == 0, (name, result.output)
        else:
            assert error_line(result, 1) and reason in error_line(result, 1), (name, result.output)
    assert list(tmp_path.iterdir()) == []  # the failures wrote nothing


# --- the Registry -----------------------------------------------------------------------------------------


def test_registry_refuses_duplicates_naming_both_plugins():
    registry = Registry()
    registry.add("noise_model", "gauss", object(), "first", help="gaussian")
    with pytest.raises(RegistryError, match="noise model 'gauss' from plugin 'second' is already registered by plugin 'first'"):
        registry.add("noise_model", "gauss", object(), "second")
    registry.add("sampler", "gauss", object(), "second")  # names are unique per kind only
    assert registry.entry("noise_model", "gauss").plugin == "first"
    assert registry.entry("noise_model", "gauss").help == "gaussian"


def test_registry_unknown_names_list_the_known_ones():
    registry = Registry()
    for name in ("zeta", "alpha", "mid"):
        registry.add("sampler", name, name.upper(), "p")
    with pytest.raises(RegistryError, match=r"unknown sampler 'nope' \(known: alpha, mid, zeta\)"):
        registry.get("sampler", "nope")
    with pytest.raises(RegistryError, match=r"unknown model 'x' \(known: none\)"):
        registry.entry("model", "x")
    assert registry.get("sampler", "mid") == "MID"
    assert registry.names("sampler") == ["alpha", "mid", "zeta"]
    assert [e.name for e in registry.entries("sampler")] == ["zeta", "alpha", "mid"]  # registration order


def test_registry_rejects_bad_kinds_and_names():
    registry = Registry()
    with pytest.raises(RegistryError, match="unknown registry kind"):
        registry.add("widget", "x", object(), "p")
    for bad in ("", "a:b", " padded", None):
        with pytest.raises(RegistryError, match="invalid"):
            registry.add("model", bad, object(), "p")
    assert all(registry.names(kind) == [] for kind in KINDS)


def test_registry_remove_plugin_and_extra():
    registry = Registry()
    registry.add("data_source", "one", object(), "p1", claims=bool)
    registry.add("command", "two", object(), "p1")
    registry.add("command", "three", object(), "p2")
    assert registry.entry("data_source", "one").extra == {"claims": bool}
    registry.remove_plugin("p1")
    assert [e.name for e in registry.entries()] == ["three"]
    registry.add("command", "two", object(), "p2")  # the name is free again
    assert registry.names("command") == ["three", "two"]


def test_plugins_into_a_closed_pipe_says_nothing():
    """`aekit plugins | head`: the reader leaving early is no error to print."""
    import subprocess

    process = subprocess.Popen([sys.executable, "-m", "aekit", "plugins"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    process.wait(timeout=120)
    assert process.stderr.read() == b""


def test_a_plugin_model_preset_is_created_trained_on_and_reloaded(install_plugin, tmp_path):
    install_plugin("aekit-wide", "wide", "aekit_wide", """
        import aekit

        @aekit.hookimpl
        def register_models(register):
            register("tinywide", aekit.Autoencoder,
                     aekit.AutoencoderConfig(widths=(8, 16), convs_per_half=1, latent_dim=12), help="a test preset")
    """)
    assert "tinywide" in aekit.list_models()
    model = aekit.create_model("tinywide")
    assert model.config.latent_dim == 12 and model.architecture == "tinywide"
    model.save_pretrained(tmp_path / "m")
    assert aekit.load(tmp_path / "m").architecture == "tinywide"
    assert aekit.plugins.get_registry().entry("model", "tinywide").plugin == "wide"
