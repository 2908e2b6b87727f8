"""Training objectives (`aekit train --objective NAME[:ARG][=WEIGHT]`): the registry kind, the built-in ones,
their augmentations, how the trainer adds them (parameters, checkpoints, exact resume) and the errors."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

import aekit
import aekit.plugins
from aekit.data import to_float
from aekit.objectives import (MaskedReconstruction, Objective, build_objectives, nt_xent_loss, parse_objective,
                              random_resized_crops, two_views, vicreg_loss)
from aekit.synthetic import make_faces
from aekit.train import Trainer, TrainConfig, read_run_config
from helpers import TINY, TINY_CLI, error_line, fails, interrupt_training_after, invoke, run_cli, tiny_model

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "aekit-plugin-example"


def _config(**overrides):
    settings = dict(data="synthetic:96", epochs=2, batch_size=32, lr=2e-3, seed=1, model_config=dict(TINY), sample_every=0)
    settings.update(overrides)
    return TrainConfig(**settings)


def _batch(n: int = 32, seed: int = 0) -> torch.Tensor:
    images, _ = make_faces(n, seed=seed, size=32)
    return to_float(torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))))


def _quiet(message):
    pass


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models train fastest on one thread (and a busy 2-core machine does not slow them tenfold)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- the registry kind -------------------------------------------------------------------------------------


def test_the_core_registers_the_built_in_objectives_and_aekit_plugins_lists_them():
    registry = aekit.plugins.get_registry()
    assert [e.name for e in registry.entries("objective") if e.plugin == "aekit"] == ["vicreg", "infonce", "masked"]
    assert "Bardes" in registry.entry("objective", "vicreg").help
    core = {row["name"]: row for row in aekit.plugins.describe_plugins()}["aekit"]
    assert core["registered"]["objective"] == ["vicreg", "infonce", "masked"]
    assert "  objective: vicreg, infonce, masked" in invoke("plugins").stdout.splitlines()


@pytest.mark.parametrize("text, parsed", [
    ("vicreg", ("vicreg", "", 1.0)), ("vicreg=0.05", ("vicreg", "", 0.05)), ("vicreg:pooled", ("vicreg", "pooled", 1.0)),
    ("infonce:0.1=2", ("infonce", "0.1", 2.0)), ("masked:0.75=1e-1", ("masked", "0.75", 0.1)),
])
def test_the_syntax_is_name_argument_weight(text, parsed):
    spec = parse_objective(text)
    assert (spec.name, spec.argument, spec.weight, spec.text) == (*parsed, text)


# --- the augmentations and the losses -------------------------------------------------------------------------


def test_two_views_are_seeded_in_range_and_differ():
    x = _batch(8)
    a1, b1 = two_views(x, np.random.default_rng(5))
    a2, b2 = two_views(x, np.random.default_rng(5))
    assert torch.equal(a1, a2) and torch.equal(b1, b2)  # the rng decides everything: a resumed run sees the same
    assert a1.shape == b1.shape == x.shape and a1.min() >= -1 and a1.max() <= 1
    assert not torch.equal(a1, b1) and not torch.equal(a1, x)
    assert not torch.equal(two_views(x, np.random.default_rng(6))[0], a1)
    laid_out = two_views(x.contiguous(memory_format=torch.channels_last), np.random.default_rng(5))[0]
    assert laid_out.is_contiguous(memory_format=torch.channels_last) and torch.allclose(laid_out, a1, atol=1e-6)


def test_a_full_crop_without_a_flip_is_the_image_and_a_flip_mirrors_it():
    x = _batch(8)
    same = random_resized_crops(x, np.random.default_rng(0), scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    rng = np.random.default_rng(1)
    flips = rng.random((5, 8))[4] < 0.5  # the draw random_resized_crops makes for its flips
    mirrored = random_resized_crops(x, np.random.default_rng(1), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    for image, original, flipped in zip(mirrored, x, flips):
        torch.testing.assert_close(image, original.flip(-1) if flipped else original, atol=1e-5, rtol=0)
    assert 0 < flips.sum() < 8


def test_the_masked_objective_hides_exactly_its_fraction_of_8x8_patches():
    x = _batch(6)
    mask = MaskedReconstruction(0.6).mask(x, np.random.default_rng(0))
    assert mask.shape == (6, 1, 32, 32)
    patches = mask[:, 0, ::8, ::8]  # 4 x 4 patches of 8 x 8
    assert torch.equal(mask, patches.repeat_interleave(8, 1).repeat_interleave(8, 2)[:, None])
    assert patches.flatten(1).sum(1).tolist() == [10.0] * 6  # round(0.6 * 16) per image
    assert not torch.equal(patches[0], patches[1])


def test_vicreg_and_nt_xent_reward_what_they_should():
    rng = torch.Generator().manual_seed(0)
    spread = 2 * torch.randn(512, 8, generator=rng)  # std 2 in every dimension, uncorrelated
    assert vicreg_loss(spread, spread) < 1.0  # invariant, variance above the hinge, covariances near 0
    collapsed = torch.zeros(512, 8)
    assert vicreg_loss(collapsed, collapsed) == pytest.approx(24.75)  # only the variance hinge: 25 * (1 - sqrt(1e-4))
    correlated = spread[:, :1].repeat(1, 8)
    assert vicreg_loss(correlated, correlated) > 20  # every off-diagonal covariance is 4
    noise = torch.randn(512, 8, generator=rng)
    assert vicreg_loss(spread, spread + noise) > vicreg_loss(spread, spread + 0.1 * noise)
    aligned = torch.eye(16)
    assert nt_xent_loss(aligned, aligned, 0.05) < 1e-3
    assert nt_xent_loss(aligned, aligned.roll(1, 0), 0.05) > 10


@pytest.mark.parametrize("spec", ["vicreg", "vicreg:pooled", "infonce", "masked"])
def test_each_built_in_objective_falls_when_trained(spec):
    torch.manual_seed(0)
    model = tiny_model(seed=0).train()
    objective = build_objectives([parse_objective(spec)], model)[spec.split(":")[0]]
    optimizer = torch.optim.Adam([*model.parameters(), *objective.parameters()], lr=3e-3)
    x = _batch(32)
    losses = []
    for step in range(60):
        loss = objective.loss(model, x, np.random.default_rng([0, 0, step, 5, 0]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.85 * first, (spec, first, last)


@pytest.mark.parametrize("spec, message", [
    ("vicreg:sideways", "vicreg's argument is latent or pooled, got 'sideways'"),
    ("infonce:0", "infonce's temperature must be in (0, 10), got 0"),
    ("infonce:warm", "infonce's temperature must be a number, got 'warm'"),
    ("masked:1.5", "masked's hidden fraction must be in (0, 1), got 1.5"),
])
def test_a_bad_argument_is_named_with_the_value(spec, message):
    with pytest.raises(aekit.ObjectiveSpecError) as error:
        build_objectives([parse_objective(spec)], tiny_model())
    assert str(error.value) == f"--objective {spec!r}: {message}"


# --- the trainer ---------------------------------------------------------------------------------------------




def test_a_run_with_objectives_resumes_exactly_objectives_included(tmp_path, monkeypatch):
    settings = dict(objectives=("vicreg=0.05", "infonce:0.3=0.5", "masked=0.5"), flip=True, schedule="onecycle")
    full_trainer = Trainer(_config(**settings), tmp_path / "full", progress=False, log=_quiet)
    full = full_trainer.run()
    with monkeypatch.context() as patch:
        interrupt_training_after(patch, 4)  # mid-epoch 2 (3 batches an epoch)
        with pytest.raises(KeyboardInterrupt):
            Trainer(_config(**settings), tmp_path / "split", progress=False, log=_quiet).run()
    config = read_run_config(tmp_path / "split")
    assert config.objectives == settings["objectives"]  # run.json records them; --resume restores them
    trainer = Trainer(config, tmp_path / "split", progress=False, log=_quiet)
    resumed = trainer.run(resume=True)
    for key, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    for key, value in full_trainer.objectives.state_dict().items():
        assert torch.equal(value, trainer.objectives.state_dict()[key]), key
    rows = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "loss_vicreg", "loss_infonce", "loss_masked"} <= set(rows[-1])
    last = json.loads((tmp_path / "split" / "metrics.jsonl").read_text().splitlines()[-1])
    assert set(last) >= {"loss_vicreg", "loss_infonce", "loss_masked"}


def test_objective_tensors_are_in_the_training_state_and_not_in_the_model(tmp_path):
    out = tmp_path / "run"
    trainer = Trainer(_config(epochs=1, objectives=("vicreg=0.05",)), out, progress=False, log=_quiet)
    trainer.run()
    with safe_open(str(out / "model.safetensors"), framework="pt") as fh:
        model_keys = set(fh.keys())
    with safe_open(str(out / "training_state.safetensors"), framework="pt") as fh:
        state_keys = set(fh.keys())
        meta = json.loads(fh.metadata()["aekit"])
    assert not [k for k in model_keys if "objective" in k or "projector" in k]
    projector = {f"objective.{k}" for k in trainer.objectives.state_dict()}
    assert "objective.vicreg.projector.0.weight" in projector and projector <= state_keys
    assert meta["objectives"] == ["vicreg=0.05"]
    assert len(meta["param_groups"]) == 2  # the model's group, then the projector's
    model = aekit.load(out)  # strict: the shipped model is the autoencoder alone
    assert set(model.state_dict()) == model_keys
    assert model.training_summary["settings"]["objectives"] == ["vicreg=0.05"]
    info = invoke("info", out).stdout
    assert "objectives:   reconstruction + vicreg=0.05" in info


def test_a_training_state_of_other_objectives_is_refused_on_resume(tmp_path):
    out = tmp_path / "run"
    Trainer(_config(epochs=1, objectives=("vicreg=0.05",)), out, progress=False, log=_quiet).run()
    state = out / "training_state.safetensors"
    for objectives in [(), ("vicreg:pooled=0.05",), ("masked",)]:
        config = _config(epochs=2, objectives=objectives)
        with pytest.raises(aekit.CheckpointError) as error:
            Trainer(config, out, progress=False, log=_quiet).run(resume=True)
        assert str(error.value) == (f"{state}: this training state is of a run with the objective(s) vicreg=0.05, this run "
                                    f"has {', '.join(objectives) or 'none'}; resume a run with its own settings (run.json)")
    plain = tmp_path / "plain"
    Trainer(_config(epochs=1), plain, progress=False, log=_quiet).run()
    with pytest.raises(aekit.CheckpointError, match="of a run with the objective\\(s\\) none, this run has masked"):
        Trainer(_config(epochs=2, objectives=("masked",)), plain, progress=False, log=_quiet).run(resume=True)


def test_a_training_state_missing_an_objectives_tensor_is_refused(tmp_path):
    from safetensors.torch import save_file

    out = tmp_path / "run"
    Trainer(_config(epochs=1, objectives=("infonce",)), out, progress=False, log=_quiet).run()
    path = out / "training_state.safetensors"
    with safe_open(str(path), framework="pt") as fh:
        meta, tensors = fh.metadata(), {k: fh.get_tensor(k) for k in fh.keys()}
    del tensors["objective.infonce.projector.3.bias"]
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(aekit.CheckpointError, match=r"the objectives' tensors do not match this run's objectives: "
                                                    r"1 missing \(e.g. objective.infonce.projector.3.bias\) tensors"):
        Trainer(_config(epochs=2, objectives=("infonce",)), out, progress=False, log=_quiet).run(resume=True)


def test_objectives_leave_the_models_initial_weights_alone(tmp_path, monkeypatch):
    """Building an objective (a projector's random weights) draws from its own seed, not the run's stream."""
    seen = []
    real = Trainer._build_objectives

    def build(self, model):
        real(self, model)
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        seen.append(torch.get_rng_state())
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_build_objectives", build)
    for objectives in [(), ("vicreg",)]:
        with pytest.raises(KeyboardInterrupt):
            Trainer(_config(objectives=objectives), tmp_path / "x", progress=False, log=_quiet).run()
    (weights, rng), (weights_with, rng_with) = seen[:2], seen[2:]
    assert torch.equal(rng, rng_with)
    assert all(torch.equal(weights[k], weights_with[k]) for k in weights)


def test_objectives_are_refused_with_several_processes(tmp_path, monkeypatch):
    monkeypatch.setattr("aekit.train.distributed_context", lambda: (0, 2))
    with pytest.raises(aekit.TrainingError, match="--objective is not supported with several processes yet"):
        Trainer(_config(objectives=("masked",)), tmp_path / "run", progress=False, log=_quiet)


# --- objectives from plugins, through `aekit train` ---------------------------------------------------------

TEST_OBJECTIVE = '''
import torch
import aekit
from aekit.objectives import Objective, embedding


class LatentMean(Objective):
    """Pulls each latent's mean towards a target (a learnable offset, to have a parameter)."""

    def __init__(self, target):
        super().__init__()
        self.target = target
        self.offset = torch.nn.Parameter(torch.zeros(1))

    def loss(self, model, x, rng):
        latent = embedding(model, x)
        return ((latent.mean(1) + self.offset - self.target) ** 2).mean()


def make(argument, model):
    target = float(argument or 0)
    if abs(target) > 10:
        raise ValueError(f"the target must be within 10 of 0, got {argument}")
    return LatentMean(target)


@aekit.hookimpl
def register_objectives(register):
    register("latent-mean", make, help="latent means towards ARG (tests)")
'''


def test_an_objective_from_a_plugin_is_used_by_aekit_train(tmp_path, install_plugin):
    install_plugin("aekit-testobjective", "testobjective", "aekit_testobjective", TEST_OBJECTIVE)
    rows = {row["name"]: row for row in aekit.plugins.describe_plugins()}
    assert rows["testobjective"]["registered"] == {"objective": ["latent-mean"]}
    out = tmp_path / "run"
    invoke("train", "--data", "synthetic:16", "--epochs", "2", "--batch-size", "8", "--quiet", "--sample-every", "0",
           "--objective", "latent-mean:3=2", "--objective", "masked=0.5", "--out", out, *TINY_CLI)
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["objectives"] == ["latent-mean:3=2", "masked=0.5"]
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert metrics[1]["loss_latent-mean"] < metrics[0]["loss_latent-mean"]
    with safe_open(str(out / "training_state.safetensors"), framework="pt") as fh:
        assert "objective.latent-mean.offset" in fh.keys()
    fails("train", "--data", "synthetic:16", "--epochs", "1", "--batch-size", "8", "--quiet", "--sample-every", "0",
          "--objective", "latent-mean:30", "--out", tmp_path / "far", *TINY_CLI,
          message="Error: --objective 'latent-mean:30': the target must be within 10 of 0, got 30")


@pytest.mark.parametrize("value, message", [
    ("nope", "--objective 'nope': unknown training objective 'nope' (known: infonce, "),
    ("vicreg=lots", "--objective 'vicreg=lots': the weight after '=' must be a positive number, got 'lots'"),
    ("vicreg=-1", "--objective 'vicreg=-1': the weight after '=' must be a positive number, got '-1'"),
    ("vicreg=nan", "--objective 'vicreg=nan': the weight after '=' must be a positive number, got 'nan'"),
    ("=1", "--objective '=1': no objective name; give NAME[:ARG][=WEIGHT], e.g. vicreg=0.5"),
    ("masked:2", "--objective 'masked:2': masked's hidden fraction must be in (0, 1), got 2"),
])
def test_a_bad_objective_is_one_line_and_leaves_no_run(tmp_path, value, message):
    out = tmp_path / "run"
    # a bad name or weight fails before anything else; a bad argument once the model is built, before the data
    line = fails("train", "--data", "synthetic:8", "--epochs", "1", "--batch-size", "4", "--quiet", "--objective", value,
                 "--out", out, *TINY_CLI, message=message, alone=":" not in value)
    assert line.startswith(f"Error: {message}")
    assert not (out / "run.json").exists()


def test_an_objective_given_twice_is_refused():
    result = run_cli("train", "--data", "synthetic:8", "--objective", "masked", "--objective", "masked:0.5=2", *TINY_CLI)
    assert error_line(result, 1) == "Error: --objective 'masked:0.5=2': objective 'masked' is given twice; give it once"


def test_resume_takes_the_objectives_from_the_run_and_refuses_new_ones(tmp_path):
    out = tmp_path / "run"
    invoke("train", "--data", "synthetic:8", "--epochs", "1", "--batch-size", "4", "--quiet", "--sample-every", "0",
           "--objective", "masked=0.5", "--out", out, *TINY_CLI)
    fails("train", "--resume", out, "--objective", "vicreg", message="drop --objective", code=2)


# --- the example plugin's objective ------------------------------------------------------------------------------


@pytest.fixture
def example_plugin(tmp_path, monkeypatch):
    """examples/aekit-plugin-example loaded through its entry point, installed or not (a .dist-info made here)."""
    if importlib.util.find_spec("aekit_plugin_example") is None:
        site = tmp_path / "site"
        info = site / "aekit_plugin_example-0.1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: aekit-plugin-example\nVersion: 0.1.0\n")
        (info / "entry_points.txt").write_text("[aekit.plugins]\nexample = aekit_plugin_example\n")
        monkeypatch.syspath_prepend(str(site))
        monkeypatch.syspath_prepend(str(EXAMPLE))
        monkeypatch.delitem(sys.modules, "aekit_plugin_example", raising=False)
        importlib.invalidate_caches()
    aekit.plugins.reset()
    yield
    aekit.plugins.reset()


def test_the_example_plugins_latent_l2_objective_is_used_by_aekit_train(tmp_path, example_plugin):
    registry = aekit.plugins.get_registry()
    assert registry.entry("objective", "latent-l2").plugin == "example"
    assert isinstance(registry.get("objective", "latent-l2")("", tiny_model()), Objective)
    with pytest.raises(ValueError, match="latent-l2 takes no argument"):
        registry.get("objective", "latent-l2")("3", tiny_model())
    norms = {}
    for objectives in [(), ("--objective", "latent-l2=0.1")]:
        out = tmp_path / f"run{len(objectives)}"
        invoke("train", "--data", "synthetic:32", "--epochs", "3", "--batch-size", "8", "--lr", "3e-3", "--quiet",
               "--sample-every", "0", *objectives, "--out", out, *TINY_CLI)
        norms[bool(objectives)] = aekit.load(out).encode(_batch(16, seed=9)).pow(2).sum(1).mean().item()
    metrics = [json.loads(line) for line in (tmp_path / "run2" / "metrics.jsonl").read_text().splitlines()]
    assert all("loss_latent-l2" in row for row in metrics) and metrics[-1]["loss_latent-l2"] < metrics[0]["loss_latent-l2"]
    assert norms[True] < 0.6 * norms[False], norms  # the penalty shrinks the latents (0.73 vs 2.25 when written)
