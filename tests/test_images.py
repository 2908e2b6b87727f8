"""Reading user images (aekit.images): only the formats aekit reads, and never a decoder that runs a program.

Security finding 1: Pillow picks a decoder from a file's content, so a ``face.jpg`` starting ``%!PS`` went to
its EPS plugin, which runs Ghostscript. Each test here watches for any program being started two ways: a spy
on the ways Python starts one, and a stand-in ``gs`` first on PATH (``corpus.ghostscript_trap``), which
catches any route.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

import aekit
from aekit.errors import ImageReadError
from aekit.images import ALLOWED_FORMATS, FORMATS_READ, IMAGE_EXTENSIONS, decode_image_bytes, open_image
from aekit.synthetic import make_faces
from corpus import EPS, encoded, face, ghostscript_trap, write
from helpers import TINY_CLI, run_cli

REFUSED = "not an image format aekit reads"
README = Path(__file__).resolve().parents[1] / "README.md"

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="the stand-in gs is a shell script")


@pytest.fixture
def programs(tmp_path, monkeypatch):
    """Every program started while the test runs: [(how, what)], and the stand-in gs's marker file.

    The spy records and lets the program run, so the stand-in gs writes its marker as well.
    """
    started = []
    marker = ghostscript_trap(monkeypatch, tmp_path / "trap" / "x")

    def spy(how, original):
        def started_one(*args, **kwargs):
            started.append((how, args[0] if args else kwargs.get("args")))
            return original(*args, **kwargs)
        return started_one

    class SpiedPopen(subprocess.Popen):  # a class still: subprocess.run and others use it as one
        def __init__(self, args, *rest, **kwargs):
            started.append(("Popen", args))
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", SpiedPopen)
    for name in ("posix_spawn", "posix_spawnp", "system", "execv", "execve", "execvp"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, spy(name, getattr(os, name)))
    return started, marker


def nothing_ran(programs, *inputs: Path) -> None:
    """No program read an image: none started at all, but for what a command runs whatever its inputs (joblib
    asks lscpu for the core count), which is never gs and is given none of the `inputs` (files or folders)."""
    started, marker = programs
    assert not marker.exists(), f"the stand-in gs ran: {marker.read_text()}"
    named = [str(p) for p in inputs]
    for how, args in started:
        words = [os.fsdecode(a) for a in ([args] if isinstance(args, (str, bytes, os.PathLike)) else args)]
        assert not Path(words[0]).name.lower().startswith("gs"), f"{how} started {words}"
        assert not [w for w in words if any(name in w for name in named)], f"{how} started {words} on an input"
    if not inputs:
        assert started == [], f"programs started: {started}"


# --- the spies themselves ----------------------------------------------------------------------------------------


@posix_only
def test_the_spies_see_pillow_run_ghostscript(programs, tmp_path):
    """Without aekit's formats Pillow does start gs on an EPS named .jpg: what the other tests would see."""
    path = write(tmp_path / "d", "face.jpg", EPS)
    with Image.open(path) as image, pytest.raises(OSError):  # the stand-in renders nothing
        assert image.format == "EPS"
        image.load()
    started, marker = programs
    assert [how for how, _ in started] and marker.exists() and "-dSAFER" in marker.read_text()


# --- every reader: folders, named files, uploads ---------------------------------------------------------------


def _folder_with_eps(tmp_path: Path, good: int = 4) -> tuple[Path, Path]:
    folder = tmp_path / "in"
    for i, picture in enumerate(make_faces(good, seed=3, size=32)[0]):
        write(folder, f"face{i}.png", encoded(Image.fromarray(picture), "PNG"))
    return folder, write(folder, "face.jpg", EPS)


FOLDER_COMMANDS = {
    "compress": lambda f, m, t: ["compress", f, "-m", m, "-o", t / "z.npz", "-q"],
    "embed": lambda f, m, t: ["embed", f, "-m", m, "-o", t / "feats.npz", "-q"],
    "denoise": lambda f, m, t: ["denoise", f, "-m", m, "-o", t / "clean", "--runtime", "torch", "-q"],
    "train": lambda f, m, t: ["train", "--data", f, "--epochs", "1", "--batch-size", "4", "--quiet", "--sample-every", "0",
                              "--out", t / "run", *TINY_CLI],
}


