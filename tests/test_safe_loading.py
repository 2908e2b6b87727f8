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
from helpers import TINY, save_tiny_model

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


# --- everything a model folder holds is checked on load: one line naming the file, never NaN or a crash --------


def _nested(depth: int = 100_000) -> str:
    return "[" * depth + "]" * depth


def _config_text(change):
    """config.json rewritten: `change(config)` edits the dict in place, or returns the file's new text."""
    def edit(config_path: Path) -> None:
        config = json.loads(config_path.read_text())
        text = change(config)
        config_path.write_text(text if isinstance(text, str) else json.dumps(config))
    return edit


def _field(**fields):
    return _config_text(lambda c: c["config"].update(fields))


def _top(**fields):
    return _config_text(lambda c: c.update(fields))


def _literal(field: str, text: str):
    """config field `field` written as the raw JSON `text` (what json.dumps cannot write: 1e999, 5000 digits)."""
    return _config_text(lambda c: json.dumps({**c, "config": {**c["config"], field: "@"}}).replace('"@"', text))


BAD_CONFIGS = [  # (id, change, what the one line must say)
    ("nan-config-field", _field(negative_slope=float("nan")), 'config field "negative_slope" must be a finite number, got NaN'),
    ("infinite-config-field", _literal("negative_slope", "1e999"), 'config field "negative_slope" must be a finite number'),
    ("widths-a-string", _field(widths="3264"), 'config field "widths" must be a list of whole numbers, got "3264"'),
    ("widths-of-bools", _field(widths=[True, True]), 'config field "widths" must be a list of whole numbers'),
    ("bool-for-a-whole-number", _field(latent_dim=True), 'config field "latent_dim" must be a whole number, got true'),
    ("float-for-a-whole-number", _field(image_size=32.0), 'config field "image_size" must be a whole number, got 32.0'),
    ("training-a-string", _top(training="a string"), '"training" must be an object'),
    ("training-settings-a-list", _top(training={"settings": [1, 2]}), '"training"."settings" must be an object'),
    ("training-setting-of-the-wrong-type", _top(training={"settings": {"epochs": "10"}}),
     'training setting "epochs" must be a whole number, got "10"'),
    ("parameters-text", _top(parameters="many"), '"parameters" must be an object of whole numbers'),
    ("newer-format-version", _top(format_version=999), "written by a newer aekit (checkpoint format 999"),
    ("format-version-text", _top(format_version="1"), '"format_version" must be a whole number'),
    ("nested-too-deeply", _config_text(lambda c: json.dumps({**c, "deep": "@"}).replace('"@"', _nested())),
     "invalid JSON (nested too deeply to read)"),
    ("4000-digit-number", _literal("latent_dim", "1" * 4000), "invalid JSON (a 4000-digit number)"),
    ("5000-digit-number", _literal("latent_dim", "1" * 5000), "invalid JSON (a 5000-digit number)"),
    # a config bomb: sizes whose model would take minutes and gigabytes to build (refused before it is built)
    ("convs-per-half-bomb", _field(convs_per_half=10_000), 'config field "convs_per_half" must be from 0 to 16, got 10000'),
    ("10000-widths", _field(widths=[8] * 10_000), 'config field "widths" must be a list of 1 to 8 numbers (it holds 10,000)'),
    ("a-huge-width", _field(widths=[8, 10**9]), 'config field "widths" must be a list of whole numbers from 1 to 8192'),
    # past int64: torch's C++ overflow error used to be printed with its 13-line stack trace
    ("a-huge-integer", _field(latent_dim=10**40), 'config field "latent_dim" must be from 1 to 65536, got 1000000000'),
    ("larger-than-1-mib", _config_text(lambda c: json.dumps(c) + " " * (1 << 20)),
     "bytes, more than the 1,048,576 this file may hold; an aekit config.json is a few KB"),
]


@pytest.mark.parametrize("change, needle", [pytest.param(c, n, id=i) for i, c, n in BAD_CONFIGS])
def test_a_damaged_config_json_is_one_precise_error_naming_it(tiny_model_dir, change, needle):
    from aekit.errors import CheckpointError

    change(tiny_model_dir / "config.json")
    with pytest.raises(CheckpointError) as error:
        aekit.load(tiny_model_dir)
    message = str(error.value)
    assert message.startswith(f"{tiny_model_dir / 'config.json'}: ") and needle in message, message
    assert "\n" not in message and len(message) < 300, message


