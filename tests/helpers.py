"""What the test modules share that is not a fixture: the tiny model config and CliRunner helpers.

Import with ``from helpers import ...`` (pytest puts ``tests/`` on ``sys.path``: it has no
``__init__.py``). The fixtures built on these (``runner``, ``module_home``, ``tiny_model_dir``) are in
``conftest.py``; the corpus of bad and edge inputs is in ``corpus.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from click.testing import CliRunner, Result

import aekit
from aekit.cli import cli

# The smallest useful model: 32x32 images, two stages of 8 and 16 channels, a 16-d latent (milliseconds on a CPU)
TINY = {"image_size": 32, "widths": (8, 16), "convs_per_half": 1, "latent_dim": 16}


def model_config_args(config: dict) -> list[str]:
    """``--model-config FIELD=VALUE`` arguments of ``aekit train`` giving this model config."""
    args = []
    for field, value in config.items():
        text = ",".join(str(v) for v in value) if isinstance(value, (tuple, list)) else str(value)
        args += ["--model-config", f"{field}={text}"]
    return args


TINY_CLI = model_config_args(TINY)


def tiny_model(seed: int = 0, arch: str = "article", **overrides):
    """An untrained TINY model (fields in `overrides` replace TINY's), seeded so that it is the same every time."""
    torch.manual_seed(seed)
    return aekit.create_model(arch, **{**TINY, **overrides})


def tiny_preset(arch: str, seed: int = 0):
    """An untrained, seeded, tiny 32x32 model of any registered preset, in eval mode."""
    torch.manual_seed(seed)
    if arch == "drunet":  # a denoiser without a latent size of its own
        return aekit.create_model(arch, image_size=32, widths=(8, 16), blocks=1).eval()
    if arch == "codec":  # GDN widths of its own; a 4x4x4 latent, two qualities
        return aekit.create_model(arch, image_size=32, width=8, analysis_width=8, latent_channels=4, downsamplings=3,
                                  qualities=2, lambdas=(0.002, 0.01), default_quality=1).eval()
    extra = {"convs_per_half": 1} if arch in ("article", "small") else {}
    return aekit.create_model(arch, image_size=32, widths=(8, 16), latent_dim=16, **extra).eval()


def save_tiny_model(directory, seed: int = 0, **overrides) -> Path:
    """`tiny_model(...)` saved as a checkpoint folder; returns the folder."""
    return tiny_model(seed, **overrides).save_pretrained(directory)


# --- the command line through click's CliRunner ------------------------------------------------------------

RUNNER = CliRunner()


def run_cli(*args) -> Result:
    """Run ``aekit ARGS...`` in this process (arguments may be paths or numbers) and return click's Result."""
    return RUNNER.invoke(cli, [str(a) for a in args])


def invoke(*args) -> Result:
    """Run a command that must succeed."""
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    return result


def error_line(result: Result, code: int | None = None) -> str:
    """The one ``Error:`` line of a failed command: status `code` (any non-zero when None), no traceback."""
    if code is None:
        assert result.exit_code not in (0, None), result.output
    else:
        assert result.exit_code == code, result.output
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(lines) == 1, result.output
    return lines[0]


def fails(*args, message: str, code: int | None = None, alone: bool = False) -> str:
    """Run a command that must fail with one ``Error:`` line naming `message`; returns that line.

    `code`: the exit status it must have (default: any but 0); `alone`: that line is all it prints.
    """
    result = run_cli(*args)
    line = error_line(result, code)
    assert message in line, result.output
    if alone:
        assert result.output.strip().splitlines() == [line], result.output
    return line


def stray_temporaries(root) -> list[Path]:
    """The temporary files (``.NAME.*.tmp``) of atomic writes left anywhere under `root`."""
    return [Path(folder) / name for folder, _, names in os.walk(root) for name in names
            if name.startswith(".") and name.endswith(".tmp")]


# --- damaged sidecar files (priors, directions) ---------------------------------------------------------------


def resaved_safetensors(path, arrays=None, metadata=None) -> None:
    """The safetensors file at `path` written again with `arrays(a)` / `metadata(m)` applied to its contents."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), framework="np") as fh:
        meta, tensors = dict(fh.metadata()), {k: fh.get_tensor(k) for k in fh.keys()}
    (arrays or (lambda a: None))(tensors)
    (metadata or (lambda m: None))(meta)
    save_file(tensors, str(path), metadata=meta)


def poke(key, value):
    """An `arrays` edit for `resaved_safetensors`: the second value of array `key` set to `value`."""
    def edit(arrays):
        arrays[key] = arrays[key].copy()
        arrays[key].reshape(-1)[1] = value
    return edit


# --- photos with faces in them (the faces are aekit's synthetic ones, which the face aligner finds) -------------

FACE_SIDE = 192  # px: the synthetic faces drawn into photos (make_faces(12, seed=0, size=192))
FOUND_FACES = (6, 9, 11)  # of those, the faces YuNet finds upright (score 0.86 or more)
PHOTO_BACKGROUND = (40, 90, 60)


def synthetic_face_pictures():
    """The 192x192 synthetic faces the photos below are made of (index them with FOUND_FACES)."""
    from aekit.synthetic import make_faces

    return make_faces(12, seed=0, size=FACE_SIDE)[0]


def face_placed(centre, scale: float = 1.0, angle: float = 0.0):
    """The (2, 3) transform drawing a 192x192 face turned by `angle` degrees and scaled by `scale`, centred at
    `centre`."""
    from aekit_faces import compose, similarity

    middle = (FACE_SIDE - 1) / 2
    return compose(similarity(1, 0, (centre[0] - middle, centre[1] - middle)),
                   similarity(scale, angle, center=(middle, middle)))


def photo_with_faces(faces, size=(480, 400)):
    """A (H, W, 3) uint8 photo of `size` (width, height): each (face picture, transform) drawn on a plain background
    (tests/test_faces.py and test_alignment.py build theirs with it)."""
    import numpy as np
    from aekit_faces import warp

    canvas = np.empty((size[1], size[0], 3), np.uint8)
    canvas[:] = PHOTO_BACKGROUND
    for image, transform in faces:
        drawn = warp(image, transform, size, border="constant")
        inside = warp(np.full_like(image, 255), transform, size, border="constant") > 127
        canvas = np.where(inside, drawn, canvas)
    return canvas


# --- a folder of such photos (--align on compress, umap, eval) ---------------------------------------------------


def write_face_photos(folder, pair: bool = False) -> Path:
    """A folder of photos made with `photo_with_faces`: group.png (two faces, the larger on the right), solo.jpg
    (one face) and empty.png (none, a plain grey picture); with `pair`, also pair.png (two more faces)."""
    import numpy as np
    from PIL import Image

    faces = synthetic_face_pictures()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo_with_faces([(faces[11], face_placed((130, 200), 0.7)),
                                      (faces[9], face_placed((340, 190), 1.2, -10))])).save(folder / "group.png")
    Image.fromarray(photo_with_faces([(faces[6], face_placed((240, 200), 0.9, 20))])).save(folder / "solo.jpg", quality=95)
    Image.fromarray(np.full((200, 300, 3), 128, np.uint8)).save(folder / "empty.png")
    if pair:
        Image.fromarray(photo_with_faces([(faces[6], face_placed((120, 190), 0.8)),
                                          (faces[11], face_placed((350, 210), 1.0, 8))])).save(folder / "pair.png")
    return folder


def interrupt_training_after(monkeypatch, steps: int) -> None:
    """Make ``aekit train`` stop as on Ctrl-C after `steps` optimisation steps (it then saves and can resume)."""
    from aekit.train import Trainer

    calls = {"n": 0}
    real_step = Trainer._step

    def step(self, *args):
        if calls["n"] == steps:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real_step(self, *args)

    monkeypatch.setattr(Trainer, "_step", step)
