"""Latent editing: attribute directions and principal axes, ``aekit directions fit|list`` and ``aekit edit``.

Fit directions once from labelled images (CelebA's 40 attributes, the synthetic faces' 10, or any
folder with an ``attributes.csv``)::

    aekit directions fit --model runs/celeba --data faces/
    aekit edit face.jpg --model runs/celeba --add Smiling=1.5 --add Eyeglasses=-1 --out edited.png
    aekit edit face.jpg --sweep Smiling --steps 7 --out strip.png      # pc1, pc2... work too

The pretrained ``faces-64`` ships with its 40 CelebA directions. See ``directions`` for what a
direction is and the file format, and use the Python API for anything else::

    from aekit_edit import load_directions
    directions = load_directions(model)
    z = directions.apply(model.encode([image]).numpy(), {"Smiling": 1.5})
"""

from __future__ import annotations

from aekit import hookimpl

from .directions import (ATTRIBUTE, DIRECTIONS_FILE, METHODS, PRINCIPAL, DirectionsError, LatentDirections,
                         attribute_direction, directions_path, fit_directions, load_directions, parse_edit,
                         principal_axes, read_directions, save_directions)

# the plugins whose modules this one imports (aekit refuses to load it without them)
AEKIT_REQUIRES = ("generate", "export")  # encoding images for fitting; ONNX Runtime for --runtime


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
    "attribute_direction",
    "directions_path",
    "fit_directions",
    "load_directions",
    "parse_edit",
    "principal_axes",
    "read_directions",
    "save_directions",
]
