"""The embed plugin: the features .npz, labels from every source, AutoencoderEmbedder, classify and cluster."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import aekit
import aekit.plugins
from aekit.features import FeatureFileError, UnknownLabelError, load_features, save_features
from aekit.synthetic import ATTRIBUTE_NAMES, face_attributes, make_faces

runner = CliRunner()


from helpers import fails, invoke  # noqa: E402


def _tiny(directory, image_size=32, seed=0):
    torch.manual_seed(seed)
    model = aekit.create_model("article", image_size=image_size, widths=(8, 16), convs_per_half=1, latent_dim=16)
    return model.save_pretrained(directory)


@pytest.fixture
def tiny_model_dir(tmp_path):
    return _tiny(tmp_path / "model")


@pytest.fixture(scope="module")
def tiny16(tmp_path_factory, module_home):
    """A tiny untrained 16x16 model (768 values per flattened image), for the estimator tests."""
    return _tiny(tmp_path_factory.mktemp("tiny16") / "model", image_size=16)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, module_home):
    """The small preset at 32x32, trained for 2 epochs on 400 synthetic faces (a few seconds)."""
    from aekit.train import Trainer, TrainConfig

    out = tmp_path_factory.mktemp("trained") / "model"
    config = TrainConfig(data="synthetic:400", arch="small", epochs=2, lr=2e-3, sample_every=0, model_config={"image_size": 32})
    Trainer(config, out, progress=False, log=lambda message: None, run_hooks=False).run()
    return out


@pytest.fixture(scope="module")
def trained_feats(tmp_path_factory, trained):
    out = tmp_path_factory.mktemp("trained_feats") / "feats.npz"
    invoke("embed", "synthetic:400", "-m", trained, "--out", out, "-q", "--features", "latent")
    return out


def _write_folder(root, count=6, size=32, seed=5, broken=False):
    images, attrs = make_faces(count, seed=seed, size=size)
    root.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(root / f"face{i}.png")
    if broken:
        (root / "broken.jpg").write_bytes(b"not a jpeg")
    return images, attrs


# --- the format ------------------------------------------------------------------------------------


def test_format_round_trip_and_load_features(tmp_path, tiny_model_dir):
    model = aekit.load(tiny_model_dir)
    X = np.random.default_rng(0).normal(size=(5, 16)).astype(np.float32)
    labels = {"Male": np.array([0, 1, 1, -1, 0]), "species": np.array([1, 0, 2, 1, -1])}
    save_features(tmp_path / "f.npz", X, list("abcde"), model, labels, files=[""] * 5, meta={"inputs": ["x"]},
                  label_classes={"species": ["cat", "dog", "eel"]})
    with np.load(tmp_path / "f.npz", allow_pickle=False) as archive:  # plain arrays, no pickle
        assert sorted(archive.files) == ["features", "files", "label_names", "labels", "meta", "model_id", "paths"]
        assert archive["labels"].shape == (5, 2) and archive["labels"].dtype == np.int64
        assert json.loads(str(archive["meta"]))["format"] == "aekit-features"
    feats = aekit.load_features(tmp_path / "f.npz")
    assert aekit.load_features is load_features
    assert feats.X.dtype == np.float32 and np.array_equal(feats.X, X)
    assert feats.paths == list("abcde") and feats.label_names == ["Male", "species"] and len(feats) == 5
    assert feats.model_id == aekit.model_fingerprint(model)
    assert feats.y.shape == (5, 2)
    assert feats.target("Male").tolist() == [0, 1, 1, -1, 0]
    assert feats.target("species", as_names=True).tolist() == ["dog", "cat", "eel", "dog", "unknown"]
    assert feats.classes == {"species": ["cat", "dog", "eel"]}
    frame = feats.to_frame()
    assert list(frame.columns[:2]) == ["ae0", "ae1"] and frame["species"].tolist() == [1, 0, 2, 1, -1]
    with pytest.raises(UnknownLabelError, match=r"no label 'Female' \(labels: Male, species\)"):
        feats.target("Female")
    from aekit_embed import load_features as plugin_loader

    assert plugin_loader is load_features

    save_features(tmp_path / "one.npz", X, list("abcde"), model, {"Male": labels["Male"]})
    one = load_features(tmp_path / "one.npz")
    assert one.y.shape == (5,) and one.label_names == ["Male"] and one.target("Male").tolist() == [0, 1, 1, -1, 0]
    save_features(tmp_path / "none.npz", X, list("abcde"), model)
    none = load_features(tmp_path / "none.npz")
    assert none.y is None and none.label_names == []
    with pytest.raises(UnknownLabelError, match="labels: none"):
        none.target("Male")


def test_bad_features_files_are_clear_errors(tmp_path, tiny_model_dir):
    with pytest.raises(FeatureFileError, match="no such file"):
        load_features(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(FeatureFileError, match="not a readable features .npz"):
        load_features(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(FeatureFileError, match="missing features, paths, model_id, meta"):
        load_features(tmp_path / "other.npz")
    np.savez(tmp_path / "pickled.npz", features=np.array([object()]), paths=np.array(["a"]), model_id=np.asarray("x"), meta=np.asarray("{}"))
    with pytest.raises(FeatureFileError, match="pickle"):
        load_features(tmp_path / "pickled.npz")
    _write_folder(tmp_path / "faces", count=2)
    invoke("compress", tmp_path / "faces", "-m", tiny_model_dir, "-o", tmp_path / "z.npz", "-q")
    with pytest.raises(FeatureFileError, match="latent file from `aekit compress`"):
        load_features(tmp_path / "z.npz")


# --- aekit embed: labels from every source -----------------------------------------------------------


def test_embed_synthetic_keeps_the_attributes_and_the_model_identity(tmp_path, tiny_model_dir):
    from aekit.data import prepare

    result = invoke("embed", "synthetic:40", "-m", tiny_model_dir, "--out", tmp_path / "f.npz", "-q", "--batch-size", "16", "--features", "latent")
    assert "40 x 16 latent features" in result.stdout
    feats = load_features(tmp_path / "f.npz")
    model = aekit.load(tiny_model_dir)
    assert feats.model_id == aekit.model_fingerprint(model)
    assert feats.label_names == list(ATTRIBUTE_NAMES) and feats.y.shape == (40, 10)
    for i in (0, 7, 39):
        assert {n: int(feats.target(n)[i]) for n in ATTRIBUTE_NAMES} == face_attributes(i, 0)
    images = prepare("synthetic:40", 32, progress=False).images
    expected = model.encode(torch.from_numpy(np.ascontiguousarray(images)).float() / 127.5 - 1).numpy()
    np.testing.assert_allclose(feats.X, expected, atol=1e-5)
    assert feats.paths[0] == "synthetic-0-000000" and feats.files == [""] * 40
    assert feats.meta["inputs"] == ["synthetic:40"] and feats.meta["label_sources"]["Male"] == "source"

    invoke("embed", "synthetic:40", "-m", tiny_model_dir, "--out", tmp_path / "two.npz", "-q",
           "--label-column", "Male", "--label-column", "Smiling")
    two = load_features(tmp_path / "two.npz")
    assert two.label_names == ["Male", "Smiling"] and two.y.shape == (40, 2)
    assert np.array_equal(two.target("Smiling"), feats.target("Smiling"))
    fails("embed", "synthetic:40", "-m", tiny_model_dir, "--out", tmp_path / "x.npz", "--label-column", "Beard",
          message="--label-column 'Beard': the input has no such attribute (attributes: Male, Smiling, Eyeglasses")


def test_embed_folder_reads_its_attributes_csv(tmp_path, tiny_model_dir, face_folder, face_images):
    _, attrs, names = face_images
    invoke("embed", face_folder, "-m", tiny_model_dir, "--out", tmp_path / "f.npz", "-q")
    feats = load_features(tmp_path / "f.npz")
    assert feats.label_names == ["Smiling", "Male"]
    order = [names.index(p) for p in feats.paths]  # the folder is read in sorted order
    assert sorted(feats.paths) == sorted(names)
    for label in ("Smiling", "Male"):
        assert feats.target(label).tolist() == [int(attrs[label][i]) for i in order]
    assert all(f.startswith("/") and (face_folder / p).samefile(f) for p, f in zip(feats.paths, feats.files))


def test_embed_labels_from_a_csv_with_label_columns(tmp_path, tiny_model_dir):
    _write_folder(tmp_path / "faces", count=5)
    (tmp_path / "labels.csv").write_text(
        "file,species,score,Glasses\n"
        "face0.png,cat,3,1\nface1.png,dog,7,-1\nfaces/face2.png,cat,2,1\nface3.png,eel,,-1\n", encoding="utf-8")
    result = invoke("embed", tmp_path / "faces", "-m", tiny_model_dir, "--out", tmp_path / "f.npz", "-q",
                    "--labels", tmp_path / "labels.csv", "--label-column", "species", "--label-column", "Glasses",
                    "--label-column", "score")
    assert "1 image(s) have no row" in result.stderr  # face4.png
    feats = load_features(tmp_path / "f.npz")
    assert feats.paths == [f"face{i}.png" for i in range(5)]
    assert feats.label_names == ["species", "Glasses", "score"]
    assert feats.classes == {"species": ["cat", "dog", "eel"]}
    assert feats.target("species", as_names=True).tolist() == ["cat", "dog", "cat", "eel", "unknown"]
    assert feats.target("Glasses").tolist() == [1, 0, 1, 0, -1]  # CelebA's -1/1 -> 0/1
    assert feats.target("score").tolist() == [3, 7, 2, -1, -1]
    assert feats.meta["label_sources"]["species"] == "csv:labels.csv"
    fails("embed", tmp_path / "faces", "-m", tiny_model_dir, "--out", tmp_path / "x.npz", "--labels", tmp_path / "labels.csv",
          "--label-column", "Age", message="no column 'Age' (columns: species, score, Glasses)")
    fails("embed", tmp_path / "faces", "-m", tiny_model_dir, "--out", tmp_path / "x.npz", "--labels", tmp_path / "nope.csv",
          message="--labels")
    (tmp_path / "other.csv").write_text("file,x\nzzz.png,1\n", encoding="utf-8")
    fails("embed", tmp_path / "faces", "-m", tiny_model_dir, "--out", tmp_path / "x.npz", "--labels", tmp_path / "other.csv",
          message="none of the 5 images has a row")


def test_embed_labels_from_class_subfolders(tmp_path, tiny_model_dir):
    images, _ = make_faces(5, seed=2, size=32)
    for name, image in zip(["cat/a.png", "cat/b.png", "dog/c.png", "dog/deep/d.png", "loose.png"], images):
        (tmp_path / "pets" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp_path / "pets" / name)
    result = invoke("embed", tmp_path / "pets", "-m", tiny_model_dir, "--out", tmp_path / "f.npz", "-q", "--labels-from-folders")
    assert "1 image(s) are not in a class subfolder" in result.stderr
    feats = load_features(tmp_path / "f.npz")
    assert feats.label_names == ["class"] and feats.classes == {"class": ["cat", "dog"]}
    assert dict(zip(feats.paths, feats.target("class", as_names=True))) == {
        "cat/a.png": "cat", "cat/b.png": "cat", "dog/c.png": "dog", "dog/deep/d.png": "dog", "loose.png": "unknown"}
    # image files named one by one: their folder is the class
    invoke("embed", tmp_path / "pets/cat/a.png", tmp_path / "pets/dog/c.png", "-m", tiny_model_dir, "--out", tmp_path / "g.npz",
           "-q", "--labels-from-folders")
    assert load_features(tmp_path / "g.npz").target("class", as_names=True).tolist() == ["cat", "dog"]
    _write_folder(tmp_path / "flat", count=2)
    fails("embed", tmp_path / "flat", "-m", tiny_model_dir, "--out", tmp_path / "x.npz", "--labels-from-folders",
          message="no image is inside a class subfolder")


def test_embed_skips_bad_files_and_strict_stops(tmp_path, tiny_model_dir):
    _write_folder(tmp_path / "faces", count=4, broken=True)
    result = invoke("embed", tmp_path / "faces", "-m", tiny_model_dir, "--out", tmp_path / "f.npz", "-q")
    assert "4 x 64 multiscale features" in result.stdout and "1 skipped" in result.stdout
    assert "skipped: " in result.stderr and "broken.jpg" in result.stderr and "1 file(s) skipped" in result.stderr
    assert len(load_features(tmp_path / "f.npz")) == 4
    fails("embed", tmp_path / "faces", "-m", tiny_model_dir, "--out", tmp_path / "g.npz", "--strict", message="broken.jpg", code=1)
    assert not (tmp_path / "g.npz").exists()


def test_embed_refuses_an_existing_out_before_any_work_unless_overwrite(tmp_path, tiny_model_dir):
    """Another command's .npz (here compress's latents) is not replaced silently; the refusal comes before the model loads."""
    _write_folder(tmp_path / "faces", count=3)
    out = tmp_path / "z.npz"
    np.savez(out, latents=np.zeros((2, 4), np.float32))
    before = out.read_bytes()
    args = ["embed", tmp_path / "faces", "-m", tiny_model_dir, "--out", out, "-q"]
    refused = fails(*args, message="already exists", code=1, alone=True)
    assert refused == f"Error: {out}: already exists; add --overwrite to replace it or choose another --out"
    assert out.read_bytes() == before
    invoke(*args, "--overwrite")
    assert len(load_features(out)) == 3


@pytest.mark.parametrize("args, message", [
    (["/no/such/folder"], "no such file or folder"),
    (["synthetic:4", "--out", "/no/such/dir/f.npz"], "does not exist"),
    (["synthetic:4", "--batch-size", "0"], "0 is not in the range"),
    (["synthetic:4", "--device", "tpu"], "unknown device"),
])
def test_embed_bad_arguments(tmp_path, tiny_model_dir, args, message):
    if "--out" not in args:
        args = args + ["--out", str(tmp_path / "f.npz")]
    fails("embed", *args, "-m", tiny_model_dir, message=message)


def test_every_command_has_help_with_an_example():
    for command in ("embed", "classify", "cluster", "umap"):
        result = invoke(command, "--help")
        assert "Example" in result.output, command


# --- AutoencoderEmbedder -------------------------------------------------------------------------------


def _faces(n=40, size=16, seed=1):
    images, attrs = make_faces(n, seed=seed, size=size)
    return np.asarray(images), attrs


def test_embedder_input_forms_agree(tmp_path, tiny16):
    from aekit_embed import AutoencoderEmbedder

    images, _ = _faces(8)
    embedder = AutoencoderEmbedder(model=str(tiny16), features="latent", device="cpu", batch_size=3)
    Z = embedder.fit(images).transform(images)
    assert Z.shape == (8, 16) and Z.dtype == np.float32
    assert not hasattr(embedder, "n_features_in_")  # 4-D images have no tabular width
    expected = aekit.load(tiny16).encode(images).numpy()
    np.testing.assert_allclose(Z, expected, atol=1e-5)
    signed = images.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1
    np.testing.assert_allclose(embedder.transform(signed), Z, atol=1e-5)
    unit = AutoencoderEmbedder(model=str(tiny16), device="cpu", features="latent", float_range=(0, 1)).fit(images)
    np.testing.assert_allclose(unit.transform(images.astype(np.float64) / 255), Z, atol=1e-4)
    flat = images.reshape(len(images), -1)
    flat_embedder = AutoencoderEmbedder(model=str(tiny16), features="latent", device="cpu").fit(flat)
    assert flat_embedder.n_features_in_ == 16 * 16 * 3
    np.testing.assert_allclose(flat_embedder.transform(flat), Z, atol=1e-5)
    paths = []
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    np.testing.assert_allclose(embedder.transform(paths), Z, atol=1e-5)
    np.testing.assert_allclose(embedder.transform([Image.open(p) for p in paths]), Z, atol=1e-5)
    assert list(embedder.get_feature_names_out()) == [f"latent{i}" for i in range(16)]


def test_embedder_rejects_what_it_cannot_read(tiny16):
    from sklearn.exceptions import NotFittedError

    from aekit_embed import AutoencoderEmbedder, EmbedderError

    images, _ = _faces(4)
    embedder = AutoencoderEmbedder(model=str(tiny16), device="cpu")
    with pytest.raises(NotFittedError):
        embedder.transform(images)
    with pytest.raises(ValueError, match=r"Found array with 5 feature\(s\) \(shape=\(3, 5\)\), but 2-D X must be flattened RGB images .* 768 features"):
        embedder.fit(np.zeros((3, 5)))
    embedder.fit(images.reshape(4, -1))
    with pytest.raises(ValueError, match="expecting 768 features"):
        embedder.transform(np.zeros((2, 3 * 32 * 32), np.uint8))
    with pytest.raises(EmbedderError, match="float_range"):
        embedder.transform(np.full((1, 3, 16, 16), 2.0, np.float32))
    with pytest.raises(EmbedderError, match="NaN"):
        embedder.transform(np.full((1, 3, 16, 16), np.nan, np.float32))
    with pytest.raises(EmbedderError, match="no such file"):
        embedder.transform(["/no/such/face.png"])
    with pytest.raises(EmbedderError, match="0 images"):
        embedder.transform(np.zeros((0, 16, 16, 3), np.uint8))
    with pytest.raises(EmbedderError, match="batch_size"):
        AutoencoderEmbedder(model=str(tiny16), batch_size=0).fit(images)
    with pytest.raises(aekit.CheckpointError):
        AutoencoderEmbedder(model="/no/such/model").fit(images)


def test_embedder_in_pipeline_cross_val_score_and_grid_search(tiny16):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from aekit_embed import AutoencoderEmbedder

    images, attrs = _faces(40)
    y = attrs["Pale_Skin"]
    pipe = Pipeline([("embed", AutoencoderEmbedder(model=str(tiny16), device="cpu")), ("scale", StandardScaler()),
                     ("clf", LogisticRegression(max_iter=2000))])
    scores = cross_val_score(pipe, images, y, cv=3)
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))
    search = GridSearchCV(pipe, {"clf__C": [0.1, 1.0], "embed__batch_size": [8, 64]}, cv=2).fit(images, y)
    assert set(search.best_params_) == {"clf__C", "embed__batch_size"}
    assert search.predict(images[:5]).shape == (5,)
    restored = pickle.loads(pickle.dumps(search.best_estimator_))
    np.testing.assert_array_equal(restored.predict(images), search.best_estimator_.predict(images))


def test_embedder_clone_pickle_and_pandas_output(tmp_path, tiny16):
    import pandas as pd
    from sklearn.base import clone

    from aekit_embed import AutoencoderEmbedder, EmbedderError

    images, _ = _faces(6)
    embedder = AutoencoderEmbedder(model=str(tiny16), features="latent", batch_size=4, device="cpu")
    copy = clone(embedder)
    assert copy.get_params() == embedder.get_params() and not hasattr(copy, "model_")
    embedder.fit(images)
    Z = embedder.transform(images)
    state = embedder.__getstate__()
    assert "model_" not in state and state["model"] == str(tiny16)
    blob = pickle.dumps(embedder)
    assert len(blob) < 10_000  # the weights are not in the pickle
    restored = pickle.loads(blob)
    np.testing.assert_allclose(restored.transform(images), Z, atol=1e-6)
    assert hasattr(embedder, "model_")  # pickling left the original intact

    frame_input = pd.DataFrame(images.reshape(6, -1), index=[f"img{i}" for i in range(6)])
    out = clone(embedder).set_output(transform="pandas").fit(frame_input).transform(frame_input)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == [f"latent{i}" for i in range(16)]
    assert list(out.index) == [f"img{i}" for i in range(6)]
    np.testing.assert_allclose(out.to_numpy(), Z, atol=1e-5)

    # a checkpoint that changed since fitting is refused on unpickling, never silently used
    own = shutil.copytree(tiny16, tmp_path / "own")
    mine = AutoencoderEmbedder(model=str(own), features="latent", device="cpu").fit(images)
    blob = pickle.dumps(mine)
    model = aekit.load(own)
    with torch.no_grad():
        model.encoder[-1].weight.add_(0.01)
    model.save_pretrained(own)
    with pytest.raises(EmbedderError, match="changed since this embedder was fitted"):
        pickle.loads(blob)


def test_embedder_properties_on_image_data(tiny16):
    """What the generic checks that feed tabular data test, here on images."""
    from sklearn.base import clone
    from sklearn.utils._testing import create_memmap_backed_data

    from aekit_embed import AutoencoderEmbedder

    images, _ = _faces(12)
    embedder = AutoencoderEmbedder(model=str(tiny16), features="latent", batch_size=5, device="cpu")
    params = embedder.get_params()
    assert embedder.fit(images) is embedder  # fit returns self
    assert embedder.get_params() == params  # and does not change its parameters
    Z = embedder.transform(images)
    np.testing.assert_allclose(embedder.fit(images).transform(images), Z)  # idempotent fit
    np.testing.assert_allclose(embedder.transform(images[3:7]), Z[3:7], atol=1e-5)  # subset invariance
    order = np.random.default_rng(0).permutation(12)
    np.testing.assert_allclose(embedder.transform(images[order]), Z[order], atol=1e-5)  # sample-order invariance
    np.testing.assert_allclose(embedder.transform(images[:1]), Z[:1], atol=1e-5)  # one sample
    readonly = create_memmap_backed_data(images)
    np.testing.assert_allclose(clone(embedder).fit(readonly).transform(readonly), Z, atol=1e-5)
    np.testing.assert_allclose(embedder.transform(np.asfortranarray(images)), Z, atol=1e-5)
    signed = images.transpose(0, 3, 1, 2) / 127.5 - 1
    for dtype in (np.float32, np.float64):
        assert embedder.transform(signed.astype(dtype)).dtype == np.float32
    flat = images.reshape(12, -1)
    fitted_flat = clone(embedder).fit(flat)
    assert fitted_flat.n_features_in_ == 768
    np.testing.assert_allclose(fitted_flat.fit_transform(flat), Z, atol=1e-5)
    fitted_flat.fit(images)  # refitting on 4-D images forgets the tabular width
    assert not hasattr(fitted_flat, "n_features_in_")


# Checks of scikit-learn's check_estimator that cannot apply: each feeds small random tabular data
# (1-20 columns: make_blobs, uniform noise...) that is not an image, so fit/transform refuse it with a
# ValueError naming the expected width (S*S*3 values of flattened RGB images). The properties they test
# are tested on image data in test_embedder_properties_on_image_data and the tests above.
NOT_IMAGES = "feeds random tabular data with a few columns, not images; tested on image data instead"
from aekit_embed.sklearn import NOT_IMAGE_CHECKS  # noqa: E402  (the one list, beside the estimator)

EXPECTED_FAILED_CHECKS = dict.fromkeys(NOT_IMAGE_CHECKS, NOT_IMAGES)


def _refused_as_not_images(exc) -> bool:
    """True when the embedder itself refused the data (an EmbedderError, maybe wrapped by the check)."""
    from aekit_embed import EmbedderError

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, EmbedderError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def test_scikit_learn_estimator_checks(tiny16):
    from sklearn.utils.estimator_checks import check_estimator

    from aekit_embed import AutoencoderEmbedder

    results = check_estimator(AutoencoderEmbedder(model=str(tiny16), device="cpu"), on_fail=None, on_skip=None,
                              expected_failed_checks=EXPECTED_FAILED_CHECKS)
    by_status: dict[str, set] = {}
    for row in results:
        by_status.setdefault(row["status"], set()).add(row["check_name"])
    assert by_status.get("failed", set()) == set(), {r["check_name"]: repr(r["exception"]) for r in results if r["status"] == "failed"}
    # every check listed as not applicable really fails, and for the documented reason (not an image)
    passed_unexpectedly = {r["check_name"] for r in results if r["expected_to_fail"] and r["status"] == "passed"}
    assert passed_unexpectedly == set()
    assert by_status.get("passed"), "some checks must pass"
    for row in results:
        if row["status"] == "xfail":
            assert _refused_as_not_images(row["exception"]), (row["check_name"], repr(row["exception"]))
    from aekit_embed import AutoencoderEmbedder as documented

    assert "NOT_IMAGE_CHECKS" in documented.__doc__  # the docstring points at the one list


# --- aekit classify ------------------------------------------------------------------------------------


def test_classify_recovers_synthetic_attributes_above_chance(trained_feats):
    result = invoke("classify", trained_feats, "--label", "Pale_Skin", "--cv", "3", "--pixel-size", "16", "--json", "-q")
    report = json.loads(result.stdout)
    scores = {row["name"].split(" (")[0]: row for row in report["scores"]}
    assert list(scores) == ["autoencoder features", "PCA of pixels", "raw pixels", "majority class"]
    assert scores["PCA of pixels"]["dims"] == scores["autoencoder features"]["dims"] == 128
    assert report["images"] == 400 and report["evaluation"] == "cv"
    majority = scores["majority class"]
    assert majority["accuracy"] == pytest.approx(report["majority_share"], abs=0.02)
    assert majority["balanced_accuracy"] == pytest.approx(0.5)
    features = scores["autoencoder features"]
    assert features["accuracy"] > majority["accuracy"] + 0.1
    assert features["balanced_accuracy"] > 0.65
    table = invoke("classify", trained_feats, "--label", "Eyeglasses", "--cv", "3", "--no-pixels", "-q").stdout
    lines = table.splitlines()
    assert lines[0].startswith("label Eyeglasses: 400 images, 2 classes") and "3-fold stratified" in lines[0]
    assert lines[1].split() == ["features", "dims", "accuracy", "balanced", "accuracy"]
    accuracy = {line.split("  ")[0]: float(line.split()[-6]) for line in lines[3:5]}
    assert accuracy["autoencoder features"] > accuracy["majority class"]


def test_classify_train_on_one_file_and_score_on_another(tmp_path, trained):
    invoke("embed", "synthetic:400[:300]", "-m", trained, "--out", tmp_path / "train.npz", "-q", "--label-column", "Pale_Skin")
    invoke("embed", "synthetic:400[300:]", "-m", trained, "--out", tmp_path / "test.npz", "-q", "--label-column", "Pale_Skin")
    report = json.loads(invoke("classify", tmp_path / "train.npz", "--label", "Pale_Skin", "--test", tmp_path / "test.npz",
                               "--pixel-size", "16", "--json", "-q").stdout)
    assert report["evaluation"] == "test" and report["images"] == 300 and report["test_images"] == 100
    scores = {row["name"].split(" (")[0]: row for row in report["scores"]}
    assert scores["autoencoder features"]["accuracy"] > scores["majority class"]["accuracy"]
    assert scores["autoencoder features"]["accuracy_std"] is None
    assert len(scores) == 4  # the pixels of both files were found again (synthetic:400 re-opened)


def test_classify_errors(tmp_path, trained_feats, tiny_model_dir):
    fails("classify", trained_feats, "--label", "Beard", message="no label 'Beard' (labels: Male, Smiling, Eyeglasses")
    fails("classify", tmp_path / "missing.npz", "--label", "Male", message="no such file")
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    fails("classify", tmp_path / "other.npz", "--label", "Male", message="not an aekit features file")
    fails("classify", trained_feats, "--label", "Male", "--cv", "1", message="1 is not in the range", code=2)
    invoke("embed", "synthetic:20", "-m", tiny_model_dir, "--out", tmp_path / "other_model.npz", "-q")
    fails("classify", trained_feats, "--label", "Male", "--test", tmp_path / "other_model.npz", message="embed both with the same model")
    fails("classify", tmp_path / "other_model.npz", "--label", "Male", "--cv", "15", "--no-pixels", message="fewer than --cv 15")


def test_classify_without_images_and_labels(tmp_path, tiny_model_dir):
    _write_folder(tmp_path / "faces", count=12)
    (tmp_path / "labels.csv").write_text("file,kind\n" + "".join(f"face{i}.png,{'ab'[i % 2]}\n" for i in range(12)), encoding="utf-8")
    invoke("embed", tmp_path / "faces", "-m", tiny_model_dir, "--out", tmp_path / "f.npz", "-q", "--labels", tmp_path / "labels.csv",
           "--features", "latent")
    shutil.move(tmp_path / "faces", tmp_path / "moved")
    result = invoke("classify", tmp_path / "f.npz", "--label", "kind", "--cv", "2", "-q")
    assert "majority a: 50.0%" in result.stdout
    assert "pixel baselines skipped" in result.stdout and "pass --images INPUT" in result.stdout
    assert "raw pixels" not in result.stdout
    result = invoke("classify", tmp_path / "f.npz", "--label", "kind", "--cv", "2", "-q", "--images", tmp_path / "moved")
    assert "raw pixels (32x32)" in result.stdout and "PCA of pixels (32x32)" in result.stdout
    assert "6 components, not 16" in result.stdout  # PCA is limited by the 6 training images of a fold
    invoke("embed", tmp_path / "moved", "-m", tiny_model_dir, "--out", tmp_path / "plain.npz", "-q")
    fails("classify", tmp_path / "plain.npz", "--label", "kind", message="labels: none")


# --- aekit cluster -------------------------------------------------------------------------------------


def test_cluster_csv_and_contact_sheet(tmp_path, trained_feats):
    result = invoke("cluster", trained_feats, "--k", "4", "--out", tmp_path / "c.csv", "--sheet", tmp_path / "sheet.png",
                    "--per-cluster", "5")
    assert "400 images in 4 clusters (kmeans on standardised features)" in result.stdout and "silhouette" in result.stdout
    rows = (tmp_path / "c.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "path,cluster" and len(rows) == 401
    assert rows[1].startswith("synthetic-0-000000,")
    assert {int(r.split(",")[1]) for r in rows[1:]} == {0, 1, 2, 3}
    sheet = Image.open(tmp_path / "sheet.png")
    assert sheet.height == 20 + 4 * (64 + 2) + 2  # a title and one row of 32x32 faces (scale 2) per cluster
    for method in ("minibatch-kmeans", "agglomerative", "gmm"):
        invoke("cluster", trained_feats, "--k", "3", "--method", method, "--out", tmp_path / f"{method}.csv")
    again = invoke("cluster", trained_feats, "--k", "4", "--out", tmp_path / "again.csv")
    assert (tmp_path / "again.csv").read_text() == (tmp_path / "c.csv").read_text()  # seeded
    assert "silhouette" in again.stdout


def test_cluster_errors_and_missing_images(tmp_path, tiny_model_dir, trained_feats):
    fails("cluster", trained_feats, "--k", "1", "--out", tmp_path / "c.csv", message="must be at least 2", code=2)
    fails("cluster", trained_feats, "--k", "401", "--out", tmp_path / "c.csv", message="--k 401 is more than the 400 images")
    fails("cluster", trained_feats, "--k", "3", "--method", "dbscan", "--out", tmp_path / "c.csv", message="unknown method 'dbscan'")
    fails("cluster", trained_feats, "--k", "3", "--out", tmp_path / "c.csv", "--sheet", tmp_path / "s.txt", message="use a .png")
    fails("cluster", tmp_path / "nope.npz", "--k", "3", "--out", tmp_path / "c.csv", message="no such file")
    _write_folder(tmp_path / "faces", count=6)
    invoke("embed", tmp_path / "faces", "-m", tiny_model_dir, "--out", tmp_path / "f.npz", "-q")
    shutil.move(tmp_path / "faces", tmp_path / "moved")
    result = invoke("cluster", tmp_path / "f.npz", "--k", "2", "--out", tmp_path / "c.csv", "--sheet", tmp_path / "s.png")
    assert "no sheet written" in result.stderr and not (tmp_path / "s.png").exists() and (tmp_path / "c.csv").exists()
    invoke("cluster", tmp_path / "f.npz", "--k", "2", "--out", tmp_path / "c.csv", "--sheet", tmp_path / "s.png",
           "--images", tmp_path / "moved")
    assert (tmp_path / "s.png").exists()


def test_register_a_cluster_method():
    from aekit_embed import CLUSTER_METHODS, register_cluster_method

    assert {"kmeans", "minibatch-kmeans", "agglomerative", "gmm"} <= set(CLUSTER_METHODS)
    with pytest.raises(aekit.AekitError, match="already registered"):
        register_cluster_method("kmeans", lambda X, k, seed: np.zeros(len(X), int))


# --- feature sets -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["article", "improved"])
def test_every_feature_set_has_its_shape_dtype_and_is_deterministic(arch):
    from aekit import feature_sets

    torch.manual_seed(0)
    model = aekit.create_model(arch, image_size=32, widths=(8, 16), latent_dim=16,
                               **({"convs_per_half": 1} if arch == "article" else {}))
    images, _ = _faces(5)
    assert set(feature_sets.names()) >= {"latent", "multiscale", "grid"}
    for kind in feature_sets.names():
        features = model.features(images, kind)
        assert features.dtype == torch.float32 and features.shape == (5, feature_sets.dimension(model, kind)), kind
        assert torch.equal(features, model.features(images, kind)), kind  # the same every time
        torch.testing.assert_close(model.features(images[2:3], kind)[0], features[2], atol=1e-5, rtol=0)  # per image
    np.testing.assert_allclose(model.features(images, "latent"), model.encode(images), atol=1e-6)
    widths = sum(m.shape[1] for m in feature_sets.encoder_maps(model.eval(), torch.zeros(1, 3, 32, 32))[0])
    assert feature_sets.dimension(model, "multiscale") == 2 * widths + 16


def test_a_plugin_feature_set_works_everywhere(install_plugin, tmp_path, tiny_model_dir):
    install_plugin("aekit-lastmap", "lastmap", "aekit_lastmap", """
        import aekit

        @aekit.hookimpl
        def register_feature_sets(register):
            register("lastmap", lambda maps, latent: maps[-1].flatten(1), help="the last map, unpooled")
        """)
    images, _ = _faces(3)
    model = aekit.load(tiny_model_dir)
    last = model.eval().encoder[:-2](torch.zeros(1, 3, 32, 32))  # the article encoder's last feature map
    assert model.features(images, "lastmap").shape == (3, last[0].numel())
    faces = tmp_path / "faces"
    faces.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(faces / f"{i}.png")
    invoke("embed", faces, "--model", tiny_model_dir, "--features", "lastmap", "--out", tmp_path / "f.npz", "-q")
    feats = load_features(tmp_path / "f.npz")
    assert feats.feature_set == "lastmap" and feats.X.shape == (3, last[0].numel()) == (3, feats.meta["dimension"])


def test_embed_records_the_feature_set_and_latent_keeps_the_latents(tmp_path, tiny_model_dir, face_folder):
    from aekit import feature_sets

    invoke("embed", face_folder, "--model", tiny_model_dir, "--out", tmp_path / "default.npz", "-q")
    invoke("embed", face_folder, "--model", tiny_model_dir, "--features", "latent", "--out", tmp_path / "latent.npz", "-q")
    default, latent = load_features(tmp_path / "default.npz"), load_features(tmp_path / "latent.npz")
    model = aekit.load(tiny_model_dir)
    assert default.feature_set == feature_sets.DEFAULT == "multiscale"
    assert default.meta["dimension"] == default.X.shape[1] == feature_sets.dimension(model, "multiscale")
    assert latent.feature_set == "latent" and latent.X.shape[1] == 16 and default.model_id == latent.model_id
    pictures = np.stack([np.asarray(Image.open(face_folder / name).convert("RGB").resize((32, 32), Image.BICUBIC))
                         for name in latent.paths])
    np.testing.assert_allclose(latent.X, model.encode(pictures).numpy(), atol=1e-3)
    np.testing.assert_allclose(default.X, model.features(pictures, "multiscale").numpy(), atol=1e-3)
    fails("embed", face_folder, "--model", tiny_model_dir, "--features", "nope", "--out", tmp_path / "x.npz",
          message="unknown feature set 'nope' (known: ", code=2)
    assert not (tmp_path / "x.npz").exists()


def test_the_feature_set_is_grid_searched_in_a_pipeline(tiny16):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from aekit_embed import AutoencoderEmbedder, EmbedderError

    images, attributes = _faces(24)
    pipe = Pipeline([("embed", AutoencoderEmbedder(model=str(tiny16), device="cpu")), ("scale", StandardScaler()),
                     ("clf", LogisticRegression(max_iter=500))])
    search = GridSearchCV(pipe, {"embed__features": ["latent", "multiscale"]}, cv=2).fit(images, attributes["Male"])
    assert set(search.cv_results_["param_embed__features"]) == {"latent", "multiscale"}
    best = search.best_estimator_.named_steps["embed"]
    assert best.get_feature_names_out()[0] == f"{best.features}0"
    with pytest.raises(EmbedderError, match="features must be a registered feature set"):
        AutoencoderEmbedder(model=str(tiny16), features="nope").fit(images)


# --- face search -----------------------------------------------------------------------------------------------


def test_exact_search_in_chunks_is_the_brute_force_answer(monkeypatch):
    from aekit_embed import search

    rng = np.random.default_rng(0)
    X, Q = rng.normal(size=(103, 12)).astype(np.float32), rng.normal(size=(5, 12)).astype(np.float32)
    monkeypatch.setattr(search, "CHUNK_ROWS", 7)  # many chunks, so the running top-k is exercised
    index = search.FaceIndex(X, "numpy")
    rows, scores = index.search(Q, k=6)
    brute = index.normalise(Q) @ index.normalise(X).T
    expected = np.argsort(-brute, axis=1, kind="stable")[:, :6]
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(brute, expected, axis=1), atol=1e-5)
    assert index.search(Q, k=500)[0].shape == (5, 103)  # k beyond the index: all of it


@pytest.mark.skipif(not __import__("aekit_embed.search", fromlist=["x"]).faiss_available(), reason="faiss is not installed")
def test_faiss_and_numpy_find_the_same_neighbours():
    from aekit_embed import search

    rng = np.random.default_rng(1)
    X, Q = rng.normal(size=(500, 32)).astype(np.float32), rng.normal(size=(20, 32)).astype(np.float32)
    by_numpy, by_faiss = search.FaceIndex(X, "numpy").search(Q, 10), search.FaceIndex(X, "faiss").search(Q, 10)
    np.testing.assert_array_equal(by_numpy[0], by_faiss[0])
    np.testing.assert_allclose(by_numpy[1], by_faiss[1], atol=1e-5)


def test_similar_finds_each_face_first_and_draws_a_contact_sheet(tmp_path, tiny_model_dir, face_folder):
    invoke("embed", face_folder, "--model", tiny_model_dir, "--out", tmp_path / "index.npz", "-q")
    feats = load_features(tmp_path / "index.npz")
    queries = [face_folder / name for name in feats.paths[:3]]
    result = invoke("similar", *queries, "--index", tmp_path / "index.npz", "--model", tiny_model_dir, "--k", 4,
                    "--out", tmp_path / "neighbours.png")
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(lines) == 3 * 4
    for query, name in zip(queries, feats.paths[:3]):
        mine = [line for line in lines if line[0] == str(query)]
        assert [int(line[1]) for line in mine] == [1, 2, 3, 4]
        assert mine[0][3] == name and float(mine[0][2]) > 0.999  # its own copy first
        assert all(float(a[2]) >= float(b[2]) for a, b in zip(mine, mine[1:]))
    sheet = Image.open(tmp_path / "neighbours.png")
    assert sheet.width > 5 * 96 and sheet.height > 3 * 96


def _read_tsv_field(field: str) -> str:
    """A field of `aekit similar`'s output read back (backslash escapes, as `aekit.text.tsv_field` writes them)."""
    import re

    short = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}
    return re.sub(r"\\(x[0-9a-f]{2}|u[0-9a-f]{4}|.)",
                  lambda m: short.get(m.group(1)) or chr(int(m.group(1)[1:], 16)), field)


