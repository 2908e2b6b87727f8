"""Faults: a killed or interrupted training run, a non-finite loss, a full disk, a plugin failing in a hook.

The kill tests run the real `aekit train` in a subprocess on a tiny model: SIGKILL at seeded random
moments, then `--resume`, until the run finishes; SIGINT (Ctrl-C) must save a checkpoint and exit with
status 130 saying how to resume.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import aekit
import aekit.plugins
from aekit import checkpoint
from aekit.cli import cli
from aekit.train import Trainer, TrainConfig

from helpers import TINY, TINY_CLI  # noqa: E402
KILL_EPOCHS = 10
KILL_POINTS = int(os.environ.get("AEKIT_KILL_POINTS", "3"))
KILL_SEED = int(os.environ.get("AEKIT_KILL_SEED", "20240611"))  # vary it to try other moments


def _config(**overrides):
    settings = dict(data="synthetic:96", epochs=2, batch_size=32, lr=2e-3, seed=1, model_config=dict(TINY), sample_every=0)
    settings.update(overrides)
    return TrainConfig(**settings)


def _quiet(message):
    pass


def _rows(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def stray_temporaries(root: Path) -> list[Path]:
    return list(root.rglob(".*.tmp"))


# --- killed and interrupted runs (real subprocesses) -----------------------------------------------------


def _aekit_command(*args) -> list[str]:
    return [sys.executable, "-c", "from aekit.cli import main; main()", *[str(a) for a in args]]


def _env() -> dict:
    env = dict(os.environ)  # AEKIT_HOME is the test's own (conftest)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", AEKIT_LOAD_PLUGINS="sources")
    return env


class Training:
    """`aekit train` in a subprocess, its stderr collected by a thread."""

    def __init__(self, *args):
        # a job started in the background (`cmd &`) inherits SIGINT ignored; restore the default so the
        # child's Python turns Ctrl-C into KeyboardInterrupt as it does in a terminal
        self.proc = subprocess.Popen(_aekit_command("train", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=_env(),
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout: float = 60) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(line.startswith(prefix) for line in self.lines):
                return True
            if self.proc.poll() is not None:
                self.reader.join(5)
                return any(line.startswith(prefix) for line in self.lines)
            time.sleep(0.02)
        return False

    def finish(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout)
        self.reader.join(5)
        self.proc.stdout.close()
        return code

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)


def _state_on_disk(run: Path):
    """(epoch, batch) of the checkpoint on disk, None when there is none; fails if any file is half-written."""
    from safetensors import safe_open

    state = run / checkpoint.STATE_NAME
    if (run / checkpoint.CONFIG_NAME).exists():
        model = aekit.load(run)  # complete config + weights, or this raises
        assert model.training_summary["epochs_done"] <= KILL_EPOCHS
    if not state.exists():
        return None
    with safe_open(str(state), framework="pt") as fh:  # the whole training state reads back
        info = json.loads(fh.metadata()["aekit"])["info"]
        for key in fh.keys():
            fh.get_tensor(key)
    return info["epoch"], info["batch"]


def test_training_killed_at_random_moments_then_resumed_loses_nothing(tmp_path):
    """SIGKILL at KILL_POINTS seeded random moments (AEKIT_KILL_POINTS=20 for the long version), each followed by
    a load of what is on disk and a --resume; the last resume must end with the uninterrupted run's weights."""
    run, straight = tmp_path / "run", tmp_path / "uninterrupted"
    settings = ["--data", "synthetic:96", "--epochs", KILL_EPOCHS, "--batch-size", 16, "--lr", "2e-3", "--seed", 3,
                "--sample-every", 0, "--quiet", *TINY_CLI]
    reference = Training(*settings, "--out", straight)  # first: the weights to reach, and how long a run takes
    assert reference.wait_for("training "), reference.stderr
    began = time.monotonic()
    assert reference.finish() == 0, reference.stderr
    duration = time.monotonic() - began
    start = [*settings, "--out", run]
    rng = random.Random(KILL_SEED)
    report = {"kill points": 0, "killed while running": 0, "checkpoints on disk after a kill": 0,
              "nothing on disk yet": 0, "recovered": 0}
    saved = None  # (epoch, batch) of the checkpoint the last kill left
    for point in range(KILL_POINTS + 1):
        if point > 0 and not (run / "run.json").exists():  # killed before the run was set up: start it again
            training = Training(*start)
            report["recovered"] += saved is None
        elif point > 0:  # the run goes on from exactly what the kill left on disk
            training = Training("--resume", run, "--quiet")
            expected = (f"resuming {run} at epoch {saved[0] + 1}, batch {saved[1]}" if saved
                        else f"{run} has no checkpoint yet; starting the run from the beginning")
            assert training.wait_for(expected), f"expected {expected!r} in:\n{training.stderr}"
            report["recovered"] += 1
        else:
            training = Training(*start)
        if point == KILL_POINTS:  # the last one runs to the end
            assert training.finish() == 0, training.stderr
            break
        # a seeded random moment within what is left of the run: setting up, mid-epoch or while saving
        assert training.wait_for("training "), training.stderr
        left = duration * (1 - (saved[0] if saved else 0) / KILL_EPOCHS)
        time.sleep(rng.uniform(0.0, left))
        report["kill points"] += 1
        report["killed while running"] += training.proc.poll() is None
        training.proc.send_signal(signal.SIGKILL)
        training.finish()
        before, saved = saved, _state_on_disk(run)  # raises if a checkpoint file is half-written
        if saved is None:
            assert before is None, "a checkpoint disappeared"
            report["nothing on disk yet"] += 1
        else:
            assert before is None or saved >= before, (before, saved)  # nothing earlier than the last checkpoint is lost
            report["checkpoints on disk after a kill"] += 1
    rows = _rows(run)
    assert [r["epoch"] for r in rows] == list(range(1, KILL_EPOCHS + 1)), rows
    resumed = aekit.load(run)
    assert resumed.training_summary["epochs_done"] == KILL_EPOCHS
    assert stray_temporaries(run) == []
    expected_weights = aekit.load(straight).state_dict()
    differing = [k for k, v in resumed.state_dict().items() if not torch.equal(v, expected_weights[k])]
    assert differing == [], f"after {KILL_POINTS} kills, these tensors differ from the uninterrupted run: {differing}"
    print("\nSIGKILL then --resume: " + ", ".join(f"{k}: {v}" for k, v in report.items())
          + f"; the last resume finished all {KILL_EPOCHS} epochs with the uninterrupted run's weights, bit for bit")
    assert report["kill points"] == report["recovered"] == KILL_POINTS


