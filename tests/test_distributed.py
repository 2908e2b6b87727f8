"""Under torchrun: two CPU processes with gloo train one model (identical weights, only rank 0 writes) and
embed one folder into one merged .npz in input order."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import aekit

WORKER = textwrap.dedent("""
    import json, os, sys
    import aekit.io
    from aekit.train import Trainer, TrainConfig

    out, record = sys.argv[1], sys.argv[2]
    rank = int(os.environ["RANK"])
    written = []
    real_atomic_path = aekit.io.atomic_path

    def spy(path, *args, **kwargs):
        written.append(str(path))
        return real_atomic_path(path, *args, **kwargs)

    aekit.io.atomic_path = spy
    config = TrainConfig(data="synthetic:128", arch="small", epochs=2, batch_size=16, lr=2e-3, seed=3,
                         model_config={"image_size": 32, "widths": [8, 16], "latent_dim": 16}, val_fraction=0.25)
    model = Trainer(config, out, progress=False, log=lambda message: None, run_hooks=False).run()
    from safetensors.torch import save_file
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, f"{record}/rank{rank}.safetensors")
    with open(f"{record}/rank{rank}.json", "w") as handle:
        json.dump({"written": written, "steps": json.loads(open(f"{out}/metrics.jsonl").read().splitlines()[-1])["step"]
                   if rank == 0 else None}, handle)
""")


def test_two_gloo_processes_train_one_model_and_only_rank_0_writes(tmp_path):
    pytest.importorskip("torch.distributed")
    if not torch.distributed.is_gloo_available():
        pytest.skip("this torch build has no gloo backend")
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    record = tmp_path / "record"
    record.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(script), str(tmp_path / "run"), str(record)],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    from safetensors.torch import load_file

    rank0, rank1 = load_file(record / "rank0.safetensors"), load_file(record / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    saved = aekit.load(tmp_path / "run").state_dict()
    for key in rank0:
        assert torch.equal(saved[key], rank0[key]), key
    writes0 = json.loads((record / "rank0.json").read_text())
    writes1 = json.loads((record / "rank1.json").read_text())
    assert writes1["written"] == []
    assert any(path.endswith("model.safetensors") for path in writes0["written"])
    # 96 training images, batch 16 per process, 2 processes: 3 steps an epoch instead of 6
    assert writes0["steps"] == 6


def test_python_dash_m_aekit_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "aekit", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "train" in result.stdout


def _torchrun(args, tmp_path, nproc=2):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AEKIT_DECODE_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
                           "-m", "aekit", *[str(a) for a in args]], capture_output=True, text=True, env=env,
                          timeout=600, cwd=tmp_path)


@pytest.fixture
def embed_inputs(tmp_path, face_folder):
    """A tiny model and the face folder with one unreadable image among the others."""
    if not torch.distributed.is_gloo_available():
        pytest.skip("this torch build has no gloo backend")
    torch.manual_seed(0)
    model = aekit.create_model("article", image_size=32, widths=(8, 16), convs_per_half=1, latent_dim=16)
    model_dir = model.save_pretrained(tmp_path / "model")
    (face_folder / "face03b.png").write_bytes(b"not a png")  # sorts between face03 and face04: in rank 0's share
    return model_dir, face_folder


def test_embed_under_torchrun_writes_one_merged_npz_in_input_order(tmp_path, embed_inputs):
    from click.testing import CliRunner

    from aekit.cli import cli
    from aekit.features import load_features

    model_dir, folder = embed_inputs
    single = CliRunner().invoke(cli, ["embed", str(folder), "-m", str(model_dir), "--out", str(tmp_path / "one.npz"),
                                      "-q", "--batch-size", "4"])
    assert single.exit_code == 0, single.output
    result = _torchrun(["embed", folder, "-m", model_dir, "--out", tmp_path / "two.npz", "-q", "--batch-size", "4"],
                       tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(2 processes)" in result.stdout and "1 skipped" in result.stdout
    assert "face03b.png" in result.stderr  # the bad file is listed once, by rank 0
    assert result.stdout.count("wrote ") == 1
    one, two = load_features(tmp_path / "one.npz"), load_features(tmp_path / "two.npz")
    assert list(two.paths) == list(one.paths) and len(two.paths) == 12
    assert list(two.files) == list(one.files)
    np.testing.assert_allclose(two.X, one.X, atol=1e-5)
    assert two.label_names == one.label_names == ["Smiling", "Male"]
    np.testing.assert_array_equal(two.y, one.y)
    assert two.meta["processes"] == 2 and two.meta["skipped"] == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".npz") == ["one.npz", "two.npz"]  # no part files


def test_embed_under_torchrun_strict_fails_cleanly_on_every_rank(tmp_path, embed_inputs):
    model_dir, folder = embed_inputs
    result = _torchrun(["embed", folder, "-m", model_dir, "--out", tmp_path / "strict.npz", "-q", "--strict"], tmp_path)
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(ours) == 1 and "face03b.png" in ours[0]  # one clean line from rank 0; then torchrun's own report
    assert not (tmp_path / "strict.npz").exists()


def test_shard_indices_cover_the_inputs_once_in_order():
    from aekit_embed.commands import shard_indices

    for count in (0, 1, 7, 12):
        for world in (1, 2, 3, 5):
            shares = [shard_indices(count, rank, world) for rank in range(world)]
            assert [i for share in shares for i in share] == list(range(count))
            assert max(map(len, shares)) - min(map(len, shares)) <= 1
    with pytest.raises(ValueError, match="rank 2"):
        shard_indices(10, 2, 2)
