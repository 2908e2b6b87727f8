"""The codec preset and its bitstreams: rate-distortion training, integer tables fixed at packaging, symbols that
do not depend on the batch, the threads or the runtime, the codec .npz, and `aekit compress --quality / --bytes`."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit.codec import CodecError, choose_qualities
from aekit.entropy import IntegerTables
from aekit.errors import CheckpointError
from aekit.pretrained import package_model, resolve_model
from aekit.synthetic import make_faces
from aekit_compress import BitstreamFileError, code_faces, load_bitstreams, save_bitstreams
from helpers import error_line, fails, invoke, run_cli

TINY_CODEC = dict(image_size=32, width=16, analysis_width=12, latent_channels=8, downsamplings=3, qualities=3,
                  lambdas=(0.002, 0.01, 0.05), default_quality=2)
TINY_CODEC_CLI = [arg for field, value in TINY_CODEC.items() for arg in
                  ("--model-config", f"{field}={','.join(map(str, value)) if isinstance(value, tuple) else value}")]


def _fit_tiny_codec(seed: int = 0, steps: int = 60):
    """A tiny codec trained a few dozen steps on synthetic faces (a second or two): rates that differ by quality."""
    torch.manual_seed(seed)
    model = aekit.create_model("codec", **TINY_CODEC)
    images = torch.from_numpy(make_faces(64, seed=seed, size=32)[0]).permute(0, 3, 1, 2).float() / 127.5 - 1
    optimizer = torch.optim.Adam(model.optimizer_groups(5e-3))
    model.train()
    for step in range(steps):
        x = images[(step * 16) % 64 : (step * 16) % 64 + 16]
        loss, _ = model.training_loss(model(x), x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def codec_dirs(tmp_path_factory, module_home):
    """A tiny codec's run folder and its packaged folder (tables fixed), and a second codec's package."""
    root = tmp_path_factory.mktemp("codec")
    run = _fit_tiny_codec().save_pretrained(root / "run")
    package_model(run, root / "pkg" / "tiny-codec", "tiny-codec", ["compress"])
    other = _fit_tiny_codec(seed=1, steps=5).save_pretrained(root / "other-run")
    package_model(other, root / "pkg" / "other-codec", "other-codec", ["compress"])
    return {"run": run, "package": root / "pkg" / "tiny-codec", "other": root / "pkg" / "other-codec"}


@pytest.fixture(scope="module")
def faces():
    return make_faces(100, seed=7, size=32)[0]


def _face_folder(folder, images, bad: bool = False):
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"face{i:03d}.png")
    if bad:
        (folder / "broken.png").write_bytes(b"not a png")
    return folder


# --- the model ------------------------------------------------------------------------------------------------


def test_the_codec_is_registered_and_codes_every_quality_at_rates_that_grow_with_it(codec_dirs, faces):
    assert "codec" in aekit.list_models()
    model = aekit.load(codec_dirs["package"])
    assert model.tables_fixed and model.config.table_width > 0
    sizes = [np.mean([len(s) for s in model.compress_faces(faces[:20], q)]) for q in (1, 2, 3)]
    assert sizes[0] < sizes[1] < sizes[2], sizes
    streams = model.compress_faces(faces[:20], 3)
    decoded = model.decompress_faces(streams, 3)
    # what coding decodes is what the model reconstructs at that quality (rounding around the same medians)
    reference = model(torch.from_numpy(faces[:20]).permute(0, 3, 1, 2).float() / 127.5 - 1, quality=3)
    assert (decoded - reference).abs().max() < 0.05
    with pytest.raises(CodecError, match="quality must be from 1 to 3"):
        model.compress_faces(faces[:2], 4)


def test_training_logs_rate_and_distortion_and_resume_is_exact(tmp_path, module_home):
    common = ["train", "--arch", "codec", "--data", "synthetic:40", "--batch-size", "8", "--lr", "2e-3", "--seed", "3",
              "--schedule", "constant",  # a 1-epoch run resumed as 2 epochs has the 2-epoch run's learning rates
              "--sample-every", "0", "--val-fraction", "0.2", "-q", *TINY_CODEC_CLI]
    invoke(*common, "--epochs", "2", "--out", tmp_path / "whole")
    invoke(*common, "--epochs", "1", "--out", tmp_path / "half")
    halves = json.loads((tmp_path / "half" / "run.json").read_text())
    halves["config"]["epochs"] = 2  # resume the one-epoch run as a two-epoch run
    (tmp_path / "half" / "run.json").write_text(json.dumps(halves))
    invoke("train", "--resume", tmp_path / "half", "-q")
    rows = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert {"train_bpp", "train_mse", "train_psnr", "train_quantile", "val_bpp", "val_psnr"} <= set(rows[-1])
    whole, resumed = aekit.load(tmp_path / "whole"), aekit.load(tmp_path / "half")
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_codec_refuses_a_reconstruction_loss(tmp_path):
    line = fails("train", "--arch", "codec", "--data", "synthetic:16", "--epochs", "1", "--batch-size", "8",
                 "--loss", "psnr", "--out", tmp_path / "run", "-q", *TINY_CODEC_CLI, message="--loss psnr does not apply")
    assert "rate + lambda * distortion" in line


def test_loss_falls_in_a_few_seconds_of_training():
    torch.manual_seed(0)
    model = aekit.create_model("codec", **TINY_CODEC)
    images = torch.from_numpy(make_faces(32, seed=2, size=32)[0]).permute(0, 3, 1, 2).float() / 127.5 - 1
    optimizer = torch.optim.Adam(model.optimizer_groups(5e-3))
    losses = []
    for _ in range(40):
        loss, _ = model.training_loss(model(images), images)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


# --- the integer tables -------------------------------------------------------------------------------------------


def test_tables_are_fixed_at_packaging_stored_with_the_model_and_never_recomputed(codec_dirs, faces, monkeypatch):
    run = aekit.load(codec_dirs["run"])
    assert not run.tables_fixed
    with pytest.raises(CodecError, match="not fixed yet: package it first"):
        run.compress_faces(faces[:2], 1)
    packaged = aekit.load(codec_dirs["package"])
    streams = packaged.compress_faces(faces[:10], 2)

    def never(*args, **kwargs):
        raise AssertionError("tables recomputed from floats")

    monkeypatch.setattr(IntegerTables, "from_prior", classmethod(never))
    again = aekit.load(codec_dirs["package"])  # a fresh load decodes from the stored integers alone
    np.testing.assert_array_equal(again.decompress_faces(streams, 2).numpy(), packaged.decompress_faces(streams, 2).numpy())
    for q in (1, 2, 3):
        table = again.tables(q)
        assert (table.frequencies.astype(np.int64).sum(axis=1) == 1 << 16).all()
    config = json.loads((codec_dirs["package"] / "config.json").read_text())
    assert config["config"]["table_width"] == again.config.table_width > 0


def test_loading_is_strict_about_the_tables(codec_dirs, tmp_path):
    from helpers import resaved_safetensors
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(codec_dirs["package"], broken)
    resaved_safetensors(broken / "model.safetensors", arrays=lambda a: a.pop("table_frequencies"))
    with pytest.raises(CheckpointError, match="missing"):
        aekit.load(broken)
    config = json.loads((codec_dirs["package"] / "config.json").read_text())
    config["config"]["table_width"] += 1
    shutil.copy(codec_dirs["package"] / "model.safetensors", broken / "model.safetensors")
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="wrong shape"):
        aekit.load(broken)


# --- exact integers ---------------------------------------------------------------------------------------------


def test_symbols_are_the_same_at_batch_sizes_1_7_64_and_1_or_2_threads(codec_dirs, faces):
    model = aekit.load(codec_dirs["package"])
    reference = model.compress_faces(faces[:64], [1, 2, 3] * 21 + [1], batch_size=64)
    threads = torch.get_num_threads()
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            for batch in (1, 7, 64):
                assert model.compress_faces(faces[:64], [1, 2, 3] * 21 + [1], batch_size=batch) == reference, (count, batch)
    finally:
        torch.set_num_threads(threads)


def test_runtime_torch_and_onnx_write_the_same_bitstreams_and_decode_the_same_faces(codec_dirs, tmp_path, faces):
    pytest.importorskip("onnxruntime")
    folder = _face_folder(tmp_path / "faces", faces[:12])
    for runtime in ("torch", "onnx"):
        invoke("compress", folder, "-m", codec_dirs["package"], "-o", tmp_path / f"{runtime}.npz", "--bytes", "60",
               "--runtime", runtime, "-q")
        invoke("decompress", tmp_path / f"{runtime}.npz", "-m", codec_dirs["package"], "-o", tmp_path / runtime,
               "--runtime", runtime, "-q")
    torch_file, onnx_file = load_bitstreams(tmp_path / "torch.npz"), load_bitstreams(tmp_path / "onnx.npz")
    assert torch_file.streams == onnx_file.streams and (torch_file.quality == onnx_file.quality).all()
    for name in sorted(p.name for p in (tmp_path / "torch").iterdir()):
        a, b = (np.asarray(Image.open(tmp_path / r / name), np.int16) for r in ("torch", "onnx"))
        assert np.abs(a - b).max() <= 1  # the float32 synthesis: within a level of 255


# --- the file --------------------------------------------------------------------------------------------------


def _rewritten(path, target, **changes):
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays.update(changes)
    np.savez(target, **arrays)
    return target


def test_the_file_round_trips_and_says_what_made_it(codec_dirs, tmp_path, faces):
    model = aekit.load(codec_dirs["package"])
    result = code_faces(model, faces[:5], quality=3)
    size = save_bitstreams(tmp_path / "z.npz", result.streams, result.quality, [f"f{i}" for i in range(5)], model,
                           model_name="tiny-codec")
    with np.load(tmp_path / "z.npz", allow_pickle=False) as archive:  # plain arrays
        assert str(archive["format"]) == "aekit-codec" and str(archive["model_id"]) == aekit.model_fingerprint(model)
        assert archive["offsets"][-1] == len(archive["streams"]) == sum(map(len, result.streams))
        assert archive["crc32"].dtype == np.uint32 and archive["quality"].tolist() == [3] * 5
    coded = load_bitstreams(tmp_path / "z.npz")
    assert coded.streams == result.streams and coded.names == [f"f{i}" for i in range(5)] and coded.model_name == "tiny-codec"
    assert size == (tmp_path / "z.npz").stat().st_size


def test_damaged_foreign_and_other_models_files_are_one_line_errors(codec_dirs, tmp_path, faces):
    folder = _face_folder(tmp_path / "faces", faces[:6])
    good = tmp_path / "z.npz"
    invoke("compress", folder, "-m", codec_dirs["package"], "-o", good, "--quality", "2", "-q")
    args = ["-m", codec_dirs["package"], "-q"]
    data = good.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    fails("decompress", tmp_path / "truncated.npz", "-o", tmp_path / "a", *args, message="not a readable")
    with np.load(good, allow_pickle=False) as archive:
        streams = archive["streams"].copy()
        offsets = archive["offsets"]
    for i, position in enumerate([0, len(streams) // 2, len(streams) - 1]):  # a bit flipped anywhere: its face's CRC
        flipped = streams.copy()
        flipped[position] ^= 1 << (i % 8)
        line = fails("decompress", _rewritten(good, tmp_path / f"flip{i}.npz", streams=flipped), "-o", tmp_path / f"b{i}",
                     *args, message="its bitstream is damaged (CRC-32 mismatch)")
        assert f"face {int(np.searchsorted(offsets, position, side='right') - 1)} " in line
        assert not (tmp_path / f"b{i}").exists() or not list((tmp_path / f"b{i}").iterdir())
    short = _rewritten(good, tmp_path / "short.npz", streams=streams[:-3])
    fails("decompress", short, "-o", tmp_path / "c", *args, message="offsets do not cut")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, format=np.asarray("aekit-codec"), streams=np.zeros(3, np.uint8))
    fails("decompress", foreign, "-o", tmp_path / "d", *args, message="damaged codec file (missing")
    fails("decompress", good, "-o", tmp_path / "e", "-m", codec_dirs["other"], "-q",
          message="decompress with the model that compressed it")
    # a stream from another model, carried over with its own CRC: the fingerprint refuses it before any decoding
    other = tmp_path / "other.npz"
    invoke("compress", folder, "-m", codec_dirs["other"], "-o", other, "--quality", "2", "-q")
    fails("decompress", other, "-o", tmp_path / "f", *args, message="made by model")
    # without --model: the file names a model that is not installed
    fails("decompress", good, "-o", tmp_path / "g", "-q", message="which is not installed; pass --model")


def test_a_stream_that_passes_its_crc_but_not_its_tables_is_refused(codec_dirs, tmp_path, faces):
    from aekit.entropy import BitstreamError
    from aekit_compress.bitstreams import face_crc

    model = aekit.load(codec_dirs["package"])
    streams = model.compress_faces(faces[:3], 1)
    other = model.compress_faces(faces[:3], 3)
    with pytest.raises(BitstreamError, match="does not decode"):
        model.decompress_faces([other[0]], 1)  # a quality-3 stream read with quality 1's tables
    forged = [streams[0][:-2], streams[1], streams[2]]
    save_bitstreams(tmp_path / "z.npz", forged, [1, 1, 1], list("abc"), model)
    assert load_bitstreams(tmp_path / "z.npz").streams[0] == forged[0]  # its CRC is its own: the file is consistent
    assert face_crc(1, forged[0]) != face_crc(1, streams[0])
    line = fails("decompress", tmp_path / "z.npz", "-m", codec_dirs["package"], "-o", tmp_path / "out", "-q",
                 message="does not decode with this model's tables")
    assert "Traceback" not in line


def test_latent_files_still_decompress_beside_codec_files(tmp_path):
    from helpers import save_tiny_model
    from aekit_compress import save_latents

    model_dir = save_tiny_model(tmp_path / "latent-model")
    save_latents(tmp_path / "old.npz", np.zeros((2, 16), np.float32), ["a.png", "b.png"], aekit.load(model_dir))
    result = invoke("decompress", tmp_path / "old.npz", "-m", model_dir, "-o", tmp_path / "out", "-q")
    assert "wrote 2 PNGs" in result.stdout


# --- the command line --------------------------------------------------------------------------------------------


def test_compress_reports_bytes_two_ways_and_decompress_needs_no_options(codec_dirs, tmp_path, faces, install_plugin):
    folder = _face_folder(tmp_path / "faces", faces[:8], bad=True)
    result = invoke("compress", folder, "-m", codec_dirs["package"], "-o", tmp_path / "z.npz", "--quality", "3",
                    "--report", "-q")
    assert "8 faces (quality 3;" in result.stdout and "bytes a face in bitstreams" in result.stdout
    assert "bytes a face for the whole file" in result.stdout and "1 skipped" in result.stdout
    assert "broken.png" in result.stderr
    report = dict(line.strip().split("  ", 1) for line in result.stdout.splitlines() if line.startswith("  "))
    coded = load_bitstreams(tmp_path / "z.npz")
    assert float(report["bytes a face (bitstreams)"].strip()) == pytest.approx(coded.stream_bytes / 8, abs=0.05)
    assert float(report["bytes a face (.npz file)"].strip()) == pytest.approx((tmp_path / "z.npz").stat().st_size / 8, abs=0.05)
    # installed (a plugin shipping the packaged codec): decompress finds it by the file's fingerprint alone
    _install_codec_plugin(install_plugin, codec_dirs)
    result = invoke("decompress", tmp_path / "z.npz", "-o", tmp_path / "out", "-q")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"face{i:03d}.png" for i in range(8)]


@pytest.mark.parametrize("extra, message", [
    (["--quality", "0"], "0 is not in the range"),
    (["--quality", "4"], "this codec has qualities 1 to 3"),
    (["--bytes", "0"], "0 is not in the range"),
    (["--bytes", "many"], "'many' is not a valid float"),
    (["--quality", "2", "--bytes", "50"], "give --quality or --bytes, not both"),
    (["--dtype", "int8"], "--dtype is for latent models"),
    (["--optimize-steps", "3"], "--optimize-steps is for latent models"),
])
def test_codec_options_that_do_not_fit_are_one_line_errors(codec_dirs, tmp_path, faces, extra, message):
    folder = _face_folder(tmp_path / "faces", faces[:2])
    fails("compress", folder, "-m", codec_dirs["package"], "-o", tmp_path / "z.npz", "-q", *extra, message=message)
    assert not (tmp_path / "z.npz").exists()


def test_quality_and_bytes_need_a_codec_model(tmp_path, faces):
    from helpers import save_tiny_model

    model_dir = save_tiny_model(tmp_path / "latent-model")
    folder = _face_folder(tmp_path / "faces", faces[:2])
    for option in (["--quality", "2"], ["--bytes", "100"]):
        fails("compress", folder, "-m", model_dir, "-o", tmp_path / "z.npz", "-q", *option, message="needs a codec model")


def test_bytes_lands_within_ten_percent_of_its_target_on_100_faces(codec_dirs, tmp_path, faces):
    model = aekit.load(codec_dirs["package"])
    sizes = np.array([[len(s) for s in model.compress_faces(faces, q)] for q in (1, 2, 3)]).mean(axis=1)
    folder = _face_folder(tmp_path / "faces", faces)
    for share in (0.25, 0.5, 0.8):
        target = sizes[0] + share * (sizes[2] - sizes[0])
        out = tmp_path / f"z{share}.npz"
        invoke("compress", folder, "-m", codec_dirs["package"], "-o", out, "--bytes", f"{target:.1f}", "-q")
        coded = load_bitstreams(out)
        assert len(coded.streams) == 100
        assert abs(coded.stream_bytes / 100 - target) <= 0.1 * target, (coded.stream_bytes / 100, target)
        assert json.loads(coded.meta and json.dumps(coded.meta))["target_bytes"] == pytest.approx(float(f"{target:.1f}"))


def test_choose_qualities_spends_bytes_where_they_lower_the_error_most():
    sizes = np.array([[10, 20, 40], [10, 20, 40]], float)
    errors = np.array([[1.0, 0.5, 0.4], [1.0, 0.9, 0.1]])
    assert choose_qualities(sizes, errors, 10).tolist() == [0, 0]
    assert choose_qualities(sizes, errors, 40).tolist() == [2, 2]
    assert choose_qualities(sizes, errors, 15).tolist() == [1, 0]  # the first face's 10 bytes buy 0.5, the other's 0.1
    assert choose_qualities(sizes, errors, 5).tolist() == [0, 0] and choose_qualities(sizes, errors, 99).tolist() == [2, 2]


# --- the default model ------------------------------------------------------------------------------------------


def _install_codec_plugin(install_plugin, codec_dirs):
    pkg = codec_dirs["package"].parent
    install_plugin("aekit-tinycodec", "tinycodec", "aekit_tinycodec", f'''
        from pathlib import Path

        import aekit
        from aekit.pretrained import register_manifest


        @aekit.hookimpl
        def register_pretrained(register):
            register_manifest(register, Path({str(pkg / "pretrained.json")!r}))
    ''')


def test_compress_uses_faces64_until_a_bitstream_codec_is_installed_then_that(codec_dirs, tmp_path, faces, install_plugin,
                                                                          without_bundled):
    without_bundled("compress")  # as if aekit shipped no bitstream codec
    assert resolve_model(None, "compress").spec == "faces-64"
    folder = _face_folder(tmp_path / "faces", make_faces(3, seed=1, size=64)[0])
    result = invoke("compress", folder, "-o", tmp_path / "latents.npz", "-q", "--runtime", "torch")
    assert "Using model faces-64" in result.stderr and "latents (float16, 256 bytes each)" in result.stdout
    _install_codec_plugin(install_plugin, codec_dirs)
    choice = resolve_model(None, "compress")
    assert choice.spec == "tiny-codec" and resolve_model(None, "codec").spec == "faces-64"  # generate, edit... unchanged
    result = invoke("compress", folder, "-o", tmp_path / "coded.npz", "-q", "--quality", "1")
    assert "Using model tiny-codec" in result.stderr and "3 faces (quality 1;" in result.stdout
    result = invoke("decompress", tmp_path / "coded.npz", "-o", tmp_path / "out", "-q")
    assert "Using model tiny-codec (the model the file names" in result.stderr
    # the article's latent file still decompresses with no options: faces-64 is still the codec task's model
    invoke("decompress", tmp_path / "latents.npz", "-o", tmp_path / "out-latents", "-q", "--runtime", "torch")
    assert len(list((tmp_path / "out-latents").iterdir())) == 3
