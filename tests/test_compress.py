"""The compress plugin: the latent .npz format, model identity, the CLI and its report."""

import json
import re
import warnings
import zipfile

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import aekit
from aekit.cli import cli
from aekit_compress import DTYPES, LatentFileError, load_latents, output_names, quantize_int8, dequantize_int8, save_latents


@pytest.fixture
def tiny_model_dir(tmp_path):
    torch.manual_seed(0)
    model = aekit.create_model("article", image_size=32, widths=(8, 16), convs_per_half=1, latent_dim=16)
    return model.save_pretrained(tmp_path / "model")


@pytest.mark.parametrize("dtype", DTYPES)
def test_format_round_trip_for_every_dtype(tmp_path, tiny_model_dir, dtype):
    model = aekit.load(tiny_model_dir)
    latents = np.random.default_rng(0).normal(size=(10, 16)).astype(np.float32) * 3
    names = [f"dir/face{i}.jpg" for i in range(10)]
    payload = save_latents(tmp_path / "z.npz", latents, names, model, dtype)
    loaded = load_latents(tmp_path / "z.npz", model)
    assert loaded.names == names and loaded.dtype == dtype and loaded.latents.dtype == np.float32
    expected_payload = {"float32": 640, "float16": 320, "int8": 160 + 2 * 16 * 4}[dtype]
    assert payload == loaded.stored_bytes == expected_payload
    tolerance = {"float32": 0, "float16": 1e-2, "int8": (latents.max(0) - latents.min(0)).max() / 255 / 2 + 1e-6}[dtype]
    assert np.abs(loaded.latents - latents).max() <= tolerance
    with np.load(tmp_path / "z.npz", allow_pickle=False) as archive:  # plain arrays, no pickle needed
        assert json.loads(str(archive["meta"]))["image_size"] == 32


def test_int8_quantisation_is_per_dimension():
    latents = np.stack([np.linspace(-1, 1, 50), np.linspace(0, 1000, 50)], axis=1).astype(np.float32)
    q, scale, offset = quantize_int8(latents)
    assert q.dtype == np.int8 and q.min() == -128 and q.max() == 127
    back = dequantize_int8(q, scale, offset)
    assert np.abs(back - latents).max(axis=0) == pytest.approx(scale / 2, rel=0.05)


def test_latents_of_another_model_are_refused(tmp_path, tiny_model_dir):
    model = aekit.load(tiny_model_dir)
    save_latents(tmp_path / "z.npz", np.zeros((2, 16), np.float32), ["a", "b"], model, "float16")
    with torch.no_grad():
        model.decoder[0].weight.add_(0.01)  # a different model with the same architecture
    with pytest.raises(LatentFileError, match="made by model .* decompress with the model that compressed it"):
        load_latents(tmp_path / "z.npz", model)


