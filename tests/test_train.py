"""The trainer: loss falls, exact resume after an interruption, clear errors, files it writes."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import aekit
from aekit.train import Trainer, TrainConfig, read_run_config, shift_and_jitter, training_record
from helpers import TINY, interrupt_training_after


def _config(**overrides):
    settings = dict(data="synthetic:96", epochs=2, batch_size=32, lr=2e-3, seed=1, model_config=dict(TINY), sample_every=1)
    settings.update(overrides)
    return TrainConfig(**settings)




def test_short_run_loss_falls_and_writes_its_files(tmp_path):
    out = tmp_path / "run"
    model = Trainer(_config(data="synthetic:160", epochs=6, val_fraction=0.2), out, progress=False, log=lambda m: None).run()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 7))
    assert rows[-1]["loss"] < 0.7 * rows[0]["loss"]
    assert rows[-1]["val_psnr"] > rows[0]["val_psnr"]
    assert rows[-1]["lr"] == pytest.approx(0.0)  # LinearLR from 1 to 0 over the whole run
    assert {"loss", "val_loss", "val_psnr", "time_s", "images_per_s"} <= set(rows[0])
    assert sorted(p.name for p in (out / "samples").iterdir()) == [f"epoch_{e:04d}.png" for e in range(1, 7)]
    loaded = aekit.load(out)
    assert loaded.training_summary["epochs_done"] == 6
    assert loaded.training_summary["final"]["val_psnr"] == pytest.approx(rows[-1]["val_psnr"])
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(loaded(x), model.eval()(x))


def test_both_halves_are_trained(tmp_path):
    torch.manual_seed(1)
    before = aekit.create_model("article", **TINY).state_dict()
    model = Trainer(_config(epochs=1), tmp_path / "run", progress=False, log=lambda m: None).run()
    after = model.state_dict()
    assert not torch.equal(before["encoder.0.s.0.weight"], after["encoder.0.s.0.weight"])
    assert not torch.equal(before["decoder.0.weight"], after["decoder.0.weight"])


@pytest.mark.parametrize("objectives", [(), ("vicreg=0.05", "masked:0.5=0.5")], ids=["mse", "objectives"])
@pytest.mark.parametrize("stop_after", [3, 4])  # after epoch 1 (3 batches an epoch), and mid-epoch 2
def test_interrupted_then_resumed_run_equals_uninterrupted_run(tmp_path, monkeypatch, stop_after, objectives):
    full_trainer = Trainer(_config(objectives=objectives), tmp_path / "full", progress=False, log=lambda m: None)
    full = full_trainer.run()

    with monkeypatch.context() as patch:
        interrupt_training_after(patch, stop_after)
        with pytest.raises(KeyboardInterrupt):
            Trainer(_config(objectives=objectives), tmp_path / "split", progress=False, log=lambda m: None).run()
    state = aekit.load(tmp_path / "split").training_summary
    assert (state["epochs_done"], state["batch_in_epoch"]) == divmod(stop_after, 3)

    config = read_run_config(tmp_path / "split")
    assert config.objectives == objectives
    trainer = Trainer(config, tmp_path / "split", progress=False, log=lambda m: None)
    resumed = trainer.run(resume=True)
    for key, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert set(trainer.objectives) == {o.split(":")[0].split("=")[0] for o in objectives}
    for key, value in full_trainer.objectives.state_dict().items():  # the projector trained and resumed exactly too
        assert torch.equal(value, trainer.objectives.state_dict()[key]), key
    full_rows = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    split_rows = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert len(split_rows) == len(full_rows) == 2


def test_fine_tuning_starts_from_init_weights(tmp_path):
    Trainer(_config(epochs=1), tmp_path / "base", progress=False, log=lambda m: None).run()
    base = aekit.load(tmp_path / "base")
    tuned = Trainer(_config(epochs=1, lr=1e-9, init=str(tmp_path / "base")), tmp_path / "tuned", progress=False, log=lambda m: None).run()
    # with a negligible learning rate the weights stay at the initial checkpoint's
    torch.testing.assert_close(tuned.state_dict()["decoder.0.weight"], base.state_dict()["decoder.0.weight"], atol=1e-6, rtol=0)


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    Trainer(_config(epochs=1), out, progress=False, log=lambda m: None).run()
    good = (out / "model.safetensors").read_bytes()
    monkeypatch.setattr(torch.nn.functional, "mse_loss", lambda a, b: (a - b).sum() * float("nan"))
    with pytest.raises(aekit.TrainingError, match="loss became nan.*last good checkpoint"):
        Trainer(_config(epochs=1), tmp_path / "other", progress=False, log=lambda m: None).run()
    assert (out / "model.safetensors").read_bytes() == good


def _disk_full_in_safetensors(monkeypatch, name: str):
    """safetensors' save_file fails on `name` as it does on a full disk: its own error, the file unnamed."""
    import safetensors.torch
    from safetensors import SafetensorError

    real = safetensors.torch.save_file

    def save_file(tensors, filename, metadata=None):
        if Path(filename).name.startswith(f".{name}."):  # aekit.io's temporary for `name`
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)


