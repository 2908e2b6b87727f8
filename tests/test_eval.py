"""`aekit eval` (plugin aekit_eval): every table on held-out data, the right split for the baselines, the files."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import aekit
import aekit.plugins
from aekit.cli import cli
from aekit.synthetic import make_faces

runner = CliRunner()

TRAIN = "synthetic:96"       # the tiny model's training data (a quarter held out for validation)
TRAIN_IMAGES = 72
EVAL = "synthetic:24:1"      # another seed: faces the model never saw
LATENT = 16

NOISE_PLUGIN = """
import numpy as np
import aekit

def make(argument):
    sigma = float(argument)
    return lambda images, rng: images + rng.normal(0.0, sigma, images.shape)

@aekit.hookimpl
def register_noise_models(register):
    register("evalnoise", make, help="Gaussian noise for the eval tests; argument: sigma")
"""


from helpers import fails, invoke  # noqa: E402


def fails_quietly(*args, message):
    """helpers.fails for a --quiet command: exit status 1 and exactly one line, the error naming the problem."""
    return fails(*args, "--quiet", message=message, code=1, alone=True)


def finite(value) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def has_noise(name: str) -> bool:
    return name in aekit.plugins.get_registry().names("noise_model")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, module_home):
    """The small preset with a 16-d latent, one epoch on 96 synthetic faces (a quarter held out): a training record."""
    from aekit.train import Trainer, TrainConfig

    out = tmp_path_factory.mktemp("eval_model") / "model"
    config = TrainConfig(data=TRAIN, arch="small", epochs=1, batch_size=32, lr=2e-3, sample_every=0, val_fraction=0.25,
                         model_config={"latent_dim": LATENT})
    Trainer(config, out, progress=False, log=lambda message: None, run_hooks=False).run()
    return out


@pytest.fixture
def untrained(tmp_path):
    """A tiny untrained model saved with save_pretrained: no training record."""
    torch.manual_seed(0)
    return aekit.create_model("small", latent_dim=LATENT).save_pretrained(tmp_path / "untrained")


@pytest.fixture(scope="module")
def full_report(tmp_path_factory, trained):
    """One run with every table: --baselines, --noise (when a gaussian noise model is registered), --labels."""
    out = tmp_path_factory.mktemp("eval_report") / "report"
    noise = ["--noise", "gaussian:0.1"] if has_noise("gaussian") else []
    result = invoke("eval", "--model", trained, "--data", EVAL, "--baselines", *noise, "--bm3d-images", "3", "--labels", "--out", out,
                    "--quiet")
    return json.loads((out / "report.json").read_text(encoding="utf-8")), out, result.output


# --- the report --------------------------------------------------------------------------------------------


def test_reconstruction_table_reads_bytes_to_quality(full_report):
    report, _, _ = full_report
    rows = {r["method"]: r for r in report["reconstruction"]["rows"]}
    assert list(rows)[:3] == [f"aekit ({LATENT}-d float32 latent)", f"aekit ({LATENT}-d int8 latent)",
                              f"PCA-{LATENT} (float32 coefficients)"]
    assert [m.split()[0] for m in list(rows)[3:]] == ["JPEG", "WebP"]
    assert rows[f"aekit ({LATENT}-d float32 latent)"]["bytes_per_image"] == LATENT * 4
    assert LATENT <= rows[f"aekit ({LATENT}-d int8 latent)"]["bytes_per_image"] < LATENT * 2
    assert rows[f"PCA-{LATENT} (float32 coefficients)"]["bytes_per_image"] == LATENT * 4
    for row in rows.values():
        assert all(finite(row[k]) for k in ("bytes_per_image", "mse", "psnr", "ssim")), row
        assert 0 < row["mse"] < 1 and -1 <= row["ssim"] <= 1
        assert row["psnr"] >= 10 * np.log10(1 / row["mse"]) - 1e-6  # a mean of per-image PSNRs (Jensen)
    for row in list(rows.values())[3:]:
        settings = row["settings"]
        assert 1 <= settings["quality"] <= 100 and settings["target_bytes"] == LATENT * 4
        tried = {int(q): s for q, s in settings["mean_bytes_by_quality"].items()}
        assert settings["quality"] in tried
    assert report["reconstruction"]["latent_bytes"] == {"float32": LATENT * 4, "int8": LATENT}
    assert report["data"]["eval"] == {"source": EVAL, "description": "synthetic:24:1", "images": 24, "skipped": 0}
    assert TRAIN in report["data"]["model_training"]


def test_denoising_table(full_report):
    report, out, _ = full_report
    assert "denoising" in report  # aekit_denoise ships with aekit: its gaussian noise is always registered
    section = report["denoising"]
    assert section["tuning_images"] == 6 and section["images"] == 18  # 24 // 4 tune, the rest reported
    (table,) = section["tables"]
    assert table["noise"] == "gaussian:0.1"
    methods = [r["method"] for r in table["rows"]]
    assert methods[:4] == ["noisy input", "aekit model.denoise", "scikit-image NL-means", "scikit-image TV"]
    from aekit_eval.denoise import BM3D_MISSING, bm3d_version

    if bm3d_version() is None:  # the bm3d package (non-commercial licence) is optional: eval says it is absent
        assert len(methods) == 4 and section["bm3d"]["line"] == BM3D_MISSING
    else:  # BM3D on the first 3 reported images, told the true sigma, beats the noisy input on the same images
        assert methods[4] == "BM3D (first 3 images)" and table["rows"][4]["parameter"] == "sigma = 0.1 (true)"
        same = table["rows"][4]["same_images_psnr"]
        assert same["BM3D"] > same["noisy"] + 3
    assert all(finite(r["psnr"]) and finite(r["ssim"]) for r in table["rows"])
    assert 17 < table["rows"][0]["psnr"] < 23  # sigma 0.1 on [0, 1]: about 20 dB
    assert table["rows"][2]["psnr"] > table["rows"][0]["psnr"]  # tuned NL-means beats doing nothing
    assert (out / table["grid"]).is_file()


def test_features_table(full_report):
    report, _, _ = full_report
    section = report["features"]
    assert section["train_images"] == TRAIN_IMAGES and section["test_images"] == 24
    assert len(section["labels"]) >= 3 and set(section["labels"]) <= set(aekit.synthetic.ATTRIBUTE_NAMES)
    rows = {r["method"]: r for r in section["rows"]}
    assert list(rows) == ["aekit latents", f"PCA-{LATENT} of pixels", "raw pixels", "majority class"]
    assert rows["aekit latents"]["dims"] == LATENT and rows["raw pixels"]["dims"] == 64 * 64 * 3
    assert len(section["pixel_labels"]) == 5 and rows["raw pixels"]["labels"] == 5
    for name, row in rows.items():
        expected = 5 if name == "raw pixels" else len(section["labels"])
        assert len(row["per_label"]) == expected
        for score in row["per_label"].values():
            assert 0 <= score["accuracy"] <= 1 and 0 <= score["balanced_accuracy"] <= 1
        assert finite(row["mean_accuracy"]) and finite(row["mean_accuracy_pixel_labels"])
    assert rows["majority class"]["mean_balanced_accuracy"] <= 0.5 + 1e-9


def test_report_files_render(full_report):
    from aekit_eval.report import linked_images, missing_links

    report, out, output = full_report
    markdown = (out / "report.md").read_text(encoding="utf-8")
    links = linked_images(markdown)
    assert "reconstruction.png" in links and missing_links(out / "report.md") == []
    assert all("/" not in link for link in links)  # relative, beside report.md
    for link in links:
        with Image.open(out / link) as image:
            assert image.format == "PNG" and image.width > 8 * 64
    for heading in ("## Reconstruction", "## Features", "| method | bytes per image | MSE | PSNR (dB) | SSIM |", EVAL, TRAIN):
        assert heading in markdown
    assert ("## Denoising" in markdown) == ("denoising" in report)
    assert not list(out.glob(".*"))  # atomic writes leave no temporary files
    assert report["format"] == "aekit-eval-report" and report["command"].startswith("aekit eval --model ")
    for heading in ("reconstruction (24 images)", "features (linear probe", "PSNR (dB)", "wrote "):
        assert heading in output


def test_optimised_latents_row(trained, tmp_path):
    out = tmp_path / "report"
    invoke("eval", "--model", trained, "--data", EVAL, "--optimize-steps", 10, "--out", out, "--quiet")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    rows = {r["method"]: r for r in report["reconstruction"]["rows"]}
    plain, optimised = rows[f"aekit ({LATENT}-d float32 latent)"], rows[f"aekit ({LATENT}-d float32 latent, 10 optimisation steps)"]
    assert optimised["bytes_per_image"] == plain["bytes_per_image"] == LATENT * 4  # same bytes, same decoder
    assert optimised["mse"] < plain["mse"] and optimised["psnr"] > plain["psnr"]
    assert optimised["settings"]["optimize_steps"] == 10 and "--optimize-steps 10" in report["command"]
    assert "10 optimisation steps" in (out / "report.md").read_text(encoding="utf-8")


def test_optimised_latents_refused_for_a_skip_model(tmp_path):
    torch.manual_seed(0)
    model = aekit.create_model("unet", widths=(8, 16), latent_dim=LATENT).save_pretrained(tmp_path / "unet")
    fails_quietly("eval", "--model", model, "--data", EVAL, "--optimize-steps", 5, "--out", tmp_path / "r", message="skip connections")
    result = runner.invoke(cli, ["eval", "--model", str(model), "--data", EVAL, "--optimize-steps", "-1"])
    assert result.exit_code == 2 and "--optimize-steps" in result.output


# --- the right split ----------------------------------------------------------------------------------


def test_baselines_are_fitted_on_the_training_split(trained, tmp_path, monkeypatch):
    """PCA sees exactly the run's training images (its validation share left out), never the evaluation images."""
    import aekit_eval.codecs as codecs
    from aekit.checkpoint import read_config
    from aekit.train import training_images

    seen = []
    original = codecs.fit_pca

    def spy(pixels, components, seed=0):
        seen.append(np.array(pixels))
        return original(pixels, components, seed)

    monkeypatch.setattr(codecs, "fit_pca", spy)
    invoke("eval", "--model", trained, "--data", EVAL, "--limit", 8, "--baselines", "--out", tmp_path / "r", "-q")
    (pixels,) = seen
    expected = training_images(read_config(trained)["training"]["settings"], 64, progress=False)
    assert pixels.shape == (TRAIN_IMAGES, 64 * 64 * 3)
    np.testing.assert_array_equal(pixels, expected.transpose(0, 2, 3, 1).reshape(TRAIN_IMAGES, -1) / np.float32(255))
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["data"]["train"]["images"] == TRAIN_IMAGES and report["data"]["train"]["from"] == "the model's training record"
    pca = next(r for r in report["reconstruction"]["rows"] if r["method"].startswith("PCA"))
    assert pca["settings"]["train_images"] == TRAIN_IMAGES and "validation share" in pca["settings"]["fitted_on"]
    assert "denoising" not in report and "features" not in report