def _first(state, suffix: str, ndim: int | None = None) -> str:
    return next(k for k, v in state.items() if k.endswith(suffix) and (ndim is None or v.ndim == ndim))


def _weights(edit):
    def change(folder: Path) -> None:
        from safetensors.torch import load_file, save_file

        state = load_file(str(folder / "model.safetensors"))
        edit(state)
        save_file(state, str(folder / "model.safetensors"))
    return change


def _cast(dtype, suffix="weight", ndim=4):
    def edit(state):
        key = _first(state, suffix, ndim)
        state[key] = (state[key] * 100).to(dtype) if dtype != torch.bool else state[key] > 0
    return edit


def _negative_variance(state):
    key = _first(state, "running_var")
    state[key] = -1 - state[key]


BAD_WEIGHTS = [  # (id, edit, what the one line must say)
    ("int8-weights", _cast(torch.int8), "stored as the wrong kind of number (e.g. "),
    ("bool-weights", _cast(torch.bool), ": bool where the model has float32"),
    ("float-batch-counter", _cast(torch.float32, "num_batches_tracked", 0), ": float32 where the model has int64"),
    ("negative-running-variance", _negative_variance, "BatchNorm running variance(s) hold negative values"),
]


@pytest.mark.parametrize("edit, needle", [pytest.param(e, n, id=i) for i, e, n in BAD_WEIGHTS])
def test_weights_that_would_be_cast_or_give_nan_are_refused_naming_the_file(tiny_model_dir, edit, needle):
    from aekit.errors import CheckpointError

    _weights(edit)(tiny_model_dir)
    with pytest.raises(CheckpointError) as error:
        aekit.load(tiny_model_dir)
    message = str(error.value)
    assert message.startswith(f"{tiny_model_dir / 'model.safetensors'}: ") and needle in message, message


@pytest.mark.parametrize("case", ["nan-config-field", "negative-running-variance", "int8-weights"])
def test_aekit_denoise_refuses_a_broken_model_instead_of_writing_a_black_picture(case, tmp_path, tiny_model_dir):
    from helpers import error_line, run_cli

    changes = {i: (c, "config.json") for i, c, _ in BAD_CONFIGS} | {i: (_weights(e), "model.safetensors") for i, e, _ in BAD_WEIGHTS}
    change, name = changes[case]
    change(tiny_model_dir / "config.json" if name == "config.json" else tiny_model_dir)
    image = tmp_path / "noisy.png"
    Image.fromarray(face(32)).save(image)
    result = run_cli("denoise", image, "--model", tiny_model_dir, "-o", tmp_path / "clean.png", "-q")
    line = error_line(result)
    assert line.startswith(f"Error: {tiny_model_dir / name}: "), result.output
    assert [l for l in result.output.splitlines() if l != line and not l.startswith("Using model")] == [], result.output
    assert not (tmp_path / "clean.png").exists()


@pytest.mark.parametrize("case", ["nested-too-deeply", "training-a-string", "widths-a-string", "newer-format-version",
                                  "convs-per-half-bomb", "a-huge-integer", "larger-than-1-mib"])
def test_aekit_info_on_a_damaged_config_prints_one_line(case, tiny_model_dir):
    from helpers import run_cli

    dict((i, c) for i, c, _ in BAD_CONFIGS)[case](tiny_model_dir / "config.json")
    result = run_cli("info", tiny_model_dir)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.splitlines() == [result.output.strip()], result.output
    assert result.output.startswith(f"Error: {tiny_model_dir / 'config.json'}: "), result.output


def test_a_nan_in_the_training_record_is_news_not_damage(tiny_model_dir):
    """A run whose validation diverged records NaN (json.dumps writes it): that model still loads."""
    _top(training={"data": "synthetic:8", "final": {"val_loss": float("nan")}})(tiny_model_dir / "config.json")
    assert "NaN" in (tiny_model_dir / "config.json").read_text()
    model = aekit.load(tiny_model_dir)
    assert np.isnan(model.training_summary["final"]["val_loss"])