def test_two_trainings_into_one_folder_at_once_exactly_one_runs(tmp_path):
    run = tmp_path / "run"
    args = ["--data", "synthetic:64", "--epochs", 2, "--batch-size", 16, "--seed", 3, "--sample-every", 0, "--quiet",
            "--out", run, *TINY_CLI]
    first, second = Training(*args), Training(*args)  # started together: the lock decides, not the timing
    codes = sorted([first.finish(), second.finish()])
    outputs = first.stderr + "\n" + second.stderr
    assert codes[0] == 0 and codes[1] != 0, outputs
    loser = first if first.proc.returncode else second
    errors = [line for line in loser.lines if line.startswith("Error")]
    assert len(errors) == 1 and ("is in use by pid" in errors[0] or "already holds a run" in errors[0]), loser.stderr
    assert "Traceback" not in outputs
    rows = _rows(run)
    assert [r["epoch"] for r in rows] == [1, 2]  # one run's epochs, not two runs' interleaved
    written = json.loads((run / "run.json").read_text())
    assert aekit.load(run).training_summary["epochs_done"] == 2 and written["config"]["epochs"] == 2
    assert not (run / ".aekit-lock").exists()


def test_a_second_training_into_a_busy_folder_fails_at_once_naming_the_other(tmp_path):
    run = tmp_path / "run"
    args = ["--data", "synthetic:64", "--epochs", 50, "--batch-size", 16, "--sample-every", 0, "--quiet", "--out", run,
            *TINY_CLI]
    first = Training(*args)
    try:
        assert first.wait_for("training "), first.stderr
        started = time.monotonic()
        second = Training(*args)
        assert second.finish() == 1
        assert time.monotonic() - started < 30  # at once: no waiting for the other run
        errors = [line for line in second.lines if line.startswith("Error")]
        assert len(errors) == 1, second.stderr
        assert errors[0].startswith(f"Error: {run}: this run folder is in use by pid {first.proc.pid} (")
        assert errors[0].endswith(f"train {' '.join(str(a) for a in args)}); wait for it to finish or choose another --out")
        resumed = Training("--resume", run, "--quiet")  # --resume takes the same lock
        assert resumed.finish() == 1 and "is in use by pid" in resumed.stderr
    finally:
        first.proc.send_signal(signal.SIGKILL)
        first.finish()
    assert Training("--resume", run, "--quiet").wait_for("resuming ")  # a killed holder's lock is gone with it


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_saves_a_checkpoint_and_exits_with_130(tmp_path, monkeypatch, signum):
    run = tmp_path / "run"
    epochs = 6
    training = Training("--data", "synthetic:64", "--epochs", epochs, "--batch-size", 16, "--seed", 3, "--sample-every", 0,
                        "--quiet", "--out", run, *TINY_CLI)
    assert training.wait_for("epoch 1/"), training.stderr
    training.proc.send_signal(signum)
    code = training.finish()
    assert code == 130, training.stderr
    assert "Traceback" not in training.stderr
    assert f"continue with `aekit train --resume {run}`" in training.stderr
    assert training.lines[-1] == "Interrupted."
    epoch, batch = _state_on_disk(run)
    assert 1 <= epoch < epochs
    summary = aekit.load(run).training_summary
    assert (summary["epochs_done"], summary["batch_in_epoch"]) == (epoch, batch)
    assert [r["epoch"] for r in _rows(run)] == list(range(1, epoch + 1))
    assert stray_temporaries(run) == []
    # the command the message gives works: resume (in this process) and finish
    monkeypatch.setenv("AEKIT_LOAD_PLUGINS", "sources")
    result = CliRunner().invoke(cli, ["train", "--resume", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"resuming {run} at epoch {epoch + 1}, batch {batch}" in result.stderr
    assert [r["epoch"] for r in _rows(run)] == list(range(1, epochs + 1))


def test_ctrl_c_after_the_last_batch_keeps_the_epochs_metrics(tmp_path, monkeypatch):
    """Interrupted between an epoch's last batch and its metrics row: the row is still written."""
    out = tmp_path / "run"
    real_evaluate = Trainer.evaluate
    calls = {"n": 0}

    def evaluate(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        return real_evaluate(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    with pytest.raises(KeyboardInterrupt):
        Trainer(_config(val_fraction=0.2), out, progress=False, log=_quiet, run_hooks=False).run()
    assert [r["epoch"] for r in _rows(out)] == [1]
    assert aekit.load(out).training_summary["epochs_done"] == 1
    Trainer(_config(val_fraction=0.2), out, progress=False, log=_quiet, run_hooks=False).run(resume=True)
    assert [r["epoch"] for r in _rows(out)] == [1, 2]


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_over(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"config": dataclasses.asdict(_config(epochs=1))}))
    (out / ".model.safetensors.abc123.safetensors.tmp").write_bytes(b"half")  # what a kill mid-write leaves
    messages = []
    Trainer(_config(epochs=1), out, progress=False, log=messages.append, run_hooks=False).run(resume=True)
    assert any("no checkpoint yet; starting the run from the beginning" in m for m in messages)
    assert [r["epoch"] for r in _rows(out)] == [1] and stray_temporaries(out) == []


# --- a non-finite loss: stop (default) or skip ----------------------------------------------------------------


def _nan_on_calls(monkeypatch, bad_calls: set[int]):
    real = torch.nn.functional.mse_loss
    calls = {"n": 0}

    def mse_loss(a, b, *args, **kwargs):
        calls["n"] += 1
        loss = real(a, b, *args, **kwargs)
        return loss * float("nan") if calls["n"] in bad_calls else loss

    monkeypatch.setattr(torch.nn.functional, "mse_loss", mse_loss)
    return calls


def test_on_nan_stop_is_the_default_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    _nan_on_calls(monkeypatch, {5})  # 3 steps an epoch: the 2nd step of epoch 2
    with pytest.raises(aekit.TrainingError, match="loss became nan.*last good checkpoint.*--on-nan skip"):
        Trainer(_config(), out, progress=False, log=_quiet, run_hooks=False).run()
    assert aekit.load(out).training_summary["epochs_done"] == 1
    assert [r["epoch"] for r in _rows(out)] == [1]


def test_on_nan_skip_skips_the_step_and_counts_it(tmp_path, monkeypatch):
    out = tmp_path / "run"
    _nan_on_calls(monkeypatch, {2, 5})
    model = Trainer(_config(on_nan="skip"), out, progress=False, log=_quiet, run_hooks=False).run()
    rows = _rows(out)
    assert [(r["epoch"], r["skipped_steps"]) for r in rows] == [(1, 1), (2, 1)]
    assert all(np.isfinite(r["loss"]) for r in rows)
    assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())
    assert json.loads((out / "run.json").read_text())["config"]["on_nan"] == "skip"


def test_on_nan_skip_undoes_the_batchnorm_statistics_of_a_skipped_step(tmp_path, monkeypatch):
    trainer = Trainer(_config(on_nan="skip"), tmp_path / "run", progress=False, log=_quiet)
    torch.manual_seed(0)
    model = aekit.create_model("article", **TINY).train()
    optimizer = torch.optim.Adam(model.parameters())
    before = {k: v.clone() for k, v in model.named_buffers()}
    _nan_on_calls(monkeypatch, {1})
    batch = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    assert trainer._step(model, optimizer, batch) is None
    for key, value in model.named_buffers():
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in model.parameters())
    assert isinstance(trainer._step(model, optimizer, batch), float)  # the next finite step trains