def _disk_full_in_fsync(monkeypatch, name: str):
    """Writing `name` through aekit.io fails as on a full disk (ENOSPC when the data reaches the disk)."""
    import errno
    import os

    real = os.fsync

    def fsync(fd):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(f".{name}."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("name, simulate", [
    ("training_state.safetensors", _disk_full_in_safetensors), ("model.safetensors", _disk_full_in_safetensors),
    ("metrics.jsonl", _disk_full_in_fsync), ("epoch_0001.png", _disk_full_in_fsync), ("config.json", _disk_full_in_fsync),
])
def test_a_full_disk_names_the_file_and_says_how_to_go_on(tmp_path, monkeypatch, name, simulate):
    if name in ("metrics.jsonl", "epoch_0001.png", "config.json") and not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc/self/fd to tell which file a descriptor writes")
    out = tmp_path / "run"
    simulate(monkeypatch, name)
    with pytest.raises(aekit.TrainingError) as error:
        Trainer(_config(data="synthetic:8", batch_size=4, epochs=1), out, progress=False, log=lambda m: None).run()
    message = str(error.value)
    where = out / "samples" / name if name.endswith(".png") else out / name
    assert message.startswith(f"{where}: could not write it (No space left on device); "), message
    assert message.endswith(f"free some space, then continue with `aekit train --resume {out}`"), message
    assert not [p for p in out.rglob(".*.tmp")]  # no temporary left behind


def test_aekit_train_on_a_full_disk_is_one_line(tmp_path, monkeypatch):
    from helpers import TINY_CLI, error_line, run_cli

    _disk_full_in_safetensors(monkeypatch, "training_state.safetensors")
    out = tmp_path / "run"
    result = run_cli("train", "--data", "synthetic:8", "--epochs", "1", "--batch-size", "4", "--quiet", "--sample-every", "0",
                     "--out", out, *TINY_CLI)
    line = error_line(result, 1)
    assert line == (f"Error: {out / 'training_state.safetensors'}: could not write it (No space left on device); nothing "
                    f"written before is damaged (writes are atomic): free some space, then continue with "
                    f"`aekit train --resume {out}`"), result.output
    assert result.output.rstrip().splitlines()[-1] == line


def test_a_damaged_run_file_is_one_line_naming_it(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    for text, needle in [('{"config": {"epochs": "10"}}', 'training setting "epochs" must be a whole number, got "10"'),
                         ('{"config": {"model_config": [1]}}', 'training setting "model_config" must be an object'),
                         ('{"config": ' + "[" * 100_000 + "]" * 100_000 + "}", "invalid JSON (nested too deeply to read)"),
                         ('{"config": {"lr": NaN}}', "invalid JSON (NaN is not a number JSON allows)")]:
        (out / "run.json").write_text(text)
        with pytest.raises(aekit.TrainingError) as error:
            read_run_config(out)
        assert str(error.value).startswith(f"{out / 'run.json'}: ") and needle in str(error.value), str(error.value)


def test_a_damaged_metrics_line_is_named_on_resume(tmp_path):
    out, small = tmp_path / "run", dict(data="synthetic:8", batch_size=4, sample_every=0)
    Trainer(_config(epochs=1, **small), out, progress=False, log=lambda m: None).run()
    metrics = out / "metrics.jsonl"
    for line, needle in [("[" * 100_000 + "]" * 100_000, "invalid JSON (nested too deeply to read); fix or delete that line"),
                         ('{"loss": 1.0}', 'not a metrics row (no whole-number "epoch")')]:
        metrics.write_text(metrics.read_text().splitlines()[0] + "\n" + line + "\n")
        with pytest.raises(aekit.TrainingError) as error:
            Trainer(_config(epochs=2, **small), out, progress=False, log=lambda m: None).run(resume=True)
        assert str(error.value).startswith(f"{metrics}, line 2: ") and needle in str(error.value), str(error.value)


def test_a_damaged_training_state_is_one_line_naming_it(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    out, small = tmp_path / "run", dict(data="synthetic:8", batch_size=4, sample_every=0)
    Trainer(_config(epochs=1, **small), out, progress=False, log=lambda m: None).run()
    path = out / "training_state.safetensors"
    with safe_open(str(path), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    save_file(tensors, str(path), metadata={"aekit": '{"info": ' + "[" * 100_000 + "]" * 100_000 + "}"})
    with pytest.raises(aekit.CheckpointError, match=rf"^{re.escape(str(path))}: metadata: invalid JSON \(nested too deeply"):
        Trainer(_config(epochs=2, **small), out, progress=False, log=lambda m: None).run(resume=True)
    key = next(k for k in tensors if k.endswith("running_var"))
    tensors[key] = -tensors[key] - 1
    save_file(tensors, str(path), metadata={"aekit": json.dumps({"info": {"epoch": 1, "batch": 0}, "param_groups": []})})
    with pytest.raises(aekit.CheckpointError, match=rf"^{re.escape(str(path))}: 1 BatchNorm running variance"):
        Trainer(_config(epochs=2, **small), out, progress=False, log=lambda m: None).run(resume=True)


def test_run_json_model_settings_are_bounded_on_resume(tmp_path):
    out, small = tmp_path / "run", dict(data="synthetic:8", batch_size=4, sample_every=0)
    Trainer(_config(epochs=1, **small), out, progress=False, log=lambda m: None).run()
    run = json.loads((out / "run.json").read_text())
    run["config"]["model_config"] = {**run["config"].get("model_config", {}), "widths": [8, 16, 10_000_000]}
    (out / "run.json").write_text(json.dumps(run))
    from aekit.run_config import read_run_config

    with pytest.raises(aekit.TrainingError, match=r'run.json: model setting "widths" must be'):
        read_run_config(out)


def test_a_training_state_with_a_huge_header_or_a_stray_optimizer_entry_is_refused(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    from aekit.checkpoint import MAX_HEADER_BYTES

    out, small = tmp_path / "run", dict(data="synthetic:8", batch_size=4, sample_every=0)
    Trainer(_config(epochs=1, **small), out, progress=False, log=lambda m: None).run()
    path = out / "training_state.safetensors"
    with safe_open(str(path), framework="pt") as fh:
        meta, tensors = fh.metadata(), {k: fh.get_tensor(k) for k in fh.keys()}
    save_file({**tensors, "optim.x.y": torch.zeros(1)}, str(path), metadata=meta)
    with pytest.raises(aekit.CheckpointError, match=rf"^{re.escape(str(path))}: damaged training state \(optimizer entry 'optim.x.y'\)"):
        Trainer(_config(epochs=2, **small), out, progress=False, log=lambda m: None).run(resume=True)
    data = path.read_bytes()  # the header's declared length past the cap: refused from the first 8 bytes
    path.write_bytes((MAX_HEADER_BYTES + 1).to_bytes(8, "little") + data[8:])
    with pytest.raises(aekit.CheckpointError, match=r"byte header, more than the"):
        Trainer(_config(epochs=2, **small), out, progress=False, log=lambda m: None).run(resume=True)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"epochs": -1}, "--epochs must be at least 1"),
        ({"batch_size": 0}, "--batch-size must be at least 1"),
        ({"batch_size": 1}, "BatchNorm needs two images"),
        ({"lr": 0.0}, "--lr must be a positive"),
        ({"val_fraction": 1.5}, "--val-fraction"),
        ({"device": "tpu"}, "unknown device"),
    ],
)
def test_bad_settings_are_refused(tmp_path, overrides, message):
    with pytest.raises(aekit.TrainingError, match=message):
        Trainer(_config(**overrides), tmp_path / "run", progress=False).run()


def test_batch_larger_than_the_data_is_refused(tmp_path):
    with pytest.raises(aekit.TrainingError, match="fewer than --batch-size"):
        Trainer(_config(data="synthetic:10", batch_size=32), tmp_path / "run", progress=False).run()


def test_cuda_requested_without_a_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(aekit.TrainingError, match="no CUDA GPU"):
        Trainer(_config(device="cuda"), tmp_path / "run", progress=False)


def test_separate_validation_source_with_a_window(tmp_path):
    out = tmp_path / "run"
    Trainer(_config(data="synthetic:96[:64]", val_data="synthetic:96[64:]", epochs=1), out, progress=False, log=lambda m: None).run()
    run = json.loads((out / "run.json").read_text())
    assert (run["train_images"], run["val_images"]) == (64, 32)
    assert "val_psnr" in json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    with pytest.raises(aekit.TrainingError, match="either --val-data or --val-fraction"):
        Trainer(_config(val_data="synthetic:8", val_fraction=0.1), out, progress=False)


NOISE_PLUGIN = """
import numpy as np
import aekit

def make(argument):
    sigma = float(argument or 0.1)
    if not 0 < sigma <= 1:
        raise ValueError("sigma must be in (0, 1]")
    return lambda images, rng: np.clip(images + rng.normal(0, sigma, images.shape), 0, 1).astype(np.float32)

@aekit.hookimpl
def register_noise_models(register):
    register("testgauss", make, help="gaussian noise for tests")
"""


def test_noisy_input_training_denoises_and_records_its_noise(tmp_path, install_plugin):
    install_plugin("aekit-testnoise", "testnoise", "aekit_testnoise", NOISE_PLUGIN)
    out = tmp_path / "den"
    config = _config(data="synthetic:320", arch="unet", epochs=8, lr=5e-3, val_fraction=0.25, schedule="onecycle",
                     noise="testgauss:0.2", model_config={"image_size": 32, "widths": (8, 16), "latent_dim": 16})
    Trainer(config, out, progress=False, log=lambda m: None).run()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # the noisy held-out input is the same every epoch; the denoised output ends well above it
    assert len({round(r["val_noisy_psnr"], 6) for r in rows}) == 1
    assert rows[-1]["val_psnr"] > rows[-1]["val_noisy_psnr"] + 1.0
    model = aekit.load(out)
    assert model.training_summary["settings"]["noise"] == "testgauss:0.2"
    assert training_record(model).noise == "testgauss:0.2"
    assert "noise" not in model.training_summary and "data" not in model.training_summary  # the settings, once


def test_each_checkpoint_records_the_settings_once_and_older_layouts_still_read(tmp_path):
    """config.json's "training"."settings" is the one copy a checkpoint carries (run.json's is --resume's, written
    once at the start); records that also kept "data" and "noise" beside the settings read the same."""
    from safetensors import safe_open

    out = tmp_path / "run"
    Trainer(_config(epochs=1), out, progress=False, log=lambda m: None).run()
    with safe_open(str(out / "training_state.safetensors"), framework="pt") as fh:
        assert "config" not in json.loads(fh.metadata()["aekit"])["info"]
    training = json.loads((out / "config.json").read_text())["training"]
    assert training["settings"] == json.loads(json.dumps(_config(epochs=1).to_dict())) and not {"data", "noise"} & set(training)
    assert json.loads((out / "run.json").read_text())["config"] == training["settings"]
    new = training_record(training)
    older = {**training, "data": training["settings"]["data"], "noise": "gaussian:0.1",
             "settings": {k: v for k, v in training["settings"].items() if k not in ("data", "noise")}}
    assert training_record(older).data == new.data and training_record(older).noise == "gaussian:0.1"
    assert training_record({"noise": "gaussian:0.1"}) is None  # no data: no record of which images trained it
    bare = training_record({"noise": "gaussian:0.1"}, require_data=False)
    assert bare.data is None and bare.noise == "gaussian:0.1" and bare.settings == {"noise": "gaussian:0.1"}


def test_fine_tuning_a_bottleneck_model_into_a_denoiser(tmp_path, install_plugin):
    install_plugin("aekit-testnoise", "testnoise", "aekit_testnoise", NOISE_PLUGIN)
    Trainer(_config(epochs=2), tmp_path / "base", progress=False, log=lambda m: None).run()
    tuned = Trainer(_config(init=str(tmp_path / "base"), noise="testgauss:0.1", epochs=1, val_fraction=0.25),
                    tmp_path / "tuned", progress=False, log=lambda m: None)
    tuned.run()
    row = json.loads((tmp_path / "tuned" / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"val_psnr", "val_noisy_psnr"} <= set(row)
    assert aekit.load(tmp_path / "tuned").training_summary["settings"]["noise"] == "testgauss:0.1"


def test_resume_with_noise_and_flips_equals_uninterrupted_run(tmp_path, monkeypatch, install_plugin):
    install_plugin("aekit-testnoise", "testnoise", "aekit_testnoise", NOISE_PLUGIN)
    settings = dict(noise="testgauss:0.1", flip=True, shift=2, color_jitter=0.1, schedule="onecycle")
    full = Trainer(_config(**settings), tmp_path / "full", progress=False, log=lambda m: None).run()
    with monkeypatch.context() as patch:
        interrupt_training_after(patch, 4)
        with pytest.raises(KeyboardInterrupt):
            Trainer(_config(**settings), tmp_path / "split", progress=False, log=lambda m: None).run()
    resumed = Trainer(read_run_config(tmp_path / "split"), tmp_path / "split", progress=False, log=lambda m: None).run(resume=True)
    for key, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


@pytest.mark.parametrize("schedule", ["onecycle", "constant"])
def test_schedules_shape_the_learning_rate(tmp_path, schedule):
    Trainer(_config(schedule=schedule, epochs=2), tmp_path / "run", progress=False, log=lambda m: None).run()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    if schedule == "constant":
        assert [r["lr"] for r in rows] == [pytest.approx(2e-3)] * 2
    else:  # warmed up past the start, annealed to (nearly) nothing at the end
        assert rows[-1]["lr"] < 1e-6 < rows[0]["lr"]


def test_flips_change_the_batches_but_not_their_content(tmp_path):
    trainer = Trainer(_config(flip=True), tmp_path / "run", progress=False, log=lambda m: None)
    seen = []
    model = aekit.create_model("article", **TINY)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    real_forward = type(model).forward
    trainer.noise = None

    def record(self, x):
        seen.append(x.detach().clone())
        return real_forward(self, x)

    type(model).forward = record
    try:
        batch = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
        trainer._step(model, optimizer, batch, (1, 0, 0))
    finally:
        type(model).forward = real_forward
    from aekit.data import to_float

    x = to_float(batch)
    flipped = [not torch.equal(s, o) for s, o in zip(seen[0], x)]
    assert 0 < sum(flipped) < 16
    for s, o, f in zip(seen[0], x, flipped):
        assert torch.allclose(s, o.flip(-1) if f else o)


def test_shift_moves_each_image_by_at_most_the_shift_with_reflected_edges():
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    out = shift_and_jitter(x, 2, 0.0, np.random.default_rng(0))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    offsets = []
    for image, original in zip(out, padded):
        matches = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(image, original[:, dy:dy + 16, dx:dx + 16])]
        assert len(matches) == 1
        offsets.append(matches[0])
    assert len(set(offsets)) > 1  # drawn per image
    assert torch.equal(shift_and_jitter(x, 0, 0.0, np.random.default_rng(0)), x)


def test_color_jitter_stays_in_range_and_within_its_strength():
    x = torch.rand(32, 3, 8, 8) * 1.6 - 0.8
    out = shift_and_jitter(x, 0, 0.1, np.random.default_rng(0))
    assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1
    change = (out - x).abs().flatten(1).max(1).values
    assert (change > 0).all()
    # brightness adds <= 0.1, saturation moves <= 0.1 * 1.6, contrast <= 0.1 * 1.6 * 1.1: 0.436 at most
    assert change.max() < 0.44
    strong = shift_and_jitter(x, 0, 0.3, np.random.default_rng(0))
    assert (strong - x).abs().mean() > (out - x).abs().mean()


@pytest.mark.parametrize("setting, message", [(dict(shift=-1), "--shift must be zero or more"),
                                              (dict(color_jitter=1.0), "--color-jitter must be in")])
def test_bad_augmentation_settings_are_refused(tmp_path, setting, message):
    with pytest.raises(aekit.TrainingError, match=message):
        Trainer(_config(**setting), tmp_path / "run", progress=False, log=lambda m: None)


def test_a_shift_as_large_as_the_image_is_refused_before_any_step(tmp_path):
    with pytest.raises(aekit.TrainingError, match="--shift 32 must be smaller than the image"):
        Trainer(_config(shift=32), tmp_path / "run", progress=False, log=lambda m: None).run()
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_unknown_noise_is_refused_before_training(tmp_path):
    with pytest.raises(aekit.NoiseSpecError, match="unknown noise model 'nosuch'"):
        Trainer(_config(noise="nosuch:0.1"), tmp_path / "run", progress=False, log=lambda m: None)


def test_the_cpu_training_layout_changes_no_maths_and_comes_off_cleanly():
    from aekit.train import TrainingLayout

    torch.manual_seed(0)
    base = aekit.create_model("article", **TINY).train().double()  # float64: layouts agree to rounding
    x = torch.rand(8, 3, 32, 32, dtype=torch.float64) * 2 - 1
    results = []
    for kwargs in (dict(channels_last=False), dict(small_batchnorm_contiguous=False), dict()):
        model = aekit.create_model("article", **TINY).train().double()
        model.load_state_dict(base.state_dict())
        layout = TrainingLayout(model, **kwargs)
        loss = torch.nn.functional.mse_loss(model(layout.input(x)), x)
        loss.backward()
        results.append((loss.item(), [p.grad for p in model.parameters()], [b.clone() for b in model.buffers()]))
        if kwargs == {}:
            assert len(layout.handles) == 2 * sum(isinstance(m, torch.nn.BatchNorm2d) and m.num_features <= 4
                                                  for m in model.modules()) > 0
            layout.remove()
            assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
            assert all(p.is_contiguous() for p in model.parameters())
    (loss0, grads0, buffers0), *others = results
    for loss, grads, buffers in others:
        assert loss == pytest.approx(loss0, rel=1e-10)
        for g0, g in zip(grads0, grads):
            torch.testing.assert_close(g, g0, rtol=1e-7, atol=1e-12)
        for b0, b in zip(buffers0, buffers):
            torch.testing.assert_close(b, b0, rtol=1e-9, atol=1e-12)


def test_bf16_training_on_a_cpu_learns_and_saves_float32_weights(tmp_path):
    from safetensors import safe_open

    out = tmp_path / "run"
    Trainer(_config(device="cpu", precision="bf16", epochs=3), out, progress=False, log=lambda m: None, run_hooks=False).run()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert json.loads((out / "config.json").read_text())["training"]["precision"] == "bf16"
    assert np.isfinite(rows[-1]["loss"]) and rows[-1]["loss"] < rows[0]["loss"]
    with safe_open(out / "model.safetensors", "pt") as f:
        assert {t.dtype for t in map(f.get_tensor, f.keys()) if t.is_floating_point()} == {torch.float32}


def test_the_psnr_loss_is_minus_the_mean_per_image_psnr_up_to_scale():
    from aekit.train import reconstruction_loss

    target = torch.zeros(3, 3, 8, 8)
    pred = torch.stack([torch.full((3, 8, 8), v) for v in (0.01, 0.1, 0.5)])
    psnr = torch.tensor([10 * np.log10(4 / v**2) for v in (0.01, 0.1, 0.5)], dtype=torch.float32)  # [-1, 1]: peak-to-peak 2
    loss = reconstruction_loss(pred, target, "psnr")
    expected = -(psnr.mean() - 10 * np.log10(4)) * np.log(10) / 10
    assert torch.isclose(loss, expected.float(), atol=1e-4)
    assert torch.isclose(reconstruction_loss(pred, target, "mse"), torch.nn.functional.mse_loss(pred, target))
    # each image's relative error counts alike: halving the faintest image's error moves it as much as the worst's
    faint, loud = pred.clone(), pred.clone()
    faint[0] /= 2
    loud[2] /= 2
    assert torch.isclose(reconstruction_loss(faint, target, "psnr"), reconstruction_loss(loud, target, "psnr"))


def test_train_with_the_psnr_loss_records_it_and_learns(tmp_path):
    from helpers import TINY_CLI, invoke, fails

    out = tmp_path / "run"
    invoke("train", "--data", "synthetic:64", *TINY_CLI, "--epochs", "2", "--batch-size", "16", "--lr", "2e-3",
           "--loss", "psnr", "--noise", "gaussian:0.02-0.2", "--out", out, "-q")
    assert training_record(aekit.load(out)).config.loss == "psnr"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < rows[0]["loss"]
    fails("train", "--data", "synthetic:8", "--loss", "ssim", "--out", tmp_path / "bad", message="--loss")
