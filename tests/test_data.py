"""Data sources (folder, array, hf:, celeba, synthetic), selection, the uint8 cache and ImageTensorSet."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aekit import synthetic
from aekit.data import ImageTensorSet, open_source, prepare, select_indices, to_float
from aekit.errors import DataSourceError, ImageReadError
from aekit.images import open_image

SIZE = 32  # the face_folder images are 32x32, so prepare(image_size=32) keeps PNG pixels exact


def _prep(spec, **kwargs):
    kwargs.setdefault("image_size", SIZE)
    return prepare(spec, progress=False, **kwargs)


def _sorted_expected(face_images):
    images, attrs, names = face_images
    order = sorted(range(len(names)), key=lambda i: names[i].split("/"))
    return [names[i] for i in order], images[order], {k: v[order] for k, v in attrs.items()}


# --- folders ---------------------------------------------------------------------------------------


def test_folder_is_recursive_sorted_and_reads_attributes(face_folder, face_images, tmp_path):
    names, images, attrs = _sorted_expected(face_images)
    prepared = _prep(str(face_folder))
    assert prepared.names == names
    assert prepared.names[:8] == [f"face{i:02d}{'.jpg' if i in (6, 7) else '.png'}" for i in range(8)]
    assert "sub/deeper/face11.png" in prepared.names and "sub/face08.png" in prepared.names
    assert prepared.images.dtype == np.uint8 and prepared.images.shape == (12, 3, SIZE, SIZE)
    assert prepared.skipped == [] and prepared.from_cache is False
    for i, name in enumerate(names):
        got = prepared.images[i].transpose(1, 2, 0)
        if name.endswith(".png"):  # lossless: exactly the drawn face
            np.testing.assert_array_equal(got, images[i])
        else:  # JPEG quality 95: close
            assert np.abs(got.astype(int) - images[i].astype(int)).mean() < 6
    # attributes.csv's CelebA -1/1 become 0/1, aligned with the names (also for files in subfolders)
    assert set(prepared.attributes) == {"Smiling", "Male"}
    for key in ("Smiling", "Male"):
        np.testing.assert_array_equal(prepared.attributes[key], attrs[key])
        assert set(np.unique(prepared.attributes[key]).tolist()) <= {0, 1}
    # the cache lives under the test's AEKIT_HOME, never ~/.cache
    assert Path(os.environ["AEKIT_HOME"]) in prepared.cache_path.parents


def test_folder_claimed_as_path_and_as_folder_prefix(face_folder):
    by_path = open_source(str(face_folder))
    by_name = open_source(f"folder:{face_folder}")
    assert type(by_path).__name__ == "FolderSource" == type(by_name).__name__
    assert by_path.keys() == by_name.keys() and len(by_path) == 12


def test_folder_skips_bad_files_and_lists_them(face_folder):
    (face_folder / "empty.jpg").write_bytes(b"")
    (face_folder / "notes.png").write_text("this is not a picture\n", encoding="utf-8")
    noise = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(noise).save(face_folder / "sub" / "whole.jpg", quality=95)
    data = (face_folder / "sub" / "whole.jpg").read_bytes()
    (face_folder / "sub" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (face_folder / "sub" / "whole.jpg").unlink()
    (face_folder / "readme.txt").write_text("ignored: not an image extension", encoding="utf-8")

    prepared = _prep(str(face_folder))
    assert len(prepared) == 12
    assert not any(n in prepared.names for n in ("empty.jpg", "notes.png", "sub/truncated.jpg", "readme.txt"))
    assert len(prepared.skipped) == 3
    for bad in ("empty.jpg", "notes.png", "truncated.jpg"):
        assert sum(bad in message for message in prepared.skipped) == 1, prepared.skipped
    # attributes stay aligned with the images that were kept
    assert len(prepared.attributes["Smiling"]) == 12
    # and the skipped list survives the cache
    again = _prep(str(face_folder))
    assert again.from_cache and again.skipped == prepared.skipped


def test_open_image_errors_are_image_read_errors(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello", encoding="utf-8")
    for name in ("empty.jpg", "text.png", "missing.png"):
        with pytest.raises(ImageReadError, match=name):
            open_image(tmp_path / name)


def test_png_modes_become_rgb(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :4, 3] = 255  # left half opaque red-ish, right half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    la = np.zeros((8, 8, 2), np.uint8)
    la[..., 0] = 50
    la[:, :4, 1] = 255
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    p = Image.new("P", (8, 8))
    p.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    p.paste(1, (0, 0, 4, 8))
    p.save(tmp_path / "p.png")
    i16 = np.zeros((8, 8), np.uint16)
    i16[:, :4] = 65535
    i16[:, 4:] = 32768
    Image.fromarray(i16).save(tmp_path / "i16.png")
    Image.fromarray(np.full((8, 8), 77, np.uint8), "L").save(tmp_path / "gray.png")

    assert Image.open(tmp_path / "i16.png").mode.startswith("I")  # really a 16-bit file
    out = {name: np.asarray(open_image(tmp_path / f"{name}.png")) for name in ("rgba", "la", "p", "i16", "gray")}
    for name, arr in out.items():
        assert arr.shape == (8, 8, 3) and arr.dtype == np.uint8, name
    assert tuple(out["rgba"][0, 0]) == (200, 0, 0) and tuple(out["rgba"][0, 7]) == (255, 255, 255)  # alpha over white
    assert tuple(out["la"][0, 0]) == (50, 50, 50) and tuple(out["la"][0, 7]) == (255, 255, 255)
    assert tuple(out["p"][0, 0]) == (200, 100, 50) and tuple(out["p"][0, 7]) == (10, 20, 30)
    assert tuple(out["i16"][0, 0]) == (255, 255, 255) and tuple(out["i16"][0, 7]) == (128, 128, 128)  # scaled, not clipped
    assert tuple(out["gray"][3, 3]) == (77, 77, 77)

    # the same files through a folder source: all five decode, none skipped
    prepared = _prep(str(tmp_path), image_size=8)
    assert prepared.names == ["gray.png", "i16.png", "la.png", "p.png", "rgba.png"] and prepared.skipped == []


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 high: left half red, right half blue
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: display rotated 90 degrees clockwise
    Image.fromarray(stored).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    assert Image.open(tmp_path / "rotated.jpg").size == (40, 20)

    image = open_image(tmp_path / "rotated.jpg")
    assert image.mode == "RGB" and image.size == (20, 40)  # now portrait
    arr = np.asarray(image).astype(int)
    assert arr[5, 10, 0] > 200 and arr[5, 10, 2] < 60  # the stored left side (red) is now on top
    assert arr[35, 10, 2] > 200 and arr[35, 10, 0] < 60  # blue at the bottom
    # prepare applies it too: red top rows, blue bottom rows (without rotation it would be left/right)
    prepared = _prep(str(tmp_path), image_size=16)
    img = prepared.images[0].astype(int)
    assert img[0, :3].mean() > 200 and img[2, :3].mean() < 60
    assert img[2, -3:].mean() > 200 and img[0, -3:].mean() < 60


def test_folder_without_images_is_an_error(tmp_path):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("no pictures here", encoding="utf-8")
    with pytest.raises(DataSourceError, match="no image files"):
        open_source(str(empty))
    with pytest.raises(DataSourceError, match="no image files"):
        prepare(str(empty), progress=False)


def test_folder_of_only_bad_images_is_an_error(tmp_path):
    (tmp_path / "a.png").write_text("x", encoding="utf-8")
    (tmp_path / "b.jpg").write_bytes(b"")
    with pytest.raises(DataSourceError, match="none of the 2 selected images could be read"):
        _prep(str(tmp_path))


def test_symlink_loop_does_not_hang(face_folder):
    try:
        os.symlink(face_folder, face_folder / "sub" / "loop", target_is_directory=True)
        os.symlink(face_folder / "sub", face_folder / "sub" / "deeper" / "up", target_is_directory=True)
    except (OSError, NotImplementedError):
        pytest.skip("symlinks are not available here")
    result = {}

    def scan():
        try:
            result["keys"] = open_source(str(face_folder)).keys()
        except BaseException as exc:  # pragma: no cover - reported below
            result["error"] = exc

    thread = threading.Thread(target=scan, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "scanning a folder with a symlink loop hung"
    assert "error" not in result, result.get("error")
    assert len(result["keys"]) == 12
    assert not any("loop" in k or "/up/" in k for k in result["keys"])


# --- arrays ----------------------------------------------------------------------------------------


def _faces(n=5, size=16, seed=1):
    return synthetic.make_faces(n, seed=seed, size=size)[0]


def test_npy_uint8_nhwc(tmp_path):
    faces = _faces()
    np.save(tmp_path / "faces.npy", faces)
    source = open_source(str(tmp_path / "faces.npy"))
    assert type(source).__name__ == "ArraySource"
    prepared = _prep(str(tmp_path / "faces.npy"), image_size=16)
    np.testing.assert_array_equal(prepared.images, faces.transpose(0, 3, 1, 2))
    assert prepared.names == [f"faces[{i}]" for i in range(5)]
    assert prepared.attributes == {}
    # array:PATH works too, and resizing to another size gives that size
    assert _prep(f"array:{tmp_path / 'faces.npy'}", image_size=8).images.shape == (5, 3, 8, 8)


def test_npy_float_nchw_in_minus_one_one(tmp_path):
    faces = _faces()
    floats = (faces.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0)
    np.save(tmp_path / "faces.npy", floats)
    prepared = _prep(str(tmp_path / "faces.npy"), image_size=16)
    assert prepared.images.dtype == np.uint8 and prepared.images.shape == (5, 3, 16, 16)
    assert np.abs(prepared.images.astype(int) - faces.transpose(0, 3, 1, 2).astype(int)).max() <= 1


def test_npy_float_in_zero_one(tmp_path):
    faces = _faces()
    np.save(tmp_path / "faces.npy", faces.astype(np.float32) / 255.0)
    prepared = _prep(str(tmp_path / "faces.npy"), image_size=16)
    assert np.abs(prepared.images.astype(int) - faces.transpose(0, 3, 1, 2).astype(int)).max() <= 1


def test_npz_images_labels_and_names(tmp_path):
    faces = _faces()
    labels = np.array([0, 1, 1, 0, 1], dtype=np.int64)
    names = np.array([f"img{i}" for i in range(5)])
    np.savez(tmp_path / "faces.npz", images=faces, label=labels, names=names, other=np.zeros(3))
    prepared = _prep(str(tmp_path / "faces.npz"), image_size=16, skip=1)
    np.testing.assert_array_equal(prepared.images, faces[1:].transpose(0, 3, 1, 2))
    assert prepared.names == ["img1", "img2", "img3", "img4"]
    assert set(prepared.attributes) == {"label"}  # 'other' has the wrong length, 'names' are names
    np.testing.assert_array_equal(prepared.attributes["label"], labels[1:])


@pytest.mark.parametrize("count", [3, 7])
def test_npz_names_must_match_the_images(tmp_path, count):
    np.savez(tmp_path / "faces.npz", images=_faces(), names=np.array([f"n{i}" for i in range(count)]))
    with pytest.raises(DataSourceError, match=f"'names' has {count} entries for 5 images"):
        open_source(str(tmp_path / "faces.npz"))


def test_npz_without_images_array(tmp_path):
    np.savez(tmp_path / "nothing.npz", label=np.arange(4))
    with pytest.raises(DataSourceError, match="no 'images' array"):
        open_source(str(tmp_path / "nothing.npz"))


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_array_with_python_objects_is_refused(tmp_path, suffix):
    objects = np.empty(2, dtype=object)
    objects[0], objects[1] = {"a": 1}, [1, 2]
    path = tmp_path / f"evil{suffix}"
    if suffix == ".npy":
        np.save(path, objects, allow_pickle=True)
    else:
        np.savez(path, images=objects)
    with pytest.raises(DataSourceError, match="pickle"):
        open_source(str(path))


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((4, 16, 16), np.uint8), "must be \\(N, H, W, 3\\)"),
        (np.zeros((4, 16, 16, 4), np.uint8), "must be \\(N, H, W, 3\\)"),
        (np.zeros((4, 16, 16, 3), np.int16), "must be uint8 or float"),
        (np.zeros((4, 16, 16, 3), np.uint16), "must be uint8 or float"),
        (np.zeros((0, 16, 16, 3), np.uint8), "no images"),
        (np.full((4, 16, 16, 3), 3.0, np.float32), "must lie in"),
    ],
    ids=["3d", "4-channels", "int16", "uint16", "empty", "out-of-range"],
)
def test_array_bad_shape_or_dtype(tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(DataSourceError, match=message):
        open_source(str(tmp_path / "bad.npy"))


def test_array_with_nan_is_refused(tmp_path):
    floats = np.zeros((3, 3, 8, 8), np.float32)
    floats[1, 0, 2, 2] = np.nan
    np.save(tmp_path / "nan.npy", floats)
    with pytest.raises(DataSourceError, match="NaN"):
        open_source(str(tmp_path / "nan.npy"))


def test_truncated_npy_is_refused(tmp_path):
    np.save(tmp_path / "faces.npy", _faces())
    data = (tmp_path / "faces.npy").read_bytes()
    (tmp_path / "faces.npy").write_bytes(data[: len(data) // 3])
    with pytest.raises(DataSourceError, match="faces.npy"):
        open_source(str(tmp_path / "faces.npy"))
    (tmp_path / "faces.npy").write_bytes(data[:20])  # not even a full header
    with pytest.raises(DataSourceError, match="faces.npy"):
        open_source(str(tmp_path / "faces.npy"))


# --- Hugging Face data sets ----------------------------------------------------------------------------


@pytest.fixture
def hf_offline(tmp_path_factory, monkeypatch):
    """`datasets` with its caches in a temporary folder and no network."""
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants as hub_constants

    home = tmp_path_factory.mktemp("hf_home")
    for var, value in {"HF_HOME": str(home), "HF_DATASETS_CACHE": str(home / "datasets"),
                       "HF_HUB_CACHE": str(home / "hub"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}.items():
        monkeypatch.setenv(var, value)
    # datasets and huggingface_hub read these at import time, so patch the imported values too
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", home / "datasets")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(home / "hub"))
    bars_were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    yield datasets
    if bars_were_on:
        datasets.enable_progress_bars()


def _hf_dataset(datasets, n=8, size=16, seed=2, celeba=False):
    images, attrs = synthetic.make_faces(n, seed=seed, size=size)
    columns = {"image": [Image.fromarray(img) for img in images]}
    if celeba:
        columns["image_id"] = [f"{i + 1:06d}.jpg" for i in range(n)]
        for name in ("Smiling", "Male", "Eyeglasses"):
            columns[name] = [2 * int(v) - 1 for v in attrs[name]]  # CelebA's -1/1
    else:
        columns["Smiling"] = [int(v) for v in attrs["Smiling"]]
    dataset = datasets.Dataset.from_dict(columns).cast_column("image", datasets.Image())
    return dataset, images, attrs


def test_hf_save_to_disk_folder(hf_offline, tmp_path):
    dataset, images, attrs = _hf_dataset(hf_offline)
    dataset.save_to_disk(str(tmp_path / "faces_ds"))
    for spec in (f"hf:{tmp_path / 'faces_ds'}", str(tmp_path / "faces_ds")):  # hf:PATH, or claimed as a path
        source = open_source(spec)
        assert type(source).__name__ == "HFSource"
        prepared = _prep(spec, image_size=16)
        np.testing.assert_array_equal(prepared.images, images.transpose(0, 3, 1, 2))  # PNG-encoded: exact
        assert len(prepared.names) == 8 and len(set(prepared.names)) == 8
        np.testing.assert_array_equal(prepared.attributes["Smiling"], attrs["Smiling"])


def test_hf_dataset_dict_splits(hf_offline, tmp_path):
    dataset, images, _ = _hf_dataset(hf_offline)
    hf_offline.DatasetDict({"train": dataset.select(range(5)), "test": dataset.select(range(5, 8))}).save_to_disk(
        str(tmp_path / "dd"))
    test = _prep(f"hf:{tmp_path / 'dd'}@test", image_size=16)
    np.testing.assert_array_equal(test.images, images[5:].transpose(0, 3, 1, 2))
    assert len(_prep(f"hf:{tmp_path / 'dd'}", image_size=16)) == 5  # train by default
    with pytest.raises(DataSourceError, match="splits: train, test|splits: test, train"):
        open_source(f"hf:{tmp_path / 'dd'}@nope")


def test_hf_parquet_file(hf_offline, tmp_path):
    dataset, images, attrs = _hf_dataset(hf_offline)
    dataset.to_parquet(str(tmp_path / "faces.parquet"))
    for spec in (f"hf:{tmp_path / 'faces.parquet'}", str(tmp_path / "faces.parquet")):
        prepared = _prep(spec, image_size=16, limit=6)
        np.testing.assert_array_equal(prepared.images, images[:6].transpose(0, 3, 1, 2))
        np.testing.assert_array_equal(prepared.attributes["Smiling"], attrs["Smiling"][:6])
    # datasets' own cache went to the temporary HF_DATASETS_CACHE
    assert any(Path(os.environ["HF_DATASETS_CACHE"]).iterdir())


@pytest.mark.skipif(os.name == "nt", reason="the stand-in gs is a shell script")
@pytest.mark.parametrize("stored", ["save_to_disk", "parquet", "parquet without the Image feature"])
def test_hf_images_are_read_by_aekit_with_its_formats_only(stored, hf_offline, tmp_path, monkeypatch):
    """An EPS file among a data set's images (security finding 1): `datasets` would decode it with Pillow, which
    runs Ghostscript; aekit's reader refuses it, and the others read exactly as before."""
    from corpus import EPS, encoded, ghostscript_trap

    datasets = hf_offline
    images, _ = synthetic.make_faces(4, seed=2, size=16)
    cells = [{"bytes": encoded(Image.fromarray(image), "PNG"), "path": None} for image in images]
    cells.insert(2, {"bytes": EPS, "path": "face.jpg"})
    dataset = datasets.Dataset.from_dict({"image": cells, "Smiling": [0, 1, 0, 1, 1]})
    if stored != "parquet without the Image feature":
        dataset = dataset.cast_column("image", datasets.Image())
    target = tmp_path / ("faces_ds" if stored == "save_to_disk" else "faces.parquet")
    dataset.save_to_disk(str(target)) if stored == "save_to_disk" else dataset.to_parquet(str(target))
    marker = ghostscript_trap(monkeypatch, tmp_path / "trap" / "x")

    prepared = _prep(f"hf:{target}", image_size=16, use_cache=False)
    assert not marker.exists(), marker.read_text()
    np.testing.assert_array_equal(prepared.images, images.transpose(0, 3, 1, 2))
    assert prepared.skipped == [f"hf:{target}[2]: not an image format aekit reads (it reads JPEG, PNG, WebP, BMP, GIF and TIFF)"]
    np.testing.assert_array_equal(prepared.attributes["Smiling"], [0, 1, 1, 1])


