"""aekit_faces: finding faces in photos and aligning them the way CelebA's aligned set is framed (``aekit faces``).

The photos are made here: aekit's synthetic faces (which YuNet finds) drawn into canvases at known
similarity transforms. Nothing here needs ../shared except the one check on CelebA's own faces, which
skips without it.
"""

from __future__ import annotations

import csv
import hashlib
import io as _io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import aekit_faces
from aekit.images import resize_rgb
from aekit.synthetic import make_faces
from aekit_faces import (FRAME, TEMPLATE, Face, FaceError, align, aligned_faces, apply, as_rgb, compose, detect_faces,
                         fit_similarity, invert, parse_size, select_faces, similarity, warp)
from helpers import (FACE_SIDE, FOUND_FACES, PHOTO_BACKGROUND, error_line, face_placed, fails, invoke,
                     photo_with_faces, run_cli, stray_temporaries)

ROOT = Path(__file__).resolve().parents[1]
CELEBA = ROOT.parent / "shared" / "data" / "celeba-10k" / "images"
GOOD = FOUND_FACES  # synthetic faces (seed 0, 192 px) YuNet finds upright with a score of 0.86 or more
SIDE = FACE_SIDE
PROBES = np.array([(0, 0), (177, 0), (0, 217), (177, 217)], float)  # the frame's corners
BACKGROUND = PHOTO_BACKGROUND
placed = face_placed  # the transform drawing a face turned and scaled about its centre, at a point of the photo
photo = photo_with_faces  # the faces drawn at their transforms on a plain background


@pytest.fixture(scope="module")
def synthetic() -> np.ndarray:
    return make_faces(12, seed=0, size=SIDE)[0]


def difference(found: np.ndarray, expected: np.ndarray) -> tuple[float, float, float]:
    """(degrees, scale ratio - 1, mean move of the frame's corners in frame pixels) between two photo->frame transforms."""
    error = compose(found, invert(expected))
    angle = abs(np.degrees(np.arctan2(error[1, 0], error[0, 0])))
    scale = abs(np.sqrt(abs(np.linalg.det(error[:, :2]))) - 1)
    return angle, scale, float(np.linalg.norm(apply(error, PROBES) - PROBES, axis=1).mean())


def reference(synthetic, index: int) -> tuple[Face, np.ndarray]:
    """The face `index` found upright at its own size, and its transform from the face image's pixels to the frame."""
    base = placed((240, 200))
    faces = detect_faces(photo([(synthetic[index], base)]), min_score=0.5)
    assert len(faces) == 1
    return faces[0], compose(faces[0].transform, base)


def save(path: Path, image, **params) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (Image.fromarray(image) if isinstance(image, np.ndarray) else image).save(path, **params)
    return path


# --- transforms ------------------------------------------------------------------------------------------------


def test_fit_similarity_recovers_a_known_transform_and_inverts():
    truth = similarity(1.7, 23.0, (5.0, -3.0), center=(10.0, 20.0))
    points = np.random.default_rng(0).uniform(0, 100, (5, 2))
    fitted = fit_similarity(points, apply(truth, points))
    np.testing.assert_allclose(fitted, truth, atol=1e-9)
    np.testing.assert_allclose(apply(compose(invert(fitted), fitted), points), points, atol=1e-9)
    mirrored = points * [-1, 1]  # a mirror image is never fitted: the best rotation instead
    assert np.linalg.det(fit_similarity(points, mirrored)[:, :2]) > 0
    with pytest.raises(FaceError, match="all lie in one place"):
        fit_similarity(np.ones((5, 2)), points)