@posix_only
@pytest.mark.parametrize("command", sorted(FOLDER_COMMANDS))
def test_an_eps_named_jpg_in_a_folder_is_skipped_and_runs_no_program(command, programs, tmp_path, tiny_model_dir,
                                                                     monkeypatch):
    if command == "train":
        monkeypatch.setenv("AEKIT_LOAD_PLUGINS", "sources")  # no prior fitting at the end: faster
    folder, eps = _folder_with_eps(tmp_path)
    result = run_cli(*FOLDER_COMMANDS[command](folder, tiny_model_dir, tmp_path))
    nothing_ran(programs, folder)
    assert result.exit_code == 0, result.output
    assert f"skipped: {eps}: {REFUSED} (it reads {FORMATS_READ})" in result.stderr.splitlines(), result.output


@posix_only
@pytest.mark.parametrize("command", ["compress", "embed", "denoise", "interpolate"])
def test_an_eps_named_jpg_given_by_name_is_refused_in_one_line_and_runs_no_program(command, programs, tmp_path,
                                                                                     tiny_model_dir):
    _, eps = _folder_with_eps(tmp_path, good=1)
    out = {"compress": ["-o", tmp_path / "z.npz"], "embed": ["-o", tmp_path / "f.npz"],
           "denoise": ["-o", tmp_path / "clean.png"], "interpolate": [tmp_path / "in" / "face0.png", "--out", tmp_path / "s.png"]}
    result = run_cli(command, eps, *out[command], "-m", tiny_model_dir)
    nothing_ran(programs, eps)
    assert result.exit_code in (1, 2) and "Traceback" not in result.output, result.output
    assert f"{eps}: {REFUSED}" in result.output, result.output


@pytest.fixture
def explorer_client(tiny_model_dir, tmp_path):
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from starlette.testclient import TestClient

    from aekit_serve.app import build_app

    gallery = tmp_path / "gallery"
    write(gallery, "face.jpg", EPS)
    write(gallery, "good.png", encoded(Image.fromarray(face(32)), "PNG"))
    logged = []
    app = build_app(aekit.load(tiny_model_dir), gallery_dir=gallery, log_message=logged.append)
    with TestClient(app, headers={"X-Aekit": "1"}, raise_server_exceptions=False) as client:  # what the page sends
        client.logged = logged
        yield client


@posix_only
def test_an_eps_upload_to_the_explorer_is_refused_and_runs_no_program(programs, explorer_client):
    response = explorer_client.post("/api/encode", files={"image": ("face.jpg", EPS, "image/jpeg")})
    nothing_ran(programs)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": f"face.jpg: {REFUSED} (it reads {FORMATS_READ})"}
    good = explorer_client.post("/api/encode", files={"image": ("good.png", encoded(Image.fromarray(face(32)), "PNG"))})
    assert good.status_code == 200, good.text  # the server goes on
    nothing_ran(programs)


@posix_only
def test_the_explorer_gallery_leaves_out_an_eps_named_jpg_and_runs_no_program(programs, explorer_client):
    response = explorer_client.get("/api/gallery")
    nothing_ran(programs)
    assert response.status_code == 200, response.text
    labels = [item["label"] for item in response.json()["gallery"]]
    assert "good.png" in labels and "face.jpg" not in labels, labels
    assert any(f"face.jpg: {REFUSED}" in line for line in explorer_client.logged), explorer_client.logged
    nothing_ran(programs)


# --- the opener ---------------------------------------------------------------------------------------------------


def _saved(fmt: str, **params) -> bytes:
    return encoded(Image.fromarray(face(24)), fmt, **params)


@pytest.mark.parametrize("fmt", ALLOWED_FORMATS)
def test_each_allowed_format_is_read_whatever_the_file_is_called(fmt, tmp_path):
    image = open_image(write(tmp_path, "picture.dat", _saved(fmt)))
    assert image.mode == "RGB" and image.size == (24, 24)
    assert decode_image_bytes(_saved(fmt), "cell").size == (24, 24)


