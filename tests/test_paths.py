"""Names and kinds of files: aekit.paths.unique_names (outputs), why_not_regular (FIFOs, devices), and atomic
writes whose temporary names fit beside any legal file name (aekit.io)."""

from __future__ import annotations

import os
import random
import unicodedata
from pathlib import Path, PurePosixPath

import pytest

from aekit import io
from aekit.errors import ImageReadError
from aekit.paths import NAME_MAX, refuse_special_file, unique_names, why_missing, why_not_regular
from corpus import LONG_NAME, make_fifo, no_fifos, watch_fifo


def _fold(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


def check_unique(names: list[str], result: list[str]) -> None:
    """What unique_names promises, whatever the names: one output each, none the same file as another or as a
    folder the outputs use (ignoring case and Unicode form), every part within NAME_MAX bytes, in place."""
    assert len(result) == len(names)
    folded = [_fold(name) for name in result]
    assert len(set(folded)) == len(result), result
    folders = {"/".join(name.split("/")[:i]) for name in folded for i in range(1, name.count("/") + 1)}
    assert not folders & set(folded), result
    assert all(len(os.fsencode(part)) <= NAME_MAX for name in result for part in name.split("/"))
    for given, made in zip(names, result):  # a repeat keeps its folder and its extension
        if len(os.fsencode(given)) <= NAME_MAX:
            assert made.rsplit("/", 1)[:-1] == given.rsplit("/", 1)[:-1]
            assert made.endswith(PurePosixPath(given).suffix)


ADVERSARIAL = {
    "repeats": ["a.png", "b/a.png", "a.png", "a.png"],
    "a-generated-name-among-the-inputs": ["a.png", "a.png", "a~1.png"],
    "generated-names-first": ["a~1.png", "a~2.png", "a.png", "a.png", "a.png", "a~1~1.png"],
    "case": ["Face.png", "face.png", "FACE.png", "face~1.png", "Face~1.png"],
    "unicode-forms": ["caf\u00e9.png", "cafe\u0301.png", "CAF\u00c9.png"],
    "file-and-folder": ["x.png", "x.png/y.png", "X.PNG", "x~1.png/z.png", "x.png"],
    "no-extension-and-dots": ["a", "a", ".hidden", ".hidden", "a.", "a.", "a.b.c", "a.b.c"],
    "255-bytes": [LONG_NAME, LONG_NAME, LONG_NAME.upper()],
    "longer-than-255-bytes": ["n" * 300 + ".png", "n" * 300 + ".png", "n" * 299 + ".png", "é" * 200 + ".png",
                              "é" * 200 + ".png", "d" * 300 + "/x.png", "d" * 301 + "/x.png"],
    "long-extension": ["a." + "x" * 300, "a." + "x" * 300],
    "not-utf8": [os.fsdecode(b"caf\xe9.png")] * 3 + [os.fsdecode(b"\xe9" * 300 + b".png")] * 2,
}


@pytest.mark.parametrize("names", list(ADVERSARIAL.values()), ids=list(ADVERSARIAL))
def test_unique_names_never_gives_one_name_twice(names):
    check_unique(names, unique_names(names))


def test_unique_names_fuzzed_from_a_few_letters():
    rng = random.Random(0)
    for _ in range(300):
        names = ["".join(rng.choice("aA~1./é") for _ in range(rng.randint(1, 6))).strip("/") or "a"
                 for _ in range(rng.randint(1, 12))]
        names = [name for name in names if all(part not in ("", ".", "..") for part in name.split("/"))]
        check_unique(names, unique_names(names))


def test_unique_names_keeps_every_name_it_can_and_numbers_the_repeats():
    assert unique_names(["a.png", "b/a.png", "a.png", "a.png"]) == ["a.png", "b/a.png", "a~1.png", "a~2.png"]
    assert unique_names(["a.png", "a.png", "a~1.png"]) == ["a.png", "a~2.png", "a~1.png"]  # the input a~1.png keeps its name
    assert unique_names(["A.png", "a.png"]) == ["A.png", "a~1.png"]
    assert unique_names(["x.png", "x.png/y.png"]) == ["x~1.png", "x.png/y.png"]  # a folder stays a folder
    cut = unique_names(["n" * 300 + ".png", "n" * 300 + ".png"])
    assert cut == ["n" * 251 + ".png", "n" * 249 + "~1.png"]
    multibyte = unique_names(["é" * 200 + ".png"])[0]  # cut between characters, never inside one
    assert multibyte == "é" * 125 + ".png" and multibyte.encode("utf-8")


def test_unique_names_of_many_repeats_stays_fast():
    names = unique_names(["a.png"] * 20_000)
    assert names[-1] == "a~19999.png" and len(set(names)) == 20_000


# --- FIFOs, sockets and devices ------------------------------------------------------------------------


@pytest.mark.skipif(no_fifos() is not None, reason="no named pipes here")
def test_a_fifo_is_said_to_be_no_regular_file_without_opening_it(tmp_path, monkeypatch):
    fifo = make_fifo(tmp_path)
    watch = watch_fifo(monkeypatch, fifo)
    assert why_not_regular(fifo) == "not a regular file (a named pipe)"
    assert why_missing(fifo) == "not a regular file (a named pipe)"  # what a named input that is no file says
    with pytest.raises(ImageReadError, match="pipe.jpg: not a regular file"):
        refuse_special_file(fifo)
    link = tmp_path / "link.jpg"
    link.symlink_to(fifo)  # links are followed
    assert why_not_regular(link) == "not a regular file (a named pipe)"
    assert watch.opened == 0


def test_regular_files_folders_and_missing_paths_are_not_special(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    for path in (tmp_path / "a.png", tmp_path, tmp_path / "missing.png"):
        assert why_not_regular(path) is None
        refuse_special_file(path)
    if os.path.exists("/dev/null"):
        assert why_not_regular("/dev/null") == "not a regular file (a character device)"


# --- atomic writes beside the longest legal names --------------------------------------------------------


@pytest.mark.parametrize("name", [LONG_NAME, "n" * 251 + ".png", "n" * 255, "a." + "x" * 253,
                                  os.fsdecode(b"\xe9" * 251 + b".png")], ids=["utf8", "ascii", "no-extension", "long-extension", "not-utf8"])
def test_atomic_writes_take_a_255_byte_name(tmp_path, name):
    assert len(os.fsencode(name)) == NAME_MAX
    target = tmp_path / name
    io.check_writable(target)
    io.write_bytes(target, b"data")
    assert target.read_bytes() == b"data" and sorted(tmp_path.iterdir()) == [target]
    writing = io.atomic_path(target)
    temporary = writing.__enter__()  # a process killed here leaves its temporary file behind
    assert len(os.fsencode(temporary.name)) <= 94 and temporary.name.startswith(".") and temporary.name.endswith(".tmp")
    assert io.remove_temporaries(tmp_path) == [temporary]  # ... which the clean-up still finds
    assert target.read_bytes() == b"data"


def test_temporary_names_keep_the_name_and_extension_when_short(tmp_path):
    with io.atomic_path(tmp_path / "model.safetensors") as temporary:
        assert temporary.name.startswith(".model.safetensors.") and temporary.name.endswith(".safetensors.tmp")
        Path(temporary).write_bytes(b"x")
    assert (tmp_path / "model.safetensors").read_bytes() == b"x"