def test_hf_bad_arguments(hf_offline, tmp_path):
    with pytest.raises(DataSourceError, match="needs a data set name"):
        open_source("hf:")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataSourceError, match="not a Hugging Face data set"):
        open_source(f"hf:{tmp_path / 'plain'}")


def test_celeba_local_copy_is_shuffled_with_seed_0(hf_offline, tmp_path):
    dataset, images, attrs = _hf_dataset(hf_offline, n=10, celeba=True)
    copy = tmp_path / "celeba_copy"
    dataset.save_to_disk(str(copy))
    before = sorted(p.name for p in copy.iterdir())
    expected = dataset.shuffle(seed=0)  # the in-memory original: writes no cache file into `copy`
    order = [int(k[:6]) - 1 for k in expected["image_id"]]
    assert order != list(range(10))  # the check below would be vacuous otherwise

    prepared = _prep(f"celeba:{copy}", image_size=16)
    assert prepared.names == list(expected["image_id"])
    np.testing.assert_array_equal(prepared.images, images[order].transpose(0, 3, 1, 2))
    assert set(prepared.attributes) == {"Smiling", "Male", "Eyeglasses"}
    for name in prepared.attributes:
        np.testing.assert_array_equal(prepared.attributes[name], attrs[name][order])  # -1/1 -> 0/1

    limited = _prep(f"celeba:{copy}", image_size=16, limit=4)  # --limit: the first N of that order
    assert limited.names == prepared.names[:4]
    np.testing.assert_array_equal(limited.images, prepared.images[:4])
    np.testing.assert_array_equal(limited.attributes["Smiling"], prepared.attributes["Smiling"][:4])
    skipped = _prep(f"celeba:{copy}", image_size=16, skip=4, limit=3)
    assert skipped.names == prepared.names[4:7]
    # reading the local copy leaves its folder as it was (no shuffle cache files written into it)
    assert sorted(p.name for p in copy.iterdir()) == before


