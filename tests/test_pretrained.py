"""Pretrained models: the bundled ones load strictly and match their sums, the register_pretrained hook,
`aekit models`, and the rules for which model a command uses without --model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import aekit
import aekit.plugins
from aekit import feature_sets, pretrained
from aekit.cli import cli
from aekit.synthetic import make_faces
from helpers import save_tiny_model

BUNDLED = {"faces-64": "codec", "faces-64-denoise": "denoise", "faces-64-features": "features", "faces-64-codec": "compress"}

runner = CliRunner()


def _bundled():
    return [m for m in pretrained.pretrained_models() if m.plugin == "pretrained"]


def _tiny_run(path, latent_dim=16):
    save_tiny_model(path, latent_dim=latent_dim, image_size=64)
    return path


THIRD_PARTY = """
    from pathlib import Path
    import aekit
    from aekit.pretrained import register_manifest

    @aekit.hookimpl
    def register_pretrained(register):
        register_manifest(register, Path({manifest!r}))
"""


@pytest.fixture
def third_party(tmp_path, install_plugin):
    """A model package `aekit-tinyfaces` that ships `tiny-faces` (a codec) through the hook."""
    package = tmp_path / "pkg"
    pretrained.package_model(_tiny_run(tmp_path / "run"), package / "tiny-faces", "tiny-faces", ["codec"],
                             help="a tiny test codec", metrics={"PSNR dB": 1.5})
    install_plugin("aekit-tinyfaces", "tinyfaces", "aekit_tinyfaces",
                   THIRD_PARTY.format(manifest=str(package / pretrained.MANIFEST_NAME)))
    return package / "tiny-faces"


def test_a_packaged_config_names_no_folder_of_the_packagers_machine(tmp_path):
    run = _tiny_run(tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config["training"]["settings"] = {**config["training"].get("settings", {}), "init": str(tmp_path / "runs" / "stage-a"),
                                      "data": "/srv/faces/images[:9000]", "val_data": None}
    config["training"]["data"] = "../shared/faces/images[:9000]"  # relative: kept as it is
    (run / "config.json").write_text(json.dumps(config))
    pretrained.package_model(run, tmp_path / "pkg" / "tiny", "tiny", ["codec"])
    shipped = json.loads((tmp_path / "pkg" / "tiny" / "config.json").read_text())["training"]
    assert shipped["settings"]["init"] == "stage-a" and shipped["settings"]["data"] == "images[:9000]"
    assert shipped["data"] == "../shared/faces/images[:9000]" and shipped["settings"]["val_data"] is None
    assert str(tmp_path) not in (tmp_path / "pkg" / "tiny" / "config.json").read_text()


# --- the bundled models ---------------------------------------------------------------------------


def test_bundled_models_are_registered_with_their_tasks():
    assert {m.name: m.tasks for m in _bundled()} == {name: (task,) for name, task in BUNDLED.items()}
    for model in _bundled():
        assert model.distribution == "aekit" and model.size_bytes() > 1_000_000
        assert {"model.safetensors", "config.json", "README.md"} <= set(model.sha256)


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_model_loads_strictly_and_matches_its_sums(name):
    model_info = pretrained.get_pretrained(name)
    for file_name, digest in model_info.sha256.items():
        assert pretrained.file_sha256(model_info.directory / file_name) == digest, file_name
    model = aekit.load(name)
    assert model.pretrained_name == name and model.checkpoint_dir == model_info.directory
    assert all(str(p.dtype) == "torch.float32" for p in model.parameters())  # shipped as float16, loaded as float32
    card = (model_info.directory / "README.md").read_text(encoding="utf-8")
    assert "non-commercial" in card and "aekit train" in card and "aekit eval" in card
    if BUNDLED[name] == "codec":
        assert tuple(model.decode(model.encode(np.zeros((1, 64, 64, 3), np.uint8))).shape) == (1, 3, 64, 64)
        assert aekit.checkpoint.read_config(model_info.directory)["training"]["settings"]["noise"] in (None, "")
    elif BUNDLED[name] == "compress":  # the bitstream codec: integer tables fixed, a face to bytes and back
        faces = make_faces(2, seed=3, size=64)[0]
        streams = model.compress_faces(faces, model.config.default_quality)
        assert model.config.table_width > 0 and all(20 < len(s) < 2000 for s in streams)
        assert model.compress_faces(faces, model.config.default_quality, batch_size=1) == streams  # exact symbols
        assert model.decompress_faces(streams, model.config.default_quality).shape[0] == 2
        assert aekit.checkpoint.read_config(model_info.directory)["training"]["settings"]["clip_grad"] > 0
    elif BUNDLED[name] == "features":  # the encoder alone: features, and a one-line refusal to decode
        assert model.encoder_only and not model.decodes_latents
        faces = np.zeros((2, 64, 64, 3), np.uint8)
        assert model.features(faces, feature_sets.DEFAULT).shape == (2, feature_sets.dimension(model, feature_sets.DEFAULT))
        assert aekit.checkpoint.read_config(model_info.directory)["training"]["settings"]["objectives"]
    else:
        assert aekit.checkpoint.read_config(model_info.directory)["training"]["settings"]["noise"]


def test_a_damaged_bundled_file_names_the_file_and_how_to_reinstall(tmp_path, install_plugin):
    original = pretrained.get_pretrained("faces-64")
    copy = tmp_path / "copy"
    shutil.copytree(original.directory, copy)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: nothing looks wrong from outside
    (copy / "model.safetensors").write_bytes(bytes(data))
    install_plugin("aekit-copy", "copy", "aekit_copy", f"""
        import aekit
        @aekit.hookimpl
        def register_pretrained(register):
            register("faces-copy", {str(copy)!r}, tasks=("codec",), sha256={original.sha256!r})
    """)
    with pytest.raises(aekit.CheckpointError) as caught:
        aekit.load("faces-copy")
    message = str(caught.value)
    assert "model.safetensors" in message and "damaged" in message and "pip install --force-reinstall" in message
    assert "aekit-copy" in message
    (copy / "README.md").unlink()
    result = runner.invoke(cli, ["info", "faces-copy"])
    assert result.exit_code == 1 and "README.md is missing" in result.output and "Traceback" not in result.output


# --- the hook, as a third-party package uses it ----------------------------------------------------------


def test_a_third_party_package_ships_a_model_through_the_hook(third_party):
    found = pretrained.get_pretrained("tiny-faces")
    assert found.plugin == "tinyfaces" and found.distribution == "aekit-tinyfaces" and found.tasks == ("codec",)
    assert found.metrics == {"PSNR dB": 1.5}
    manifest = json.loads((third_party.parent / "pretrained.json").read_text())
    assert set(manifest["models"]["tiny-faces"]["sha256"]) == {"config.json", "model.safetensors"}
    model = aekit.load("tiny-faces")
    assert model.config.latent_dim == 16
    # shipped as float16, loaded as float32 with the same values
    reference = aekit.load(third_party.parent.parent / "run")
    for (key, value), (_, ref) in zip(model.state_dict().items(), reference.state_dict().items()):
        assert value.dtype == ref.dtype
        assert np.allclose(value.numpy(), ref.numpy(), atol=1e-2, rtol=1e-3), key
    listing = runner.invoke(cli, ["models"])
    assert listing.exit_code == 0 and "tiny-faces" in listing.output and "from aekit-tinyfaces" in listing.output
    assert "PSNR dB 1.5" in listing.output
    rows = {row["name"]: row for row in json.loads(runner.invoke(cli, ["models", "--json"]).output)["models"]}
    assert rows["tiny-faces"]["tasks"] == ["codec"] and rows["tiny-faces"]["size_bytes"] > 0
    assert "tinyfaces" in {row["name"] for row in aekit.plugins.describe_plugins()}


def test_registering_an_unknown_task_fails_that_plugin_only(install_plugin, tmp_path):
    install_plugin("aekit-bad", "badmodels", "aekit_badmodels", f"""
        import aekit
        @aekit.hookimpl
        def register_pretrained(register):
            register("bad", {str(tmp_path)!r}, tasks=("painting",))
    """)
    failed = aekit.plugins.failed_plugins()
    assert "painting" in failed["badmodels"] and "pretrained" not in failed
    assert "faces-64" in aekit.plugins.get_registry().names("pretrained")


# --- which model a command uses ----------------------------------------------------------------------


def test_without_a_default_each_task_uses_its_pretrained_model():
    assert pretrained.resolve_model(None, "codec").spec == "faces-64"
    assert pretrained.resolve_model(None, "denoise").spec == "faces-64-denoise"
    assert pretrained.resolve_model(None, "features").spec == "faces-64-features"
    assert pretrained.resolve_model("runs/x", "denoise") == pretrained.ModelChoice("runs/x", "--model")
    with pytest.raises(aekit.CheckpointError, match="unknown task"):
        pretrained.resolve_model(None, "painting")


@pytest.fixture
def without_bundled_features(without_bundled):
    """The registered pretrained models less the bundled feature extractor, as if aekit shipped none."""
    without_bundled("features")


def test_features_come_from_the_codec_until_a_feature_extractor_is_installed(tmp_path, install_plugin, face_folder,
                                                                             without_bundled_features):
    choice = pretrained.resolve_model(None, "features")
    assert choice.spec == "faces-64" and "no features model is installed" in choice.reason
    package = tmp_path / "pkg"
    pretrained.package_model(_tiny_run(tmp_path / "run", latent_dim=12), package / "tiny-features", "tiny-features",
                             ["features"], help="a tiny feature extractor")
    install_plugin("aekit-tinyfeatures", "tinyfeatures", "aekit_tinyfeatures",
                   THIRD_PARTY.format(manifest=str(package / pretrained.MANIFEST_NAME)))
    assert pretrained.resolve_model(None, "features").spec == "tiny-features"
    assert pretrained.resolve_model(None, "codec").spec == "faces-64"  # compress, generate and edit keep the codec
    fingerprint = aekit.model_fingerprint(aekit.load("tiny-features"))
    # aekit embed and similar without --model use it, and the .npz records which model made it
    result = runner.invoke(cli, ["embed", str(face_folder), "--out", str(tmp_path / "feats.npz"), "-q"])
    assert result.exit_code == 0, result.output
    assert "Using model tiny-features" in result.stderr
    assert aekit.load_features(tmp_path / "feats.npz").model_id == fingerprint
    query = sorted(face_folder.rglob("*.png"))[0]
    result = runner.invoke(cli, ["similar", str(query), "--index", str(tmp_path / "feats.npz"), "--k", "2"])
    assert result.exit_code == 0, result.output
    # so does the scikit-learn transformer
    from aekit_embed.sklearn import AutoencoderEmbedder

    faces = make_faces(3, seed=1, size=64)[0]
    embedder = AutoencoderEmbedder(features="latent").fit(faces)
    assert aekit.model_fingerprint(embedder.model_) == fingerprint and embedder.transform(faces).shape == (3, 12)
    listing = runner.invoke(cli, ["models"]).output
    assert "tiny-features  [default for features]" in listing and "faces-64  [default for codec]" in listing
    assert "faces-64-codec  [default for compress]" in listing


def test_an_encoder_alone_ships_as_a_feature_extractor(tmp_path, face_folder):
    run = _tiny_run(tmp_path / "run")
    result = runner.invoke(cli, ["models", "package", str(run), "--name", "tiny-enc", "--task", "features",
                                 "--encoder-only", "--out", str(tmp_path / "pkg" / "tiny-enc")])
    assert result.exit_code == 0, result.output
    shipped, whole = aekit.load(tmp_path / "pkg" / "tiny-enc"), aekit.load(run)
    assert (tmp_path / "pkg" / "tiny-enc" / "model.safetensors").stat().st_size < 0.8 * (run / "model.safetensors").stat().st_size
    assert all(k.startswith("encoder.") for k in shipped.state_dict()) and not shipped.decodes_latents
    faces = make_faces(4, seed=2, size=64)[0]
    for kind in feature_sets.names():  # the same features as the whole model's (float16 storage aside)
        np.testing.assert_allclose(shipped.features(faces, kind).numpy(), whole.features(faces, kind).numpy(), atol=0.05, rtol=0.02)
    with pytest.raises(aekit.AekitError, match="encoder alone"):
        shipped.decode(shipped.encode(faces))
    with pytest.raises(aekit.AekitError, match="encoder alone"):
        shipped.reconstruct(faces)
    embedded = runner.invoke(cli, ["embed", str(face_folder), "--model", str(tmp_path / "pkg" / "tiny-enc"),
                                   "--out", str(tmp_path / "f.npz"), "-q"])
    assert embedded.exit_code == 0, embedded.output
    refused = runner.invoke(cli, ["compress", str(face_folder), "--model", str(tmp_path / "pkg" / "tiny-enc"),
                                  "--out", str(tmp_path / "c.npz"), "-q"])  # a codec's job: refused before any work
    assert refused.exit_code == 1 and "encoder alone" in refused.output and "Traceback" not in refused.output
    assert not (tmp_path / "c.npz").exists()
    # a whole model's weights under an encoder-only config, or the reverse, are refused strictly
    config = json.loads((tmp_path / "pkg" / "tiny-enc" / "config.json").read_text())
    shutil.copy(run / "model.safetensors", tmp_path / "pkg" / "tiny-enc" / "model.safetensors")
    with pytest.raises(aekit.CheckpointError, match="unexpected"):
        aekit.load(tmp_path / "pkg" / "tiny-enc")
    config["parts"] = ["decoder"]
    (tmp_path / "pkg" / "tiny-enc" / "config.json").write_text(json.dumps(config))
    with pytest.raises(aekit.CheckpointError, match="parts"):
        aekit.load(tmp_path / "pkg" / "tiny-enc")
    with pytest.raises(aekit.CheckpointError, match="features task"):
        pretrained.package_model(run, tmp_path / "pkg2" / "x", "x", ["codec"], encoder_only=True)


def test_user_default_beats_pretrained_and_explicit_model_beats_both(tmp_path):
    run = _tiny_run(tmp_path / "mine")
    result = runner.invoke(cli, ["models", "default", str(run)])
    assert result.exit_code == 0, result.output
    assert pretrained.resolve_model(None, "codec").spec == str(run.resolve())
    assert pretrained.resolve_model(None, "denoise").spec == str(run.resolve())  # a default for every task
    assert pretrained.resolve_model("faces-64", "codec").spec == "faces-64"
    assert runner.invoke(cli, ["models", "default", "faces-64-denoise", "--task", "denoise"]).exit_code == 0
    assert pretrained.resolve_model(None, "denoise").spec == "faces-64-denoise"  # the task's own default wins
    assert aekit.load().config.latent_dim == 16  # Python follows the same rules
    shown = runner.invoke(cli, ["models"]).output
    assert "[default for denoise]" in shown and "your default" in shown
    assert runner.invoke(cli, ["models", "default", "--clear", "--task", "denoise"]).exit_code == 0
    assert pretrained.resolve_model(None, "denoise").spec == str(run.resolve())
    assert runner.invoke(cli, ["models", "default", "--clear"]).exit_code == 0
    assert pretrained.resolve_model(None, "codec").spec == "faces-64"


def test_default_latest_follows_the_latest_run(tmp_path):
    from aekit import checkpoint

    assert runner.invoke(cli, ["models", "default", "latest"]).exit_code == 0
    with pytest.raises(aekit.CheckpointError, match="aekit train"):
        pretrained.resolve_model(None, "codec")
    checkpoint.record_latest(_tiny_run(tmp_path / "run"))
    assert pretrained.resolve_model(None, "codec").spec == str((tmp_path / "run").resolve())


def test_bad_and_stale_defaults_are_one_line_errors(tmp_path):
    bad = runner.invoke(cli, ["models", "default", str(tmp_path)])  # a folder that is no checkpoint
    assert bad.exit_code == 1 and "not an aekit checkpoint" in bad.output and "Traceback" not in bad.output
    unknown = runner.invoke(cli, ["models", "default", "no-such-model"])
    assert unknown.exit_code == 1 and "aekit models" in unknown.output
    both = runner.invoke(cli, ["models", "default", "faces-64", "--clear"])
    assert both.exit_code == 2
    run = _tiny_run(tmp_path / "gone")
    assert runner.invoke(cli, ["models", "default", str(run)]).exit_code == 0
    shutil.rmtree(run)
    stale = runner.invoke(cli, ["info"])
    assert stale.exit_code == 1 and "no longer exists" in stale.output and "--clear" in stale.output


def test_commands_say_which_model_they_use(face_folder, tmp_path):
    result = runner.invoke(cli, ["embed", str(face_folder), "--out", str(tmp_path / "f.npz"), "-q"])
    assert result.exit_code == 0, result.output
    assert "Using model faces-64-features (the pretrained features model" in result.stderr
    run = _tiny_run(tmp_path / "mine")
    result = runner.invoke(cli, ["embed", str(face_folder), "--model", str(run), "--out", str(tmp_path / "g.npz"), "-q"])
    assert result.exit_code == 0 and f"Using model {run} (--model)" in result.stderr


# --- working out of the box: no --model, no training, an empty AEKIT_HOME ---------------------------------


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    images, _ = make_faces(3, seed=5, size=64)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"face{i}.png")
    noisy = np.clip(images[0] / 255.0 + np.random.default_rng(0).normal(0, 0.1, images[0].shape), 0, 1)
    Image.fromarray((noisy * 255).round().astype(np.uint8)).resize((150, 120)).save(tmp_path / "noisy.png")
    return folder


def test_out_of_the_box_commands_use_the_pretrained_models(photos, tmp_path):
    noisy = tmp_path / "noisy.png"
    steps = [
        (["denoise", str(noisy), "--out", str(tmp_path / "clean.png"), "-q"], "faces-64-denoise"),
        (["embed", str(photos), "--out", str(tmp_path / "f.npz"), "-q"], "faces-64-features"),
        (["compress", str(photos), "--out", str(tmp_path / "z.npz"), "-q"], "faces-64-codec"),
        (["decompress", str(tmp_path / "z.npz"), "--out", str(tmp_path / "back")], "faces-64-codec"),
        (["generate", "--n", "4", "--seed", "0", "--out", str(tmp_path / "g.png")], "faces-64"),
    ]
    for args, name in steps:
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, (args, result.output)
        assert f"Using model {name} (" in result.stderr, args
    assert Image.open(tmp_path / "clean.png").size == (150, 120)
    feats = aekit.load_features(tmp_path / "f.npz")
    extractor = aekit.load("faces-64-features")
    assert feats.X.shape == (3, feature_sets.dimension(extractor, feature_sets.DEFAULT))
    assert feats.model_id == aekit.model_fingerprint(extractor)
    # aekit similar embeds its queries with the extractor that made the index: each face finds itself first
    queries = sorted(photos.glob("*.png"))
    found = runner.invoke(cli, ["similar", *map(str, queries), "--index", str(tmp_path / "f.npz"), "--k", "1"])
    assert found.exit_code == 0, found.output
    firsts = [line.split("\t") for line in found.stdout.splitlines() if line.count("\t") == 3]
    assert [Path(row[3]).name for row in firsts] == [q.name for q in queries]
    assert len(list((tmp_path / "back").glob("*.png"))) == 3
    assert Image.open(tmp_path / "g.png").text["sampler"] in ("gmm", "gaussian")


def test_the_sklearn_transformer_uses_the_pretrained_feature_extractor(photos):
    from aekit_embed import AutoencoderEmbedder

    images = np.stack([np.asarray(Image.open(p)) for p in sorted(photos.glob("*.png"))])
    embedder = AutoencoderEmbedder().fit(images)
    features = embedder.transform(images)
    extractor = aekit.load("faces-64-features")
    assert aekit.model_fingerprint(embedder.model_) == aekit.model_fingerprint(extractor)
    assert features.shape == (3, feature_sets.dimension(extractor, feature_sets.DEFAULT)) and np.isfinite(features).all()
    latents = AutoencoderEmbedder(features="latent").fit(images).transform(images)
    np.testing.assert_allclose(latents, extractor.encode(images).numpy(), atol=1e-4)


def test_push_to_hub_sends_a_pretrained_model_with_its_card_priors_and_directions(fake_hub):
    shipped = pretrained.get_pretrained("faces-64")
    aekit.load("faces-64").push_to_hub("me/faces")
    extras = sorted(f for f in shipped.sha256 if f not in ("config.json", "model.safetensors"))
    assert fake_hub["files"] == sorted(["config.json", "model.safetensors", *extras])
    assert {"README.md", "prior-gmm.safetensors", "directions.safetensors"} <= set(extras)


# --- a folder named like a pretrained model never stands in for it (security finding 5) ---------------------------


@pytest.fixture
def lookalikes(tmp_path, monkeypatch):
    """The current directory holds `faces-64/` (a folder of photos, a natural name) and `faces-64-denoise/` (a
    checkpoint that is not the shipped denoiser) beside a stray `latest/` folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "faces-64").mkdir()
    Image.fromarray(make_faces(1, seed=0, size=64)[0][0]).save(tmp_path / "faces-64" / "me.png")
    _tiny_run(tmp_path / "faces-64-denoise")
    (tmp_path / "latest").mkdir()
    return tmp_path


