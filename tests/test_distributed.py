"""Training under torchrun: two CPU processes with gloo end with identical weights; only rank 0 writes."""

import json
import os
import subprocess
import sys
import textwrap

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
