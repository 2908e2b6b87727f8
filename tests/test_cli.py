"""The core commands through click's CliRunner: train, info, plugins, one-line errors, output paths, and the
notes on inputs used only in part."""

import json
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import aekit
from aekit.cli import cli
from aekit.synthetic import make_faces
from helpers import TINY_CLI, fails, run_cli


@pytest.fixture
def runner():
    return CliRunner()


def _train(runner, out, *extra):
    args = ["train", "--data", "synthetic:64", "--epochs", "1", "--batch-size", "32", "--quiet", "--out", str(out), *TINY_CLI, *extra]
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

    from aekit.command_tools import load_model_arg, model_option

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


# --- output paths ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["compress", "{faces}", "--out", "{tmp}/afile/z.npz"],
    ["compress", "{faces}", "--out", "{tmp}/afile/deeper/z.npz"],
    ["embed", "{faces}", "--out", "{tmp}/afile/f.npz"],
    ["denoise", "{faces}/face00.png", "--out", "{tmp}/afile/clean.png"],
    ["denoise", "{faces}", "--out", "{tmp}/afile/clean"],
    ["noise", "{faces}", "--kind", "gaussian:0.1", "--out", "{tmp}/afile/noisy"],
    ["decompress", "{tmp}/z.npz", "--out", "{tmp}/afile/restored"],
    ["generate", "--out", "{tmp}/afile/g.png"],
    ["train", "--data", "synthetic:8", "--out", "{tmp}/afile/run"],
], ids=lambda args: "-".join(a for a in args[:1] + args[-1:]).replace("{tmp}/", ""))
def test_an_out_inside_a_file_is_one_line_naming_the_file(args, tmp_path, face_folder, tiny_model_dir):
    """Not "folder afile does not exist", nor "Not a directory" after the work: the file in the way, at once."""
    (tmp_path / "afile").write_bytes(b"mine")
    args = [a.format(tmp=tmp_path, faces=face_folder) for a in args]
    model = [] if args[0] in ("noise", "train") else ["-m", tiny_model_dir]
    fails(*args, *model, message=f"{tmp_path / 'afile'} is a file, not a folder; choose another --out", code=1, alone=True)
    assert (tmp_path / "afile").read_bytes() == b"mine" and sorted(p.name for p in tmp_path.iterdir()) == ["afile", "faces", "model"]