def test_similar_escapes_names_so_each_neighbour_is_one_line_of_four_fields(tmp_path, tiny_model_dir):
    folder = tmp_path / "faces"
    folder.mkdir()
    names = ["tab\there.png", "new\nline\x1b[2J.png", "back\\slash\\t.png", "café 漢字.png"]
    for name, image in zip(names, make_faces(len(names), seed=2, size=32)[0]):
        Image.fromarray(image).save(folder / name)
    invoke("embed", folder, "--model", tiny_model_dir, "--out", tmp_path / "index.npz", "-q")
    paths = load_features(tmp_path / "index.npz").paths
    query = folder / names[1]
    result = invoke("similar", query, "--index", tmp_path / "index.npz", "--model", tiny_model_dir, "--k", 4)
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(rows) == 4 and all(len(row) == 4 for row in rows), result.stdout  # before: 7 lines, ragged
    assert "\x1b" not in result.stdout and "café 漢字.png" in result.stdout  # non-ASCII is left alone
    assert {_read_tsv_field(row[0]) for row in rows} == {str(query)}
    assert sorted(_read_tsv_field(row[3]) for row in rows) == sorted(paths)  # each name reads back exactly
    assert _read_tsv_field(rows[0][3]) == names[1] and [row[1] for row in rows] == ["1", "2", "3", "4"]


