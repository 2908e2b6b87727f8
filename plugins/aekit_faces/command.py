"""The ``aekit faces`` command: every face of some photos, aligned like CelebA, as PNGs plus ``faces.csv``."""

from __future__ import annotations

import csv
import io as text_io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import click
import numpy as np

from aekit.errors import AekitError, ImageReadError

from .faces import FRAME, LANDMARK_NAMES, FaceError

CSV_NAME = "faces.csv"
MIN_SIZE = 24.0  # px, the box's shorter side: about where the 64x64 model input stops being an enlargement
MIN_SCORE = 0.8  # YuNet's true faces score 0.88 or more 95 times in 100 (benchmarks/face_align.py), false ones rarely 0.8
LISTED_SCORE = 0.6  # weaker detections than --min-score but at least this are listed as left out; below it, no face
SUFFIX_ROOM = 8  # bytes kept free in a photo's output name for "-N" (any name still fits 255 bytes)
SHOWN = 20  # listed lines of each kind before "... and N more"


@dataclass
class Photo:
    """One photo to search: its path, and its name relative to what was given (for the outputs' names)."""

    path: Path
    name: str


def collect_photos(inputs, out: Path) -> tuple[list[Photo], list[str]]:
    """The image files under the given files and folders, and the problems of inputs that are none.

    Folders are walked recursively (aekit's image extensions; hidden files and folders left out, and so is
    `out` when it lies inside one, so a second run does not take its own outputs as photos); with several
    inputs, a folder's photos are named under the folder's own name. A name that is no readable file
    (missing, a broken link, a FIFO or device, which is never opened) is listed with the reason.
    """
    from aekit.data import scan_image_folder
    from aekit.images import IMAGE_EXTENSIONS
    from aekit.paths import why_missing

    photos, problems = [], []
    leave_out = out.resolve() if out.is_dir() else None
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            prefix = PurePosixPath(path.resolve().name) if len(inputs) > 1 else PurePosixPath()
            names = [n for n in scan_image_folder(path, IMAGE_EXTENSIONS)
                     if leave_out is None or leave_out == path.resolve() or leave_out not in (path / n).resolve().parents]
            if not names:
                raise AekitError(f"{path}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
            photos += [Photo(path / n, str(prefix / n)) for n in names]
        elif path.is_file():
            photos.append(Photo(path, path.name))
        else:
            problems.append(f"{path}: {why_missing(path)}")
    return photos, problems


def output_stems(photos: list[Photo]) -> list[str]:
    """One output stem per photo, relative and safe (no absolute paths, no ``..``), never the same twice even
    ignoring case, short enough that ``STEM-N.png`` fits the file system (``aekit.paths.unique_names``)."""
    from aekit.paths import NAME_MAX, unique_names

    names = []
    for photo in photos:
        name = photo.name.replace("\0", "_")
        parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("/", "..", ".", "")]
        stem = str(PurePosixPath(*parts).with_suffix("")) if parts else "photo"
        names.append(f"{stem or 'photo'}.png")
    return [name[: -len(".png")] for name in unique_names(names, limit=NAME_MAX - SUFFIX_ROOM)]


_OUTPUT = re.compile(r"^(.*)-\d+\.png$", re.DOTALL)


def refuse_clashes(out: Path, photos: list[Photo], stems: list[str], overwrite: bool) -> None:
    """AekitError before any work when an output could replace a photo (always) or an earlier output
    (``faces.csv`` or a ``STEM-N.png`` of these photos; unless `overwrite`)."""
    import unicodedata

    if not out.is_dir():
        return
    fold = lambda text: unicodedata.normalize("NFC", text).casefold()  # noqa: E731  (as aekit.paths compares names)
    ours = {fold(stem) for stem in stems}
    inputs = {os.path.realpath(photo.path) for photo in photos}
    for folder, dirs, files in os.walk(out):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            relative = path.relative_to(out).as_posix()
            match = _OUTPUT.match(relative)
            if not (match and fold(match[1]) in ours) and relative != CSV_NAME:
                continue
            if os.path.realpath(path) in inputs:
                raise AekitError(f"{path}: would overwrite an input; choose another --out")
            if not overwrite:
                raise AekitError(f"{path}: already exists; add --overwrite to replace the outputs or choose another --out")


def csv_header() -> list[str]:
    landmarks = [f"{name}_{axis}" for name in LANDMARK_NAMES for axis in "xy"]
    return ["photo", "face", "file", "width", "height", "score", "box_x", "box_y", "box_w", "box_h", *landmarks,
            "m00", "m01", "m02", "m10", "m11", "m12"]


def csv_row(photo: Path, index: int, file: str, shape, face) -> list[str]:
    number = lambda value: f"{value:.3f}"  # noqa: E731  (pixels: a thousandth is plenty)
    return [str(photo), str(index), file, str(shape[1]), str(shape[0]), f"{face.score:.4f}",
            *map(number, face.box), *map(number, face.landmarks.ravel()), *(f"{v:.8g}" for v in face.transform.ravel())]


def write_csv(path: Path, rows: list[list[str]]) -> None:
    """faces.csv, atomically (file names that are not UTF-8 are written back as their own bytes)."""
    from aekit import io

    buffer = text_io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(csv_header())
    writer.writerows(rows)
    io.write_text(path, buffer.getvalue())


def _size_option(ctx, param, value):
    from .faces import parse_size

    try:
        return parse_size(value)
    except FaceError as exc:
        raise click.BadParameter(str(exc)) from None


