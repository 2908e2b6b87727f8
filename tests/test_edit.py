"""Latent editing: fitting directions, their file, `aekit directions fit|list` and `aekit edit`."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import TINY, fails, invoke, poke, resaved_safetensors, run_cli, save_tiny_model
from PIL import Image

import aekit
from aekit_edit import (DirectionsError, LatentDirections, attribute_direction, directions_path, fit_directions,
                        load_directions, parse_edit, principal_axes, read_directions, save_directions)

D = TINY["latent_dim"]
SIZE = TINY["image_size"]


def planted(n=600, d=D, seed=0):
    """Latents where `A` adds a known vector and `B` another, with unit noise; and the labels."""
    rng = np.random.default_rng(seed)
    labels = {"A": rng.integers(0, 2, n), "B": rng.integers(0, 2, n)}
    va, vb = np.zeros(d), np.zeros(d)
    va[0], vb[1:3] = 4.0, (0.0, 3.0)
    z = rng.standard_normal((n, d)) + labels["A"][:, None] * va + labels["B"][:, None] * vb
    return z.astype(np.float32), labels, va, vb


@pytest.mark.parametrize("method", ["mean", "logistic"])
def test_a_planted_attribute_direction_is_found_with_the_gap_as_its_length(method):
    z, labels, va, _ = planted()
    vector, details = attribute_direction(z, labels["A"], method)
    cosine = vector @ va / np.linalg.norm(vector) / np.linalg.norm(va)
    assert cosine > 0.97
    assert np.linalg.norm(vector) == pytest.approx(4.0, rel=0.1)  # amount 1 = the class-mean gap
    assert details["with"] + details["without"] == len(z) and details["separation_accuracy"] > 0.9


def test_unknown_labels_are_ignored_and_a_thin_side_is_refused():
    z, labels, va, _ = planted()
    column = labels["A"].copy()
    column[:300] = -1  # CelebA's "unknown"
    vector, details = attribute_direction(z, column)
    assert details["with"] + details["without"] == 300
    assert vector @ va / np.linalg.norm(vector) / 4 > 0.95
    thin = np.zeros(len(z), dtype=int)
    thin[:3] = 1
    with pytest.raises(DirectionsError, match="3 faces with it"):
        attribute_direction(z, thin)


def test_principal_axes_are_the_largest_directions_scaled_by_their_std():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((4000, 4)) * np.array([5.0, 1.0, 3.0, 0.5])
    axes, details = principal_axes(z, 2)
    assert axes.shape == (2, 4)
    assert abs(axes[0, 0]) == pytest.approx(5.0, rel=0.05) and abs(axes[1, 2]) == pytest.approx(3.0, rel=0.05)
    assert details[0]["std"] == pytest.approx(np.linalg.norm(axes[0]), rel=1e-4)
    assert details[0]["explained_variance"] > details[1]["explained_variance"]
    again, _ = principal_axes(z[::-1].copy(), 2)  # the sign is fixed, so pc1 means the same every fit
    np.testing.assert_allclose(again, axes, rtol=1e-4, atol=1e-4)


def test_fit_directions_keeps_binary_attributes_and_says_why_it_left_out_the_others():
    z, labels, _, _ = planted()
    attributes = {**labels, "Hair_Colour": np.arange(len(z)) % 3, "Rare": (np.arange(len(z)) < 2).astype(int)}
    directions, left_out = fit_directions(z, attributes, axes=3, info={"source": "planted"})
    assert directions.names == ["A", "B", "pc1", "pc2", "pc3"]
    assert directions.kinds == ["attribute", "attribute", "principal", "principal", "principal"]
    assert set(left_out) == {"Hair_Colour", "Rare"} and "0/1" in left_out["Hair_Colour"]
    assert directions.info["source"] == "planted" and directions.info["images"] == len(z)
    np.testing.assert_allclose(directions.mean, z.mean(axis=0), atol=1e-5)


def test_apply_and_sweep_move_along_the_named_vectors():
    z, labels, _, _ = planted()
    directions, _ = fit_directions(z, labels, axes=1)
    base = z[:2]
    moved = directions.apply(base, {"A": 1.5, "pc1": -1})
    np.testing.assert_allclose(moved, base + 1.5 * directions.vector("A") - directions.vector("pc1"), atol=1e-5)
    np.testing.assert_allclose(directions.apply(base, [("a", 2.0)]), base + 2 * directions.vector("A"), atol=1e-5)
    strip = directions.sweep(base[0], "B", [-1, 0, 1])
    np.testing.assert_allclose(strip[1], base[0], atol=1e-6)
    np.testing.assert_allclose(strip[2] - strip[0], 2 * directions.vector("B"), atol=1e-5)
    with pytest.raises(DirectionsError, match="no direction 'Smiling'; known: A, B, pc1"):
        directions.apply(base, {"Smiling": 1})
    with pytest.raises(DirectionsError, match="finite"):
        directions.apply(base, {"A": float("nan")})


@pytest.mark.parametrize("text, expected", [("Smiling=1.5", ("Smiling", 1.5)), ("pc1=-2", ("pc1", -2.0)),
                                            (" Eyeglasses = .5 ", ("Eyeglasses", 0.5)), ("A=1e-1", ("A", 0.1))])
def test_parse_edit_reads_name_equals_amount(text, expected):
    assert parse_edit(text) == expected


@pytest.mark.parametrize("text", ["Smiling", "Smiling=", "=1", "Smiling=abc", "Smiling=inf", "Smiling=nan", "a=1=2"])
def test_parse_edit_refuses_anything_else(text):
    with pytest.raises(DirectionsError, match="NAME=AMOUNT|finite"):
        parse_edit(text)


# --- the file -------------------------------------------------------------------------------------------------


@pytest.fixture
def fitted(tmp_path):
    """A tiny model folder with directions fitted on planted latents of its size."""
    folder = save_tiny_model(tmp_path / "model")
    model = aekit.load(folder)
    z, labels, _, _ = planted()
    directions, _ = fit_directions(z, labels, axes=2)
    save_directions(directions, directions_path(folder), aekit.model_fingerprint(model))
    return folder, model, directions


def test_directions_round_trip_through_their_file(fitted):
    folder, model, directions = fitted
    loaded = load_directions(model)
    assert loaded.names == directions.names and loaded.kinds == directions.kinds
    np.testing.assert_array_equal(loaded.vectors, directions.vectors)
    np.testing.assert_array_equal(loaded.mean, directions.mean)
    assert loaded.details == directions.details and loaded.info == directions.info
    from safetensors import safe_open

    with safe_open(str(directions_path(folder)), framework="np") as fh:  # plain tensors and strings: no pickle
        assert set(fh.keys()) == {"vectors", "mean"} and fh.metadata()["format"] == "aekit-directions"


def test_another_models_directions_are_refused(fitted, tmp_path):
    folder, _, _ = fitted
    other = aekit.load(save_tiny_model(tmp_path / "other", seed=1))
    with pytest.raises(DirectionsError, match="fitted for a different model"):
        load_directions(other, directions_path(folder))


def test_missing_and_damaged_files_are_one_line_errors(fitted, tmp_path):
    folder, model, _ = fitted
    with pytest.raises(DirectionsError, match="aekit directions fit --model"):
        load_directions(aekit.load(save_tiny_model(tmp_path / "bare")))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(directions_path(folder).read_bytes()[:100])
    with pytest.raises(DirectionsError, match="unreadable directions file"):
        read_directions(broken)
    from safetensors.numpy import save_file

    save_file({"vectors": np.zeros((1, D), np.float32)}, str(tmp_path / "prior.safetensors"), metadata={"format": "aekit-prior"})
    with pytest.raises(DirectionsError, match="not an aekit directions file"):
        read_directions(tmp_path / "prior.safetensors")


BAD_DIRECTIONS = [  # (id, arrays edit, metadata edit, what the one line must say)
    ("nan-mean", poke("mean", np.nan), None, "mean holds NaN or infinite values"),
    ("infinite-vector", poke("vectors", -np.inf), None, "vectors holds NaN or infinite values"),
    ("int-vectors", lambda a: a.update(vectors=(a["vectors"] * 100).astype(np.int32)), None, "vectors stored as int32"),
    ("newer-format-version", None, lambda m: m.update(format_version="7"), "written by a newer aekit (directions format 7"),
    ("details-nested-too-deeply", None, lambda m: m.update(details="[" * 100_000 + "]" * 100_000),
     "metadata 'details': invalid JSON (nested too deeply to read)"),
    ("names-not-text", None, lambda m: m.update(names="[1, 2, 3, 4]"), "names and kinds must be lists of text"),
]


@pytest.mark.parametrize("arrays, metadata, needle", [pytest.param(*row[1:], id=row[0]) for row in BAD_DIRECTIONS])
def test_damaged_directions_are_refused_naming_the_file(fitted, face, tmp_path, arrays, metadata, needle):
    folder, model, _ = fitted
    path = directions_path(folder)
    resaved_safetensors(path, arrays, metadata)
    with pytest.raises(DirectionsError) as error:
        load_directions(model)
    assert str(error.value).startswith(f"{path}: ") and needle in str(error.value), str(error.value)
    out = tmp_path / "edited.png"
    for args in (["directions", "list"], ["edit", face, "--add", "pc1=1", "--out", out]):
        line = fails(*args, "--model", folder, message=needle)
        assert line.startswith(f"Error: {path}: ") and "refit with `aekit directions fit`" in line, line
    assert not out.exists()


def test_directions_of_the_wrong_width_are_refused(tmp_path):
    folder = save_tiny_model(tmp_path / "model")
    model = aekit.load(folder)
    wide = LatentDirections(names=["A"], kinds=["attribute"], vectors=np.ones((1, D + 1)), mean=np.zeros(D + 1))
    save_directions(wide, directions_path(folder), aekit.model_fingerprint(model))
    with pytest.raises(DirectionsError, match=f"{D + 1}-d directions for a {D}-d model"):
        load_directions(model)


# --- the commands ----------------------------------------------------------------------------------------------


@pytest.fixture
def face(tmp_path):
    from aekit.synthetic import make_faces

    path = tmp_path / "face.png"
    Image.fromarray(make_faces(1, seed=3, size=48)[0][0]).save(path)
    return path


def test_directions_fit_writes_the_file_and_list_shows_it(tmp_path):
    folder = save_tiny_model(tmp_path / "model")
    result = invoke("directions", "fit", "--model", folder, "--data", "synthetic:120", "--axes", "3", "-q")
    assert "wrote" in result.output and (folder / "directions.safetensors").is_file()
    listed = invoke("directions", "list", "--model", folder).output
    directions = load_directions(aekit.load(folder))
    assert "pc3\tprincipal" in listed and len(directions.named("principal")) == 3
    assert directions.named("attribute") and all(f"{n}\tattribute" in listed for n in directions.named("attribute"))
    assert directions.info["source"] == "synthetic:120" and directions.info["images"] == 120


def test_directions_fit_takes_labels_from_a_folders_attributes_csv(tmp_path, face_folder, face_images):
    folder = save_tiny_model(tmp_path / "model")
    result = invoke("directions", "fit", "--model", folder, "--data", face_folder, "--axes", "0", "-q")
    _, attrs, _ = face_images
    enough = [n for n in ("Male", "Smiling") if min(attrs[n].sum(), len(attrs[n]) - attrs[n].sum()) >= 5]
    assert enough and load_directions(aekit.load(folder)).names == enough
    for name in {"Male", "Smiling"} - set(enough):  # too few faces on one side: named, with the counts
        assert f"left out {name}: " in result.output and "need at least 5 on each side" in result.output


def test_directions_fit_on_unlabelled_images_stores_the_axes_and_says_so(tmp_path, face_folder):
    (face_folder / "attributes.csv").unlink()
    folder = save_tiny_model(tmp_path / "model")
    result = invoke("directions", "fit", "--model", folder, "--data", face_folder, "--axes", "2", "-q")
    assert "has no attributes" in result.output
    assert load_directions(aekit.load(folder)).names == ["pc1", "pc2"]


def test_directions_fit_refuses_nothing_to_fit(tmp_path, face_folder):
    (face_folder / "attributes.csv").unlink()
    folder = save_tiny_model(tmp_path / "model")
    fails("directions", "fit", "--model", folder, "--data", face_folder, "--axes", "0", "-q", message="nothing to fit")
    assert not (folder / "directions.safetensors").exists()


@pytest.fixture
def edit_model(fitted):
    return fitted[0]


def test_edit_add_writes_the_edited_photo_and_grid_writes_original_reconstruction_and_edited(edit_model, face, tmp_path):
    out, grid = tmp_path / "edited.png", tmp_path / "grid.png"
    result = invoke("edit", face, "--model", edit_model, "--add", "A=1.5", "--add", "pc1=-1", "--out", out,
                    "--grid", grid, "--runtime", "torch")
    assert "A+1.5, pc1-1" in result.output
    edited = Image.open(out)  # the photo itself, at its own size, edited in place
    assert edited.size == Image.open(face).size and edited.text["edits"] == "A+1.5, pc1-1"
    picture = Image.open(grid)
    tile = SIZE * 2 + 2
    assert picture.width == 3 * tile + 2 and picture.text["edits"] == "A+1.5, pc1-1"
    assert picture.text["model_fingerprint"] == aekit.model_fingerprint(aekit.load(edit_model))


def test_edited_faces_are_the_decoded_moved_latents(edit_model, face):
    from aekit.images import open_image, to_uint8_hwc
    from aekit_edit.commands import edit_picture

    model = aekit.load(edit_model)
    directions = load_directions(model)
    picture = open_image(face)
    z = model.encode([picture]).numpy()
    expected = to_uint8_hwc(model.decode(directions.apply(z, {"A": 2.0})))[0]
    sheet = np.asarray(edit_picture(model, directions, [picture], ["face"], [("A", 2.0)], None, 7, 2.0))
    tile = SIZE * 2
    top = sheet.shape[0] - 14 - 2 - tile  # the grid's last row sits above the caption strip
    x = 2 + 2 * (tile + 2)
    edited = sheet[top : top + tile : 2, x : x + tile : 2]
    np.testing.assert_array_equal(edited, expected)


def test_edit_sweep_draws_one_row_per_face(edit_model, face, tmp_path):
    second = tmp_path / "second.png"
    Image.open(face).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(second)
    out = tmp_path / "strip.png"
    invoke("edit", face, second, "--model", edit_model, "--sweep", "B", "--steps", "5", "--range", "3", "--out", out)
    picture = Image.open(out)
    tile = SIZE * 2 + 2
    assert picture.width == 6 * tile + 2 and picture.text["sweep"] == "B"
    assert picture.height > 2 * tile


def test_edit_skips_and_lists_unreadable_images(edit_model, face, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    out = tmp_path / "out"  # several images: a folder of STEM-edited.EXT
    result = invoke("edit", face, bad, "--model", edit_model, "--add", "A=1", "--out", out)
    assert "skipped:" in result.output and "bad.png" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["face-edited.png"]


@pytest.mark.parametrize("args, message", [
    (["--add", "Smiling=1"], "no direction 'Smiling'"),
    (["--sweep", "nope"], "no direction 'nope'"),
    (["--add", "A=lots"], "expected NAME=AMOUNT"),
    ([], "nothing to do"),
    (["--add", "A=1", "--steps", "1"], "--steps"),
])
def test_edit_mistakes_are_one_line_errors_and_write_nothing(edit_model, face, tmp_path, args, message):
    out = tmp_path / "never.png"
    fails("edit", face, "--model", edit_model, *args, "--out", out, message=message)
    assert not out.exists()


def test_edit_refuses_an_unknown_output_format_an_input_as_output_and_unreadable_inputs(edit_model, face, tmp_path):
    fails("edit", face, "--model", edit_model, "--add", "A=1", "--out", tmp_path / "x.gif",
          message="must end in .png, .jpg, .jpeg or .webp")
    fails("edit", face, "--model", edit_model, "--sweep", "A", "--out", tmp_path / "x.jpg", message="must end in .png")
    fails("edit", face, "--model", edit_model, "--add", "A=1", "--out", tmp_path / "y.png", "--grid", tmp_path / "g.jpg",
          message="must end in .png")
    assert not list(tmp_path.glob("[xyg].*"))
    fails("edit", face, "--model", edit_model, "--add", "A=1", "--out", face, message="would overwrite an input")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n")
    fails("edit", bad, "--model", edit_model, "--add", "A=1", "--out", tmp_path / "o.png", message="bad.png")


def test_edit_without_directions_says_how_to_fit_them(tmp_path, face):
    folder = save_tiny_model(tmp_path / "bare")
    fails("edit", face, "--model", folder, "--add", "A=1", "--out", tmp_path / "o.png",
          message=f"run `aekit directions fit --model {folder} --data SOURCE`")


def test_edit_refuses_another_models_directions_file(edit_model, tmp_path, face):
    other = save_tiny_model(tmp_path / "other", seed=1)
    fails("edit", face, "--model", other, "--directions", edit_model / "directions.safetensors", "--add", "A=1",
          "--out", tmp_path / "o.png", message="fitted for a different model")


def test_the_pretrained_codec_edits_out_of_the_box(face, tmp_path):
    out = tmp_path / "smiling.png"
    invoke("edit", face, "--add", "Smiling=1.5", "--out", out, "--runtime", "torch")
    assert Image.open(out).text["edits"] == "Smiling+1.5"
    listed = run_cli("directions", "list").output
    assert "Eyeglasses\tattribute" in listed and "pc10\tprincipal" in listed
    directions = load_directions(aekit.load("faces-64"))
    assert len(directions.named("attribute")) == 40 and directions.info["images"] == 9000


# --- edits in the photo ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def drawn() -> np.ndarray:
    """Synthetic faces YuNet finds (test_faces' own: seed 0, 192 px), to draw photos with."""
    from aekit.synthetic import make_faces

    return make_faces(12, seed=0, size=192)[0]


def drawn_photo(drawn, *faces) -> np.ndarray:
    """A 480x400 photo with each (face index, centre, scale, degrees) drawn on a plain background (test_faces' helpers)."""
    from test_faces import photo, placed

    return photo([(drawn[index], placed(centre, scale, angle)) for index, centre, scale, angle in faces])


def _aligner():
    from aekit.alignment import get_aligner

    return get_aligner()


def _saved(path, image) -> str:
    Image.fromarray(image).save(path)
    return str(path)


def _edited(*args) -> np.ndarray:
    """Run `aekit edit ... --runtime torch` and read back its one --out picture as an array."""
    out = args[args.index("--out") + 1]
    invoke("edit", *args, "--runtime", "torch")
    return np.asarray(Image.open(out).convert("RGB"))


def test_an_edited_photo_is_the_input_outside_the_mask_and_the_change_put_back_inside(edit_model, drawn, tmp_path):
    picture = drawn_photo(drawn, (9, (230, 210), 1.0, 12))
    edited = _edited(_saved(tmp_path / "photo.png", picture), "--model", edit_model, "--add", "A=8",
                     "--out", tmp_path / "edited.png")
    assert edited.shape == picture.shape  # the whole photo at its full resolution
    aligner = _aligner()
    face = aligner.find(picture)[0]
    mask = aligner.mask(picture.shape, face)
    assert (mask == 0).mean() > 0.5
    np.testing.assert_array_equal(edited[mask == 0], picture[mask == 0])  # bit for bit outside the mask
    assert (edited != picture)[mask > 0.5].any()
    # inside: the change between the edited face's decoding and its reconstruction (not the reconstruction)
    model = aekit.load(edit_model)
    z = model.encode(aligner.crop(picture, face, SIZE)[None]).numpy()
    decoded = model.decode(np.concatenate([z, load_directions(model).apply(z, {"A": 8.0})])).numpy()
    grey = np.clip((decoded.transpose(0, 2, 3, 1) + 1) * 127.5, 0, 255)
    np.testing.assert_array_equal(edited, aligner.put_back(picture, face, grey[1] - grey[0]))


def test_a_photo_with_two_faces_has_both_edited_and_largest_only_the_larger(edit_model, drawn, tmp_path):
    picture = drawn_photo(drawn, (11, (130, 200), 0.7, 0), (9, (340, 190), 1.2, -10))
    path = _saved(tmp_path / "group.png", picture)
    aligner = _aligner()
    faces = aligner.find(picture)
    assert len(faces) == 2
    masks = [aligner.mask(picture.shape, face) for face in faces]
    changed = _edited(path, "--model", edit_model, "--add", "A=8", "--out", tmp_path / "both.png",
                      "--grid", tmp_path / "grid.png") != picture
    assert all(changed[m > 0.5].any() for m in masks)  # each face edited in place
    assert not changed[(masks[0] == 0) & (masks[1] == 0)].any()
    tile = SIZE * 2 + 2
    assert Image.open(tmp_path / "grid.png").height > 2 * tile  # the grid: one row per aligned face
    largest = _edited(path, "--model", edit_model, "--add", "A=8", "--out", tmp_path / "one.png", "--largest") != picture
    assert largest[masks[0] > 0.5].any() and not largest[masks[0] == 0].any()


def test_a_photo_without_a_face_is_skipped_under_on_and_edited_whole_under_auto_and_off(edit_model, drawn, tmp_path):
    empty = np.full((200, 300, 3), 128, np.uint8)
    blank = _saved(tmp_path / "empty.png", empty)
    picture = drawn_photo(drawn, (9, (240, 200), 1.0, 0))
    solo = _saved(tmp_path / "solo.png", picture)
    out = tmp_path / "on"
    result = invoke("edit", blank, solo, "--model", edit_model, "--add", "A=8", "--align", "on", "--out", out)
    assert "skipped: " in result.stderr and "empty.png: no face found" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["solo-edited.png"]
    line = fails("edit", blank, "--model", edit_model, "--add", "A=8", "--align", "on", "--out", tmp_path / "x.png",
                 message="empty.png: no face found")
    assert "nothing written" in line and not (tmp_path / "x.png").exists()
    whole = _edited(blank, "--model", edit_model, "--add", "A=8", "--out", tmp_path / "auto.png") != empty
    corners = [whole[:50, :50], whole[:50, -50:], whole[-50:, :50], whole[-50:, -50:]]
    assert whole.any(axis=2).mean() > 0.5 and all(corner.any() for corner in corners)  # no mask: all of it
    off = _edited(solo, "--model", edit_model, "--add", "A=8", "--align", "off", "--out", tmp_path / "off.png") != picture
    mask = _aligner().mask(picture.shape, _aligner().find(picture)[0])
    assert off[mask == 0].any()  # --align off: the photo taken as the model's framing, changed all over


def test_an_already_framed_picture_keeps_its_own_detail(tmp_path):
    """A 64x64 face framed like CelebA is edited through the frame: sharper than the reconstruction the old
    `aekit edit` returned (faces-64, the pretrained codec)."""
    from aekit.images import to_uint8_hwc

    def psnr(a, b) -> float:
        return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b) ** 2)))

    framed = make_framed()
    path = _saved(tmp_path / "framed.png", framed)
    edited = _edited(path, "--add", "Smiling=1", "--out", tmp_path / "edited.png")
    model = aekit.load("faces-64")
    reconstruction = to_uint8_hwc(model.decode(model.encode(framed[None])))[0]
    assert edited.shape == framed.shape
    assert psnr(edited, framed) > psnr(reconstruction, framed) + 3, (psnr(edited, framed), psnr(reconstruction, framed))
    aligner = _aligner()
    face = aligner.framed_face(framed)
    mask = aligner.mask(framed.shape, face)
    np.testing.assert_array_equal(edited[mask == 0], framed[mask == 0])
    assert (edited != framed)[mask > 0.5].any()


