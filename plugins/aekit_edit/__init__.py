"""Latent editing: attribute directions and principal axes, ``aekit directions fit|list`` and ``aekit edit``.

Fit directions once from labelled images (CelebA's 40 attributes, the synthetic faces' 10, or any
folder with an ``attributes.csv``)::

    aekit directions fit --model runs/celeba --data faces/
    aekit edit photo.jpg --model runs/celeba --add Smiling=1.5 --add Eyeglasses=-1 --out edited.jpg
    aekit edit photo.jpg --add Smiling=1.5 --out edited.png --grid faces.png   # and the faces side by side
    aekit edit face.jpg --sweep Smiling --steps 7 --out strip.png      # pc1, pc2... work too

``aekit edit`` finds and aligns each face (``--align``), and puts the edit back into the photo as a
change under a soft mask (``photos``): the photo keeps its resolution and everything outside the face.

The pretrained ``faces-64`` ships with its 40 CelebA directions. See ``directions`` for what a
direction is and the file format, and use the Python API for anything else::

    from aekit_edit import load_directions
    directions = load_directions(model)
    z = directions.apply(model.encode([image]).numpy(), {"Smiling": 1.5})

    from aekit_edit import decoded_changes, photo_faces, put_changes
    faces, why = photo_faces(photo, "photo", "auto", model.config.image_size)   # photo: (H, W, 3) uint8
    z = model.encode(np.stack([f.pixels for f in faces])).numpy()
    _, _, changes = decoded_changes(model.decode, z, directions.apply(z, {"Smiling": 1.5}))
    edited = put_changes(photo, faces, changes)                                # the photo, edited in place
"""

from __future__ import annotations

from aekit import hookimpl

from .directions import (ATTRIBUTE, DIRECTIONS_FILE, METHODS, PRINCIPAL, DirectionsError, LatentDirections,
                         attribute_direction, directions_path, fit_directions, load_directions, parse_edit,
                         principal_axes, read_directions, save_directions)
from .photos import PhotoFace, add_whole, decoded_changes, grey_levels, photo_faces, put_changes

# the plugins whose modules this one imports (aekit refuses to load it without them)
AEKIT_REQUIRES = ("generate",)  # encoding images for fitting


@hookimpl
def register_commands(register):
    from .commands import directions_group, edit

    register(directions_group)
    register(edit)


__all__ = [
    "ATTRIBUTE",
    "DIRECTIONS_FILE",
    "METHODS",
    "PRINCIPAL",
    "DirectionsError",
    "LatentDirections",
    "PhotoFace",
    "add_whole",
    "attribute_direction",
    "decoded_changes",
    "directions_path",
    "fit_directions",
    "grey_levels",
    "load_directions",
    "parse_edit",
    "photo_faces",
    "principal_axes",
    "put_changes",
    "read_directions",
    "save_directions",
]