def test_celeba_without_network_names_the_alternatives(hf_offline):
    with pytest.raises(DataSourceError) as info:
        open_source("celeba")
    message = str(info.value)
    assert "\n" not in message
    assert "synthetic" in message and "hf:" in message and "folder" in message


# --- synthetic -------------------------------------------------------------------------------------


def test_synthetic_is_deterministic_with_attributes():
    first = prepare("synthetic:6:3", image_size=64, progress=False, use_cache=False)
    second = prepare("synthetic:6:3", image_size=64, progress=False, use_cache=False)
    np.testing.assert_array_equal(first.images, second.images)
    assert first.names == second.names == [f"synthetic-3-{i:06d}" for i in range(6)]
    images, attrs = synthetic.make_faces(6, seed=3, size=64)
    np.testing.assert_array_equal(first.images, images.transpose(0, 3, 1, 2))
    assert set(first.attributes) == set(synthetic.ATTRIBUTE_NAMES)
    for name in synthetic.ATTRIBUTE_NAMES:
        np.testing.assert_array_equal(first.attributes[name], attrs[name])
    other_seed = prepare("synthetic:6:4", image_size=64, progress=False, use_cache=False)
    assert not np.array_equal(other_seed.images, first.images)


@pytest.mark.parametrize("spec, n, seed", [("synthetic", 2000, 0), ("synthetic:7", 7, 0), ("synthetic:5:9", 5, 9)])
def test_synthetic_argument_parsing(spec, n, seed):
    source = open_source(spec)
    assert (len(source), source.n, source.seed) == (n, n, seed)
    assert source.keys()[0] == f"synthetic-{seed}-000000"