def _echo_list(label: str, lines: list[str]) -> None:
    from aekit.text import printable

    for line in lines[:SHOWN]:
        click.echo(printable(f"{label}: {line}"), err=True)  # a file name must not forge a line
    if len(lines) > SHOWN:
        click.echo(f"{label}: ... and {len(lines) - SHOWN} more", err=True)


@click.command("faces")
@click.argument("inputs", nargs=-1, required=True, metavar="PHOTO...")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help=f"Folder for the aligned faces (PHOTO-0.png, PHOTO-1.png ...) and {CSV_NAME}; created if missing.")
@click.option("--size", default="178x218", show_default=True, metavar="N|WxH", callback=_size_option,
              help="The faces' size: 178x218 is CelebA's aligned frame; N gives N x N exactly as aekit resizes CelebA's "
                   "images (64: a model's input); WxH resizes the frame to that.")
@click.option("--largest", is_flag=True, help="Keep only the largest face of each photo.")
@click.option("--min-size", type=click.FloatRange(min=0), default=MIN_SIZE, show_default=True, metavar="PX",
              help="Leave out (and list) faces whose box's shorter side is smaller than PX pixels.")
@click.option("--min-score", type=click.FloatRange(0, 1), default=MIN_SCORE, show_default=True,
              help=f"Leave out (and list) faces YuNet is less sure of (detections below {LISTED_SCORE} are no faces).")
@click.option("--overwrite", is_flag=True, help=f"Replace the faces and the {CSV_NAME} an earlier run wrote (refused otherwise).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def faces_cmd(inputs, out, size, largest, min_size, min_score, overwrite, quiet):
    """Find the faces in photos and align each the way CelebA's aligned faces are framed.

    Each face is found with its five landmarks (YuNet) and brought upright into CelebA's 178x218 frame
    by one rotation, scaling and shift, so any aekit model sees it as it saw CelebA. One PNG per face
    (largest first: PHOTO-0.png, PHOTO-1.png ...) and faces.csv (photo, face, file, score, box,
    landmarks, and the 2x3 transform from photo pixels to the 178x218 frame). EXIF rotation is applied.
    Photos with no face, faces left out by --min-size or --min-score, and unreadable files are listed;
    the rest are written.

    \b
    Examples:
      aekit faces group.jpg --out faces/
      aekit faces photos/ --out faces/ --largest --size 64      # one 64x64 model input per photo
      aekit faces photos/ --out faces/ --min-size 48 --overwrite
    """
    from PIL import Image
    from tqdm.auto import tqdm

    from aekit import io
    from aekit.command_tools import check_output_folder, echo_skipped, nothing_read
    from aekit.images import open_image, png_text

    from .faces import align, as_rgb, detect_faces, select_faces

    out = check_output_folder(out)
    photos, skipped = collect_photos(inputs, out)
    if not photos:
        raise nothing_read(skipped)
    stems = output_stems(photos)
    refuse_clashes(out, photos, stems, overwrite)
    io.check_writable(out / CSV_NAME)  # a folder that takes no file fails before any photo is searched
    rows, no_face, left_out, read = [], [], [], 0
    bar = tqdm(total=len(photos), desc="finding faces", unit="photo", disable=quiet or len(photos) == 1, leave=False)
    try:
        for photo, stem in zip(photos, stems):
            bar.update()
            try:
                rgb = as_rgb(open_image(photo.path))
            except ImageReadError as exc:
                skipped.append(str(exc))
                continue
            read += 1
            found = detect_faces(rgb, min_score=min(LISTED_SCORE, min_score))
            kept, dropped = select_faces(found, largest, min_size, min_score)
            if not found:
                no_face.append(str(photo.path))
            for face, why in dropped:
                x, y, w, h = face.box
                option = "--min-size" if "smaller" in why else "--min-score"
                left_out.append(f"{photo.path}: the face at ({x + w / 2:.0f}, {y + h / 2:.0f}): {why} ({option})")
            for index, face in enumerate(kept):
                picture = align(rgb, face, size)
                name = f"{stem}-{index}.png"
                target = out / name
                target.parent.mkdir(parents=True, exist_ok=True)
                meta = {"Source": photo.path, "Face": index, "Transform": json.dumps(np.round(face.transform, 8).tolist())}
                io.save_image(target, Image.fromarray(picture), format="PNG", pnginfo=png_text(meta))
                rows.append(csv_row(photo.path, index, name, picture.shape, face))
    finally:
        bar.close()
        if read:  # also after Ctrl-C or an error: the faces already written are listed
            out.mkdir(parents=True, exist_ok=True)
            write_csv(out / CSV_NAME, rows)
    if not read:
        if len(skipped) > 1:
            echo_skipped(skipped)
        raise nothing_read(skipped)
    echo_skipped(skipped)
    _echo_list("no face", no_face)
    _echo_list("left out", left_out)
    shape = f"{FRAME[0]}x{FRAME[1]}" if size is None else (f"{size}x{size}" if isinstance(size, int) else f"{size[0]}x{size[1]}")
    notes = [f"{len(no_face)} photo(s) with no face"] if no_face else []
    notes += [f"{len(left_out)} face(s) left out"] if left_out else []
    notes += [f"{len(skipped)} file(s) skipped"] if skipped else []
    click.echo(f"wrote {len(rows)} aligned face(s) ({shape}) from {read} photo(s) to {out} (listed in {CSV_NAME})"
               + (f"; {', '.join(notes)}" if notes else ""))
