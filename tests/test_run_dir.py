"""What a run writes: metrics.csv rows from device tensors, epoch metrics in their step's row, and
W&B, offline by default, falling back to offline files when its server cannot be reached."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import subprocess
import time

import pytest
import torch
from conftest import ROOT, make_cfg, read_csv, run_cli

from gancompare.errors import ConfigError
from gancompare.run import checkpoint
from gancompare.run.run_dir import RunDir, read_rows, training_summary
from gancompare.training import train

WANDB = ROOT / ".venv" / "bin" / "wandb"


def test_flush_writes_pending_steps_with_attached_epoch_metrics(tmp_path):
    run = RunDir(make_cfg(), tmp_path, start_step=0, critic=False, wandb_name="x",
                 wandb_group=None)
    for step in (1, 2, 3):
        run.append(step, 1, {"d_loss_real": torch.tensor(0.5 * step), "d_loss_fake":
                             torch.tensor(1.0), "g_loss": torch.tensor(float(step))})
    run.attach(3, {"epoch/fid_mnist_cnn": 12.5})
    rows = run.flush()
    assert [r["step"] for r in rows] == [1, 2, 3] and run.flush() == []
    on_disk = read_csv(tmp_path / "metrics.csv")
    assert [r["epoch/fid_mnist_cnn"] for r in on_disk] == ["", "", "12.5"]
    assert [float(r["d_loss_real"]) for r in on_disk] == [0.5, 1.0, 1.5]
    assert read_rows(tmp_path / "metrics.csv")[2]["epoch/fid_mnist_cnn"] == 12.5
    assert training_summary(run.rows) == {"d_loss_real": 1.5, "d_loss_fake": 1.0,
                                          "g_loss": 3.0}
    # Resuming at step 2 keeps rows 1-2 and drops what was trained after the checkpoint.
    RunDir(make_cfg(), tmp_path, start_step=2, critic=False, wandb_name="x", wandb_group=None)
    assert [r["step"] for r in read_csv(tmp_path / "metrics.csv")] == ["1", "2"]


def _inspect(run_path, *flags):
    out = subprocess.run([str(WANDB), "leet", "inspect", *flags, "--json", str(run_path)],
                         capture_output=True, text=True, check=True).stdout
    return out


def test_wandb_offline_run_reads_back_with_the_runs_figures(tmp_path):
    cfg = make_cfg("trainer.log_every=1", "logger.wandb.mode=offline")
    summary = train(cfg, tmp_path, wandb_name="loss=non-saturating", wandb_group="sweep-x")
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    record = json.loads(_inspect(runs[0], "--summary"))
    assert record["state"] == "finished" and record["name"] == "loss=non-saturating"
    assert record["config"]["loss"]["name"] == "non-saturating"
    assert record["config"]["optimizer"]["name"] == "dcgan"
    assert record["config"]["trainer"]["batch_size"] == 16
    assert record["summary"]["verdict"] == summary["verdict"]
    assert record["summary"]["verdict_evidence"]["rule"] == summary["verdict_evidence"]["rule"]
    assert record["summary"]["steps"] == 3
    rows = read_csv(tmp_path / "metrics.csv")
    history = _inspect(runs[0]).splitlines()
    steps = [json.loads(line)["history"] for line in history if '"type":"history"' in line]
    by_step = {int(h["step"]["num"]): h["item"] for h in steps if "g_loss" in h["item"]}
    assert sorted(by_step) == [1, 2, 3]
    for r in rows:
        assert by_step[int(r["step"])]["g_loss"] == pytest.approx(float(r["g_loss"]))
    run_record = next(json.loads(line)["run"] for line in history if '"type":"run"' in line)
    assert run_record["run_group"] == "sweep-x"


def test_an_unreachable_wandb_server_keeps_the_run_offline_for_wandb_sync(tmp_path,
                                                                          monkeypatch):
    import wandb

    honest_init = wandb.init

    def no_server(*args, **kwargs):
        if kwargs.get("mode") == "online":
            raise RuntimeError("no server")
        return honest_init(*args, **kwargs)

    monkeypatch.setattr(wandb, "init", no_server)
    with pytest.warns(UserWarning, match="wandb sync"):
        summary = train(make_cfg("logger.wandb.mode=online"), tmp_path)
    assert summary["status"] == "finished" and len(read_csv(tmp_path / "metrics.csv")) == 3
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1  # kept on disk, for `wandb sync` once the server is reachable
    assert json.loads(_inspect(runs[0], "--summary"))["summary"]["steps"] == 3


def test_a_failing_wandb_is_a_warning_and_training_goes_on(tmp_path, monkeypatch):
    import wandb

    def broken_init(*args, **kwargs):
        raise RuntimeError("broken install")

    monkeypatch.setattr(wandb, "init", broken_init)
    with pytest.warns(UserWarning, match="W&B disabled"):
        summary = train(make_cfg("logger.wandb.mode=offline"), tmp_path)
    assert summary["status"] == "finished" and len(read_csv(tmp_path / "metrics.csv")) == 3


SMALL_EPOCHS = ["data=ring8", "model=mlp", "data.n_samples=48", "trainer.batch_size=16",
                "trainer.max_steps=9"]  # 3 steps an epoch, a checkpoint each


@contextlib.contextmanager
def small_disk(path, size_bytes):
    """A tmpfs of `size_bytes` at `path` where this machine lets us mount one (as root), else
    False."""
    path.mkdir(parents=True)
    mounted = os.geteuid() == 0 and shutil.which("mount") is not None and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={max(64, size_bytes // 1024)}k", "tmpfs",
         str(path)], capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", str(path)], check=True)


@pytest.mark.parametrize("disk", ["tmpfs", "enospc"])
def test_a_full_disk_is_one_line_that_keeps_the_earlier_checkpoints(disk, tmp_path,
                                                                    monkeypatch):
    """A real small disk where the machine allows mounting one; and everywhere, the third
    checkpoint write raising ENOSPC after writing part of the file."""
    train(make_cfg(*SMALL_EPOCHS, "trainer.max_steps=3"), tmp_path / "probe")
    size = (tmp_path / "probe" / "checkpoints" / "last.pt").stat().st_size
    run = tmp_path / "disk" / "run"
    # room for epoch 1's two checkpoints and the small files, not for epoch 2's
    with small_disk(tmp_path / "disk", int(2.6 * size) + 512 * 1024) if disk == "tmpfs" \
            else contextlib.nullcontext(False) as mounted:
        if disk == "tmpfs" and not mounted:
            pytest.skip("no tmpfs can be mounted here (not root): the enospc case stands in")
        if disk == "enospc":
            honest, calls = torch.save, {"n": 0}

            def full_at_the_third(state, f, *args, **kwargs):
                calls["n"] += 1
                if calls["n"] == 3:
                    f.write(b"half a checkpoint")
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f.name)
                return honest(state, f, *args, **kwargs)

            monkeypatch.setattr(torch, "save", full_at_the_third)
        with pytest.raises(ConfigError) as error:
            train(make_cfg(*SMALL_EPOCHS), run)
        line = str(error.value)
        assert line.startswith(f"hydra.run.dir: the disk is full writing {run}/checkpoints/")
        assert "kept: checkpoints/epoch_001.pt, last.pt" in line and "\n" not in line
        assert "run the same command" in line
        assert not list(run.rglob("*.tmp"))  # nothing half written is left
        assert checkpoint.load(run / "checkpoints" / "epoch_001.pt")["step"] == 3
        assert checkpoint.load(run / "checkpoints" / "last.pt")["step"] == 3


def test_a_wandb_server_that_does_not_answer_goes_offline_in_seconds_for_wandb_sync(tmp_path):
    """No network: W&B's own init retries for about 90 s, then leaves files `wandb sync`
    cannot use. A closed port stands for the unreachable server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends
    started = time.monotonic()
    out = run_cli("src/train.py", "debug=fast", "model=mlp", "logger.wandb.mode=online",
                  f"hydra.run.dir={tmp_path}", timeout=300,
                  env={"WANDB_MODE": "online", "WANDB_API_KEY": "x" * 40,
                       "WANDB_BASE_URL": f"http://127.0.0.1:{port}"})
    took = time.monotonic() - started
    assert out.returncode == 0, out.stderr[-2000:]
    assert "this run logs offline" in out.stderr and f"wandb sync {tmp_path}/wandb" in out.stderr
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and not list((tmp_path / "wandb").glob("run-*"))
    assert json.loads(_inspect(runs[0], "--summary"))["summary"]["steps"] == 3
    assert took < 60  # the fallback itself takes 3 s; the rest is imports and 3 steps