@pytest.mark.parametrize("spec", ["synthetic:abc", "synthetic:0", "synthetic:-3", "synthetic:1:2:3",
                                  "synthetic:4:x", "synthetic:4:-1"])
def test_synthetic_bad_arguments(spec):
    with pytest.raises(DataSourceError, match="synthetic"):
        prepare(spec, image_size=16, progress=False)


# --- selection -------------------------------------------------------------------------------------


def test_skip_and_limit(face_folder):
    everything = _prep(str(face_folder))
    part = _prep(str(face_folder), skip=2, limit=3)
    assert part.names == everything.names[2:5]
    np.testing.assert_array_equal(part.images, everything.images[2:5])
    np.testing.assert_array_equal(part.attributes["Male"], everything.attributes["Male"][2:5])
    assert _prep(str(face_folder), skip=10).names == everything.names[10:]
    with pytest.raises(DataSourceError, match="no images selected"):
        _prep(str(face_folder), skip=12)
    with pytest.raises(DataSourceError, match="zero or more"):
        _prep(str(face_folder), skip=-1)
    with pytest.raises(DataSourceError, match="zero or more"):
        _prep(str(face_folder), limit=-2)


def test_files_list(face_folder, tmp_path):
    listing = tmp_path / "wanted.txt"
    listing.write_text("# a comment\nface03.png\n\nsub/face09.png\n  face11.png  \nnot-there.png\n", encoding="utf-8")
    prepared = _prep(str(face_folder), files=str(listing))
    assert prepared.names == ["face03.png", "sub/deeper/face11.png", "sub/face09.png"]  # base names match too
    assert _prep(str(face_folder), files=str(listing), skip=1, limit=1).names == ["sub/deeper/face11.png"]
    assert _prep(str(face_folder), files=["face00.png", "face01.png"]).names == ["face00.png", "face01.png"]
    none = tmp_path / "none.txt"
    none.write_text("nothing.png\n", encoding="utf-8")
    with pytest.raises(DataSourceError, match="none of its 1 names"):
        _prep(str(face_folder), files=str(none))
    with pytest.raises(DataSourceError, match="cannot read file list"):
        _prep(str(face_folder), files=str(tmp_path / "missing.txt"))


