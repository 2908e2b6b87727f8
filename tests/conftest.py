"""Shared fixtures: an isolated AEKIT_HOME, freshly loaded plugins, a small folder of faces, a tiny model.

Plain helpers (the TINY config, CliRunner wrappers) are in helpers.py; bad and edge inputs in corpus.py.
"""

from __future__ import annotations

import importlib
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import aekit.plugins
from aekit.synthetic import make_faces
from helpers import save_tiny_model

FACE_COUNT = 12
FACE_SIZE = 32
FACE_SEED = 3


@pytest.fixture(autouse=True)
def _isolated_aekit(tmp_path_factory, monkeypatch):
    """Each test gets its own AEKIT_HOME (never ~/.cache) and reloads plugins from scratch."""
    monkeypatch.setenv("AEKIT_HOME", str(tmp_path_factory.mktemp("aekit_home")))
    monkeypatch.delenv("AEKIT_LOAD_PLUGINS", raising=False)
    aekit.plugins.reset()
    yield
    aekit.plugins.reset()


@pytest.fixture(scope="module")
def module_home(tmp_path_factory):
    """An isolated AEKIT_HOME for module-scoped fixtures (the autouse isolation above is per test)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AEKIT_HOME", str(tmp_path_factory.mktemp("module_home")))
        patch.delenv("AEKIT_LOAD_PLUGINS", raising=False)
        aekit.plugins.reset()
        yield
        aekit.plugins.reset()


@pytest.fixture
def runner():
    """A click CliRunner (helpers.run_cli uses one of its own)."""
    return CliRunner()


@pytest.fixture
def tiny_model_dir(tmp_path):
    """An untrained TINY model (helpers.TINY) saved in tmp_path/model."""
    return save_tiny_model(tmp_path / "model")


def face_file_names(count: int = FACE_COUNT) -> list[str]:
    """Where face i is written, relative to the folder: PNG and JPEG, some in sub/ and sub/deeper/."""
    names = []
    for i in range(count):
        ext = ".jpg" if i in (6, 7, 10) else ".png"
        if i == 11:
            names.append(f"sub/deeper/face{i:02d}{ext}")
        elif i >= 8:
            names.append(f"sub/face{i:02d}{ext}")
        else:
            names.append(f"face{i:02d}{ext}")
    return names


@pytest.fixture
def face_images():
    """The faces `face_folder` writes: (images (N, S, S, 3) uint8, {attribute: 0/1 array}, relative names)."""
    images, attrs = make_faces(FACE_COUNT, seed=FACE_SEED, size=FACE_SIZE)
    return images, attrs, face_file_names()


@pytest.fixture
def face_folder(tmp_path, face_images):
    """A folder of 12 small synthetic faces (PNG and JPEG, some in subfolders) plus a CelebA-style attributes.csv."""
    images, attrs, names = face_images
    root = tmp_path / "faces"
    for image, name in zip(images, names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".jpg"):
            Image.fromarray(image).save(path, quality=95)
        else:
            Image.fromarray(image).save(path)
    lines = ["image_id,Smiling,Male"]
    for i, name in enumerate(names):  # keyed by file name, -1/1 like CelebA's list_attr_celeba
        smiling, male = (2 * int(attrs[k][i]) - 1 for k in ("Smiling", "Male"))
        lines.append(f"{name.rsplit('/', 1)[-1]},{smiling},{male}")
    (root / "attributes.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert np.asarray(images).shape == (FACE_COUNT, FACE_SIZE, FACE_SIZE, 3)
    return root


@pytest.fixture
def fake_hub(monkeypatch):
    """huggingface_hub.HfApi replaced by a recorder: {"repo": id, "files": sorted names uploaded}."""
    uploaded = {}

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kwargs):
            uploaded["repo"] = repo_id

        def upload_folder(self, folder_path, repo_id, **kwargs):
            from pathlib import Path

            uploaded["files"] = sorted(p.name for p in Path(folder_path).iterdir())

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    return uploaded


@pytest.fixture
def without_bundled(monkeypatch):
    """``hide(*tasks)``: the registered pretrained models less aekit's own of those tasks, as if aekit shipped none."""

    def hide(*tasks):
        from aekit import pretrained

        every = pretrained.pretrained_models
        monkeypatch.setattr(pretrained, "pretrained_models",
                            lambda: [m for m in every() if not (m.plugin == "pretrained" and set(tasks) & set(m.tasks))])

    return hide


@pytest.fixture
def install_plugin(tmp_path, monkeypatch):
    """Install fake distributions (a module plus a .dist-info with an aekit.plugins entry point) on sys.path.

    ``install(dist_name, entry_point, module, source, version="1.2.3")``; plugins reload afterwards.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    installed = []

    def install(dist_name, entry_point, module, source, version="1.2.3"):
        monkeypatch.delitem(sys.modules, module, raising=False)
        (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        info = site / f"{dist_name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n", encoding="utf-8")
        (info / "entry_points.txt").write_text(f"[aekit.plugins]\n{entry_point} = {module}\n", encoding="utf-8")
        installed.append(module)
        importlib.invalidate_caches()
        aekit.plugins.reset()

    yield install
    for module in installed:
        sys.modules.pop(module, None)
