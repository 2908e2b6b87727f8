"""The fast paths give the right answers (never timed): the uint8 cache, reduced-size JPEG decoding,
parallel decoding, the embedding fast path, and the GPU benchmark's CPU smoke mode."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import aekit
from aekit.cli import cli
from aekit.data import files_fingerprint, iter_batches, prepare
from aekit.inputs import FileListSource, open_inputs
from aekit.images import open_image, resize_rgb
from aekit.synthetic import make_faces

ROOT = Path(__file__).resolve().parents[1]

# Reduced-size (draft) JPEG decoding then bicubic resize, against full decoding then the same resize,
# in grey levels of 255. Measured: CelebA faces upscaled 2-8x, mean 0.47-0.54 and max 8-11; the
# synthetic cartoon faces here (sharp edges) at 80-320 px, mean 1.2-1.5 and max 28-31. Images smaller than twice the target
# size are decoded in full either way (identical pixels).
DRAFT_MEAN_TOLERANCE = 2.0
DRAFT_MAX_TOLERANCE = 40


def _faces_folder(root: Path, count: int, size: int, fmt: str = "JPEG", seed: int = 7) -> list[Path]:
    images, _ = make_faces(count, seed=seed, size=size)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = root / f"face{i:03d}.{'jpg' if fmt == 'JPEG' else 'png'}"
        Image.fromarray(image).save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        paths.append(path)
    return paths


def _plain_pixels(paths, size) -> np.ndarray:
    return np.stack([resize_rgb(open_image(p), size) for p in paths])


# --- the cache -----------------------------------------------------------------------------------------


def test_cached_start_gives_exactly_the_freshly_decoded_images(tmp_path, face_folder):
    first = prepare(str(face_folder), 24, progress=False)
    second = prepare(str(face_folder), 24, progress=False)
    assert not first.from_cache and second.from_cache
    assert second.names == first.names and second.attributes.keys() == first.attributes.keys()
    np.testing.assert_array_equal(np.asarray(second.images), first.images)
    # and both equal each file decoded on its own (full decode, bicubic), channels first
    files = [face_folder / name for name in first.names]
    np.testing.assert_array_equal(first.images, _plain_pixels(files, 24).transpose(0, 3, 1, 2))


def test_the_cache_never_uses_reduced_decoding(tmp_path):
    paths = _faces_folder(tmp_path / "big", 6, 128)  # 4x the target: draft would decode at 1/4 scale
    data = prepare(str(tmp_path / "big"), 32, progress=False)
    np.testing.assert_array_equal(data.images, _plain_pixels(paths, 32).transpose(0, 3, 1, 2))


@pytest.mark.parametrize("threads", ["1", "3"])
def test_parallel_decoding_keeps_order_and_pixels(tmp_path, face_folder, monkeypatch, threads):
    monkeypatch.setenv("AEKIT_DECODE_THREADS", threads)
    source = open_inputs([str(face_folder)])
    got = [(i, image) for i, image, error in source.iter_images(range(len(source)), 20)]
    assert [i for i, _ in got] == list(range(len(source)))
    files = [face_folder / k for k in source.keys()]
    np.testing.assert_array_equal(np.stack([image for _, image in got]), _plain_pixels(files, 20))


def test_files_fingerprint_is_the_documented_formula(tmp_path, monkeypatch):
    """The fast string-based version hashes exactly what Path.absolute() + stat give (inode and ctime included)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"x")
    monkeypatch.chdir(tmp_path / "a")
    paths = ["x.png", Path("x.png"), "./x.png", "../a/x.png", ".", "missing.jpg", str(tmp_path / "a" / "x.png"),
             Path(tmp_path / "a" / ".." / "a" / "x.png"), "sub//y.png"]

    def reference(items):
        digest = hashlib.sha256()
        for path in items:
            path = Path(path).absolute()
            try:
                st = path.stat()
                digest.update(f"{path}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{st.st_ctime_ns}\n".encode("utf-8", "surrogateescape"))
            except OSError:
                digest.update(f"{path}|missing\n".encode("utf-8", "surrogateescape"))
        return digest.hexdigest()

    assert files_fingerprint(paths) == reference(paths)
    for path in paths:
        assert files_fingerprint([path]) == reference([path]), path