def test_the_template_is_level_and_inside_the_frame():
    """Derived by benchmarks/face_template.py: eyes level and the face centred left to right in 178x218."""
    assert TEMPLATE.shape == (5, 2) and FRAME == (178, 218)
    assert abs(TEMPLATE[0, 1] - TEMPLATE[1, 1]) < 1 and abs(TEMPLATE[3, 1] - TEMPLATE[4, 1]) < 1
    assert abs(TEMPLATE[:, 0].mean() - (FRAME[0] - 1) / 2) < 2
    assert TEMPLATE[0, 0] < TEMPLATE[1, 0] and TEMPLATE[1, 1] < TEMPLATE[2, 1] < TEMPLATE[3, 1]  # right eye on the left


def test_the_detector_ships_in_the_package_with_its_licence_and_provenance():
    from importlib import resources

    folder = resources.files("aekit_faces").joinpath("yunet")
    data = folder.joinpath(aekit_faces.faces.MODEL_FILE).read_bytes()
    assert hashlib.sha256(data).hexdigest() == aekit_faces.faces.MODEL_SHA256 and len(data) == 232_589
    assert "MIT License" in folder.joinpath("LICENSE").read_text() and "Shiqi Yu" in folder.joinpath("LICENSE").read_text()
    assert aekit_faces.faces.MODEL_SHA256 in folder.joinpath("README.md").read_text()
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["aekit.plugins"]["faces"] == "aekit_faces"
    assert any(d.startswith("opencv-python-headless") for d in project["project"]["dependencies"])
    globs = project["tool"]["setuptools"]["package-data"]["aekit_faces"]
    shipped = {p.relative_to(ROOT / "plugins" / "aekit_faces").as_posix() for g in globs
               for p in (ROOT / "plugins" / "aekit_faces").glob(g)}
    assert {"yunet/face_detection_yunet_2023mar.onnx", "yunet/LICENSE", "yunet/README.md"} <= shipped


# --- finding and aligning -------------------------------------------------------------------------------------


@pytest.mark.parametrize("index, scale, angle, centre", [(6, 0.6, 25, (300, 240)), (9, 1.3, -25, (200, 210)),
                                                         (11, 0.8, 12, (340, 150)), (6, 1.0, -18, (240, 200))])
def test_a_face_drawn_at_a_known_transform_is_found_and_its_transform_recovered(synthetic, index, scale, angle, centre):
    upright, to_frame = reference(synthetic, index)
    drawn = placed(centre, scale, angle)
    faces = detect_faces(photo([(synthetic[index], drawn)]), min_score=0.5)
    assert len(faces) == 1
    face = faces[0]
    assert abs(face.angle - upright.angle - angle) < 5, face.angle
    assert abs(face.scale * scale / upright.scale - 1) < 0.08, face.scale
    degrees, scaled, moved = difference(face.transform, compose(to_frame, invert(drawn)))
    assert degrees < 5 and scaled < 0.08 and moved < 12, (degrees, scaled, moved)
    # the landmarks are where the face's own are, drawn; the inverse transform takes the frame back to the photo
    np.testing.assert_allclose(face.to_photo(face.to_frame(face.landmarks)), face.landmarks, atol=1e-9)
    expected = apply(drawn, apply(invert(to_frame), TEMPLATE))
    assert np.abs(face.landmarks - expected)[[0, 1, 3, 4]].max() < 8 * scale, face.landmarks


def test_without_the_second_look_a_turned_face_stays_turned(synthetic):
    """Why faces are found again in their frame: YuNet's landmarks follow only part of a face's tilt."""
    upright, _ = reference(synthetic, 9)
    drawn = placed((240, 200), 1.0, 25)
    first = detect_faces(photo([(synthetic[9], drawn)]), min_score=0.5, refine=False)[0]
    again = detect_faces(photo([(synthetic[9], drawn)]), min_score=0.5)[0]
    assert abs(again.angle - upright.angle - 25) < abs(first.angle - upright.angle - 25)