def test_defaults_use_the_registered_pretrained_models_whatever_folders_are_here(lookalikes):
    from aekit.loading import resolve_checkpoint_dir

    result = runner.invoke(cli, ["info"])  # before: "Error: faces-64: not an aekit checkpoint"
    assert result.exit_code == 0, result.output
    assert str(pretrained.get_pretrained("faces-64").directory) in result.stdout and "note:" not in result.stderr
    model = aekit.load(task="denoise")  # Python: the same rule, and the shipped files' sums are checked
    assert model.pretrained_name == "faces-64-denoise" and model.config.latent_dim != 16  # before: the folder's
    for task, name in (("codec", "faces-64"), ("denoise", "faces-64-denoise")):
        choice = pretrained.resolve_model(None, task)
        assert choice.spec == name and choice.note == ""
        assert resolve_checkpoint_dir(choice.spec) == pretrained.get_pretrained(name).directory


def test_a_typed_name_means_the_pretrained_model_and_says_how_to_pick_the_folder(lookalikes):
    result = runner.invoke(cli, ["info", "faces-64-denoise"])
    assert result.exit_code == 0, result.output
    assert str(pretrained.get_pretrained("faces-64-denoise").directory) in result.stdout
    assert result.stderr.count("\n") == 1 and "write it as a path: ./faces-64-denoise" in result.stderr
    for folder in ("./faces-64-denoise", "faces-64-denoise/", str(lookalikes / "faces-64-denoise")):
        result = runner.invoke(cli, ["info", folder])  # written as a path: the folder, without a note
        assert result.exit_code == 0 and "latent_dim=16" in result.stdout and "note:" not in result.stderr, folder
    assert "no config.json" in runner.invoke(cli, ["info", "./faces-64"]).output  # the folder of photos, as asked


