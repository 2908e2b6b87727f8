"""``--align auto|on|off`` in the core (``aekit.alignment``) and the ``yunet`` aligner behind it (aekit_faces).

Photos are aekit's synthetic faces drawn into canvases at known transforms (as in test_faces.py); the
aligner interface is also exercised through a third-party plugin's ``register_aligners``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import aekit
from aekit.alignment import (AlignedSource, AlignmentError, FaceAligner, Placement, aligned_source, check_mode,
                             get_aligner, model_inputs, placement_columns, placements_of)
from aekit.data import ImageSource
from aekit.errors import ImageReadError
from aekit.images import resize_rgb
from aekit.synthetic import make_faces
from aekit_faces import align, detect_faces
from test_faces import GOOD, SIDE, photo, placed


@pytest.fixture(scope="module")
def synthetic() -> np.ndarray:
    return make_faces(12, seed=0, size=SIDE)[0]


@pytest.fixture(scope="module")
def two_faces(synthetic) -> np.ndarray:
    return photo([(synthetic[GOOD[0]], placed((130, 200), 0.9, 10)), (synthetic[GOOD[1]], placed((350, 190), 0.7, -15))])


@pytest.fixture(scope="module")
def framed(synthetic) -> np.ndarray:
    """A face aligned the CelebA way (the 178x218 frame), as a dataset of aligned faces holds it."""
    picture = photo([(synthetic[GOOD[2]], placed((240, 200)))])
    return align(picture, detect_faces(picture)[0])


class ListSource(ImageSource):
    """Images in memory, named p0, p1, ...; one labelled attribute; None reads as a damaged file; photos unless
    `photos` is False (then a data set in the models' framing, which --align auto leaves unsearched)."""

    def __init__(self, images, photos: bool = True):
        self.images, self.photos = images, photos
        self.reads = 0

    def is_photo(self, index):
        return self.photos

    def keys(self):
        return [f"p{i}" for i in range(len(self.images))]

    def fingerprint(self):
        return f"list:{len(self.images)}"

    def attributes(self):
        return {"Label": np.arange(len(self.images))}

    def read(self, index):
        self.reads += 1
        if self.images[index] is None:
            raise ImageReadError(f"p{index}: damaged")
        return self.images[index]


def blank(size=(300, 240)) -> np.ndarray:
    return np.full((size[1], size[0], 3), (40, 90, 60), np.uint8)


# --- the rule, image by image ---------------------------------------------------------------------------------


def test_modes_are_checked():
    assert [check_mode(m) for m in ("auto", "ON", " off ")] == ["auto", "on", "off"]
    with pytest.raises(AlignmentError, match="expected one of auto, on, off"):
        check_mode("yes")


def test_an_already_framed_picture_is_used_as_it_is_under_auto_and_aligned_under_on(framed):
    aligner = get_aligner()
    for picture in (framed, resize_rgb(framed, 64)):
        assert aligner.framed_face(picture) is not None
        placements, why = placements_of(picture, "a", "auto", aligner)
        assert why is None and [(p.photo, p.face_index) for p in placements] == [("a", -1)]
        assert all(math.isnan(v) for v in placements[0].box)
        assert placements[0].face is not None  # its framed face, for putting an edit back without looking again
        placements, _ = placements_of(picture, "a", "on", aligner)
        assert [p.face_index for p in placements] == [0]


def test_a_misframed_face_is_not_taken_as_framed(synthetic):
    picture = photo([(synthetic[GOOD[0]], placed((240, 200), 0.8, 20))])
    assert get_aligner().framed_face(resize_rgb(picture, 64)) is None
    placements, why = placements_of(picture, "a", "auto", get_aligner())
    assert why is None and [p.face_index for p in placements] == [0]


def test_two_faces_give_two_inputs_largest_first_and_largest_keeps_one(two_faces):
    aligner = get_aligner()
    placements, _ = placements_of(two_faces, "group", "on", aligner)
    assert [p.key() for p in placements] == ["group#0", "group#1"]
    assert placements[0].box[2] * placements[0].box[3] > placements[1].box[2] * placements[1].box[3]
    assert placements[0].box[0] < 240 < placements[1].box[0]  # the larger face is the left one
    placements, _ = placements_of(two_faces, "group", "on", aligner, largest=True)
    assert [p.key() for p in placements] == ["group#0"]


def test_no_face_is_a_reason_under_on_and_the_whole_picture_under_auto():
    aligner = get_aligner()
    assert placements_of(blank(), "empty", "on", aligner) == ([], "empty: no face found")
    placements, why = placements_of(blank(), "empty", "auto", aligner)
    assert why is None and [p.face_index for p in placements] == [-1]
    assert placements_of(blank(), "empty", "off", None)[0][0].face_index == -1  # off never needs an aligner


def test_a_face_too_small_is_a_reason_that_says_how_small(synthetic):
    picture = photo([(synthetic[GOOD[0]], placed((240, 200), 0.5))])
    placements, why = placements_of(picture, "far", "on", get_aligner(), min_size=500)
    assert placements == [] and why.startswith("far: no face of at least 500 px (largest ")
    # under auto a picture without a usable face is used as it is
    assert [p.face_index for p in placements_of(picture, "far", "auto", get_aligner(), min_size=500)[0]] == [-1]


# --- a whole source ---------------------------------------------------------------------------------------------


def test_aligned_source_has_one_entry_per_face_and_lists_the_rest(two_faces, framed):
    source = ListSource([two_faces, blank(), None, framed])
    aligned = AlignedSource(source, "on", 64, progress=False)
    assert aligned.keys() == ["p0#0", "p0#1", "p1", "p2", "p3#0"]
    assert aligned.skipped == ["p1: no face found", "p2: damaged"]
    assert aligned.attributes()["Label"].tolist() == [0, 0, 1, 2, 3]  # labels follow the faces
    results = list(aligned.iter_images(range(len(aligned)), 64))
    assert [error for _, _, error in results] == [None, None, "p1: no face found", "p2: damaged", None]
    assert all(image.shape == (64, 64, 3) and image.dtype == np.uint8 for _, image, error in results if error is None)
    with pytest.raises(ImageReadError, match="no face found"):
        aligned.read(2)
    columns = placement_columns(aligned.placements())
    assert columns["photo"].tolist() == ["p0", "p0", "p1", "p2", "p3"]
    assert columns["face"].tolist() == [0, 1, -1, -1, 0]
    assert columns["box"].shape == (5, 4) and np.isnan(columns["box"][2]).all() and (columns["box"][0, 2:] > 24).all()


def test_auto_keeps_framed_and_faceless_pictures_whole_and_aligns_the_rest(two_faces, framed):
    aligned = aligned_source(ListSource([two_faces, blank(), framed]), "auto", 32, progress=False)
    assert aligned.keys() == ["p0#0", "p0#1", "p1", "p2"]
    assert aligned.skipped == []
    _, image, _ = next(aligned.iter_images([3], 32))
    assert np.array_equal(image, resize_rgb(framed, 32))  # as it is: exactly the plain resize


def test_auto_leaves_a_data_set_in_the_models_framing_unsearched_and_reads_it_as_the_source_does(two_faces):
    source = ListSource([two_faces, two_faces], photos=False)
    aligned = AlignedSource(source, "auto", 32, progress=False)
    assert aligned.keys() == ["p0", "p1"] and source.reads == 0
    assert [p.face_index for p in aligned.placements()] == [-1, -1]
    _, image, _ = next(aligned.iter_images([1], 32))
    assert np.array_equal(image, resize_rgb(two_faces, 32))
    assert AlignedSource(source, "on", 32, progress=False).keys() == ["p0#0", "p0#1", "p1#0", "p1#1"]  # on searches all


def test_off_is_the_source_itself(two_faces):
    source = ListSource([two_faces])
    assert aligned_source(source, "off", 64) is source
    assert AlignedSource(source, "on", 64, progress=False).fingerprint() != source.fingerprint()


def test_an_aligned_crop_is_the_face_the_aligner_crops(two_faces):
    aligner = get_aligner()
    crops, placements = model_inputs(two_faces, "on", 64, name="g")
    faces = aligner.find(two_faces)
    assert len(crops) == 2 and np.array_equal(crops[1], aligner.crop(two_faces, faces[1], 64))
    assert placements[1] == Placement("g", 1, faces[1].box, faces[1].score, placements[1].face)
    with pytest.raises(AlignmentError, match="no face found"):
        model_inputs(blank(), "on", 64)
    crops, placements = model_inputs(blank(), "auto", 16)
    assert crops[0].shape == (16, 16, 3) and placements[0].face_index == -1


# --- putting an edit back -------------------------------------------------------------------------------------


def test_put_back_changes_only_pixels_inside_the_mask(two_faces):
    aligner = get_aligner()
    face = aligner.find(two_faces)[1]
    change = np.random.default_rng(0).normal(0, 30, (64, 64, 3)).astype(np.float32)
    edited = aligner.put_back(two_faces, face, change)
    mask = aligner.mask(two_faces.shape, face)
    outside = mask == 0
    assert edited.dtype == np.uint8 and edited.shape == two_faces.shape
    assert np.array_equal(edited[outside], two_faces[outside])
    assert (edited[mask > 0.9] != two_faces[mask > 0.9]).any(axis=1).mean() > 0.5
    x, y, w, h = face.box  # the mask lies around the face
    ys, xs = np.nonzero(mask > 0.5)
    assert x - w < xs.mean() < x + 2 * w and y - h < ys.mean() < y + 2 * h
    assert np.array_equal(aligner.put_back(two_faces, face, np.zeros((64, 64, 3), np.float32)), two_faces)


def test_put_back_on_a_framed_picture_adds_the_change_where_the_face_is(framed):
    aligner = get_aligner()
    small = resize_rgb(framed, 64)
    face = aligner.framed_face(small)
    edited = aligner.put_back(small, face, np.full((64, 64, 3), 20.0, np.float32))
    difference = edited.astype(int) - small
    assert difference[32, 32].tolist() == [20, 20, 20] or (small[32, 32] > 235).any()  # the face's middle, at full strength
    assert np.array_equal(edited[0, 0], small[0, 0])  # a corner lies outside the face's mask


def test_put_back_refuses_what_is_not_a_photo_and_a_change(framed):
    aligner = get_aligner()
    face = aligner.framed_face(framed)
    with pytest.raises(ValueError, match="uint8 photo"):
        aligner.put_back(framed.astype(np.float32), face, np.zeros((64, 64, 3)))
    with pytest.raises(ValueError, match="change"):
        aligner.put_back(framed, face, np.zeros((64, 64)))


# --- plugins ------------------------------------------------------------------------------------------------


def test_a_plugin_aligner_is_found_and_used(install_plugin, monkeypatch):
    install_plugin("aekit-boxes", "boxes", "aekit_boxes", """
        import numpy as np
        import aekit
        from aekit.alignment import FaceAligner


        class Face:
            def __init__(self, box):
                self.box, self.score, self.transform = box, 1.0, np.eye(3)[:2]


        class TopLeft(FaceAligner):
            name = "topleft"

            def find(self, image):
                return [Face((0.0, 0.0, 32.0, 32.0))]

            def framed_face(self, image):
                return None

            def crop(self, image, face, size):
                return np.ascontiguousarray(np.resize(image[:32, :32], (size, size, 3)))


        @aekit.hookimpl
        def register_aligners(register):
            register("topleft", TopLeft(), help="the top left corner")
    """)
    assert "topleft" in aekit.plugins.get_registry().names("aligner")
    assert get_aligner("topleft").name == "topleft"
    assert get_aligner().name == "yunet"  # with several, the built-in one
    aligned = AlignedSource(ListSource([blank()]), "on", 16, aligner=get_aligner("topleft"), progress=False)
    assert aligned.keys() == ["p0#0"] and placement_columns(aligned.placements())["box"][0].tolist() == [0, 0, 32, 32]


def test_without_an_aligner_align_on_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("AEKIT_LOAD_PLUGINS", "sources")
    aekit.plugins.reset()
    try:
        with pytest.raises(AlignmentError, match="needs a face aligner and none is installed"):
            get_aligner()
        with pytest.raises(AlignmentError, match="--align off"):
            AlignedSource(ListSource([blank()]), "on", 16, progress=False)
        assert aligned_source(ListSource([blank()]), "off", 16).keys() == ["p0"]
        from aekit.notes import collecting

        with collecting() as notes:  # auto without one: every image as it is, said once
            source = ListSource([blank()])
            whole = aligned_source(source, "auto", 16, progress=False)  # placements still there: every image whole
            assert whole.keys() == source.keys() and [p.face_index for p in whole.placements()] == [-1]
            assert np.array_equal(whole.read(0), source.read(0))
            crops, placements = model_inputs(blank(), "auto", 16)
        assert placements[0].face_index == -1 and notes.lines() == [
            "note: --align auto: no face aligner is installed (see `aekit plugins`), so every image is used as it is"]
    finally:
        monkeypatch.delenv("AEKIT_LOAD_PLUGINS")
        aekit.plugins.reset()


def test_the_interface_says_what_is_missing():
    with pytest.raises(NotImplementedError):
        FaceAligner().find(blank())


def test_boxes_are_in_the_photos_pixels_when_it_is_searched_enlarged_or_reduced(framed):
    import cv2

    small = resize_rgb(framed, 64)  # searched enlarged twice
    large = np.zeros((2560, 2560, 3), np.uint8)  # searched reduced (above 1920 px)
    large[960:1600, 960:1600] = cv2.resize(small, (640, 640), interpolation=cv2.INTER_CUBIC)
    box_small, box_large = detect_faces(small)[0].box, detect_faces(large)[0].box
    assert 24 < box_small[2] < 64 and 24 < box_small[3] < 64
    assert np.allclose((np.array(box_large) - [960, 960, 0, 0]) / 10, box_small, atol=2.5)


# --- every command that feeds faces to a model takes --align --------------------------------------------------


@pytest.mark.parametrize("command", ["embed", "compress", "edit", "similar", "classify", "cluster", "umap", "eval", "serve"])
def test_every_command_that_feeds_faces_to_a_model_takes_align(command):
    params = {p.name: p for p in aekit.plugins.get_registry().get("command", command).params}
    assert "align" in params, f"aekit {command} has no --align"
    assert set(params["align"].type.choices) == {"auto", "on", "off"}


def test_denoise_works_on_whole_photos_and_takes_no_align():
    params = {p.name for p in aekit.plugins.get_registry().get("command", "denoise").params}
    assert "align" not in params
