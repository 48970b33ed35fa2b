"""Checkpoints load with weights_only=True: a pickle that would run code is refused through both
entrypoints that read one, and a corrupt last.pt falls back to the newest good epoch file."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from conftest import make_cfg, run_cli

from gancompare.errors import ConfigError
from gancompare.run import checkpoint
from gancompare.training import train


class RunsCode:
    """What a hostile checkpoint could hold: unpickling it would create `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _hostile(path, marker):
    torch.save({"step": 1, "generator": RunsCode(marker)}, path)
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    train(make_cfg("model=mlp", "trainer.batch_size=64", "trainer.max_steps=100",
                   "trainer.keep_checkpoints=0"), run_dir)  # 91 steps an epoch: 2 epochs
    return run_dir


def test_rng_state_round_trips_through_a_safe_load(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    checkpoint.save(tmp_path / "c.pt", {"rng": checkpoint.rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn())
    checkpoint.restore_rng(checkpoint.load(tmp_path / "c.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn()) \
        == expected


def test_every_checkpoint_of_a_run_loads_with_weights_only(finished_run):
    files = sorted((finished_run / "checkpoints").glob("*.pt"))
    assert [f.name for f in files] == ["epoch_001.pt", "epoch_002.pt", "last.pt"]
    for path in files:
        state = torch.load(path, weights_only=True)
        assert state["step"] in (91, 100)


def test_a_hostile_checkpoint_is_refused_without_running_its_code(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(ConfigError, match="holds objects other than tensors and plain types"):
        checkpoint.load(_hostile(tmp_path / "bad.pt", marker))
    assert not marker.exists()


def test_evaluate_refuses_a_hostile_checkpoint(finished_run, tmp_path):
    marker = tmp_path / "pwned"
    hostile = _hostile(tmp_path / "shared.pt", marker)
    out = run_cli("src/evaluate.py", str(finished_run), "--checkpoint", str(hostile))
    assert out.returncode == 2 and not marker.exists()
    assert out.stderr.startswith("error: --checkpoint:") and "could run code" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_resume_refuses_a_hostile_checkpoint(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    _hostile(tmp_path / "run" / "checkpoints" / "last.pt", marker)
    with pytest.raises(ConfigError, match="trainer.resume: .*could run code"):
        train(make_cfg("model=mlp"), tmp_path / "run")
    with pytest.raises(ConfigError, match="trainer.resume: .*could run code"):
        train(make_cfg("model=mlp", f"trainer.resume={tmp_path / 'run/checkpoints/last.pt'}"),
              tmp_path / "other")
    assert not marker.exists()


def test_a_truncated_last_checkpoint_falls_back_to_the_newest_good_epoch(tmp_path, caplog):
    overrides = ["model=mlp", "trainer.batch_size=64", "trainer.max_steps=100"]
    train(make_cfg(*overrides), tmp_path)
    last = tmp_path / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])  # a kill mid-copy, a full disk
    summary = train(make_cfg(*overrides, "trainer.max_steps=120"), tmp_path)
    assert summary["resumed_from_step"] == 100  # epoch_002.pt: the run's end, step 100
    assert "Unreadable checkpoint" in caplog.text and "epoch_002.pt" in caplog.text


def test_no_readable_checkpoint_is_one_line(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "last.pt").write_bytes(b"garbage")
    (folder / "epoch_001.pt").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"trainer.resume: no readable checkpoint in .* "
                                          r"Fix: set trainer.resume=false"):
        train(make_cfg("model=mlp"), tmp_path)
    summary = train(make_cfg("model=mlp", "trainer.resume=false"), tmp_path)
    assert summary["resumed_from_step"] == 0 and summary["steps"] == 3


@pytest.mark.parametrize("content", [b"\x80\x02abc", b"hello", bytes(5), b"PK\x03\x04x",
                                     b"\x80\x04\x95\x01\x00"])
def test_any_bytes_are_an_unreadable_checkpoint_not_a_traceback(content, tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(content)
    with pytest.raises(checkpoint.CorruptCheckpoint, match="not a torch checkpoint"):
        checkpoint.load(path)
    with pytest.raises(ConfigError, match=r"trainer.resume: .*not a torch checkpoint.*Fix: "):
        train(make_cfg("model=mlp", f"trainer.resume={path}"), tmp_path / "run")


def test_a_torch_file_that_is_no_checkpoint_is_one_line(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"generator": {}, "step": 3}, path)  # a bare state dict, safe to load
    with pytest.raises(ConfigError, match=r"trainer.resume: .*not a checkpoint of src/train.py "
                                          r"\(it lacks discriminator, g_optimizer"):
        train(make_cfg("model=mlp", f"trainer.resume={path}"), tmp_path / "run")


def test_a_checkpoint_of_other_networks_is_one_line(finished_run, tmp_path):
    last = finished_run / "checkpoints" / "last.pt"
    with pytest.raises(ConfigError, match=r"trainer.resume: .* other networks .*size mismatch"
                                          r".*Fix: use it with the config that wrote it"):
        train(make_cfg("model=mlp", "model.latent_dim=7", f"trainer.resume={last}"),
              tmp_path / "run")