def test_select_indices_order():
    keys = ["a/x.png", "b/y.png", "z.png", "w.png"]
    assert select_indices(keys, files=["y.png", "w.png"]) == [1, 3]
    assert select_indices(keys, skip=1, limit=2) == [1, 2]
    assert select_indices(keys, limit=0) == []


# --- the cache -------------------------------------------------------------------------------------


def test_cache_hit_and_invalidation(face_folder):
    first = _prep(str(face_folder))
    assert first.from_cache is False and first.cache_path.is_file()
    second = _prep(str(face_folder))
    assert second.from_cache is True and second.cache_path == first.cache_path
    # exactly the images array and its metadata, no stray temporary files
    cache_files = sorted(p.name for p in first.cache_path.parent.iterdir())
    assert cache_files == sorted([first.cache_path.name, first.cache_path.with_suffix(".npz").name])
    assert np.load(first.cache_path, allow_pickle=False).shape == (12, 3, SIZE, SIZE)
    np.testing.assert_array_equal(np.asarray(second.images), first.images)
    assert second.names == first.names and second.skipped == first.skipped
    assert set(second.attributes) == set(first.attributes)
    for name in first.attributes:
        np.testing.assert_array_equal(second.attributes[name], first.attributes[name])

    # touching a file changes the fingerprint
    target = face_folder / "face04.png"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    touched = _prep(str(face_folder))
    assert touched.from_cache is False and touched.cache_path != first.cache_path
    assert _prep(str(face_folder)).from_cache is True

    # adding a file too
    shutil.copy(face_folder / "face00.png", face_folder / "sub" / "added.png")
    added = _prep(str(face_folder))
    assert added.from_cache is False and len(added) == 13 and "sub/added.png" in added.names

    # and editing attributes.csv
    csv = face_folder / "attributes.csv"
    csv.write_text(csv.read_text(encoding="utf-8").replace("image_id,Smiling,Male", "image_id,Happy,Male"), encoding="utf-8")
    relabelled = _prep(str(face_folder))
    assert relabelled.from_cache is False and "Happy" in relabelled.attributes