def test_denoise_a_folder_into_an_out_with_a_dot_in_its_name(tmp_path, face_folder, tiny_model_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("denoise", face_folder, "--out", "results.v2", "-m", tiny_model_dir, "--runtime", "torch", "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "wrote 12 denoised image(s) to results.v2"
    assert len([p for p in (tmp_path / "results.v2").rglob("*") if p.is_file()]) == 12
    # a name ending like an image file is still taken for one, saying how to mean a folder
    fails("denoise", face_folder, "--out", "clean.png", "-m", tiny_model_dir, code=2,
          message="clean.png: looks like a file name (.png is an image format); give a folder for a folder or several "
                  "inputs (end it with / for a folder of this name)")
    assert not (tmp_path / "clean.png").exists()


# --- notes on inputs used only in part ------------------------------------------------------------------


def _multi_frame_images(folder: Path) -> dict[str, str]:
    """Animated GIF, WebP and PNG, a 3-page TIFF and a still GIF in `folder`; {name: its note} (the still has none)."""
    frames = [Image.fromarray(face) for face in make_faces(4, seed=1, size=32)[0]]
    folder.mkdir()
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    frames[0].save(folder / "anim.webp", save_all=True, append_images=frames[1:], duration=100)
    frames[0].save(folder / "anim.png", save_all=True, append_images=frames[1:2])
    frames[0].save(folder / "pages.tif", save_all=True, append_images=frames[1:3])
    frames[0].save(folder / "still.gif")
    return {"anim.gif": "animated (4 frames)", "anim.png": "animated (2 frames)", "anim.webp": "animated (4 frames)",
            "pages.tif": "multi-page (3 pages)"}


@pytest.mark.parametrize("command, extra", [
    ("compress", ["--out", "{tmp}/z.npz", "--report"]),  # --report reads every image twice: still one note each
    ("embed", ["--out", "{tmp}/f.npz"]),
    ("denoise", ["--out", "{tmp}/clean", "--runtime", "torch"]),
])
def test_animated_and_multi_page_images_get_one_note_each(command, extra, tmp_path, tiny_model_dir):
    folder = tmp_path / "in"
    expected = _multi_frame_images(folder)
    result = run_cli(command, *sorted(folder.iterdir()), "-m", tiny_model_dir, "-q", *[a.format(tmp=tmp_path) for a in extra])
    assert result.exit_code == 0, result.output
    assert "5 " in result.stdout and "skipped" not in result.output, result.output  # every file used
    notes = [line for line in result.stderr.splitlines() if "only the first" in line]
    assert notes == [f"note: {folder / name}: {what}: only the first is used" for name, what in sorted(expected.items())]


def test_many_notes_end_with_a_count_and_python_gets_a_warning(tmp_path):
    from aekit.images import open_image
    from aekit.notes import InputNoteWarning, Notes

    notes = Notes()
    for i in [*range(25), 3]:
        notes.add(f"f{i:02d}.gif: animated (2 frames): only the first is used")
    assert len(notes) == 25 and notes.lines()[-1] == "note: ... and 5 more" and len(notes.lines()) == 21
    _multi_frame_images(tmp_path / "in")
    with pytest.warns(InputNoteWarning, match="anim.gif: animated"):
        open_image(tmp_path / "in" / "anim.gif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_image(tmp_path / "in" / "still.gif")


# --- control characters in what is printed (security finding 6) ----------------------------------------------

EVIL = "evil\nError: forged\x1b[2J\u202e"  # forges a line, clears the screen, reverses what follows
EVIL_SHOWN = "evil\\nError: forged\\x1b[2J\\u202e"


def test_printable_escapes_control_characters_and_nothing_else():
    from aekit.text import printable, tsv_field, tsv_line

    assert printable(EVIL) == EVIL_SHOWN
    assert printable("\t\r\x00\x7f\x9b\u2028\u2066") == "\\t\\r\\x00\\x7f\\x9b\\u2028\\u2066"
    assert printable("café 漢字 a\\b 😀.png") == "café 漢字 a\\b 😀.png"  # non-ASCII and backslashes are left alone
    assert printable("bad_\udce9\udc9b.png") == "bad_\udce9\\x9b.png"  # a non-UTF-8 name's C1 byte; the others print as bytes
    assert tsv_field("a\\b\tc\nd") == "a\\\\b\\tc\\nd" and tsv_line(["q\t", 1, "p"]) == "q\\t\t1\tp"


def test_error_lines_escape_control_characters_in_file_names(runner, tmp_path):
    result = runner.invoke(cli, ["info", str(tmp_path / EVIL)])
    assert result.exit_code == 1
    assert [line for line in result.output.splitlines() if line.startswith("Error")] == [
        f"Error: {tmp_path}/{EVIL_SHOWN}: no such checkpoint folder (and not a hub id like 'user/model')"]
    (tmp_path / EVIL).write_bytes(b"")  # a usage error, which click prints
    result = runner.invoke(cli, ["train", "--data", "synthetic:8", "--out", str(tmp_path / EVIL)])
    assert result.exit_code == 2 and EVIL_SHOWN in result.output and "\x1b" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("Error")]) == 1


def test_info_escapes_the_strings_of_config_json(runner, tmp_path):
    model = aekit.create_model("article", image_size=32, widths=(8, 16), convs_per_half=1)
    model.save_pretrained(tmp_path / EVIL, training={"data": EVIL, "images": 3, "source_note": EVIL})
    result = runner.invoke(cli, ["info", str(tmp_path / EVIL)])
    assert result.exit_code == 0, result.output
    assert f"model:        {tmp_path}/{EVIL_SHOWN}" in result.stdout
    assert f"trained on:   {EVIL_SHOWN} (3 images, 0 skipped)" in result.stdout
    assert f"source_note:  {EVIL_SHOWN}" in result.stdout
    assert "forged" not in "".join(line for line in result.stdout.splitlines() if not line.startswith(("model", "trained", "source")))
    assert json.loads(runner.invoke(cli, ["info", str(tmp_path / EVIL), "--json"]).stdout)["training"]["data"] == EVIL


def test_skipped_and_note_lines_escape_file_names(tmp_path, tiny_model_dir):
    from aekit.command_tools import skipped_lines
    from aekit.notes import Notes

    assert skipped_lines([f"{EVIL}.png: damaged image"]) == [f"skipped: {EVIL_SHOWN}.png: damaged image", "1 file(s) skipped"]
    notes = Notes()
    notes.add(f"{EVIL}.gif: animated")
    assert notes.lines() == [f"note: {EVIL_SHOWN}.gif: animated"]
    folder = tmp_path / "in"
    frames = [Image.fromarray(face) for face in make_faces(3, seed=1, size=32)[0]]
    folder.mkdir()
    frames[0].save(folder / "plain.png")
    frames[0].save(folder / f"{EVIL}.anim.png", save_all=True, append_images=frames[1:2])
    (folder / f"{EVIL}.png").write_bytes(b"not a picture")
    result = run_cli("compress", folder, "-m", tiny_model_dir, "--out", tmp_path / "z.npz", "-q")
    assert result.exit_code == 0, result.output
    assert f"skipped: {folder}/{EVIL_SHOWN}.png: not an image Pillow can read" in result.stderr.splitlines()
    assert f"note: {folder}/{EVIL_SHOWN}.anim.png: animated (2 frames): only the first is used" in result.stderr.splitlines()
    assert "forged" not in "".join(line for line in result.stderr.splitlines() if not line.startswith(("note", "skipped")))


def test_aekit_train_has_an_option_for_every_trainconfig_field_with_its_default():
    import dataclasses

    from aekit.cli import train
    from aekit.run_config import TrainConfig

    options = {p.name: p for p in train.params}
    for field in dataclasses.fields(TrainConfig):
        assert field.name in options, f"TrainConfig.{field.name} has no `aekit train` option"
        if field.name == "model_config":  # FIELD=VALUE pairs, none by default
            assert options[field.name].multiple
            continue
        assert options[field.name].default == field.default, field.name
    help_text = CliRunner().invoke(cli, ["train", "--help"]).output
    assert f"[default: {TrainConfig.epochs}]" in help_text and f"[default: {TrainConfig.data}]" in help_text