def test_the_json_reader_refuses_what_would_crash_or_mislead_its_caller():
    from aekit.validate import JSONProblem, loads, parse_json

    assert loads('{"a": [1, 2.5, null]}') == {"a": [1, 2.5, None]}
    for text, problem in [(_nested(), "nested too deeply"), ("[" + "9" * 5000 + "]", "a 5000-digit number"),
                          ('{"x": NaN}', "NaN is not a number JSON allows"), ("[-Infinity]", "-Infinity is not"),
                          ("[1e999]", "too large for a number"), (b"\xff{}", "not UTF-8"), ("{not json", "Expecting")]:
        with pytest.raises(JSONProblem, match=problem):
            loads(text)
    assert np.isnan(loads('{"x": NaN}', allow_nan=True)["x"])  # records may hold NaN when the caller says so
    with pytest.raises(AekitError, match=r"^where\.json: invalid JSON \(a 101-digit number\); refit it$"):
        parse_json("1" * 101, "where.json", hint="refit it")


# --- a config bomb is refused before anything is built: bounds, then the weights file's header ----------------
# (timings are in the notes: 213 s and 4.8 GB before for faces-64 with blocks_per_stage 10000, now about a second)


@pytest.fixture
def modules_built(monkeypatch):
    """A list that gets one entry per torch module constructed while the test runs (any model, any layer)."""
    built = []
    init = torch.nn.Module.__init__

    def counting_init(self, *args, **kwargs):
        built.append(type(self).__name__)
        init(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "__init__", counting_init)
    return built


def _tiny_improved(folder: Path) -> Path:
    """faces-64's architecture (improved: linear path, refine, 1 block per stage) at the tiny size."""
    torch.manual_seed(0)
    return aekit.create_model("improved", image_size=32, widths=(8, 16), latent_dim=16).save_pretrained(folder)


COUNTED = "weights do not match config.json: it describes a model of"
CONFIG_BOMBS = [  # (id, architecture, config fields, what the one line says): each model would be far larger than the file's
    ("blocks-per-stage-10000", "improved", {"blocks_per_stage": 10_000}, 'config field "blocks_per_stage" must be from 0 to 16'),
    ("convs-per-half-10000", "article", {"convs_per_half": 10_000}, 'config field "convs_per_half" must be from 0 to 16'),
    ("10000-widths", "improved", {"widths": [8] * 10_000}, 'config field "widths" must be a list of 1 to 8 numbers'),
    ("a-huge-integer", "improved", {"latent_dim": 10**40}, 'config field "latent_dim" must be from 1 to 65536'),
    # within the bounds, but not what the file holds: its header's tensor count refuses them
    ("16-blocks-per-stage", "improved", {"blocks_per_stage": 16}, COUNTED + " 1,215 tensors ('improved'), the file holds 135"),
    ("16-convs-per-half", "article", {"convs_per_half": 16}, COUNTED + " 938 tensors ('article'), the file holds 98"),
    ("8-stages", "improved", {"widths": [8] * 8, "image_size": 256}, COUNTED),
]


@pytest.mark.parametrize("arch, fields, needle", [pytest.param(a, f, n, id=i) for i, a, f, n in CONFIG_BOMBS])
def test_a_config_bomb_is_refused_before_any_module_is_built(arch, fields, needle, tmp_path, modules_built):
    from aekit.errors import CheckpointError

    folder = _tiny_improved(tmp_path / "m") if arch == "improved" else save_tiny_model(tmp_path / "m")
    _field(**fields)(folder / "config.json")
    modules_built.clear()
    with pytest.raises(CheckpointError) as error:
        aekit.load(folder)
    message = str(error.value)
    assert needle in message and "\n" not in message and len(message) < 300, message
    assert modules_built == [], f"built before the refusal: {len(modules_built)} modules, e.g. {modules_built[:3]}"


def test_the_module_spy_sees_a_model_being_built(tiny_model_dir, modules_built):
    """The check above means something: loading a good checkpoint builds its modules (once, on the meta device)."""
    aekit.load(tiny_model_dir)
    assert "Autoencoder" in modules_built and len(modules_built) > 20