def _replace_keeping_size_and_mtime(target: Path, data: bytes, in_place: bool) -> None:
    """`target`'s bytes become `data` (of the same length) with its old mtime: a new inode, or in place a new ctime."""
    st = target.stat()
    assert len(data) == st.st_size
    time.sleep(0.05)  # ctime comes from a coarse clock (milliseconds) on some file systems
    if in_place:
        target.write_bytes(data)
    else:
        target.with_name("new").write_bytes(data)
        os.replace(target.with_name("new"), target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (target.stat().st_size, target.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)


@pytest.mark.parametrize("in_place", [False, True], ids=["replaced", "rewritten"])
def test_a_file_replaced_keeping_its_size_and_mtime_is_read_again(tmp_path, in_place):
    folder = tmp_path / "bmps"
    folder.mkdir()
    faces = synthetic.make_faces(3, seed=5, size=SIZE)[0]
    for i in range(2):  # BMP: uncompressed, so every picture of this size has the same file size
        Image.fromarray(faces[i]).save(folder / f"f{i}.bmp")
    assert _prep(str(folder)).from_cache is False and _prep(str(folder)).from_cache is True
    Image.fromarray(faces[2]).save(tmp_path / "other.bmp")
    _replace_keeping_size_and_mtime(folder / "f1.bmp", (tmp_path / "other.bmp").read_bytes(), in_place)
    again = _prep(str(folder))
    assert again.from_cache is False
    np.testing.assert_array_equal(again.images[1], faces[2].transpose(2, 0, 1))


def test_an_array_file_replaced_keeping_its_size_and_mtime_is_read_again(tmp_path):
    faces = synthetic.make_faces(4, seed=5, size=SIZE)[0]
    np.save(tmp_path / "faces.npy", faces[:2])
    assert _prep(str(tmp_path / "faces.npy")).from_cache is False
    np.save(tmp_path / "other.npy", faces[2:])
    _replace_keeping_size_and_mtime(tmp_path / "faces.npy", (tmp_path / "other.npy").read_bytes(), in_place=False)
    again = _prep(str(tmp_path / "faces.npy"))
    assert again.from_cache is False
    np.testing.assert_array_equal(again.images, faces[2:].transpose(0, 3, 1, 2))


def test_cache_depends_on_image_size_and_selection(face_folder):
    at32 = _prep(str(face_folder), image_size=32)
    at16 = _prep(str(face_folder), image_size=16)
    assert at16.from_cache is False and at16.images.shape == (12, 3, 16, 16)
    assert at16.cache_path != at32.cache_path
    assert _prep(str(face_folder), image_size=16).from_cache is True
    limited = _prep(str(face_folder), image_size=32, limit=4)
    assert limited.from_cache is False and len(limited) == 4


@pytest.mark.parametrize("damage", [b"garbage", b""], ids=["garbage", "empty"])
@pytest.mark.parametrize("which", [".npy", ".npz"])
def test_damaged_cache_is_rebuilt(face_folder, damage, which):
    first = _prep(str(face_folder))
    first.cache_path.with_suffix(which).write_bytes(damage)
    again = _prep(str(face_folder))
    assert again.from_cache is False
    np.testing.assert_array_equal(again.images, first.images)
    assert again.names == first.names
    assert _prep(str(face_folder)).from_cache is True


def test_use_cache_false_writes_nothing(face_folder):
    prepared = prepare(str(face_folder), image_size=SIZE, progress=False, use_cache=False)
    assert prepared.cache_path is None and prepared.from_cache is False
    cache = Path(os.environ["AEKIT_HOME"]) / "cache"
    assert not cache.exists() or not any(cache.iterdir())


# --- unknown sources -------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["no-such-source", "nosuch:thing", "missing_folder/", "missing.npy"])
def test_unknown_data_lists_known_sources(spec):
    with pytest.raises(DataSourceError) as info:
        open_source(spec)
    message = str(info.value)
    assert spec in message and "known:" in message
    for name in ("array", "celeba", "folder", "hf", "synthetic"):
        assert name in message


# --- ImageTensorSet --------------------------------------------------------------------------------


def test_image_tensor_set_order_depends_only_on_seed_and_epoch():
    images = np.arange(10, dtype=np.uint8)[:, None, None, None].repeat(3, 1).repeat(2, 2).repeat(2, 3)
    dataset = ImageTensorSet(images, batch_size=3)
    assert len(dataset) == 3 and len(ImageTensorSet(images, 3, drop_last=False)) == 4

    def ids(batches):
        return [b[:, 0, 0, 0].tolist() for b in batches]

    run_a = ids(dataset.batches(seed=5, epoch=2))
    run_b = ids(ImageTensorSet(images.copy(), batch_size=3).batches(seed=5, epoch=2))
    assert run_a == run_b and len(run_a) == 3
    assert all(len(b) == 3 and b == sorted(b) for b in run_a)
    assert len({i for b in run_a for i in b}) == 9  # no repeats within an epoch
    assert ids(dataset.batches(seed=5, epoch=3)) != run_a
    assert ids(dataset.batches(seed=6, epoch=2)) != run_a
    assert ids(dataset.batches(seed=5, epoch=2, start=2)) == run_a[2:]
    assert ids(dataset.batches(seed=5, epoch=2, start=3)) == []
    assert ids(dataset.batches()) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    full = ids(ImageTensorSet(images, 3, drop_last=False).batches(seed=1))
    assert sorted(i for b in full for i in b) == list(range(10))
    batch = next(dataset.batches(seed=0))
    assert batch.dtype == torch.uint8 and batch.shape == (3, 3, 2, 2)
    with pytest.raises(ValueError):
        ImageTensorSet(images, 0)


def test_to_float_range():
    batch = torch.tensor([0, 255, 128], dtype=torch.uint8)
    out = to_float(batch)
    assert out.dtype == torch.float32
    assert torch.allclose(out, torch.tensor([-1.0, 1.0, 0.5 / 127.5]))


def test_window_suffix_selects_a_slice_of_the_source_order():
    from aekit.data import prepare, split_slice

    assert split_slice("faces/[:9000]") == ("faces/", slice(None, 9000))
    assert split_slice("synthetic:20[5:-5]") == ("synthetic:20", slice(5, -5))
    assert split_slice("plain") == ("plain", None)
    whole = prepare("synthetic:20", 32, progress=False)
    part = prepare("synthetic:20[5:15]", 32, skip=2, limit=3, progress=False)
    assert part.names == whole.names[7:10]
    assert (part.images == whole.images[7:10]).all()


def test_a_flipped_byte_in_the_cache_is_detected_and_rebuilt(face_folder, capsys):
    first = _prep(str(face_folder))
    data = bytearray(first.cache_path.read_bytes())
    middle = len(data) // 2
    data[middle] ^= 0xFF  # same size, so nothing looks wrong from outside
    first.cache_path.write_bytes(bytes(data))
    capsys.readouterr()
    again = _prep(str(face_folder))
    warning = [line for line in capsys.readouterr().err.splitlines() if "image cache" in line]
    assert again.from_cache is False and len(warning) == 1 and "(checksum mismatch); rebuilding it" in warning[0]
    np.testing.assert_array_equal(again.images, first.images)
    assert _prep(str(face_folder)).from_cache is True


def test_temporary_files_of_a_killed_cache_writer_are_removed(face_folder):
    first = _prep(str(face_folder))
    leftovers = [first.cache_path.parent / f".{first.cache_path.name}.x1y2.npy.tmp",
                 first.cache_path.parent / f".{first.cache_path.stem}.npz.a7b8.npz.tmp"]
    for path in leftovers:
        path.write_bytes(b"half written")
    assert _prep(str(face_folder)).from_cache is True
    assert not any(path.exists() for path in leftovers)


def test_leftovers_are_kept_while_another_writer_holds_the_lock(face_folder):
    from aekit import image_cache

    first = _prep(str(face_folder))
    busy = first.cache_path.parent / f".{first.cache_path.name}.busy.npy.tmp"
    busy.write_bytes(b"being written")
    with image_cache._locked():  # a writer in another process holds the lock: its temporary file stays
        import subprocess
        import sys

        code = "from aekit import image_cache; print(len(image_cache.remove_leftovers()))"
        removed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert removed == "0" and busy.exists()
    assert image_cache.remove_leftovers() == [busy] and not busy.exists()


def test_a_read_only_cache_folder_still_prepares_the_images(face_folder, monkeypatch, capsys):
    from aekit import image_cache

    first = _prep(str(face_folder))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(image_cache, "_locked", refuse)  # the lock file cannot be opened, as in a read-only home
    capsys.readouterr()
    assert _prep(str(face_folder)).from_cache  # reading needs no lock
    fresh = _prep(str(face_folder), image_size=16)  # writing warns and goes on
    assert fresh.images.shape[1:] == (3, 16, 16) and fresh.cache_path is None and len(fresh) == len(first)
    assert "could not write the image cache (Permission denied)" in capsys.readouterr().err


# --- FIFOs, sockets and devices among the images ---------------------------------------------------------


def test_a_fifo_in_a_folder_or_named_is_skipped_never_opened(face_folder, face_images, tmp_path, monkeypatch):
    """Opening a FIFO for reading blocks until something writes to it: it is listed as skipped, "not a regular file"."""
    from aekit.arrays import read_npz
    from aekit.inputs import open_inputs
    from corpus import make_fifo, no_fifos, watch_fifo

    if no_fifos():
        pytest.skip(no_fifos())
    fifo = make_fifo(face_folder)
    watch = watch_fifo(monkeypatch, fifo)  # a regression gets end of file here instead of hanging
    prepared = _prep(str(face_folder), use_cache=False)
    assert len(prepared) == len(face_images[2]) and "pipe.jpg" not in prepared.names
    assert prepared.skipped == [f"{fifo}: not a regular file (a named pipe)"]
    named = open_inputs([str(fifo), str(face_folder / "face00.png")])  # named one by one, as a shell glob gives them
    assert named.keys() == [str(fifo), str(face_folder / "face00.png")]
    with pytest.raises(ImageReadError, match="not a regular file"):
        named.read(0)
    with pytest.raises(ImageReadError, match="not a regular file"):
        named.read_reduced(0, 16)
    array = make_fifo(tmp_path, "faces.npz")
    watch_array = watch_fifo(monkeypatch, array)
    with pytest.raises(DataSourceError, match="faces.npz: not a regular file"):
        open_source(str(array))
    with pytest.raises(DataSourceError, match="not a regular file"):
        read_npz(array, "image array", DataSourceError)
    assert watch.opened == 0 and watch_array.opened == 0
