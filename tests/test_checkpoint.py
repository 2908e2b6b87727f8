"""Checkpoints: safetensors + JSON round trip, strict loading, pickles refused, the latest-run rule."""

import json

import pytest
import torch

import aekit
from aekit import checkpoint


def _tiny():
    torch.manual_seed(0)
    return aekit.create_model("article", image_size=32, widths=(4, 8), convs_per_half=1, latent_dim=16)


def test_round_trip_gives_bit_identical_outputs(tmp_path):
    model = _tiny().eval()
    # move BatchNorm running statistics away from their defaults so that buffers are checked too
    model.train()
    with torch.no_grad():
        model(torch.rand(8, 3, 32, 32) * 2 - 1)
    model.eval()
    model.save_pretrained(tmp_path / "ckpt", training={"note": "test"})
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]
    loaded = aekit.load(tmp_path / "ckpt")
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    assert torch.equal(model(x), loaded(x))
    assert loaded.training_summary == {"note": "test"}
    assert aekit.model_fingerprint(loaded) == aekit.model_fingerprint(model)
    assert type(loaded).from_pretrained(tmp_path / "ckpt").config == model.config
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["architecture"] == "article" and config["config"]["widths"] == [4, 8]


def test_a_buffer_the_file_does_not_hold_is_built_by_the_model(tmp_path, monkeypatch):
    """Loading skips the random initialisation only when the file supplies every tensor."""
    _tiny().eval().save_pretrained(tmp_path / "ckpt")
    real = checkpoint.create_model

    def with_a_constant(*args, **kwargs):
        model = real(*args, **kwargs)
        model.register_buffer("constant", torch.full((3,), 7.0), persistent=False)
        return model

    monkeypatch.setattr(checkpoint, "create_model", with_a_constant)
    assert torch.equal(aekit.load(tmp_path / "ckpt").constant, torch.full((3,), 7.0))


def test_loading_a_file_inside_the_folder_works(tmp_path):
    _tiny().save_pretrained(tmp_path)
    assert aekit.load(tmp_path / "model.safetensors").config.latent_dim == 16


def test_missing_config_is_a_clear_error(tmp_path):
    _tiny().save_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(aekit.CheckpointError, match="no config.json"):
        aekit.load(tmp_path)


def test_config_and_weights_that_disagree_are_refused(tmp_path):
    _tiny().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["config"]["latent_dim"] = 32
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(aekit.CheckpointError, match="do not match config.json.*wrong shape"):
        aekit.load(tmp_path)


def test_unknown_architecture_and_fields_are_refused(tmp_path):
    _tiny().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["architecture"] = "vq-vae"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(aekit.CheckpointError, match="'vq-vae' is not registered"):
        aekit.load(tmp_path)
    config["architecture"] = "article"
    config["config"]["dropout"] = 0.1
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(aekit.CheckpointError, match="no config field"):
        aekit.load(tmp_path)


def test_pickle_checkpoints_are_refused_without_being_opened(tmp_path):
    marker = tmp_path / "pwned"
    payload = tmp_path / "model.pt"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"x": Evil()}, payload)
    with pytest.raises(aekit.CheckpointError, match="pickle.*safetensors"):
        aekit.load(payload)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(aekit.CheckpointError, match="pickle"):
        aekit.load(tmp_path)  # the folder has model.pt but no model.safetensors
    assert not marker.exists()


def test_truncated_weights_are_a_clear_error(tmp_path):
    _tiny().save_pretrained(tmp_path)
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(aekit.CheckpointError, match="unreadable safetensors"):
        aekit.load(tmp_path)


def test_invalid_json_config(tmp_path):
    _tiny().save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(aekit.CheckpointError, match="invalid JSON"):
        aekit.load(tmp_path)


def test_hub_download_offline_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(aekit.CheckpointError) as info:
        aekit.load("someone/some-autoencoder")
    message = str(info.value)
    assert "\n" not in message and "someone/some-autoencoder" in message and "local checkpoint folder" in message


def test_missing_path_that_is_not_a_hub_id(tmp_path):
    with pytest.raises(aekit.CheckpointError, match="no such checkpoint folder"):
        aekit.load(tmp_path / "nothing" / "here")


def test_latest_run_pointer(tmp_path, monkeypatch):
    monkeypatch.setenv("AEKIT_LOAD_PLUGINS", "")  # no pretrained models: aekit.load() falls back to the latest run
    aekit.plugins.reset()
    with pytest.raises(aekit.CheckpointError, match="aekit train"):
        aekit.load()
    _tiny().save_pretrained(tmp_path / "run")
    checkpoint.record_latest(tmp_path / "run")
    assert aekit.load().config.latent_dim == 16
    assert aekit.load("latest").config.latent_dim == 16


def test_atomic_save_leaves_no_partial_file_when_writing_fails(tmp_path, monkeypatch):
    model = _tiny()
    model.save_pretrained(tmp_path)
    before = (tmp_path / "model.safetensors").read_bytes()

    def broken_save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("safetensors.torch.save_file", broken_save_file)
    with pytest.raises(OSError, match="No space"):
        model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


def test_push_to_hub_uploads_only_safetensors_and_json(fake_hub):
    url = _tiny().push_to_hub("me/faces")
    assert url.endswith("me/faces") and fake_hub == {"repo": "me/faces", "files": ["config.json", "model.safetensors"]}


def test_push_to_hub_failure_is_a_checkpoint_error(monkeypatch):
    class OfflineApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kwargs):
            raise ConnectionError("network is unreachable")

    monkeypatch.setattr("huggingface_hub.HfApi", OfflineApi)
    with pytest.raises(aekit.CheckpointError, match="could not push to the hub repo 'me/faces': network is unreachable"):
        _tiny().push_to_hub("me/faces")


def test_hub_ids_load_through_snapshot_download(tmp_path, monkeypatch):
    _tiny().save_pretrained(tmp_path / "hub-copy")
    asked = {}

    def fake_snapshot_download(repo_id, allow_patterns=None):
        asked.update(repo_id=repo_id, allow_patterns=allow_patterns)
        return str(tmp_path / "hub-copy")

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot_download)
    model = aekit.load("someone/faces-ae")
    assert model.config.latent_dim == 16
    assert asked["repo_id"] == "someone/faces-ae" and "model.safetensors" in asked["allow_patterns"]
    assert not any(p.endswith((".bin", ".pt")) for p in asked["allow_patterns"])


def test_written_files_get_normal_permissions(tmp_path):
    import os
    import stat

    _tiny().save_pretrained(tmp_path)
    mode = stat.S_IMODE(os.stat(tmp_path / "config.json").st_mode)
    assert mode == 0o666 & ~_umask()


def _umask():
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