def test_on_nan_skip_stops_when_a_whole_epoch_is_non_finite(tmp_path, monkeypatch):
    out = tmp_path / "run"
    _nan_on_calls(monkeypatch, set(range(4, 100)))
    with pytest.raises(aekit.TrainingError, match="every step of epoch 2 had a non-finite loss"):
        Trainer(_config(on_nan="skip"), out, progress=False, log=_quiet, run_hooks=False).run()
    assert aekit.load(out).training_summary["epochs_done"] == 1


def test_on_nan_option_on_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("AEKIT_LOAD_PLUGINS", "sources")
    _nan_on_calls(monkeypatch, {1})
    runner = CliRunner()
    args = ["train", "--data", "synthetic:32", "--epochs", "1", "--batch-size", "16", "--quiet", "--sample-every", "0", *TINY_CLI]
    stopped = runner.invoke(cli, [*args, "--out", str(tmp_path / "a")])
    assert stopped.exit_code == 1 and "loss became nan" in stopped.output and "Traceback" not in stopped.output
    _nan_on_calls(monkeypatch, {1})
    skipped = runner.invoke(cli, [*args, "--out", str(tmp_path / "b"), "--on-nan", "skip"])
    assert skipped.exit_code == 0, skipped.output
    assert _rows(tmp_path / "b")[0]["skipped_steps"] == 1