def test_how_a_spec_is_read(lookalikes):
    (lookalikes / "me" / "repo").mkdir(parents=True)
    shipped = pretrained.get_pretrained("faces-64")
    assert pretrained.read_spec("faces-64") == ("pretrained", shipped)
    assert pretrained.read_spec("latest") == ("latest", None)
    assert pretrained.read_spec("./faces-64") == ("path", Path("faces-64"))
    assert pretrained.read_spec("faces-64/")[0] == "path"
    assert pretrained.read_spec(lookalikes / "faces-64")[0] == "path"  # a pathlib.Path is always a path
    assert pretrained.read_spec("me/repo")[0] == "path"  # an existing path with a separator is a path
    assert pretrained.read_spec("me/other") == ("hub", "me/other")  # else USER/REPO is a hub id
    assert pretrained.read_spec("hf:me/repo") == ("hub", "me/repo")  # hf: always the hub
    with pytest.raises(aekit.CheckpointError, match="not a hub id"):
        pretrained.read_spec("hf:nope")
    assert pretrained.resolve_model("faces-64").note.startswith("note: faces-64 means the pretrained model faces-64")
    assert "the latest `aekit train` run" in pretrained.shadowed_folder_note("latest")
    assert pretrained.resolve_model("./faces-64").note == "" and pretrained.resolve_model("faces-64-x").note == ""