def test_similar_says_what_is_wrong_in_one_line(tmp_path, tiny_model_dir, face_folder):
    invoke("embed", face_folder, "--model", tiny_model_dir, "--out", tmp_path / "index.npz", "-q")
    query = next(face_folder.rglob("*.png"))
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    fails("similar", tmp_path / "broken.png", "--index", tmp_path / "index.npz", "--model", tiny_model_dir,
          message="broken.png: not an image Pillow can read")
    other = _tiny(tmp_path / "other", seed=1)
    fails("similar", query, "--index", tmp_path / "index.npz", "--model", other,
          message="give the --model that made the index")
    fails("similar", query, "--index", tmp_path / "nowhere.npz", "--model", tiny_model_dir, message="no such file")
    model = aekit.load(tiny_model_dir)
    save_features(tmp_path / "empty.npz", np.zeros((0, 16), np.float32), [], model, feature_set="latent")
    fails("similar", query, "--index", tmp_path / "empty.npz", "--model", tiny_model_dir, message="the index holds no faces")
    fails("similar", query, "--index", tmp_path / "index.npz", "--model", tiny_model_dir, "--out", tmp_path / "n.gif",
          message="use a .png, .jpg or .webp name", code=2)
    assert not (tmp_path / "n.gif").exists()


# --- --align ---------------------------------------------------------------------------------------------------