def test_re_aligning_an_aligned_face_leaves_it_nearly_where_it_is(synthetic):
    face = detect_faces(photo([(synthetic[11], placed((240, 200)))]), min_score=0.5)[0]
    frame = align(photo([(synthetic[11], placed((240, 200)))]), face)
    again = detect_faces(frame, min_score=0.5)
    assert len(again) == 1
    degrees, scaled, moved = difference(again[0].transform, np.array([[1.0, 0, 0], [0, 1.0, 0]]))
    assert degrees < 3 and scaled < 0.05 and moved < 6, (degrees, scaled, moved)


def test_align_sizes_match_the_models_resize(synthetic):
    picture = photo([(synthetic[9], placed((240, 200)))])
    face = detect_faces(picture, min_score=0.5)[0]
    frame = align(picture, face)
    assert frame.shape == (218, 178, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(align(picture, face, size=64), resize_rgb(frame, 64))  # exactly CelebA's 64x64 input
    assert align(picture, face, size=(89, 109)).shape == (109, 89, 3)
    np.testing.assert_array_equal(align(picture, face.transform), frame)  # a bare transform works too
    assert parse_size("178x218") is None and parse_size("64") == 64 and parse_size("89X109") == (89, 109)
    for bad in ("0", "abc", "64x", "5000", "1x2x3"):
        with pytest.raises(FaceError, match="expected N or WIDTHxHEIGHT"):
            parse_size(bad)


def test_a_large_face_and_a_photo_searched_at_reduced_scale_are_aligned_as_a_small_one(synthetic):
    """A face larger than its frame is shrunk by area averaging before the warp (no aliasing); a photo larger than
    max_side is searched at reduced scale, and its faces still aligned at full resolution."""
    small = photo([(synthetic[9], placed((240, 200), 1.0, 10))])
    large = photo([(synthetic[9], placed((720, 600), 3.0, 10))], size=(1440, 1200))
    expected = align(small, detect_faces(small, min_score=0.5)[0], size=64)
    for picture, max_side in ((large, 1920), (large, 600), (small, 240)):
        faces = detect_faces(picture, min_score=0.5, max_side=max_side)
        assert len(faces) == 1
        assert np.abs(align(picture, faces[0], size=64).astype(int) - expected).mean() < 12


def test_the_inverse_transform_puts_the_aligned_face_back(synthetic):
    picture = photo([(synthetic[6], placed((240, 200), 1.1, 15))])
    face = detect_faces(picture, min_score=0.5)[0]
    back = warp(align(picture, face), face.inverse, (480, 400), border="constant")
    inside = warp(np.full((218, 178, 3), 255, np.uint8), face.inverse, (480, 400), border="constant") == 255
    inside &= np.abs(np.arange(480)[None, :, None] - 240) < 60  # the face's middle, away from resampled edges
    error = np.abs(back.astype(int) - picture.astype(int))[inside]
    assert error.mean() < 6, error.mean()


def test_a_photo_without_a_face_and_images_too_small_to_hold_one():
    rng = np.random.default_rng(0)
    assert detect_faces(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)) == []
    assert detect_faces(np.full((300, 300, 3), 128, np.uint8)) == []
    for shape in ((1, 1, 3), (10, 40, 3), (15, 15)):
        assert detect_faces(np.zeros(shape, np.uint8)) == []
    assert aligned_faces(np.zeros((8, 8, 3), np.uint8)) == []


def test_two_faces_largest_first_and_largest_keeps_one(synthetic):
    picture = photo([(synthetic[11], placed((130, 200), 0.7)), (synthetic[9], placed((340, 190), 1.2))], size=(480, 400))
    faces = detect_faces(picture, min_score=0.5)
    assert len(faces) == 2
    assert faces[0].size > faces[1].size and faces[0].box[0] > faces[1].box[0]  # the larger is the one on the right
    kept = aligned_faces(picture, largest=True, min_score=0.5, size=64)
    assert len(kept) == 1 and kept[0].image.shape == (64, 64, 3) and kept[0].face.box == faces[0].box
    both = aligned_faces(picture, min_score=0.5)
    assert [a.face.box for a in both] == [f.box for f in faces]


