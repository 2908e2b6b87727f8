"""Files aekit reads can neither crash it nor run code: random and mutated bytes, pickles, hub uploads.

Property-based tests feed random and mutated bytes to the readers (images, latent files, image arrays),
which may raise only aekit's own errors; no code in src/ or plugins/ can unpickle, loading never does,
and pushing to the hub uploads the model and nothing else. (Split from test_reliability.py, which runs
every command against the bad-input corpus.)
"""

from __future__ import annotations

import ast
import io as _io
import json
import os
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit.errors import AekitError, ImageReadError
from corpus import LAT, encoded, face, faces
from helpers import TINY

ROOT = Path(__file__).resolve().parents[1]


# --- property-based: random and mutated bytes raise only aekit's errors ----------------------------------------


def _seeds_images() -> list[bytes]:
    picture = Image.fromarray(face(24))
    return [encoded(picture, "PNG"), encoded(picture, "JPEG", quality=80), encoded(picture.convert("P"), "GIF"),
            encoded(picture, "BMP"), encoded(picture, "TIFF"), encoded(picture, "WEBP"), encoded(picture.convert("RGBA"), "PNG")]


def _npy_bytes(array) -> bytes:
    buffer = _io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _npz_bytes(**arrays) -> bytes:
    buffer = _io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _write_temp(data: bytes, suffix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="aekit-fuzz-"))
    path = folder / f"input{suffix}"
    path.write_bytes(data)
    return path


def _latent_seeds() -> list[bytes]:
    from aekit_compress import encode_for_storage

    z = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    seeds = []
    for dtype in ("float16", "int8"):
        seeds.append(_npz_bytes(names=np.array(["a", "b", "c", "d"]), dtype=np.asarray(dtype), model_id=np.asarray("0" * 16),
                                meta=np.asarray(json.dumps({"format": "aekit-latents"})), **encode_for_storage(z, dtype)))
    return seeds


def _array_seeds() -> list[tuple[bytes, str]]:
    images = faces(3, 16)
    return [(_npy_bytes(images), ".npy"), (_npy_bytes(images.transpose(0, 3, 1, 2).astype(np.float32) / 255), ".npy"),
            (_npz_bytes(images=images, names=np.array(["x", "y", "z"]), smiling=np.array([0, 1, 0])), ".npz")]


try:
    from hypothesis import HealthCheck, given, settings, strategies as st
except ImportError:  # pragma: no cover - a dev dependency
    st = None

if st is None:  # pragma: no cover

    @pytest.mark.skip(reason="hypothesis is not installed (pip install hypothesis)")
    def test_property_based_readers():
        pass