def test_train_data_and_a_labels_csv(untrained, face_folder, tmp_path):
    """--train-data for a checkpoint without a record; --labels FILE.csv gives both splits their labels."""
    images, attrs = make_faces(40, seed=8, size=64)
    train_dir = tmp_path / "train"
    train_dir.mkdir()
    lines = [(face_folder / "attributes.csv").read_text(encoding="utf-8").strip()]
    for i, image in enumerate(images):
        Image.fromarray(image).save(train_dir / f"t{i:03d}.png")
        lines.append(f"t{i:03d}.png,{2 * int(attrs['Smiling'][i]) - 1},{2 * int(attrs['Male'][i]) - 1}")
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "r"
    invoke("eval", "--model", untrained, "--data", face_folder, "--train-data", train_dir, "--baselines",
           "--labels", csv_path, "--pixel-labels", 0, "--out", out, "-q")
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["train"]["images"] == 40 and report["data"]["train"]["from"] == "--train-data"
    assert "not recorded" in report["data"]["model_training"]
    features = report["features"]
    assert features["labels"] == ["Smiling", "Male"] and features["label_source"] == str(csv_path)
    assert [r["method"] for r in features["rows"]] == ["aekit latents", f"PCA-{LATENT} of pixels", "majority class"]
    assert features["test_images"] == 12 and features["train_images"] == 40