@pytest.fixture
def align_photos(tmp_path):
    """group.png (two faces: the larger on the right), solo.png (one face), empty.png (none) and their labels."""
    from helpers import FOUND_FACES, face_placed, photo_with_faces, synthetic_face_pictures

    faces = synthetic_face_pictures()
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(photo_with_faces([(faces[FOUND_FACES[2]], face_placed((130, 200), 0.7)),
                                      (faces[FOUND_FACES[1]], face_placed((340, 190), 1.2, -10))])).save(folder / "group.png")
    Image.fromarray(photo_with_faces([(faces[FOUND_FACES[0]], face_placed((240, 200), 0.9, 20))])).save(folder / "solo.png")
    Image.fromarray(np.full((200, 300, 3), 128, np.uint8)).save(folder / "empty.png")
    (tmp_path / "labels.csv").write_text("file,kind\ngroup.png,a\nsolo.png,b\nempty.png,b\n", encoding="utf-8")
    return folder


def _model_input_features(model_dir, path, mode="on", largest=False):
    """The features `aekit embed --align MODE` should give for each model input of one photo."""
    from aekit.alignment import model_inputs
    from aekit.images import open_image

    model = aekit.load(model_dir, device="cpu")
    crops, placements = model_inputs(open_image(path), mode, model.config.image_size, largest=largest, name=path.name)
    return model.features(np.stack(crops), "multiscale").numpy(), placements