# --- a full disk ---------------------------------------------------------------------------------------------


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    out = tmp_path / "run"
    Trainer(_config(epochs=1), out, progress=False, log=_quiet, run_hooks=False).run(resume=False)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    import safetensors.torch

    real_save = safetensors.torch.save_file

    def save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:  # part of the file reaches the disk, then it is full
            fh.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    config = json.loads((out / "run.json").read_text())["config"]
    config["epochs"] = 2
    (out / "run.json").write_text(json.dumps({"config": config}))
    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    monkeypatch.setenv("AEKIT_LOAD_PLUGINS", "sources")
    result = CliRunner().invoke(cli, ["train", "--resume", str(out), "--quiet"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    (error,) = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert error == (f"Error: {out / checkpoint.STATE_NAME}: could not write it (No space left on device); nothing written "
                     f"before is damaged (writes are atomic): free some space, then continue with `aekit train --resume {out}`")
    for name in (checkpoint.STATE_NAME, checkpoint.WEIGHTS_NAME, checkpoint.CONFIG_NAME):
        assert (out / name).read_bytes() == before[name], name
    assert stray_temporaries(tmp_path) == []
    monkeypatch.setattr(safetensors.torch, "save_file", real_save)
    assert aekit.load(out).training_summary["epochs_done"] == 1


@pytest.fixture
def model_dir(tmp_path):
    torch.manual_seed(0)
    return aekit.create_model("article", **TINY).save_pretrained(tmp_path / "model")


@pytest.fixture
def faces(tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    from aekit.synthetic import make_faces

    for i, image in enumerate(make_faces(3, seed=1, size=32)[0]):
        Image.fromarray(image).save(folder / f"face{i}.png")
    return folder


def _full_disk_error(result, path: Path):
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    (error,) = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert error == f"Error: {path}: No space left on device", result.output


def test_disk_full_while_writing_compress_output(tmp_path, model_dir, faces, monkeypatch):
    runner = CliRunner()
    out = tmp_path / "z.npz"
    assert runner.invoke(cli, ["compress", str(faces), "-m", str(model_dir), "-o", str(out), "-q"]).exit_code == 0
    before = out.read_bytes()
    monkeypatch.setattr(np, "savez", lambda fh, **arrays: (fh.write(b"PK partial"), _disk_full()))
    _full_disk_error(runner.invoke(cli, ["compress", str(faces), "-m", str(model_dir), "-o", str(out), "-q", "--dtype", "int8",
                                         "--overwrite"]), out)
    assert out.read_bytes() == before and stray_temporaries(tmp_path) == []


def test_disk_full_while_writing_generate_output(tmp_path, model_dir, monkeypatch):
    runner = CliRunner()
    out = tmp_path / "grid.png"
    args = ["generate", "-m", str(model_dir), "--out", str(out), "--sampler", "normal", "--n", "4", "--seed"]
    assert runner.invoke(cli, [*args, "1"]).exit_code == 0
    before = out.read_bytes()
    real_save = Image.Image.save

    def save(self, fp, *a, **k):
        Path(fp).write_bytes(b"\x89PNG partial")
        _disk_full()

    monkeypatch.setattr(Image.Image, "save", save)
    _full_disk_error(runner.invoke(cli, [*args, "2"]), out)
    monkeypatch.setattr(Image.Image, "save", real_save)
    assert out.read_bytes() == before and stray_temporaries(tmp_path) == []
    # the sampled latents too
    monkeypatch.setattr(np, "savez", lambda fh, **arrays: _disk_full())
    latents = tmp_path / "z.npz"
    _full_disk_error(runner.invoke(cli, [*args, "3", "--save-latents", str(latents)]), latents)
    assert not latents.exists() and stray_temporaries(tmp_path) == []


def test_disk_full_while_writing_decompress_output(tmp_path, model_dir, faces, monkeypatch):
    runner = CliRunner()
    assert runner.invoke(cli, ["compress", str(faces), "-m", str(model_dir), "-o", str(tmp_path / "z.npz"), "-q"]).exit_code == 0
    real_save = Image.Image.save
    written = {"n": 0}

    def save(self, fp, *a, **k):
        written["n"] += 1
        if written["n"] == 2:
            Path(fp).write_bytes(b"\x89PNG partial")
            _disk_full()
        return real_save(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", save)
    out = tmp_path / "restored"
    _full_disk_error(runner.invoke(cli, ["decompress", str(tmp_path / "z.npz"), "-m", str(model_dir), "-o", str(out), "-q"]),
                     out / "face1.png")
    assert sorted(p.name for p in out.iterdir()) == ["face0.png"]  # complete files only
    assert stray_temporaries(tmp_path) == []


# --- plugins that fail inside a hook -------------------------------------------------------------------------

FAILING_PLUGIN = '''
import click

import aekit


@click.command("explode")
def explode():
    """A plugin command that fails with a bug, not an AekitError."""
    raise ZeroDivisionError("the plugin divided by zero")


@aekit.hookimpl
def register_commands(register):
    register(explode)


@aekit.hookimpl
def on_train_end(model, run_dir, train_images):
    raise RuntimeError("on_train_end blew up\\nsecond line")
'''

FAILING_REGISTRATION = '''
import aekit


@aekit.hookimpl
def register_noise_models(register):
    register("fine-noise", lambda argument="": None)


@aekit.hookimpl
def register_samplers(register):
    raise KeyError("a bug inside register_samplers")
'''

def test_a_plugin_failing_in_on_train_end_is_reported_and_isolated(install_plugin, tmp_path, monkeypatch):
    install_plugin("aekit-failing-hooks", "failing", "aekit_failing_hooks", FAILING_PLUGIN, version="1.0")
    monkeypatch.setenv("AEKIT_LOAD_PLUGINS", "sources,generate,failing")
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(cli, ["train", "--data", "synthetic:32", "--epochs", "1", "--batch-size", "16", "--quiet",
                                 "--sample-every", "0", "--out", str(run), *TINY_CLI])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning")]
    assert warnings == ["Warning: plugin 'failing' failed in on_train_end (RuntimeError: on_train_end blew up)"]
    assert aekit.load(run).training_summary["epochs_done"] == 1  # the model is kept
    assert sorted(p.name for p in run.glob("prior-*")) == ["prior-gaussian.safetensors", "prior-gmm.safetensors"]  # others ran
    # the plugin's own command fails on one line; the other commands work
    exploded = runner.invoke(cli, ["explode"])
    assert exploded.exit_code == 1 and "Traceback" not in exploded.output
    assert exploded.output.strip() == ("Error: ZeroDivisionError: the plugin divided by zero "
                                       "(run with --debug for the traceback)")
    assert "Traceback" in runner.invoke(cli, ["--debug", "explode"]).output
    info = runner.invoke(cli, ["info", str(run)])
    assert info.exit_code == 0 and "epoch" in info.output
    generated = runner.invoke(cli, ["generate", "-m", str(run), "--n", "4", "--seed", "0", "--out", str(tmp_path / "g.png")])
    assert generated.exit_code == 0, generated.output


def test_a_plugin_failing_inside_a_registration_hook_is_dropped_whole(install_plugin, tmp_path):
    install_plugin("aekit-failing-registration", "halfway", "aekit_failing_registration", FAILING_REGISTRATION, version="1.0")
    rows = {row["name"]: row for row in aekit.plugins.describe_plugins()}
    assert rows["halfway"]["error"] == "KeyError: 'a bug inside register_samplers'"
    assert rows["halfway"]["registered"] == {}  # what it registered before the failure is dropped too
    registry = aekit.plugins.get_registry()
    assert "fine-noise" not in registry.names("noise_model")
    assert {"gaussian", "gmm", "normal"} <= set(registry.names("sampler"))
    runner = CliRunner()
    listing = runner.invoke(cli, ["plugins"])
    assert listing.exit_code == 0 and "halfway 1.0  (aekit_failing_registration; pip: aekit-failing-registration) FAILED: KeyError" in listing.stdout
    out = tmp_path / "g.png"
    model = tmp_path / "model"
    torch.manual_seed(0)
    aekit.create_model("article", **TINY).save_pretrained(model)
    aekit.plugins.reset()  # the CLI loads the plugins afresh
    result = runner.invoke(cli, ["generate", "-m", str(model), "--sampler", "normal", "--n", "2", "--seed", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning")]
    assert len(warnings) == 1 and "'halfway' failed to load" in warnings[0]


# --- gradient clipping -----------------------------------------------------------------------------------------

class _NormRecordingAdam(torch.optim.Adam):
    """Adam that records each group's gradient norm at the moment it steps (after any clipping)."""

    def step(self, closure=None):
        self.norms = [float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in g["params"] if p.grad is not None])))
                      for g in self.param_groups]
        return super().step(closure)


def test_clip_grad_bounds_the_gradient_norm_of_each_step(tmp_path):
    torch.manual_seed(0)
    batch = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    norms = {}
    for clip in (0.0, 1e-3):
        torch.manual_seed(0)
        model = aekit.create_model("article", **TINY).train()
        optimizer = _NormRecordingAdam(model.parameters())
        Trainer(_config(clip_grad=clip), tmp_path / f"run-{clip}", progress=False, log=_quiet)._step(model, optimizer, batch)
        norms[clip] = optimizer.norms[0]
    assert norms[0.0] > 1e-2  # unclipped, the gradient is far above the bound ...
    assert norms[1e-3] == pytest.approx(1e-3, rel=1e-3)  # ... and clipping brings it down to the bound


def test_clip_grad_leaves_a_codecs_coding_ranges_alone(tmp_path):
    codec = dict(image_size=32, width=8, analysis_width=8, latent_channels=4, downsamplings=3, qualities=2,
                 lambdas=(0.002, 0.01), default_quality=1)
    batch = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    torch.manual_seed(0)
    model = aekit.create_model("codec", **codec).train()
    optimizer = _NormRecordingAdam(model.optimizer_groups(1e-3))
    assert [g.get("clip", True) for g in optimizer.param_groups] == [True, False]
    config = _config(clip_grad=1e-3, model_config=codec, arch="codec")
    Trainer(config, tmp_path / "run", progress=False, log=_quiet)._step(model, optimizer, batch)
    assert optimizer.norms[0] <= 1e-3 * (1 + 1e-3)  # the rate-distortion gradient is clipped
    assert optimizer.norms[1] > 1e-2  # the quantile loss's gradient on the ranges is not


def test_clip_grad_on_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("AEKIT_LOAD_PLUGINS", "sources")
    runner = CliRunner()
    args = ["train", "--data", "synthetic:32", "--epochs", "1", "--batch-size", "16", "--quiet", "--sample-every", "0", *TINY_CLI]
    refused = runner.invoke(cli, [*args, "--out", str(tmp_path / "a"), "--clip-grad", "-1"])
    assert refused.exit_code != 0 and "--clip-grad must be zero (off) or a positive norm" in refused.output
    assert "Traceback" not in refused.output and not (tmp_path / "a").exists()
    clipped = runner.invoke(cli, [*args, "--out", str(tmp_path / "b"), "--clip-grad", "0.5"])
    assert clipped.exit_code == 0, clipped.output
    assert json.loads((tmp_path / "b" / "run.json").read_text())["config"]["clip_grad"] == 0.5