def test_denoising_with_a_plugin_noise_model(untrained, install_plugin, tmp_path):
    install_plugin("aekit-evalnoise", "evalnoise", "aekit_evalnoise_plugin", NOISE_PLUGIN)
    out = tmp_path / "r"
    invoke("eval", "--model", untrained, "--data", "synthetic:12:2", "--train-data", "synthetic:20:3",
           "--noise", "evalnoise:0.1", "--noise", "evalnoise:0.05", "--bm3d-images", "0", "--out", out, "-q")
    report = json.loads((out / "report.json").read_text())
    section = report["denoising"]
    assert section["tuning_images"] == 3 and section["images"] == 9
    assert [t["noise"] for t in section["tables"]] == ["evalnoise:0.1", "evalnoise:0.05"]
    from aekit_eval.denoise import NL_MEANS_GRID, TV_GRID

    for table in section["tables"]:
        rows = {r["method"]: r for r in table["rows"]}
        assert rows["scikit-image NL-means"]["tuning"]["multiple"] in NL_MEANS_GRID
        assert rows["scikit-image TV"]["tuning"]["multiple"] in TV_GRID
        assert len(rows["scikit-image TV"]["tuning"]["grid_psnr"]) == len(TV_GRID) <= 5
        assert all(finite(r["psnr"]) and finite(r["ssim"]) for r in rows.values())
        assert (out / table["grid"]).is_file()
    assert section["tables"][1]["rows"][0]["psnr"] > section["tables"][0]["rows"][0]["psnr"]  # less noise, higher PSNR
    assert "baselines" not in report["reconstruction"] and len(report["reconstruction"]["rows"]) == 2