def test_align_on_gives_a_row_per_face_with_photo_face_and_box_and_lists_photos_without_one(tmp_path, tiny_model_dir,
                                                                                            align_photos):
    result = invoke("embed", align_photos, "-m", tiny_model_dir, "--out", tmp_path / "f.npz", "-q", "--align", "on",
                    "--runtime", "torch")
    assert "Traceback" not in result.output
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == 1 and "empty.png: no face found" in skipped[0], result.stderr
    assert "3 x " in result.stdout and "(3 face(s) of 2 image(s))" in result.stdout and "1 skipped" in result.stdout
    feats = load_features(tmp_path / "f.npz")
    assert feats.paths == ["group.png#0", "group.png#1", "solo.png#0"]
    assert feats.photo == ["group.png", "group.png", "solo.png"] and feats.face.tolist() == [0, 1, 0]
    assert feats.box.shape == (3, 4) and feats.box.dtype == np.float32 and np.isfinite(feats.box).all()
    assert feats.box[0, 0] > feats.box[1, 0] and feats.box[0, 2] > feats.box[1, 2]  # largest first: the one on the right
    assert feats.files[0] == feats.files[1] == str((align_photos / "group.png").resolve())
    assert feats.meta["align"] == "on" and feats.align == "on"
    with np.load(tmp_path / "f.npz", allow_pickle=False) as data:  # plain columns beside paths and files
        assert data["photo"].tolist() == feats.photo and data["face"].dtype == np.int64
    expected, placements = _model_input_features(tiny_model_dir, align_photos / "group.png")
    np.testing.assert_allclose(feats.X[:2], expected, rtol=0, atol=1e-4)  # the aligned faces, as model_inputs gives them
    np.testing.assert_allclose(feats.box[:2], [p.box for p in placements], atol=1e-3)