@pytest.mark.parametrize("arch, fields", [
    ("article", {}), ("small", {}), ("article", {"convs_per_half": 0, "widths": (4,)}), ("improved", {}), ("unet", {}),
    ("improved", {"linear_path": False, "refine": False, "blocks_per_stage": 0}), ("improved", {"refine": False, "blocks_per_stage": 3}),
    ("unet", {"widths": (4, 8, 8), "blocks_per_stage": 2, "image_size": 32}),
])
def test_tensor_count_is_the_built_models_without_building_it(arch, fields):
    """What `load` compares with the header before building: each architecture's own count must stay exact."""
    with torch.device("meta"):
        model = aekit.create_model(arch, **fields)
    assert type(model).tensor_count(model.config) == len(model.state_dict())


def test_a_subclass_that_does_not_count_its_own_tensors_is_not_counted(tmp_path):
    """An inherited tensor_count may not fit a subclass's layout: such a model is checked once built, as before."""
    from aekit.plugins import get_registry

    class Wider(aekit.Autoencoder):
        def __init__(self, config=None):
            super().__init__(config)
            self.extra = torch.nn.Linear(2, 2)

    registry = get_registry()
    registry.add("model", "test-wider", Wider, "test-safe-loading", config=aekit.AutoencoderConfig(**TINY))
    try:
        folder = aekit.create_model("test-wider").save_pretrained(tmp_path / "m")
        assert isinstance(aekit.load(folder), Wider)
    finally:
        registry.remove_plugin("test-safe-loading")


def test_a_model_that_cannot_be_built_on_the_meta_device_still_loads(tmp_path):
    """Its RuntimeError on the meta device is no config error: the model is built for real and checked then."""
    from aekit.plugins import get_registry

    class Measured(aekit.Autoencoder):
        def __init__(self, config=None):
            super().__init__(config)
            self.scale = float(torch.ones(1).sum().item())  # .item() cannot run on the meta device

    registry = get_registry()
    registry.add("model", "test-measured", Measured, "test-safe-loading", config=aekit.AutoencoderConfig(**TINY))
    try:
        folder = aekit.create_model("test-measured").save_pretrained(tmp_path / "m")
        assert aekit.load(folder).scale == 1.0
    finally:
        registry.remove_plugin("test-safe-loading")


def test_a_safetensors_header_over_the_cap_is_refused_unparsed(tiny_model_dir, monkeypatch):
    from aekit.checkpoint import MAX_HEADER_BYTES
    from aekit.errors import CheckpointError

    weights = tiny_model_dir / "model.safetensors"
    weights.write_bytes((MAX_HEADER_BYTES + 1).to_bytes(8, "little") + b"{}")
    refusal = r"unreadable safetensors file \(a 4,194,305-byte header, more than the 4,194,304 aekit reads\)"
    with mock.patch("safetensors.safe_open", side_effect=AssertionError("parsed")), pytest.raises(CheckpointError, match=refusal):
        aekit.load(tiny_model_dir)
    weights.write_bytes(b"\x02\x00")
    with pytest.raises(CheckpointError, match="shorter than its 8-byte header length"):
        aekit.load(tiny_model_dir)


def test_a_config_json_over_the_cap_is_refused_unread(tiny_model_dir, monkeypatch):
    """Only its size is looked at: a sparse 64 MB file (no disk used) is refused unread."""
    from aekit.errors import CheckpointError

    config = tiny_model_dir / "config.json"
    with open(config, "r+b") as fh:
        fh.truncate(64 << 20)
    reads = []
    monkeypatch.setattr("aekit.validate.parse_json", lambda *a, **k: reads.append(a) or {})
    with pytest.raises(CheckpointError, match=r"config.json: 67,108,864 bytes, more than the 1,048,576 this file may hold"):
        aekit.load(tiny_model_dir)
    assert reads == []


def test_create_model_reports_an_impossible_size_in_one_line():
    from aekit.errors import CheckpointError

    with pytest.raises(CheckpointError) as error:
        aekit.create_model("article", latent_dim=10**40)
    message = str(error.value)
    assert message.startswith("invalid config for model 'article': ") and "\n" not in message, message