def test_denoising_falls_back_to_reconstruct(untrained, install_plugin, tmp_path, monkeypatch):
    """A model class without `denoise` (before it existed) is measured by its reconstruction."""
    install_plugin("aekit-evalnoise", "evalnoise", "aekit_evalnoise_plugin", NOISE_PLUGIN)
    monkeypatch.delattr(aekit.Autoencoder, "denoise", raising=False)
    invoke("eval", "--model", untrained, "--data", "synthetic:8:2", "--noise", "evalnoise:0.1", "--bm3d-images", "0",
           "--out", tmp_path / "r", "-q")
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["denoising"]["tables"][0]["rows"][1]["method"] == "aekit reconstruct (model has no denoise)"


# --- a model whose training data is not here (trained elsewhere, or its folder since deleted) ---------------


@pytest.mark.parametrize("which", ["deleted-folder", "no-record"])
def test_a_model_whose_training_data_is_gone_still_gets_the_rest_of_the_report(tmp_path, untrained, which):
    from aekit.train import Trainer, TrainConfig

    if which == "deleted-folder":
        folder = tmp_path / "faces"
        folder.mkdir()
        for i, image in enumerate(make_faces(40, seed=5, size=64)[0]):
            Image.fromarray(image).save(folder / f"{i:03d}.png")
        model = tmp_path / "model"
        Trainer(TrainConfig(data=str(folder), arch="small", epochs=1, batch_size=20, sample_every=0,
                            model_config={"latent_dim": LATENT}), model, progress=False, log=lambda m: None).run()
        shutil.rmtree(folder)
        reason = f"the images the model trained on are not here ({folder}: no such file or folder"
    else:
        model, reason = untrained, "the checkpoint records no training data"
    out = tmp_path / "report"
    result = invoke("eval", "--model", model, "--data", EVAL, "--baselines", "--labels", "--out", out, "--quiet")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and reason in notes[0] and "give --train-data SOURCE" in notes[0], result.stderr
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    methods = [row["method"] for row in report["reconstruction"]["rows"]]
    assert not any(m.startswith("PCA") for m in methods) and any(m.startswith("JPEG") for m in methods), methods
    assert report["data"]["overlap_checked"] is False and reason in report["data"]["training_data_missing"]
    assert "give --train-data SOURCE" in report["features_left_out"] and "features" not in report
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert f"could not be checked: {reason}" in markdown and "## Features" in markdown
    with_train = invoke("eval", "--model", model, "--data", EVAL, "--train-data", "synthetic:60:7", "--baselines",
                        "--out", tmp_path / "again", "--quiet")  # what the note says to do
    rows = json.loads((tmp_path / "again" / "report.json").read_text(encoding="utf-8"))["reconstruction"]["rows"]
    assert with_train.exit_code == 0 and any(row["method"].startswith("PCA") for row in rows), with_train.output