def test_align_auto_uses_a_photo_without_a_face_whole_and_labels_follow_the_photo(tmp_path, tiny_model_dir, align_photos):
    result = invoke("embed", align_photos, "-m", tiny_model_dir, "--out", tmp_path / "f.npz", "-q",
                    "--labels", tmp_path / "labels.csv", "--runtime", "torch", "--align", "auto")  # the default
    assert "skipped" not in result.output
    feats = load_features(tmp_path / "f.npz")
    assert feats.paths == ["empty.png", "group.png#0", "group.png#1", "solo.png#0"]
    assert feats.face.tolist() == [-1, 0, 1, 0] and np.isnan(feats.box[0]).all() and np.isfinite(feats.box[1:]).all()
    assert feats.photo == ["empty.png", "group.png", "group.png", "solo.png"] and feats.align == "auto"
    assert feats.target("kind", as_names=True).tolist() == ["b", "a", "a", "b"]  # each face has its photo's label
    # the whole image is exactly what --align off gives it
    invoke("embed", align_photos / "empty.png", "-m", tiny_model_dir, "--out", tmp_path / "off.npz", "-q", "--align", "off",
           "--runtime", "torch")
    np.testing.assert_allclose(feats.X[0], load_features(tmp_path / "off.npz").X[0], rtol=0, atol=1e-5)