def make_framed() -> np.ndarray:
    """A 64x64 synthetic face the aligner takes as framed like CelebA."""
    from aekit.synthetic import make_faces

    framed = make_faces(4, seed=0, size=64)[0][1]
    assert _aligner().framed_face(framed) is not None
    return framed


@pytest.mark.parametrize("ext, fmt", [(".png", "PNG"), (".jpg", "JPEG"), (".jpeg", "JPEG"), (".webp", "WEBP")])
def test_the_edited_photos_format_follows_the_extension(edit_model, face, tmp_path, ext, fmt):
    out = tmp_path / f"edited{ext}"
    invoke("edit", face, "--model", edit_model, "--add", "A=1", "--out", out)
    with Image.open(out) as picture:
        assert picture.format == fmt and picture.size == Image.open(face).size


def test_several_photos_go_to_a_folder_and_nothing_is_replaced_without_overwrite(edit_model, face, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    jpeg, bmp = inputs / "a.jpg", inputs / "b.bmp"
    Image.open(face).save(jpeg, quality=95)
    Image.open(face).save(bmp)
    out = tmp_path / "edited"
    result = invoke("edit", jpeg, bmp, face, "--model", edit_model, "--add", "A=1", "--out", out)
    assert "wrote 3 edited photo(s)" in result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["a-edited.jpg", "b-edited.png", "face-edited.png"]  # JPEG stays JPEG, BMP becomes PNG
    assert Image.open(out / "a-edited.jpg").format == "JPEG"
    before = (out / "a-edited.jpg").read_bytes()
    fails("edit", jpeg, bmp, "--model", edit_model, "--add", "A=2", "--out", out, message="already exists; add --overwrite")
    assert (out / "a-edited.jpg").read_bytes() == before
    invoke("edit", jpeg, bmp, "--model", edit_model, "--add", "A=2", "--out", out, "--overwrite")
    assert (out / "a-edited.jpg").read_bytes() != before
    # an input named like another input's output is never replaced, even with --overwrite
    Image.open(face).save(inputs / "a-edited.jpg")
    kept = (inputs / "a-edited.jpg").read_bytes()
    fails("edit", jpeg, inputs / "a-edited.jpg", "--model", edit_model, "--add", "A=1", "--out", inputs, "--overwrite",
          message="would overwrite an input")
    assert (inputs / "a-edited.jpg").read_bytes() == kept
    fails("edit", jpeg, bmp, "--model", edit_model, "--add", "A=1", "--out", tmp_path / "two.png",
          message="looks like a file name")