# --- one-line errors ----------------------------------------------------------------------------------------


def test_errors_are_one_line(trained, untrained, tmp_path):
    out = tmp_path / "r"
    fails_quietly("eval", "--model", trained, "--out", out, message="give --data SOURCE")
    fails_quietly("eval", "--model", trained, "--data", tmp_path / "missing", "--out", out, message="no such file or folder")
    fails_quietly("eval", "--model", trained, "--data", TRAIN, "--out", out, message="is the data the model trained on")
    fails_quietly("eval", "--model", trained, "--data", "synthetic:30", "--out", out,  # the first 30 of the 96 it trained on
                  message="30 of its images are among the synthetic:96 images the model trained on")
    fails_quietly("eval", "--model", trained, "--data", EVAL, "--train-data", EVAL, "--baselines", "--out", out,
                  message="--train-data and --data are both")
    fails_quietly("eval", "--model", trained, "--data", EVAL, "--noise", "nosuchnoise:0.1", "--out", out, message="unknown noise model")
    fails_quietly("eval", "--model", trained, "--data", EVAL, "--noise", "", "--out", out, message="empty noise spec")
    fails_quietly("eval", "--model", trained, "--data", EVAL, "--labels", tmp_path / "none.csv", "--out", out, message="no such file")
    fails_quietly("eval", "--model", trained, "--data", EVAL, "--limit", 1, "--noise", "gaussian:0.1" if has_noise("gaussian") else "x",
                  "--out", out, message="--noise needs at least 2" if has_noise("gaussian") else "unknown noise model")
    assert not out.exists()  # every refusal comes before any file is written
    arrays = tmp_path / "faces.npy"
    np.save(arrays, make_faces(8, seed=1, size=64)[0])
    fails_quietly("eval", "--model", untrained, "--data", arrays, "--train-data", "synthetic:20", "--labels", "--out", out,
                  message="has no labels")


def test_overlap_by_position_in_one_source(face_folder):
    from aekit_eval.splits import overlap

    assert overlap(f"{face_folder}/[6:]", None, f"{face_folder}[:8]") == 2
    assert overlap(f"{face_folder}[8:]", None, f"{face_folder}/[:8]") == 0
    assert overlap(str(face_folder), 3, str(face_folder), skip=2) == 1  # eval: 0-2, train: 2-11
    assert overlap("synthetic:40", None, "synthetic:96") == 40  # the same faces, whatever N says
    assert overlap("synthetic:40:1", None, "synthetic:96") == 0
    assert overlap(str(face_folder), None, "synthetic:96") is None  # different sources: nothing to compare


# --- the pieces -----------------------------------------------------------------------------------------------


def test_matched_quality_is_the_closest_size():
    from aekit_eval.codecs import match_quality, mean_size

    images = make_faces(16, seed=4, size=64)[0]
    for fmt in ("JPEG", "WEBP"):
        target = mean_size(images, fmt, 40)
        best, tried = match_quality(images, fmt, target)
        size = tried.get(best, mean_size(images, fmt, best))
        for neighbour in (best - 1, best + 1):
            if 1 <= neighbour <= 100:
                assert abs(size - target) <= abs(mean_size(images, fmt, neighbour) - target)
    assert match_quality(images, "JPEG", 1.0)[0] == 1 and match_quality(images, "WEBP", 1e9)[0] == 100