def test_align_off_is_each_image_as_it_is_and_old_files_without_placements_still_read(tmp_path, tiny_model_dir,
                                                                                      align_photos):
    from aekit.images import open_image, resize_rgb

    invoke("embed", align_photos, "-m", tiny_model_dir, "--out", tmp_path / "f.npz", "-q", "--align", "off",
           "--runtime", "torch")
    feats = load_features(tmp_path / "f.npz")
    assert feats.paths == feats.photo == ["empty.png", "group.png", "solo.png"] and feats.align == "off"
    assert feats.face.tolist() == [-1, -1, -1] and np.isnan(feats.box).all()
    model = aekit.load(tiny_model_dir, device="cpu")
    naive = np.stack([resize_rgb(open_image(align_photos / name), 32) for name in feats.paths])
    np.testing.assert_allclose(feats.X, model.features(naive, "multiscale").numpy(), rtol=0, atol=1e-4)
    # a file written without the columns (before --align) reads as whole images
    save_features(tmp_path / "old.npz", feats.X, feats.paths, model, feature_set="multiscale")
    with np.load(tmp_path / "old.npz", allow_pickle=False) as data:
        assert not {"photo", "face", "box"} & set(data.files)
    old = load_features(tmp_path / "old.npz")
    assert old.photo == old.paths and old.face.tolist() == [-1, -1, -1] and np.isnan(old.box).all() and old.align == "off"
    with pytest.raises(FeatureFileError, match="the face column needs 3 rows"):
        save_features(tmp_path / "bad.npz", feats.X, feats.paths, model, placements={"face": [0, 1]})