def test_a_default_never_reads_the_current_directory(lookalikes):
    result = runner.invoke(cli, ["models", "default", "faces-64-denoise", "--task", "denoise"])
    assert result.exit_code == 0 and "write it as a path: ./faces-64-denoise" in result.stderr
    assert pretrained.read_defaults() == {"denoise": "faces-64-denoise"}
    assert aekit.load(task="denoise").pretrained_name == "faces-64-denoise"
    assert runner.invoke(cli, ["models", "default", "./faces-64-denoise"]).exit_code == 0  # stored absolute
    assert pretrained.read_defaults()[""] == str((lookalikes / "faces-64-denoise").resolve())
    assert runner.invoke(cli, ["models", "default", "me/faces", "--task", "denoise"]).exit_code == 0
    assert pretrained.read_defaults()["denoise"] == "hf:me/faces"
    (lookalikes / "me" / "faces").mkdir(parents=True)  # a folder named like the hub id: still the hub
    assert pretrained.resolve_model(None, "denoise").spec == "hf:me/faces"
    (aekit.paths.aekit_home() / pretrained.DEFAULTS_NAME).write_text(json.dumps({"denoise": "me/faces"}))
    assert pretrained.resolve_model(None, "denoise").spec == "hf:me/faces"  # as older aekit stored it