def test_quality_measures_agree_with_aekit_metrics():
    from aekit.metrics import ssim as aekit_ssim
    from aekit_eval.quality import estimate_sigma, psnr, ssim

    clean = make_faces(6, seed=2, size=64)[0].astype(np.float32) / 255
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    as_tensor = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2) * 2 - 1  # noqa: E731
    np.testing.assert_allclose(ssim(noisy, clean), aekit_ssim(as_tensor(noisy), as_tensor(clean)), atol=1e-4)
    mse = ((noisy - clean) ** 2).reshape(6, -1).mean(1)
    np.testing.assert_allclose(psnr(noisy, clean), 10 * np.log10(1 / mse), rtol=1e-4)
    flat = np.full((4, 64, 64, 3), 0.5, dtype=np.float32) + np.random.default_rng(1).normal(0, 0.1, (4, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(estimate_sigma(flat), 0.1, rtol=0.05)


# --- --align ---


@pytest.fixture
def face_photos(tmp_path):
    """group.png (two faces), solo.jpg (one) and empty.png (none), with a CelebA-style attributes.csv at the root."""
    from helpers import write_face_photos

    folder = write_face_photos(tmp_path / "photos")
    (folder / "attributes.csv").write_text("image_id,Smiling,Male\ngroup.png,1,-1\nsolo.jpg,-1,1\nempty.png,1,1\n",
                                           encoding="utf-8")
    return folder


def _faces_csv(path) -> list[dict]:
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_eval_align_on_evaluates_each_face_and_labels_follow_the_faces(tmp_path, untrained, face_photos):
    out = tmp_path / "report"
    result = invoke("eval", "--model", untrained, "--data", face_photos, "--align", "on", "--labels",
                    "--train-data", "synthetic:200:3", "--pixel-labels", "0", "--out", out, "--quiet")
    assert "Traceback" not in result.output
    assert [line for line in result.stderr.splitlines() if "empty.png" in line] == ["skipped: empty.png: no face found"]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["data"]["eval"]["images"] == 3 and report["data"]["eval"]["skipped"] == 1
    align = report["data"]["align"]
    assert align["mode"] == "on" and align["faces"] == 3 and align["whole_images"] == 0 and align["placements"] == "faces.csv"
    assert report["settings"]["align"] == "on" and "--align on" in report["command"]
    assert report["features"]["test_images"] == 3  # the group's two faces count twice
    rows = _faces_csv(out / "faces.csv")
    assert [(r["name"], r["photo"], r["face"]) for r in rows] == [
        ("group.png#0", "group.png", "0"), ("group.png#1", "group.png", "1"), ("solo.jpg#0", "solo.jpg", "0")]
    assert float(rows[0]["box_w"]) > float(rows[1]["box_w"]) > 0
    assert "--align on: 3 face(s) of 2 image(s)" in (out / "report.md").read_text(encoding="utf-8")
    assert "--align on: 3 face(s) of 2 image(s)" in result.stdout

    # the labels follow the faces: from the source's attributes, and from a CSV keyed by the photo's name
    from aekit_eval import probe, splits

    evaluation = splits.load_eval(str(face_photos), 64, None, False, "on")
    assert evaluation.names == ["group.png#0", "group.png#1", "solo.jpg#0"]
    assert evaluation.photo_names == ["group.png", "group.png", "solo.jpg"]
    assert evaluation.attributes["Smiling"].tolist() == [1, 1, 0] and evaluation.attributes["Male"].tolist() == [0, 0, 1]
    (tmp_path / "labels.csv").write_text("file,Glasses\ngroup.png,1\nsolo.jpg,0\n", encoding="utf-8")
    labels = probe.read_labels(evaluation.attributes, evaluation.photo_names, tmp_path / "labels.csv")
    assert labels["Glasses"].tolist() == [1, 1, 0]


def test_eval_align_auto_uses_an_image_without_a_face_whole(tmp_path, untrained, face_photos):
    out = tmp_path / "report"
    result = invoke("eval", "--model", untrained, "--data", face_photos, "--out", out, "--quiet")  # auto: the default
    assert "skipped" not in result.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["data"]["eval"]["images"] == 4 and report["data"]["eval"]["skipped"] == 0
    assert report["data"]["align"]["mode"] == "auto" and report["data"]["align"]["whole_images"] == 1
    assert "--align" not in report["command"]  # the default
    rows = _faces_csv(out / "faces.csv")
    assert (rows[0]["name"], rows[0]["face"], rows[0]["box_x"]) == ("empty.png", "-1", "")
    assert [r["name"] for r in rows[1:]] == ["group.png#0", "group.png#1", "solo.jpg#0"]


def test_eval_align_off_is_as_before(tmp_path, untrained, face_photos):
    out = tmp_path / "report"
    result = invoke("eval", "--model", untrained, "--data", face_photos, "--align", "off", "--out", out, "--quiet")
    assert "skipped" not in result.output and "face(s)" not in result.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["data"]["eval"] == {"source": str(face_photos), "description": str(face_photos), "images": 3, "skipped": 0}
    assert report["data"]["align"] == {"mode": "off"} and not (out / "faces.csv").exists()
    from aekit_eval import splits

    from aekit.data import prepare

    evaluation = splits.load_eval(str(face_photos), 64, None, False, "off")  # each photo resized as it is
    expected = prepare(str(face_photos), 64, progress=False)
    np.testing.assert_array_equal(evaluation.images, expected.images.transpose(0, 2, 3, 1))
    assert evaluation.names == ["empty.png", "group.png", "solo.jpg"] and evaluation.placements is None


# --- a codec model: the rate-distortion section ---------------------------------------------------------------

TINY_CODEC = dict(image_size=32, width=16, analysis_width=12, latent_channels=8, downsamplings=3, qualities=3,
                  lambdas=(0.002, 0.01, 0.05), default_quality=2)  # test_codec.py's tiny codec
CODEC_EVAL = "synthetic:12:1"


@pytest.fixture(scope="module")
def tiny_codec(tmp_path_factory, module_home):
    """A tiny codec trained 60 steps on synthetic faces (rates that grow with the quality): its run folder, whose
    integer tables are not fixed, and the same model saved with its tables fixed (as a packaged one has them)."""
    torch.manual_seed(0)
    model = aekit.create_model("codec", **TINY_CODEC)
    images = torch.from_numpy(make_faces(64, seed=0, size=32)[0]).permute(0, 3, 1, 2).float() / 127.5 - 1
    optimizer = torch.optim.Adam(model.optimizer_groups(5e-3))
    model.train()
    for step in range(60):
        x = images[(step * 16) % 64 : (step * 16) % 64 + 16]
        loss, _ = model.training_loss(model(x), x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    root = tmp_path_factory.mktemp("codec")
    run = model.save_pretrained(root / "run")
    model.fix_entropy_tables()
    return {"run": run, "fixed": model.save_pretrained(root / "fixed")}


def test_eval_on_a_codec_draws_its_rate_distortion_curve_against_pillow(tiny_codec, tmp_path):
    from PIL import features

    from aekit_eval import splits
    from aekit_eval.rate_distortion import SWEEPS, sweep_span
    from aekit_eval.report import linked_images, missing_links

    out = tmp_path / "report"
    result = invoke("eval", "--model", tiny_codec["fixed"], "--data", CODEC_EVAL, "--align", "off", "--out", out, "--quiet")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    section = report["rate_distortion"]
    assert section["images"] == 12 and section["tables"] == "stored with the model"
    rows = section["rows"]
    assert [(r["method"], r["quality"]) for r in rows] == [(f"aekit codec, quality {q}", q) for q in (1, 2, 3)]
    sizes = [r["bytes_per_image"] for r in rows]
    assert sizes[0] < sizes[1] < sizes[2], sizes  # more bytes at every higher quality
    # the real bitstreams' bytes, the streams alone (the .npz's container is on top, and noted)
    model = aekit.load(tiny_codec["fixed"])
    faces = splits.load_eval(CODEC_EVAL, 32, None, False, "off").images
    for row in rows:
        assert row["bytes_per_image"] == pytest.approx(np.mean([len(s) for s in model.compress_faces(faces, row["quality"])]))
        assert finite(row["file_bytes_per_image"]) and row["file_bytes_per_image"] > 0  # the whole .npz, over N
        assert finite(row["psnr"]) and 0 < row["ssim"] <= 1
    assert any(note.startswith("container: ") for note in section["notes"])
    # Pillow's formats, each swept over all its settings, and read at the codec's bytes only within its sweep
    formats = ["JPEG", "WEBP"] + (["AVIF"] if features.check("avif") else [])
    assert section["formats"] == formats
    for fmt in formats:
        sweep = section["pillow"][fmt]["rows"]
        assert [r["quality"] for r in sweep] == list(SWEEPS[fmt])
        assert all(finite(r["bytes_per_image"]) and finite(r["psnr"]) and finite(r["ssim"]) for r in sweep)
        low, high = sweep_span(sweep)
        for row in rows:
            assert (row["matched"][fmt] is None) == (not low <= row["file_bytes_per_image"] <= high)  # at the whole file's bytes
    assert section["pillow"]["JPEG"]["settings"] == {"optimize": True} and section["pillow"]["WEBP"]["settings"] == {"method": 6}
    # the reconstruction table: the default quality's row, the same numbers
    (row,) = report["reconstruction"]["rows"]
    assert row["method"] == "aekit codec, quality 2 (default)" and row["bytes_per_image"] == rows[1]["bytes_per_image"]
    assert row["psnr"] == rows[1]["psnr"] and report["model"]["codec"]["qualities"] == 3
    # the files: the plot beside the report and shown in it, the table's rows in report.md and on stdout
    with Image.open(out / "rd_curve.png") as image:
        assert image.format == "PNG"
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "rd_curve.png" in linked_images(markdown) and missing_links(out / "report.md") == []
    assert "## Rate–distortion" in markdown and "JPEG PSNR / SSIM at same bytes" in markdown
    for q in (1, 2, 3):
        assert f"| aekit codec, quality {q} |" in markdown and f"aekit codec, quality {q} " in result.stdout
    assert "| JPEG | 90 |" in markdown and "| WebP | 90 |" in markdown
    assert "rate-distortion (12 faces" in result.stdout and f"{out}/rd_curve.png" in result.stdout


def test_eval_on_a_codec_run_fixes_its_tables_and_leaves_out_what_does_not_apply(tiny_codec, tmp_path):
    out = tmp_path / "report"
    result = invoke("eval", "--model", tiny_codec["run"], "--data", CODEC_EVAL, "--baselines", "--noise", "gaussian:0.1",
                    "--optimize-steps", 3, "--labels", "--train-data", "synthetic:40:5", "--pixel-labels", 0,
                    "--runtime", "torch", "--out", out, "--quiet")
    assert "Traceback" not in result.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    section = report["rate_distortion"]
    assert section["tables"] == "fixed in memory for this report" and "fixed in memory" in section["notes"][0]
    assert [r["quality"] for r in section["rows"]] == [1, 2, 3]
    notes = report["reconstruction"]["notes"]
    assert any(n.startswith("--baselines: PCA and JPEG / WebP at the latent's bytes are left out") for n in notes)
    assert any(n.startswith("--optimize-steps: left out") for n in notes)
    assert [r["method"] for r in report["reconstruction"]["rows"]] == ["aekit codec, quality 2 (default)"]
    assert "denoising" not in report and "does not denoise" in report["denoising_left_out"]
    assert "Left out: a codec model does not denoise" in (out / "report.md").read_text(encoding="utf-8")
    # the probes still read the codec's latents (its analysis's, what it rounds into symbols)
    features = report["features"]
    assert features["rows"][0]["method"] == "aekit latents" and features["rows"][0]["dims"] == 8 * 4 * 4
    assert "note: a codec model does not denoise" in result.stderr


def test_at_bytes_reads_a_sweep_linearly_between_its_two_nearest_settings_and_never_beyond():
    from aekit_eval.rate_distortion import at_bytes, matched

    curve = [(300.0, 30.0, 0.9), (100.0, 20.0, 0.5), (200.0, 26.0, 0.8)]  # (bytes, PSNR, SSIM), in any order
    assert at_bytes(curve, 150.0) == pytest.approx((23.0, 0.65))
    assert at_bytes(curve, 275.0) == pytest.approx((29.0, 0.875))
    assert at_bytes(curve, 100.0) == pytest.approx((20.0, 0.5)) and at_bytes(curve, 300.0) == pytest.approx((30.0, 0.9))
    assert at_bytes(curve, 99.9) is None and at_bytes(curve, 300.1) is None and at_bytes([], 100.0) is None
    sweeps = {fmt: [{"quality": i, "bytes_per_image": b, "psnr": p, "ssim": s} for i, (b, p, s) in enumerate(rows)]
              for fmt, rows in (("JPEG", curve), ("WEBP", [(50.0, 25.0, 0.7), (120.0, 28.0, 0.8)]))}
    reading = matched(sweeps, 110.0)
    assert reading["JPEG"] == pytest.approx({"psnr": 20.6, "ssim": 0.53})
    assert reading["WEBP"] == pytest.approx({"psnr": 28.0 - 3.0 * 10 / 70, "ssim": 0.8 - 0.1 * 10 / 70})
    assert matched(sweeps, 40.0) == {"JPEG": None, "WEBP": None}
