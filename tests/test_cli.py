"""The core commands through click's CliRunner: train, info, plugins, and one-line errors."""

import json

import pytest
from click.testing import CliRunner

import aekit
from aekit.cli import cli

TINY = ["--model-config", "image_size=32", "--model-config", "widths=8,16", "--model-config", "convs_per_half=1"]


@pytest.fixture
def runner():
    return CliRunner()


def _train(runner, out, *extra):
    args = ["train", "--data", "synthetic:64", "--epochs", "1", "--batch-size", "32", "--quiet", "--out", str(out), *TINY, *extra]
    return runner.invoke(cli, args)


def test_train_then_info(runner, tmp_path):
    result = _train(runner, tmp_path / "run", "--val-fraction", "0.25")
    assert result.exit_code == 0, result.output
    assert f"saved {tmp_path / 'run'}" in result.stdout
    assert "epoch 1/1: loss" in result.stderr
    info = runner.invoke(cli, ["info", str(tmp_path / "run")])
    assert info.exit_code == 0, info.output
    assert "architecture: article" in info.output and "synthetic:64" in info.output and "val_psnr" in info.output
    as_json = json.loads(runner.invoke(cli, ["info", str(tmp_path / "run"), "--json"]).output)
    assert as_json["config"]["widths"] == [8, 16] and as_json["metrics"][0]["epoch"] == 1
    # `latest` names the latest run
    assert str(tmp_path / "run") in runner.invoke(cli, ["info", "latest"]).output


def test_resume_of_a_finished_run_and_refused_options(runner, tmp_path):
    assert _train(runner, tmp_path / "run").exit_code == 0
    again = _train(runner, tmp_path / "run")
    assert again.exit_code == 2 and "--resume" in again.output
    refused = runner.invoke(cli, ["train", "--resume", str(tmp_path / "run"), "--lr", "1"])
    assert refused.exit_code == 2 and "drop --lr" in refused.output
    resumed = runner.invoke(cli, ["train", "--resume", str(tmp_path / "run"), "--quiet"])
    assert resumed.exit_code == 0, resumed.output


def test_plugins_lists_core_and_builtins(runner):
    result = runner.invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert "train" in rows["aekit"]["registered"]["command"]
    assert "synthetic" in rows["sources"]["registered"]["data_source"]
    text = runner.invoke(cli, ["plugins"]).output
    assert "data_source: folder" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data", "/no/such/folder"], "no such file or folder, and not a known data source"),
        (["train", "--data", "synthetic:64", "--epochs", "-1"], "--epochs must be at least 1"),
        (["train", "--data", "synthetic:64", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["train", "--data", "synthetic:abc"], "expected synthetic[:N[:SEED]]"),
        (["train", "--arch", "nope"], "unknown model 'nope'"),
        (["train", "--data", "synthetic:8", "--model-config", "depth=3"], "no config field"),
        (["train", "--resume", "/no/such/run"], "nothing to resume"),
        (["info", "/no/such/model"], "no such checkpoint folder"),
    ],
)
def test_errors_are_one_line_without_traceback(runner, tmp_path, args, message):
    result = runner.invoke(cli, args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1


def test_bad_model_config_value_is_a_usage_error(runner):
    result = runner.invoke(cli, ["train", "--model-config", "latent_dim=big"])
    assert result.exit_code == 2 and "not a number" in result.output


def test_model_config_reads_true_and_false(runner, tmp_path):
    from aekit.cli import _parse_fields

    assert _parse_fields(["refine=false", "linear_path=True", "widths=8,16"]) == {
        "refine": False, "linear_path": True, "widths": (8, 16)}
    result = runner.invoke(cli, ["train", "--data", "synthetic:16", "--arch", "improved", "--epochs", "1", "--batch-size", "8",
                                 "--model-config", "image_size=32", "--model-config", "widths=8,16",
                                 "--model-config", "refine=false", "--out", str(tmp_path / "plain"), "-q"])
    assert result.exit_code == 0, result.output
    model = aekit.load(tmp_path / "plain")
    assert model.config.refine is False and model.config.linear_path is True and not hasattr(model.decoder, "refine_stem")


def test_debug_shows_the_traceback(runner):
    result = runner.invoke(cli, ["--debug", "info", "/no/such/model"])
    assert result.exit_code == 1
    assert "Traceback" in result.output and "CheckpointError" in result.output


def test_every_command_has_help_with_an_example(runner):
    for command in ["train", "info", "plugins"]:
        result = runner.invoke(cli, [command, "--help"])
        assert result.exit_code == 0 and "Example" in result.output, command
    assert "Example" in runner.invoke(cli, ["--help"]).output


def test_model_option_falls_back_to_the_latest_run_without_pretrained_models(runner, tmp_path, monkeypatch):
    import click

    monkeypatch.setenv("AEKIT_LOAD_PLUGINS", "sources")  # no pretrained models installed
    aekit.plugins.reset()

    from aekit.cli import load_model_arg, model_option

    @click.command()
    @model_option
    def latent_size(model_path):
        click.echo(load_model_arg(model_path).config.latent_dim)

    missing = runner.invoke(latent_size, [])
    assert missing.exit_code != 0 and "aekit train" in str(missing.exception)
    assert _train(runner, tmp_path / "run", "--model-config", "latent_dim=24").exit_code == 0
    fallback = runner.invoke(latent_size, [])
    assert fallback.stdout.strip() == "24" and "the latest `aekit train` run" in fallback.stderr
    assert runner.invoke(latent_size, ["--model", str(tmp_path / "run")]).stdout.strip() == "24"
