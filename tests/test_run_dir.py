"""What a run writes: metrics.csv rows from device tensors, epoch metrics in their step's row, and
W&B, offline by default, falling back to offline files when its server cannot be reached."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch
from conftest import ROOT, make_cfg, read_csv

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