def test_corrupt_truncated_and_foreign_npz_are_clear_errors(tmp_path, tiny_model_dir):
    model = aekit.load(tiny_model_dir)
    path = tmp_path / "z.npz"
    save_latents(path, np.zeros((4, 16), np.float32), list("abcd"), model)
    data = path.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(LatentFileError, match="not a readable latent .npz"):
        load_latents(tmp_path / "truncated.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(LatentFileError, match="not a readable latent .npz"):
        load_latents(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(LatentFileError, match="missing latents, names, dtype, model_id, meta"):
        load_latents(tmp_path / "other.npz")
    np.savez(tmp_path / "pickled.npz", latents=np.array([object()]), names=np.array(["a"]), dtype=np.asarray("float32"),
             model_id=np.asarray("x"), meta=np.asarray("{}"))
    with pytest.raises(LatentFileError, match="pickle"):
        load_latents(tmp_path / "pickled.npz")
    with pytest.raises(LatentFileError, match="no such file"):
        load_latents(tmp_path / "missing.npz")
    assert zipfile.is_zipfile(path)


def test_output_names_are_safe_and_unique():
    assert output_names(["a/b.jpg", "../../etc/passwd", "/abs/x.png", "a/b.png", "c"]) == [
        "a/b.png", "etc/passwd.png", "abs/x.png", "a/b~1.png", "c.png"]


def test_output_names_never_give_two_latents_one_file():
    """The names a repeat would get may be taken already (a~1.png is a source of its own); names that differ
    only in case are one file on macOS and Windows; a name and a folder cannot share a path; 255 bytes at most."""
    assert output_names(["a.jpg", "a.png", "a~1.png"]) == ["a.png", "a~2.png", "a~1.png"]
    assert output_names(["Face.jpg", "face.png"]) == ["Face.png", "face~1.png"]
    assert output_names(["x.png/y", "x", "a\0b"]) == ["x.png/y.png", "x~1.png", "a_b.png"]
    assert output_names(["n" * 300 + ".jpg", "n" * 300 + ".png"]) == ["n" * 251 + ".png", "n" * 249 + "~1.png"]


def test_decompress_writes_one_png_per_latent_when_source_names_collide(tmp_path, tiny_model_dir):
    """a.jpg and a.png both make a.png, and a~1.png is a source of its own: three latents, three files."""
    from aekit.synthetic import make_faces

    (tmp_path / "faces").mkdir()
    for name, image in zip(["a.jpg", "a.png", "a~1.png"], make_faces(3, seed=5, size=32)[0]):
        Image.fromarray(image).save(tmp_path / "faces" / name)
    runner = CliRunner()
    result = runner.invoke(cli, ["compress", str(tmp_path / "faces"), "-m", str(tiny_model_dir), "-o", str(tmp_path / "z.npz"), "-q"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["decompress", str(tmp_path / "z.npz"), "-m", str(tiny_model_dir), "-o", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 0 and "wrote 3 PNGs" in result.stdout, result.output
    written = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in written] == ["a.png", "a~1.png", "a~2.png"]
    assert len({p.read_bytes() for p in written}) == 3  # three different latents' images, none written over another


def test_decompress_takes_names_of_255_bytes_and_longer(tmp_path, tiny_model_dir):
    """A legal 255-byte name (and its repeat) is written whole, not refused for its temporary file's name."""
    long = "é" * 125 + "x.jpg"  # 255 bytes in UTF-8
    names = [long, long, "n" * 300 + ".png"]
    save_latents(tmp_path / "z.npz", np.zeros((3, 16), np.float32), names, aekit.load(tiny_model_dir))
    result = CliRunner().invoke(cli, ["decompress", str(tmp_path / "z.npz"), "-m", str(tiny_model_dir),
                                      "-o", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 0 and "wrote 3 PNGs" in result.stdout, result.output
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted([long[:-4] + ".png", "é" * 124 + "~1.png", "n" * 251 + ".png"])  # cut between characters
    assert max(len(name.encode()) for name in written) == 255


def _model_with_huge_latents(directory):
    """A tiny model whose latents are about 1e5: beyond float16's largest value, 65504."""
    torch.manual_seed(0)
    model = aekit.create_model("article", image_size=32, widths=(8, 16), convs_per_half=1, latent_dim=16)
    last = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.bias.fill_(1e5)
    return model.save_pretrained(directory)


def test_latents_beyond_float16_are_refused_naming_float32_and_nothing_is_written(tmp_path):
    model_dir = _model_with_huge_latents(tmp_path / "model")
    with pytest.raises(LatentFileError, match=r"py.npz: latents as large as 100000 do not fit in float16 .*--dtype float32"), \
            warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # numpy's overflow warning would be a second line on the CLI
        save_latents(tmp_path / "py.npz", np.full((2, 16), 1e5, np.float32), ["a", "b"], aekit.load(model_dir))
    _write_faces(tmp_path / "faces", count=2, size=32)
    out = tmp_path / "z.npz"
    args = ["compress", str(tmp_path / "faces"), "-m", str(model_dir), "-o", str(out), "-q"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "z.npz" in errors[0] and "do not fit in float16" in errors[0] and "--dtype float32" in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces", "model"]  # no .npz, no temporary file
    result = CliRunner().invoke(cli, args + ["--dtype", "float32"])
    assert result.exit_code == 0, result.output
    assert load_latents(out).latents.min() > 65504


def _write_faces(folder, count=6, size=40):
    from aekit.synthetic import make_faces

    folder.mkdir()
    images, _ = make_faces(count, seed=5, size=size)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"face{i}.jpg", quality=90)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    return images


def test_compress_decompress_cli_round_trip_with_report(tmp_path, tiny_model_dir):
    _write_faces(tmp_path / "faces")
    runner = CliRunner()
    result = runner.invoke(cli, ["compress", str(tmp_path / "faces"), "--model", str(tiny_model_dir),
                                 "--out", str(tmp_path / "z.npz"), "--dtype", "int8", "--report", "-q"])
    assert result.exit_code == 0, result.output
    assert "6 latents (int8" in result.stdout and "1 skipped" in result.stdout
    assert "skipped: " in result.stderr and "broken.jpg" in result.stderr
    for label in ("bytes per image (latents)", "ratio vs raw 32x32 pixels", "ratio vs input files", "round-trip PSNR", "round-trip SSIM"):
        assert label in result.stdout
    result = runner.invoke(cli, ["decompress", str(tmp_path / "z.npz"), "--model", str(tiny_model_dir),
                                 "--out", str(tmp_path / "restored"), "--size", "48", "-q"])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "restored").iterdir())
    assert written == [f"face{i}.png" for i in range(6)]
    assert Image.open(tmp_path / "restored" / "face0.png").size == (48, 48)


def test_report_figures_match_a_direct_computation(tmp_path, tiny_model_dir):
    from aekit.images import to_uint8_hwc
    from aekit.metrics import psnr, ssim

    _write_faces(tmp_path / "faces")
    images = np.stack([np.asarray(Image.open(tmp_path / "faces" / f"face{i}.jpg").convert("RGB").resize((32, 32), Image.BICUBIC))
                       for i in range(6)])
    result = CliRunner().invoke(cli, ["compress", str(tmp_path / "faces"), "--model", str(tiny_model_dir),
                                      "--out", str(tmp_path / "z.npz"), "--dtype", "float32", "--report", "-q"])
    assert result.exit_code == 0, result.output
    decoded = to_uint8_hwc(aekit.load(tiny_model_dir).reconstruct(images))
    report = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in result.stdout.splitlines() if line.startswith("  "))
    assert report["round-trip PSNR"] == f"{psnr(decoded, images).mean():.2f} dB"
    assert report["round-trip SSIM"] == f"{ssim(decoded, images).mean():.4f}"
    assert report["ratio vs raw 32x32 pixels (3072 B)"] == "48.0x"  # 16 float32 latents = 64 bytes
    assert report["bytes per image (latents)"] == "64.0"


def test_decompress_refuses_another_models_latents_on_the_cli(tmp_path, tiny_model_dir):
    _write_faces(tmp_path / "faces")
    runner = CliRunner()
    assert runner.invoke(cli, ["compress", str(tmp_path / "faces"), "-m", str(tiny_model_dir), "-o", str(tmp_path / "z.npz"), "-q"]).exit_code == 0
    torch.manual_seed(1)
    other = aekit.create_model("article", image_size=32, widths=(8, 16), convs_per_half=1, latent_dim=16).save_pretrained(tmp_path / "other")
    result = runner.invoke(cli, ["decompress", str(tmp_path / "z.npz"), "-m", str(other), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and "decompress with the model that compressed it" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("extra, message", [
    (["--dtype", "int4"], "'int4' is not one of"),
    (["--batch-size", "0"], "0 is not in the range"),
    (["--out", "/no/such/folder/z.npz"], "does not exist"),
])
def test_compress_bad_options(tmp_path, tiny_model_dir, extra, message):
    _write_faces(tmp_path / "faces")
    args = ["compress", str(tmp_path / "faces"), "-m", str(tiny_model_dir), "-o", str(tmp_path / "z.npz"), "-q", *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output


def test_compress_strict_and_overwrite_protection(tmp_path, tiny_model_dir):
    _write_faces(tmp_path / "faces")
    runner = CliRunner()
    strict = runner.invoke(cli, ["compress", str(tmp_path / "faces"), "-m", str(tiny_model_dir), "-o", str(tmp_path / "z.npz"), "-q", "--strict"])
    assert strict.exit_code == 1 and "broken.jpg" in strict.output and not (tmp_path / "z.npz").exists()
    target = tmp_path / "faces" / "face0.jpg"
    clobber = runner.invoke(cli, ["compress", str(target), "-m", str(tiny_model_dir), "-o", str(target)])
    assert clobber.exit_code == 1 and "would overwrite an input" in clobber.output
    assert Image.open(target).format == "JPEG"


def test_compress_refuses_an_existing_out_before_any_work_unless_overwrite(tmp_path, tiny_model_dir):
    """Another command's .npz (here a features file) is not replaced silently; the refusal comes before the model loads."""
    _write_faces(tmp_path / "faces")
    out = tmp_path / "feats.npz"
    np.savez(out, features=np.zeros((2, 4), np.float32))
    before = out.read_bytes()
    args = ["compress", str(tmp_path / "faces"), "-m", str(tiny_model_dir), "-o", str(out), "-q"]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert refused.output.splitlines() == [f"Error: {out}: already exists; add --overwrite to replace it or choose another --out"]
    assert out.read_bytes() == before
    replaced = CliRunner().invoke(cli, args + ["--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert len(load_latents(out).names) == 6


def test_compress_array_input_and_failed_write_keeps_the_old_file(tmp_path, tiny_model_dir, monkeypatch):
    from aekit.synthetic import make_faces

    images, _ = make_faces(5, seed=1, size=32)
    np.save(tmp_path / "faces.npy", images)
    runner = CliRunner()
    args = ["compress", str(tmp_path / "faces.npy"), "-m", str(tiny_model_dir), "-o", str(tmp_path / "z.npz"), "-q"]
    assert runner.invoke(cli, args).exit_code == 0
    before = (tmp_path / "z.npz").read_bytes()
    assert len(load_latents(tmp_path / "z.npz").names) == 5

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    result = runner.invoke(cli, args + ["--overwrite"])
    assert result.exit_code == 1 and "No space left on device" in result.output
    assert (tmp_path / "z.npz").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_decompress_never_replaces_existing_pngs_unless_asked(tmp_path, tiny_model_dir):
    _write_faces(tmp_path / "faces")
    runner = CliRunner()
    assert runner.invoke(cli, ["compress", str(tmp_path / "faces"), "-m", str(tiny_model_dir), "-o", str(tmp_path / "z.npz"), "-q"]).exit_code == 0
    out = tmp_path / "restored"
    out.mkdir()
    (out / "face3.png").write_bytes(b"my own work")
    args = ["decompress", str(tmp_path / "z.npz"), "-m", str(tiny_model_dir), "-o", str(out), "-q"]
    refused = runner.invoke(cli, args)
    assert refused.exit_code == 1 and "face3.png: already exists (1 of the 6 outputs do)" in refused.output
    assert (out / "face3.png").read_bytes() == b"my own work" and sorted(p.name for p in out.iterdir()) == ["face3.png"]
    replaced = runner.invoke(cli, args + ["--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert Image.open(out / "face3.png").size == (32, 32) and len(list(out.iterdir())) == 6


def test_optimize_steps_give_a_better_round_trip_at_the_same_size(tmp_path, tiny_model_dir):
    _write_faces(tmp_path / "faces")
    runner = CliRunner()
    psnrs, sizes = {}, {}
    for steps in (0, 30):
        out = tmp_path / f"z{steps}.npz"
        result = runner.invoke(cli, ["compress", str(tmp_path / "faces"), "--model", str(tiny_model_dir), "--out", str(out),
                                     "--dtype", "float32", "--report", "-q", "--optimize-steps", str(steps)])
        assert result.exit_code == 0, result.output
        report = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in result.stdout.splitlines() if line.startswith("  "))
        psnrs[steps] = float(report["round-trip PSNR"].split()[0])
        sizes[steps] = load_latents(out).latents.shape
    assert sizes[0] == sizes[30] == (6, 16)
    assert psnrs[30] > psnrs[0]  # an untrained tiny model gains little (~0.1 dB); a trained one ~0.8 dB
    bad = runner.invoke(cli, ["compress", str(tmp_path / "faces"), "-m", str(tiny_model_dir), "-o", str(tmp_path / "b.npz"),
                              "--optimize-steps", "-1"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_optimize_latents_lowers_the_error_and_leaves_the_model_as_it_was():
    from aekit.synthetic import make_faces

    torch.manual_seed(0)
    model = aekit.create_model("improved", widths=(8, 16), image_size=16, latent_dim=8)
    images, _ = make_faces(10, seed=1, size=16)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plain = model.encode(images)
    refined = model.optimize_latents(images, steps=20, lr=0.1, batch_size=4)
    error = lambda z: float(((model.decode(z) - x) ** 2).mean())  # noqa: E731
    assert refined.shape == plain.shape and error(refined) < error(plain)
    assert torch.equal(model.optimize_latents(images, steps=0), plain)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="steps"):
        model.optimize_latents(images, steps=-1)
    with pytest.raises(aekit.AekitError, match="skip connections"):
        aekit.create_model("unet", widths=(8, 16), image_size=16, latent_dim=8).optimize_latents(images, steps=1)


# --- --align ---


def _compress(*args):
    return CliRunner().invoke(cli, ["compress", *[str(a) for a in args]])


def test_compress_align_on_gives_one_latent_per_face_with_its_photo_face_and_box(tmp_path, tiny_model_dir):
    from helpers import write_face_photos

    photos = write_face_photos(tmp_path / "photos")
    out = tmp_path / "faces.npz"
    result = _compress(photos, "-m", tiny_model_dir, "-o", out, "--align", "on", "-q")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert "3 latents" in result.stdout and "1 skipped" in result.stdout
    assert [line for line in result.stderr.splitlines() if "empty.png" in line] == ["skipped: empty.png: no face found"]
    stored = load_latents(out, aekit.load(tiny_model_dir))
    assert stored.names == ["group.png#0", "group.png#1", "solo.jpg#0"] and stored.meta["align"] == "on"
    where = stored.placements
    assert where["photo"].tolist() == ["group.png", "group.png", "solo.jpg"] and where["face"].tolist() == [0, 1, 0]
    assert where["box"].shape == (3, 4) and where["box"].dtype == np.float32 and np.isfinite(where["box"]).all()
    assert where["box"][0, 2] > where["box"][1, 2]  # largest first: the group's right-hand face is the larger
    assert where["box"][0, 0] > 240 > where["box"][1, 0]
    with np.load(out, allow_pickle=False) as archive:  # plain arrays beside the latents
        assert archive["photo"].tolist() == where["photo"].tolist() and archive["face"].dtype == np.int64
    result = _compress(photos / "empty.png", "-m", tiny_model_dir, "-o", tmp_path / "none.npz", "--align", "on", "-q")
    assert result.exit_code == 1 and "Traceback" not in result.output and "empty.png: no face found" in result.output
    assert not (tmp_path / "none.npz").exists()
    # decompress names a face's PNG as `aekit faces` does: PHOTO-N.png
    result = CliRunner().invoke(cli, ["decompress", str(out), "-m", str(tiny_model_dir), "-o", str(tmp_path / "back"), "-q"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == ["group-0.png", "group-1.png", "solo-0.png"]


def test_compress_align_auto_uses_a_photo_without_a_face_whole(tmp_path, tiny_model_dir):
    from helpers import write_face_photos

    photos = write_face_photos(tmp_path / "photos")
    out = tmp_path / "faces.npz"
    result = _compress(photos, "-m", tiny_model_dir, "-o", out, "-q")  # auto is the default
    assert result.exit_code == 0 and "4 latents" in result.stdout and "skipped" not in result.output, result.output
    stored = load_latents(out)
    assert stored.names == ["empty.png", "group.png#0", "group.png#1", "solo.jpg#0"] and stored.meta["align"] == "auto"
    assert stored.placements["face"].tolist() == [-1, 0, 1, 0]
    assert np.isnan(stored.placements["box"][0]).all() and np.isfinite(stored.placements["box"][1:]).all()


def test_compress_align_off_is_as_before(tmp_path, tiny_model_dir):
    from helpers import write_face_photos

    photos = write_face_photos(tmp_path / "photos")
    out = tmp_path / "whole.npz"
    result = _compress(photos, "-m", tiny_model_dir, "-o", out, "--align", "off", "-q", "--report")
    assert result.exit_code == 0 and "3 latents" in result.stdout and "skipped" not in result.output, result.output
    with np.load(out, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["dtype", "latents", "meta", "model_id", "names"]
        assert "align" not in json.loads(str(archive["meta"]))
    stored = load_latents(out)
    assert stored.names == ["empty.png", "group.png", "solo.jpg"] and stored.placements is None
    model = aekit.load(tiny_model_dir)  # each photo resized as it is, as compress always did
    pictures = np.stack([np.asarray(Image.open(photos / n).convert("RGB").resize((32, 32), Image.BICUBIC))
                         for n in stored.names])
    expected = model.encode(pictures).numpy()
    assert np.abs(stored.latents - expected).max() < 0.05


def test_latent_file_placements_are_checked_and_files_without_them_still_read(tmp_path, tiny_model_dir):
    from aekit.alignment import Placement

    model = aekit.load(tiny_model_dir)
    z = np.zeros((2, 16), np.float32)
    placements = [Placement("a.png", 0, (1.0, 2.0, 30.0, 40.0)), Placement("b.png", -1, (np.nan,) * 4)]
    save_latents(tmp_path / "z.npz", z, ["a.png#0", "b.png"], model, placements=placements, align="on")
    stored = load_latents(tmp_path / "z.npz", model)
    assert stored.placements["photo"].tolist() == ["a.png", "b.png"] and stored.placements["face"].tolist() == [0, -1]
    np.testing.assert_array_equal(stored.placements["box"][0], [1, 2, 30, 40])
    save_latents(tmp_path / "old.npz", z, ["a", "b"], model)  # as before --align: no placements, read as before
    assert load_latents(tmp_path / "old.npz", model).placements is None
    with pytest.raises(LatentFileError, match="photo must be a 1-D array of 3 texts"):
        save_latents(tmp_path / "bad.npz", np.zeros((3, 16), np.float32), list("abc"), model, placements=placements)
    assert not (tmp_path / "bad.npz").exists()

    def rewritten(name, **changes):
        with np.load(tmp_path / "z.npz", allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
        arrays.update(changes)
        for key in [k for k, v in changes.items() if v is None]:
            del arrays[key]
        np.savez(tmp_path / name, **arrays)
        return tmp_path / name

    for name, changes, message in [
        ("nobox.npz", {"box": None}, "photo, face without box"),
        ("short.npz", {"face": np.zeros(1, np.int64)}, "face must be a 1-D array of 2 integers"),
        ("floatface.npz", {"face": np.zeros(2, np.float32)}, "face must be a 1-D array of 2 integers"),
        ("below.npz", {"face": np.array([0, -2])}, r"face indices must be -1 \(the whole image\) or more, got -2"),
        ("boxshape.npz", {"box": np.zeros((2, 3), np.float32)}, r"box must be a \(2, 4\) float array"),
        ("nanbox.npz", {"box": np.full((2, 4), np.nan, np.float32)}, "box holds NaN or infinite values for a face"),
        ("photonum.npz", {"photo": np.array([1, 2])}, "photo must be a 1-D array of 2 texts"),
        ("pickled.npz", {"photo": np.array(["a", None], dtype=object)}, "pickle"),
    ]:
        with pytest.raises(LatentFileError, match=message):
            load_latents(rewritten(name, **changes))