else:

    # AEKIT_FUZZ_EXAMPLES=5000 for a longer search (random instead of the fixed examples)
    EXAMPLES = int(os.environ.get("AEKIT_FUZZ_EXAMPLES", "80"))
    FUZZ = settings(max_examples=EXAMPLES, deadline=5000, suppress_health_check=[HealthCheck.too_slow], database=None,
                    derandomize="AEKIT_FUZZ_EXAMPLES" not in os.environ)

    @st.composite
    def mutated(draw, seeds: list[bytes]):
        """A valid file with some bytes changed, a run inserted or deleted, and maybe truncated."""
        data = bytearray(draw(st.sampled_from(seeds)))
        for _ in range(draw(st.integers(0, 6))):
            where = draw(st.integers(0, len(data) - 1))
            action = draw(st.sampled_from(["set", "insert", "delete"]))
            if action == "set":
                data[where] = draw(st.integers(0, 255))
            elif action == "insert":
                data[where:where] = draw(st.binary(min_size=1, max_size=16))
            else:
                del data[where : where + draw(st.integers(1, 16))]
            if not data:
                break
        if draw(st.booleans()):
            data = data[: draw(st.integers(0, len(data)))]
        return bytes(data)

    def _file_bytes(seeds):
        return st.one_of(st.binary(max_size=2048), mutated(seeds), st.sampled_from(seeds))

    @pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # Pillow warns about some damaged TIFF tags
    @FUZZ
    @given(data=_file_bytes(_seeds_images()), suffix=st.sampled_from([".png", ".jpg", ".gif", ".bmp", ".tif", ".webp"]))
    def test_open_image_raises_only_image_read_errors(data, suffix):
        from aekit.images import open_image

        path = _write_temp(data, suffix)
        try:
            with mock.patch.object(Image, "MAX_IMAGE_PIXELS", 4_000_000):  # mutated headers must not allocate gigabytes
                image = open_image(path)
            assert image.mode == "RGB" and image.width >= 1 and image.height >= 1
        except ImageReadError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
        finally:
            shutil.rmtree(path.parent)

    @FUZZ
    @given(data=_file_bytes(_latent_seeds()))
    def test_load_latents_raises_only_aekit_errors(data):
        from aekit_compress import LatentFile, load_latents

        path = _write_temp(data, ".npz")
        try:
            loaded = load_latents(path)
            assert isinstance(loaded, LatentFile) and loaded.latents.dtype == np.float32 and loaded.latents.ndim == 2
            assert np.isfinite(loaded.latents).all() and len(loaded.names) == len(loaded.latents)
        except AekitError as exc:
            assert str(path) in str(exc)
        finally:
            shutil.rmtree(path.parent)

    @FUZZ
    @given(seed=st.sampled_from(_array_seeds()), data=st.data())
    def test_array_source_raises_only_aekit_errors(seed, data):
        from aekit_sources import ArraySource

        raw, suffix = seed
        content = data.draw(st.one_of(st.binary(max_size=2048), mutated([raw]), st.just(raw)))
        path = _write_temp(content, suffix)
        try:
            try:
                source = ArraySource(str(path))
            except AekitError as exc:
                assert str(path) in str(exc)
                return
            assert len(source.keys()) == len(source.array) >= 1
            for index in range(min(len(source.keys()), 4)):
                try:
                    image = np.asarray(source.read(index))
                    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
                except ImageReadError:
                    pass
            del source
        finally:
            shutil.rmtree(path.parent)


# --- security: nothing aekit loads can run code -----------------------------------------------------------------

UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _unsafe_uses(path: Path) -> list[str]:
    """Calls and imports in a source file that could unpickle (or run) data."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    shown = path.relative_to(ROOT) if ROOT in path.parents else path.name
    found = []
    for node in ast.walk(tree):
        where = f"{shown}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [f"{where}: import {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            found.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if name in ("torch.load", "eval", "exec") or name.endswith(("pickle.load", "pickle.loads")):
                found.append(f"{where}: {name}(...)")
            for keyword in node.keywords:
                if keyword.arg == "allow_pickle" and not (isinstance(keyword.value, ast.Constant) and keyword.value.value is False):
                    found.append(f"{where}: {name}(allow_pickle={ast.unparse(keyword.value)})")
                if keyword.arg == "weights_only" and not (isinstance(keyword.value, ast.Constant) and keyword.value.value is True):
                    found.append(f"{where}: {name}(weights_only={ast.unparse(keyword.value)})")
            if name in ("np.load", "numpy.load") and not any(k.arg == "allow_pickle" for k in node.keywords):
                found.append(f"{where}: {name}(...) without allow_pickle=False")
    return found


def test_no_code_in_src_or_plugins_can_unpickle():
    files = sorted([*(ROOT / "src").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")])
    assert len(files) > 10
    problems = [problem for path in files for problem in _unsafe_uses(path)]
    assert problems == [], "\n".join(problems)


def test_the_unsafe_use_check_finds_what_it_looks_for(tmp_path):
    sample = tmp_path / "unsafe_sample.py"
    sample.write_text("import pickle\nimport numpy as np\nimport torch\n"
                      "torch.load('x')\nnp.load('a.npy')\nnp.load('a.npy', allow_pickle=True)\npickle.loads(b'')\n", encoding="utf-8")
    found = _unsafe_uses(sample)
    assert len(found) == 5, found


def test_loading_never_unpickles(tmp_path, tiny_model_dir, monkeypatch):
    """With every unpickler booby-trapped, a checkpoint, latents, arrays and priors still load."""
    import pickle

    def trap(*args, **kwargs):
        raise AssertionError("aekit unpickled something")

    for target, name in [(torch, "load"), (pickle, "load"), (pickle, "loads")]:
        monkeypatch.setattr(target, name, trap)
    from aekit_compress import load_latents, save_latents
    from aekit_generate import GaussianSampler, load_prior, save_prior
    from aekit_sources import ArraySource

    model = aekit.load(tiny_model_dir)  # a prior is written beside it
    save_latents(tmp_path / "z.npz", np.zeros((2, LAT), np.float32), ["a", "b"], model)
    assert len(load_latents(tmp_path / "z.npz", model).names) == 2
    np.savez(tmp_path / "faces.npz", images=faces())
    assert len(ArraySource(str(tmp_path / "faces.npz")).keys()) == 6
    save_prior(GaussianSampler().fit(np.random.default_rng(0).normal(size=(20, LAT))), "gaussian", model=model)
    assert load_prior(model, "gaussian").sample(2, seed=0).shape == (2, LAT)


def test_push_to_hub_uploads_only_the_model_never_tokens_or_other_files(tmp_path, monkeypatch):
    """A run folder holding secrets: only config.json + model.safetensors leave, from a separate folder."""
    from aekit.train import Trainer, TrainConfig

    monkeypatch.setenv("AEKIT_LOAD_PLUGINS", "sources")
    run = tmp_path / "run"
    Trainer(TrainConfig(data="synthetic:8", epochs=1, batch_size=4, sample_every=0, model_config=dict(TINY)), run,
            progress=False, log=lambda m: None).run()
    token = "hf_SECRETtoken1234567890"
    (run / ".env").write_text(f"HF_TOKEN={token}\n")
    (run / "token").write_text(token)
    (run / "notes.txt").write_text("private")
    monkeypatch.setenv("HF_TOKEN", token)
    uploads = []

    class FakeApi:
        def __init__(self, token=None):
            self.token = token

        def create_repo(self, repo_id, **kwargs):
            pass

        def upload_folder(self, folder_path, repo_id, **kwargs):
            folder = Path(folder_path)
            uploads.append({"folder": folder, "kwargs": kwargs,
                            "files": {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}})

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    model = aekit.load(run)
    model.push_to_hub("me/faces", token=token)
    (upload,) = uploads
    assert sorted(upload["files"]) == ["config.json", "model.safetensors"]
    assert run not in upload["folder"].parents and upload["folder"] != run
    for name, content in upload["files"].items():
        assert token.encode() not in content, name
    assert token not in json.dumps(upload["kwargs"], default=str)
    config = json.loads(upload["files"]["config.json"])
    assert config["training"]["epochs_done"] == 1  # the model's own summary, nothing from the environment


# --- decompression bombs: every reader of users' .npz/.npy files looks before it decompresses ------------------


BOMB_ROWS = 600_000  # x 128 float32 = 307 MB declared, about 0.3 MB deflated


def write_npz_bomb(path: Path, member: str = "latents", rows: int = BOMB_ROWS, small: dict | None = None) -> Path:
    """A .npz whose `member` declares rows x 128 float32 zeros (deflated 1000:1), beside small honest members."""
    import zipfile

    header = _io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (rows, 128)})
    chunk = bytes(16 * 2**20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, value in (small or {}).items():
            archive.writestr(f"{name}.npy", _npy_bytes(value))
        with archive.open(f"{member}.npy", "w", force_zip64=True) as fh:
            fh.write(header.getvalue())
            left = rows * 128 * 4
            while left:
                fh.write(chunk[: min(left, len(chunk))])
                left -= min(left, len(chunk))
    return path


def write_npy_bomb(path: Path, rows: int = 8_000_000) -> Path:
    """A .npy whose header declares 8,000,000 x 128 float32 (4 GB) above a few bytes of data."""
    header = _io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (rows, 128)})
    path.write_bytes(header.getvalue() + bytes(64))
    return path


@pytest.fixture
def array_reads(monkeypatch):
    """Every call that would decompress or map an array's data (np.load and numpy's array reader), counted."""
    calls = []
    real_load, real_read = np.load, np.lib.format.read_array

    def load(*args, **kwargs):
        calls.append(("np.load", args[0]))
        return real_load(*args, **kwargs)

    def read_array(*args, **kwargs):
        calls.append(("read_array", args[0]))
        return real_read(*args, **kwargs)

    monkeypatch.setattr(np, "load", load)
    monkeypatch.setattr(np.lib.format, "read_array", read_array)
    return calls


def _readers(model_dir):
    from aekit.data import open_source
    from aekit_compress import load_latents

    return {
        "latents (aekit decompress)": ("latents", lambda p: load_latents(p, aekit.load(model_dir))),
        "features (aekit classify/cluster/umap)": ("features", aekit.load_features),
        "image array (--data FILE.npz)": ("images", open_source),
    }


@pytest.mark.parametrize("reader", ["latents (aekit decompress)", "features (aekit classify/cluster/umap)",
                                    "image array (--data FILE.npz)"])
def test_a_zip_bomb_npz_is_refused_before_any_array_is_decompressed(reader, tmp_path, tiny_model_dir, array_reads):
    member, read = _readers(tiny_model_dir)[reader]
    bomb = write_npz_bomb(tmp_path / "bomb.npz", member, small={"names": np.array(["a", "b"])})
    assert bomb.stat().st_size < 2 * 2**20
    array_reads.clear()
    with pytest.raises(AekitError) as error:
        read(bomb)
    message = str(error.value)
    assert f"member {member}.npy declares 600000 x 128 float32 (307.2 MB)" in message, message
    assert "decompression bomb" in message and "\n" not in message
    assert array_reads == [], array_reads  # refused from the headers alone


@pytest.mark.parametrize("reader", ["image array (--data FILE.npy)"])
def test_a_npy_whose_header_declares_more_than_it_holds_is_refused_unread(reader, tmp_path, array_reads):
    from aekit.data import open_source

    bomb = write_npy_bomb(tmp_path / "bomb.npy")
    with pytest.raises(AekitError, match=r"the header declares 8000000 x 128 float32 \(4\.1 GB\), the file holds 64 bytes"):
        open_source(str(bomb))
    assert array_reads == []


def test_the_absolute_limit_refuses_an_honest_but_huge_array(tmp_path, monkeypatch, array_reads):
    path = tmp_path / "feats.npz"
    np.savez(path, features=np.zeros((100, 16), np.float32))
    monkeypatch.setenv("AEKIT_MAX_ARRAY_BYTES", "1000")
    with pytest.raises(AekitError, match=r"member features.npy declares 100 x 16 float32 \(6.4 kB\), over the limit "
                                         r"of 1.0 kB \(AEKIT_MAX_ARRAY_BYTES\)"):
        aekit.load_features(path)
    assert array_reads == []


def test_aekit_decompress_of_a_bomb_is_one_line_and_writes_nothing(tmp_path, tiny_model_dir, runner):
    from aekit.cli import cli

    bomb = write_npz_bomb(tmp_path / "bomb.npz", "latents", rows=8_000_000 // 16)
    result = runner.invoke(cli, ["decompress", str(bomb), "--model", str(tiny_model_dir), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and errors[0].startswith(f"Error: {bomb}: member latents.npy declares 500000 x 128 float32 "
                                                     "(256.0 MB) in a ")
    assert errors[0].endswith(" kB file (over 100x: a decompression bomb?); refused before decompressing")
    assert not (tmp_path / "out").exists()