def test_a_face_too_small_or_too_unsure_is_left_out_with_the_reason(synthetic):
    faces = detect_faces(photo([(synthetic[11], placed((130, 200), 0.5)), (synthetic[9], placed((340, 190), 1.2))]),
                         min_score=0.5)
    small = min(face.size for face in faces)
    kept, left_out = select_faces(faces, min_size=small + 1)
    assert len(kept) == 1 and len(left_out) == 1 and "smaller than" in left_out[0][1]
    kept, left_out = select_faces(faces, min_score=1.0)
    assert kept == [] and all("below 1" in why for _, why in left_out)


def test_grey_rgba_and_odd_arrays(synthetic, tmp_path):
    picture = photo([(synthetic[9], placed((240, 200)))])
    grey = np.asarray(Image.fromarray(picture).convert("L"))
    assert as_rgb(grey).shape == (400, 480, 3) and as_rgb(grey[:, :, None]).shape == (400, 480, 3)
    assert len(detect_faces(grey, min_score=0.5)) == 1
    rgba = np.dstack([picture, np.where((picture == BACKGROUND).all(axis=2), 0, 255).astype(np.uint8)])
    assert (as_rgb(rgba)[0, 0] == 255).all()  # transparent pixels over white, as aekit reads files
    assert len(detect_faces(rgba, min_score=0.5)) == 1
    assert len(detect_faces(save(tmp_path / "grey.png", grey), min_score=0.5)) == 1  # a path is read by aekit.images
    assert len(detect_faces(Image.fromarray(rgba, "RGBA"), min_score=0.5)) == 1
    with pytest.raises(FaceError, match="expected uint8 pixels"):
        as_rgb(picture.astype(np.float32))
    with pytest.raises(FaceError, match="got an array of shape"):
        as_rgb(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(FaceError, match="min_score must be from 0 to 1"):
        detect_faces(picture, min_score=2)


def test_an_exif_rotated_photo_is_turned_upright_first(synthetic, tmp_path):
    picture = photo([(synthetic[9], placed((240, 200)))])
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to view": stored turned the other way
    path = save(tmp_path / "turned.jpg", Image.fromarray(picture).transpose(Image.Transpose.ROTATE_90), quality=95, exif=exif)
    upright = detect_faces(save(tmp_path / "upright.jpg", picture, quality=95), min_score=0.5)[0]
    found = detect_faces(path, min_score=0.5)
    assert len(found) == 1 and abs(found[0].angle - upright.angle) < 3
    np.testing.assert_allclose(found[0].box, upright.box, atol=3)


@pytest.mark.skipif(not CELEBA.is_dir(), reason="celeba-10k is not in ../shared/data (the numbers: benchmarks/face_align.py)")
def test_celeba_aligned_faces_are_found_and_framed_about_as_celeba_framed_them():
    from aekit.images import open_image

    moved = []
    half_to_frame = np.array([[2.0, 0, 0.5], [0, 2.0, 0.5]])  # celeba-10k's 89x109 copies in the 178x218 frame
    for number in range(9001, 9021):
        faces = detect_faces(open_image(CELEBA / f"{number:06d}.jpg"))
        assert len(faces) >= 1, number
        moved.append(difference(faces[0].transform, half_to_frame)[2])
    assert np.mean(moved) < 15, moved  # CelebA's own framing varies about this much (the benchmark's table)


# --- the command ---------------------------------------------------------------------------------------------------


@pytest.fixture
def photos(synthetic, tmp_path) -> Path:
    """A folder: group.png (two faces), solo.jpg (one), empty.png (none)."""
    folder = tmp_path / "photos"
    save(folder / "group.png", photo([(synthetic[11], placed((130, 200), 0.7)), (synthetic[9], placed((340, 190), 1.2, -10))]))
    save(folder / "solo.jpg", photo([(synthetic[6], placed((240, 200), 0.9, 20))]), quality=95)
    save(folder / "empty.png", np.full((200, 300, 3), 128, np.uint8))
    return folder


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_cli_writes_one_aligned_png_per_face_and_faces_csv(photos, tmp_path):
    out = tmp_path / "out"
    result = invoke("faces", photos, "--out", out, "--min-score", "0.5", "-q")
    assert sorted(p.name for p in out.iterdir()) == ["faces.csv", "group-0.png", "group-1.png", "solo-0.png"]
    assert Image.open(out / "group-0.png").size == FRAME
    assert "no face: " in result.stderr and "empty.png" in result.stderr
    assert "wrote 3 aligned face(s) (178x218) from 3 photo(s)" in result.stdout and "1 photo(s) with no face" in result.stdout
    rows = read_csv(out / "faces.csv")
    assert [(Path(r["photo"]).name, r["face"], r["file"]) for r in rows] == [
        ("group.png", "0", "group-0.png"), ("group.png", "1", "group-1.png"), ("solo.jpg", "0", "solo-0.png")]
    assert float(rows[0]["box_w"]) > float(rows[1]["box_w"])  # largest first
    for row in rows:
        transform = np.array([float(row[f"m{i}{j}"]) for i in range(2) for j in range(3)]).reshape(2, 3)
        landmarks = np.array([float(row[f"{name}_{axis}"]) for name in aekit_faces.LANDMARK_NAMES for axis in "xy"]).reshape(5, 2)
        assert np.abs(apply(transform, landmarks) - TEMPLATE)[[0, 1, 3, 4]].max() < 6  # the transform carries them home
        assert (row["width"], row["height"]) == ("178", "218") and 0.5 <= float(row["score"]) <= 1
    assert "Transform" in Image.open(out / "solo-0.png").text  # the PNG says where it came from
    assert stray_temporaries(tmp_path) == []


def test_cli_size_largest_and_files_named_one_by_one(photos, tmp_path):
    out = tmp_path / "out"
    invoke("faces", photos / "group.png", photos / "solo.jpg", "--out", out, "--size", "64", "--largest", "--min-score", "0.5")
    assert sorted(p.name for p in out.glob("*.png")) == ["group-0.png", "solo-0.png"]
    assert Image.open(out / "group-0.png").size == (64, 64)
    assert [r["width"] for r in read_csv(out / "faces.csv")] == ["64", "64"]
    fails("faces", photos, "--out", tmp_path / "x", "--size", "0", message="expected N or WIDTHxHEIGHT", code=2)
    fails("faces", photos, "--out", tmp_path / "x", "--min-score", "1.5", message="1.5 is not in the range", code=2)
    assert not (tmp_path / "x").exists()


def test_cli_lists_faces_left_out_by_min_size_and_min_score(photos, tmp_path):
    result = invoke("faces", photos / "group.png", "--out", tmp_path / "out", "--min-size", "100", "--min-score", "0.5")
    assert result.stderr.count("left out: ") == 1 and "smaller than 100 (--min-size)" in result.stderr
    assert "1 face(s) left out" in result.stdout
    result = invoke("faces", photos / "group.png", "--out", tmp_path / "out2", "--min-score", "0.99")
    assert result.stderr.count("left out: ") == 2 and "below 0.99 (--min-score)" in result.stderr
    assert len(read_csv(tmp_path / "out2" / "faces.csv")) == 0 and "wrote 0 aligned face(s)" in result.stdout


def test_cli_grey_rgba_and_exif_rotated_photos(synthetic, tmp_path):
    picture = photo([(synthetic[9], placed((240, 200)))])
    folder = tmp_path / "in"
    save(folder / "grey.png", Image.fromarray(picture).convert("L"))
    alpha = np.where((picture == BACKGROUND).all(axis=2), 0, 255).astype(np.uint8)
    save(folder / "rgba.png", Image.fromarray(np.dstack([picture, alpha]), "RGBA"))
    exif = Image.Exif()
    exif[0x0112] = 6
    save(folder / "turned.jpg", Image.fromarray(picture).transpose(Image.Transpose.ROTATE_90), quality=95, exif=exif)
    invoke("faces", folder, "--out", tmp_path / "out", "--min-score", "0.5", "-q")
    rows = {Path(r["photo"]).name: r for r in read_csv(tmp_path / "out" / "faces.csv")}
    assert sorted(rows) == ["grey.png", "rgba.png", "turned.jpg"]
    assert abs(float(rows["turned.jpg"]["box_x"]) - float(rows["grey.png"]["box_x"])) < 3  # read upright


def test_cli_skips_and_lists_bad_files_and_writes_the_rest(photos, tmp_path):
    (photos / "cut.jpg").write_bytes(_jpeg_bytes()[:300])
    (photos / "notes.png").write_bytes(b"not a picture\n")
    out = tmp_path / "out"
    result = run_cli("faces", photos, photos / "missing.jpg", "--out", out, "--min-score", "0.5", "-q")
    assert result.exit_code == 0 and "Traceback" not in result.output and "Error" not in result.output, result.output
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == 3 and "3 file(s) skipped" in result.stdout
    assert any("cut.jpg: damaged image" in line for line in skipped) and any("missing.jpg: no such file" in line for line in skipped)
    assert len(read_csv(out / "faces.csv")) == 3


def test_cli_one_bad_file_is_one_error_line_and_writes_nothing(tmp_path):
    (tmp_path / "cut.jpg").write_bytes(_jpeg_bytes()[:300])
    fails("faces", tmp_path / "cut.jpg", "--out", tmp_path / "out", message="cut.jpg: damaged image", alone=True)
    fails("faces", tmp_path / "nothing.jpg", "--out", tmp_path / "out", message="nothing.jpg: no such file or folder")
    (tmp_path / "empty").mkdir()
    fails("faces", tmp_path / "empty", "--out", tmp_path / "out", message="no image files")
    assert not (tmp_path / "out").exists() and stray_temporaries(tmp_path) == []


def test_cli_replaces_earlier_outputs_only_with_overwrite_and_never_an_input(photos, tmp_path):
    out = tmp_path / "out"
    invoke("faces", photos, "--out", out, "--min-score", "0.5", "-q")
    before = (out / "solo-0.png").read_bytes()
    fails("faces", photos, "--out", out, "--min-score", "0.5", message="already exists; add --overwrite")
    assert (out / "solo-0.png").read_bytes() == before
    invoke("faces", photos, "--out", out, "--min-score", "0.5", "--overwrite", "-q")
    assert len(read_csv(out / "faces.csv")) == 3
    # a photo in --out named like an output of another photo there is never replaced, even with --overwrite
    save(photos / "solo-0.png", np.full((50, 50, 3), 7, np.uint8))
    fails("faces", photos, "--out", photos, "--overwrite", message="would overwrite an input")
    assert np.asarray(Image.open(photos / "solo-0.png")).max() == 7


def test_cli_interrupted_run_keeps_what_it_wrote_in_faces_csv(photos, tmp_path, monkeypatch):
    real, calls = aekit_faces.faces.align, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(aekit_faces.faces, "align", interrupted)
    result = run_cli("faces", photos, "--out", tmp_path / "out", "--min-score", "0.5", "-q")
    assert result.exit_code == 130, result.output
    assert [r["file"] for r in read_csv(tmp_path / "out" / "faces.csv")] == ["group-0.png", "group-1.png"]
    assert stray_temporaries(tmp_path) == []


def _jpeg_bytes() -> bytes:
    buffer = _io.BytesIO()
    Image.fromarray(make_faces(1, seed=0, size=64)[0][0]).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def test_help_shows_examples():
    result = run_cli("faces", "--help")
    assert result.exit_code == 0 and "aekit faces photos/ --out faces/" in result.output
    error_line(run_cli("faces", "--out", "x"), code=2)  # no photo given