def test_cluster_and_classify_find_the_faces_again_and_write_where_they_came_from(tmp_path, tiny_model_dir, align_photos):
    import csv

    invoke("embed", align_photos, "-m", tiny_model_dir, "--out", tmp_path / "f.npz", "-q", "--labels", tmp_path / "labels.csv",
           "--align", "auto")
    feats = load_features(tmp_path / "f.npz")
    result = invoke("cluster", tmp_path / "f.npz", "--k", "2", "--out", tmp_path / "c.csv", "--sheet", tmp_path / "s.png")
    assert "note" not in result.output and (tmp_path / "s.png").exists()
    with open(tmp_path / "c.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["path", "cluster", "photo", "face", "box_x", "box_y", "box_w", "box_h"]
    assert [(r["path"], r["photo"], r["face"]) for r in rows] == [
        ("empty.png", "empty.png", "-1"), ("group.png#0", "group.png", "0"), ("group.png#1", "group.png", "1"),
        ("solo.png#0", "solo.png", "0")]
    assert rows[0]["box_x"] == "" and float(rows[1]["box_w"]) == pytest.approx(float(feats.box[1, 2]), abs=0.1)
    from aekit_embed.cluster import read_clusters_csv

    assert len(read_clusters_csv(tmp_path / "c.csv", feats.paths)) == 4  # `aekit umap --clusters` still reads it
    # the pixel baselines read each face again, aligned as `aekit embed` aligned it
    report = json.loads(invoke("classify", tmp_path / "f.npz", "--label", "kind", "--cv", "2", "--json", "-q").stdout)
    assert report["faces"] == 3 and report["photos"] == 3 and report["images"] == 4
    assert [s["name"].split(" (")[0] for s in report["scores"]] == ["autoencoder features", "PCA of pixels", "raw pixels",
                                                                     "majority class"]
    from aekit_embed.lookup import images_for, read_images

    source, why = images_for(feats)
    again = read_images(source, range(4), 32)
    model = aekit.load(tiny_model_dir, device="cpu")
    np.testing.assert_allclose(model.features(np.stack([again[i] for i in range(4)]), "multiscale").numpy(), feats.X,
                               rtol=0, atol=1e-4)
    # --align off reads each row's whole photo instead; a face that is gone fails to read with the reason
    whole, _ = images_for(feats, align_mode="off")
    assert read_images(whole, [1], 32)[1].shape == (32, 32, 3)
    Image.fromarray(np.full((400, 480, 3), 90, np.uint8)).save(align_photos / "group.png")  # its faces painted over
    source, _ = images_for(feats)
    assert [error for _, _, error in source.iter_images([1], 32)] == ["group.png: no face found"]
    assert "raw pixels" not in invoke("classify", tmp_path / "f.npz", "--label", "kind", "--cv", "2", "-q").stdout


def test_similar_queries_each_face_of_a_photo_and_draws_matches_in_their_photos_with_boxes(tmp_path, tiny_model_dir,
                                                                                          align_photos):
    from aekit_embed.search import BOX_COLOUR, TILE, framed_tile

    invoke("embed", align_photos, "-m", tiny_model_dir, "--out", tmp_path / "index.npz", "-q", "--align", "auto")
    result = invoke("similar", align_photos / "group.png", "--index", tmp_path / "index.npz", "-m", tiny_model_dir,
                    "--k", 2, "--align", "on", "--out", tmp_path / "sheet.png")
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(lines) == 4 and all(len(line) == 4 for line in lines)
    for n in (0, 1):  # each face of the query photo finds itself first, named as in the index
        mine = [line for line in lines if line[0] == f"{align_photos / 'group.png'}#{n}"]
        assert mine[0][3] == f"group.png#{n}" and float(mine[0][2]) > 0.999
    sheet = np.asarray(Image.open(tmp_path / "sheet.png").convert("RGB"))
    boxes = (sheet == BOX_COLOUR).all(axis=2).sum()
    assert boxes > 4 * 40, boxes  # the queries' and the matches' boxes, drawn on their photos
    # the crop-only sheet of the same search (--align off queries, whole images) has no box
    invoke("similar", align_photos / "empty.png", "--index", tmp_path / "index.npz", "-m", tiny_model_dir, "--k", 1,
           "--align", "off", "--out", tmp_path / "plain.png")
    assert not (np.asarray(Image.open(tmp_path / "plain.png").convert("RGB")) == BOX_COLOUR).all(axis=2).any()
    # a tile: the photo fitted, the box drawn where the face is, the aligned face in the far corner
    photo = np.zeros((100, 200, 3), np.uint8)
    tile = framed_tile(photo, (150, 20, 40, 60), np.full((32, 32, 3), 255, np.uint8))
    assert tile.shape == (TILE, TILE, 3)
    scale = TILE / 200
    top = (TILE - round(100 * scale)) // 2  # the photo's top edge in the tile
    edge = tile[top + int(20 * scale) - 1 : top + int(20 * scale) + 3, int(150 * scale) : int(190 * scale)]
    assert (edge == BOX_COLOUR).all(axis=2).any(axis=0).sum() > 15  # the box's top edge, across the face's width
    assert not (tile[:, : int(150 * scale) - 2] == BOX_COLOUR).all(axis=2).any()  # and nowhere left of it
    assert (tile[TILE - 10, 5] == 255).all()  # the inset face: bottom-left, away from the box on the right


def test_similar_align_on_lists_a_query_without_a_face(tmp_path, tiny_model_dir, align_photos):
    invoke("embed", align_photos, "-m", tiny_model_dir, "--out", tmp_path / "index.npz", "-q", "--align", "auto")
    result = invoke("similar", align_photos / "solo.png", align_photos / "empty.png", "--index", tmp_path / "index.npz",
                    "-m", tiny_model_dir, "--k", 1, "--align", "on")
    assert "skipped: " in result.stderr and "empty.png: no face found" in result.stderr and "Traceback" not in result.output
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [f"{align_photos / 'solo.png'}#0"]
    fails("similar", align_photos / "empty.png", "--index", tmp_path / "index.npz", "-m", tiny_model_dir, "--align", "on",
          message="empty.png: no face found")


def test_embedder_align_gives_one_row_per_image_from_its_largest_face(tiny_model_dir, align_photos):
    from sklearn.base import clone

    from aekit_embed import AutoencoderEmbedder, EmbedderError

    group, solo, empty = (align_photos / name for name in ("group.png", "solo.png", "empty.png"))
    on = AutoencoderEmbedder(model=str(tiny_model_dir), device="cpu", runtime="torch", align="on")
    assert on.get_params()["align"] == "on" and clone(on).align == "on"
    assert AutoencoderEmbedder().align == "auto"
    X = on.fit_transform([str(group), str(solo)])
    assert X.shape == (2, on.n_features_out_)
    for row, path in zip(X, (group, solo)):  # the largest face only: exactly one row per image
        expected, placements = _model_input_features(tiny_model_dir, path, largest=True)
        assert len(placements) == 1
        np.testing.assert_allclose(row, expected[0], rtol=0, atol=1e-4)
    np.testing.assert_allclose(on.transform([Image.open(group)]), X[:1], rtol=0, atol=1e-5)  # PIL images
    np.testing.assert_allclose(on.transform(np.asarray(Image.open(group))[None]), X[:1], rtol=0, atol=1e-4)  # arrays
    with pytest.raises(EmbedderError, match="empty.png: no face found"):
        on.transform([str(solo), str(empty)])
    with pytest.raises(EmbedderError, match=r"X\[0\]: no face found"):
        on.transform(np.asarray(Image.open(empty))[None])
    # auto: no face, the image as it is (as off gives it); off: each image resized as it is
    auto = AutoencoderEmbedder(model=str(tiny_model_dir), device="cpu", runtime="torch").fit([str(empty)])
    off = AutoencoderEmbedder(model=str(tiny_model_dir), device="cpu", runtime="torch", align="off").fit([str(empty)])
    np.testing.assert_allclose(auto.transform([str(empty), str(group)])[0], off.transform([str(empty)])[0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(auto.transform([str(group)]), X[:1], rtol=0, atol=1e-5)
    assert not np.allclose(off.transform([str(group)]), X[:1], atol=1e-3)
    with pytest.raises(EmbedderError, match="align must be one of 'auto', 'on', 'off', got 'sideways'"):
        AutoencoderEmbedder(model=str(tiny_model_dir), device="cpu", align="sideways").fit([str(group)])
    with pytest.raises(EmbedderError, match="align must be one of"):
        auto.set_params(align="ON").transform([str(group)])


def test_the_embed_walk_never_enters_the_trainer(tmp_path, tiny_model_dir):
    import subprocess
    import sys

    from aekit.synthetic import make_faces

    for i, image in enumerate(make_faces(2, size=32)[0]):
        Image.fromarray(image).save(tmp_path / f"f{i}.png")
    code = ("import sys\nfrom aekit.cli import main\n"
            f"sys.argv = ['aekit', 'embed', {str(tmp_path)!r}, '--model', {str(tiny_model_dir)!r}, '--out', "
            f"{str(tmp_path / 'f.npz')!r}, '-q', '--runtime', 'torch']\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "print([m in sys.modules for m in ('aekit.train', 'aekit_export', 'onnxruntime')])\n")
    # only embed and the folder source loaded: whatever else the walk imports, it imports itself
    env = {**os.environ, "AEKIT_LOAD_PLUGINS": "embed,sources"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[False, False, False]"