def test_scan_image_folder_lists_what_the_folder_source_lists_in_its_order(tmp_path, monkeypatch):
    from aekit.data import scan_image_folder
    from aekit.images import IMAGE_EXTENSIONS

    root = tmp_path / "tree"
    for rel in ["a.jpg", "a b/x.jpg", "a/x.jpg", "a/b/c.PNG", "a.b/z.jpg", "a-/q.jpg", ".hidden/y.jpg", "z/.h.jpg",
                "Z.JPG", "notes.txt", "a/b c.jpg", "a/b/d.webp", "ü/é.jpeg"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    (root / "loop").symlink_to(root / "a")  # a linked folder is not followed
    source = open_inputs([str(root)])
    expected = source.keys()
    assert expected[:2] == ["Z.JPG", "a/b/c.PNG"] and "a/x.jpg" in expected and len(expected) == 10
    assert scan_image_folder(root, IMAGE_EXTENSIONS) == expected
    assert scan_image_folder(str(root) + os.sep, IMAGE_EXTENSIONS) == expected
    monkeypatch.chdir(root)
    assert scan_image_folder(".", IMAGE_EXTENSIONS) == expected


# --- reduced-size JPEG decoding -------------------------------------------------------------------------


def test_reduced_decoding_is_close_to_full_decoding(tmp_path):
    paths = _faces_folder(tmp_path / "big", 16, 160)  # draft decodes these at 1/4 (40x40) for a 32x32 target
    source = FileListSource(paths)
    full = np.concatenate([b.images for b in iter_batches(source, 32, 8, progress=False)]).astype(int)
    fast = np.concatenate([b.images for b in iter_batches(source, 32, 8, progress=False, reduced=True)]).astype(int)
    with Image.open(paths[0]) as img:  # the draft did happen: Pillow picked a reduced scale
        img.draft("RGB", (32, 32))
        assert img.size == (40, 40)
    diff = np.abs(full - fast)
    assert diff.mean() <= DRAFT_MEAN_TOLERANCE, diff.mean()
    assert diff.max() <= DRAFT_MAX_TOLERANCE, diff.max()
    assert diff.mean() > 0  # not silently the same path


def test_reduced_decoding_is_exact_for_small_images_and_non_jpeg(tmp_path):
    small = _faces_folder(tmp_path / "small", 5, 60)  # less than twice 32: no reduced scale exists
    pngs = _faces_folder(tmp_path / "png", 5, 128, fmt="PNG")
    for paths in (small, pngs):
        source = FileListSource(paths)
        fast = np.concatenate([b.images for b in iter_batches(source, 32, 4, progress=False, reduced=True)])
        np.testing.assert_array_equal(fast, _plain_pixels(paths, 32))


def test_reduced_flag_is_ignored_by_sources_that_do_not_support_it():
    full = np.concatenate([b.images for b in iter_batches(open_inputs(["synthetic:10"]), 32, 4, progress=False)])
    fast = np.concatenate([b.images for b in iter_batches(open_inputs(["synthetic:10"]), 32, 4, progress=False, reduced=True)])
    np.testing.assert_array_equal(full, fast)


# --- the embedding fast path ---------------------------------------------------------------------------


def _trained_like(arch: str, seed: int = 0, **overrides):
    """A fresh model whose BatchNorm layers carry non-trivial statistics, as a trained one's do."""
    torch.manual_seed(seed)
    model = aekit.create_model(arch, **overrides)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.2, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def _naive_latents(model, images_nhwc: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(images_nhwc).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        return model.encoder(x).numpy()


@pytest.mark.parametrize("arch", ["article", "small", "improved", "unet"])
def test_fast_encoder_matches_the_naive_loop(arch, monkeypatch):
    from aekit_embed.commands import FastEncoder

    monkeypatch.setattr(FastEncoder, "CPU_BATCH", 4)  # 7 images run as 4 + 3 on a CPU
    model = _trained_like(arch)
    images, _ = make_faces(10, seed=2, size=64)
    encoder = FastEncoder(model)
    fast = np.concatenate([encoder(images[:7]), encoder(images[7:])])
    assert encoder.fast is not None  # the fast copy was used, not the fallback
    np.testing.assert_allclose(fast, _naive_latents(model, images), rtol=0, atol=1e-5)
    assert model.training is False and next(model.parameters()).is_contiguous()  # the user's model is untouched


def test_fast_encoder_falls_back_when_the_copy_disagrees(monkeypatch):
    import aekit.inference
    from aekit_embed import fast_encoder as commands

    model = _trained_like("small")

    def broken_fold(module):  # a structure that folding would get wrong
        for m in module.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.data.mul_(2)
        return 1

    monkeypatch.setattr(aekit.inference, "fold_batchnorm", broken_fold)  # what the inference copy calls
    images, _ = make_faces(6, seed=1, size=64)
    encoder = commands.FastEncoder(model)
    z = np.concatenate([encoder(images[:4]), encoder(images[4:])])
    assert encoder.fast is None
    np.testing.assert_allclose(z, _naive_latents(model, images), rtol=0, atol=1e-5)


def test_fold_batchnorm_leaves_training_mode_layers_alone():
    from aekit_embed.commands import fold_batchnorm

    model = _trained_like("small").train()
    assert fold_batchnorm(model) == 0
    assert fold_batchnorm(model.eval()) > 0


def test_embed_command_matches_the_naive_loop(tmp_path):
    model = _trained_like("article", image_size=32, widths=(8, 16), convs_per_half=1, latent_dim=16)
    model_dir = model.save_pretrained(tmp_path / "model")
    paths = _faces_folder(tmp_path / "faces", 11, 40)  # JPEGs under twice 32: decoded in full either way
    out = tmp_path / "feats.npz"
    result = CliRunner().invoke(cli, ["embed", str(tmp_path / "faces"), "-m", str(model_dir), "--out", str(out),
                                      "-q", "--batch-size", "4", "--features", "latent"])
    assert result.exit_code == 0, result.output
    with np.load(out, allow_pickle=False) as data:
        latents, names = data["features"], data["paths"].tolist()
    assert names == [p.name for p in paths]
    naive = np.stack([np.asarray(Image.open(p).convert("RGB").resize((32, 32), Image.BICUBIC)) for p in paths])
    np.testing.assert_allclose(latents, _naive_latents(model, naive), rtol=0, atol=1e-5)


@pytest.mark.parametrize("as_folder", [False, True])
def test_embed_full_decode_matches_full_decoding_on_big_jpegs(tmp_path, as_folder):
    model = _trained_like("article", image_size=32, widths=(8, 16), convs_per_half=1, latent_dim=16)
    model_dir = model.save_pretrained(tmp_path / "model")
    paths = _faces_folder(tmp_path / "faces", 5, 128)
    inputs = [str(tmp_path / "faces")] if as_folder else [str(p) for p in paths]
    # --align off: these are the pixels as decoded (drawn faces, not all framed like CelebA's by --align auto's rule)
    args = ["embed", *inputs, "-m", str(model_dir), "-q", "--features", "latent", "--align", "off"]
    assert CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "exact.npz"), "--full-decode"]).exit_code == 0
    with np.load(tmp_path / "exact.npz", allow_pickle=False) as data:
        exact = data["features"]
    np.testing.assert_allclose(exact, _naive_latents(model, _plain_pixels(paths, 32)), rtol=0, atol=1e-5)
    assert CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "fast.npz")]).exit_code == 0
    with np.load(tmp_path / "fast.npz", allow_pickle=False) as data:
        fast = data["features"]
    # the default decodes these 128x128 JPEGs at 1/4 scale: the latents of exactly those pixels
    drafted = np.stack([resize_rgb(open_image(p, draft_size=32), 32) for p in paths])
    np.testing.assert_allclose(fast, _naive_latents(model, drafted), rtol=0, atol=1e-5)
    assert not np.array_equal(drafted, _plain_pixels(paths, 32))


def test_prefetch_keeps_order_passes_errors_and_stops_early():
    from aekit_embed.commands import prefetch

    assert list(prefetch(iter(range(50)))) == list(range(50))

    def failing():
        yield 1
        raise ValueError("bad image")

    with pytest.raises(ValueError, match="bad image"):
        list(prefetch(failing()))
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    for item in prefetch(endless()):
        if item == 3:
            break
    assert len(produced) < 10  # the producer stopped a few items ahead


# --- the GPU benchmark's CPU smoke mode -------------------------------------------------------------------


def test_gpu_benchmark_smoke_runs_on_cpu(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--device", "cpu", "--tiny",
                             "--results-dir", str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| aekit fast loop" in result.stdout and "| article's loop" in result.stdout
    written = list(tmp_path.glob("*.md"))
    assert len(written) == 1 and "images/s" in written[0].read_text()