def test_a_camera_jpeg_with_a_preview_is_read_as_the_jpeg_it_is(tmp_path):
    path = write(tmp_path, "camera.jpg", _saved("MPO", save_all=True, append_images=[Image.fromarray(face(16))]))
    assert Image.open(path).format == "MPO"
    assert open_image(path).size == (24, 24)


@posix_only
@pytest.mark.parametrize("fmt, name", [("EPS", "face.jpg"), ("ICO", "icon.png"), ("PCX", "scan.bmp"), ("PPM", "raw.png")])
def test_other_formats_pillow_knows_are_refused_as_formats_aekit_does_not_read(fmt, name, programs, tmp_path):
    data = EPS if fmt == "EPS" else _saved(fmt)
    with pytest.raises(ImageReadError, match=re.escape(f"{name}: {REFUSED} (it reads {FORMATS_READ})")):
        open_image(write(tmp_path, name, data))
    with pytest.raises(ImageReadError, match=f"cell: {REFUSED}"):
        decode_image_bytes(data, "cell")
    nothing_ran(programs)


def test_what_is_no_image_at_all_is_still_one_pillow_cannot_read(tmp_path):
    for data in (b"", b"this is not a picture\n", b"%PDF-1.4\n%%EOF\n"):
        with pytest.raises(ImageReadError, match="notes.jpg: not an image Pillow can read$"):
            open_image(write(tmp_path, "notes.jpg", data))


@posix_only
def test_an_opener_that_gives_another_format_is_refused_before_decoding(programs, monkeypatch, tmp_path):
    """Defence in depth: whatever an allowed opener returns, only an image of aekit's formats is decoded."""
    from PIL import EpsImagePlugin

    monkeypatch.setitem(Image.OPEN, "PNG", (EpsImagePlugin.EpsImageFile, lambda prefix: prefix.startswith(b"%!PS")))
    with pytest.raises(ImageReadError, match=re.escape(f"face.jpg: {REFUSED} (EPS; it reads {FORMATS_READ})")):
        open_image(write(tmp_path, "face.jpg", EPS))
    nothing_ran(programs)


def test_the_readme_names_the_formats_and_extensions_the_code_reads():
    row = next(line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith("| `PATH/` |"))
    assert FORMATS_READ in row, row
    named = re.search(r"recursive \(([^)]*)\)", row).group(1)
    assert [e.strip() for e in named.split(",")] == list(IMAGE_EXTENSIONS), row
    assert FORMATS_READ.replace(" and ", ", ").upper().split(", ") == list(ALLOWED_FORMATS)


# --- running out of memory, and no copy of an upright picture ------------------------------------------------------


def test_running_out_of_memory_is_a_memory_error_naming_the_file_never_a_damaged_image(monkeypatch, tmp_path, tiny_model_dir):
    path = write(tmp_path / "in", "face.png", _saved("PNG"))

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_memory)
    with pytest.raises(MemoryError, match=re.escape(f"{path}: ran out of memory decoding this image")):
        open_image(path)
    # a batch stops, in one line, rather than skipping (and caching as unreadable) a file a later run could read
    result = run_cli("compress", tmp_path / "in", "-m", tiny_model_dir, "-o", tmp_path / "z.npz", "-q")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and "ran out of memory decoding this image" in lines[0], result.output
    assert "damaged" not in result.output and "skipped" not in result.output and not (tmp_path / "z.npz").exists()


def test_an_upright_picture_is_not_copied_to_apply_its_exif_rotation(monkeypatch, tmp_path):
    upright = write(tmp_path, "upright.jpg", _saved("JPEG", quality=95))
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed turned a quarter clockwise
    turned = write(tmp_path, "turned.jpg", encoded(Image.fromarray(face(24)).resize((24, 12)), "JPEG", exif=exif))
    expected = [np.asarray(Image.open(upright)), np.asarray(Image.open(turned).transpose(Image.Transpose.ROTATE_270))]
    copies = []
    copy = Image.Image.copy
    monkeypatch.setattr(Image.Image, "copy", lambda self: copies.append(self.size) or copy(self))
    read = [open_image(upright), open_image(turned)]
    assert copies == []
    assert [image.size for image in read] == [(24, 24), (12, 24)]
    assert all(np.array_equal(np.asarray(image), want) for image, want in zip(read, expected))
