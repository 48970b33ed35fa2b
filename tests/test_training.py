"""The training entrypoint: the baseline config, what a run writes, resume, divergence, W&B."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import pytest
import torch
from conftest import NO_EVAL, ROOT, make_cfg

from gancompare import checkpoint, losses
from gancompare.trainer import train

TINY = [*NO_EVAL, "trainer.batch_size=16"]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_default_config_is_the_stable_baseline():
    cfg = make_cfg()
    assert (cfg.model.arch, cfg.loss.objective, cfg.data.name) == ("dcgan28", "non-saturating",
                                                                   "mnist8")
    assert list(cfg.hacks) == ["separate-batches"]
    assert cfg.hacks["separate-batches"].optimizer_steps == 2
    assert cfg.trainer.batch_size == 128 and cfg.model.latent_dim == 50
    for net in ("d", "g"):
        opt = cfg.loss.optimizer[net]
        assert (opt._target_, opt.lr, list(opt.betas)) == ("torch.optim.Adam", 2e-4, [0.5, 0.999])
    assert cfg.trainer.epochs == 10 and 5851 // cfg.trainer.batch_size * cfg.trainer.epochs == 450
    assert cfg.device == "auto" and cfg.logger.wandb.mode in ("offline", "disabled")


def test_a_run_writes_every_file_with_the_per_step_figures(tmp_path):
    summary = train(make_cfg(*TINY, "trainer.max_steps=3", "trainer.log_every=2"), tmp_path)
    rows = read_csv(tmp_path / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    for key in ("epoch", "d_loss_real", "d_loss_fake", "g_loss", "d_acc_real", "d_acc_fake",
                "d_grad_norm", "g_grad_norm"):
        assert all(math.isfinite(float(r[key])) for r in rows), key
    assert all(0 <= float(r["d_acc_real"]) <= 1 for r in rows)
    for name in ("config.yaml", "curves.png", "summary.json", "samples/epoch_001.png",
                 "checkpoints/last.pt", "checkpoints/epoch_001.pt"):
        assert (tmp_path / name).is_file(), name
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["status"] == "finished" and on_disk["steps"] == 3
    assert on_disk["verdict"] in ("stable", "mode-collapse", "convergence-failure")
    assert on_disk["wall_time_s"] > 0 and on_disk["steps_per_s"] > 0
    assert on_disk["final_training"]["g_loss"] == pytest.approx(float(rows[-1]["g_loss"]))
    assert summary["verdict"] == on_disk["verdict"]
    state = checkpoint.load(tmp_path / "checkpoints/last.pt")
    assert state["step"] == 3 and {"generator", "discriminator", "g_optimizer", "d_optimizer",
                                   "rng", "fixed_z"} <= set(state)
    assert state["fixed_z"].shape == (100, 50)


def test_a_critic_logs_scores_and_the_wasserstein_estimate(tmp_path):
    train(make_cfg(*TINY, "loss=wgan-gp", "model=mlp", "trainer.max_steps=2"), tmp_path)
    rows = read_csv(tmp_path / "metrics.csv")
    assert {"critic_real", "critic_fake", "wasserstein", "gradient_penalty"} <= set(rows[0])
    assert "d_acc_real" not in rows[0]
    for r in rows:
        assert float(r["wasserstein"]) == pytest.approx(
            float(r["critic_real"]) - float(r["critic_fake"]), abs=1e-5)


def test_resume_continues_exactly_where_the_run_stopped(tmp_path):
    overrides = [*TINY, "model=mlp", "trainer.log_every=1", "hacks=[noisy,separate-batches]"]
    straight = tmp_path / "straight"
    train(make_cfg(*overrides, "trainer.max_steps=6"), straight)
    resumed = tmp_path / "resumed"
    train(make_cfg(*overrides, "trainer.max_steps=3"), resumed)
    # Same directory, same config, a larger budget: trainer.resume=auto picks up last.pt.
    summary = train(make_cfg(*overrides, "trainer.max_steps=6"), resumed)
    assert summary["resumed_from_step"] == 3
    a = checkpoint.load(straight / "checkpoints/last.pt")
    b = checkpoint.load(resumed / "checkpoints/last.pt")
    for net in ("generator", "discriminator"):
        for key, tensor in a[net].items():
            assert torch.equal(tensor, b[net][key]), f"{net}.{key}"
    rows_a, rows_b = read_csv(straight / "metrics.csv"), read_csv(resumed / "metrics.csv")
    assert [r["step"] for r in rows_b] == [str(s) for s in range(1, 7)]
    assert [r["g_loss"] for r in rows_a] == [r["g_loss"] for r in rows_b]


def test_a_non_finite_loss_ends_the_run_as_diverged_and_keeps_the_last_good_checkpoint(
        tmp_path, monkeypatch):
    calls = {"n": 0}
    honest = losses.OBJECTIVES["non-saturating"]

    def poisoned_g(out):
        calls["n"] += 1
        loss = honest.g(out)
        return loss * float("nan") if calls["n"] > 50 else loss

    monkeypatch.setitem(losses.OBJECTIVES, "non-saturating",
                        losses.Objective(honest.d_real, honest.d_fake, poisoned_g, 0.0))
    # mnist8 at batch 128: 45 steps an epoch, so epoch 1 ends (and checkpoints) before step 51;
    # figures are flushed every 25 steps, so the NaN is found at the flush of step 60.
    summary = train(make_cfg(*NO_EVAL, "trainer.max_steps=60", "model=mlp"), tmp_path)
    assert summary["status"] == "diverged" and summary["verdict"] == "diverged"
    assert summary["verdict_evidence"]["step"] == 51
    state = checkpoint.load(tmp_path / "checkpoints/last.pt")
    assert state["step"] == 45 and all(torch.isfinite(t).all()
                                      for t in state["generator"].values())
    rows = read_csv(tmp_path / "metrics.csv")
    assert rows[50]["g_loss"] == "nan" and rows[49]["g_loss"] != "nan" and len(rows) == 60


def test_wandb_offline_run_reads_back_with_the_runs_figures(tmp_path):
    cfg = make_cfg(*TINY, "trainer.max_steps=3", "trainer.log_every=1", quiet=False)
    cfg.logger.wandb.mode = "offline"
    cfg.trainer.progress_bar = False
    summary = train(cfg, tmp_path, wandb_name="loss=non-saturating", wandb_group="sweep-x")
    wandb_cli = ROOT / ".venv" / "bin" / "wandb"
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    inspected = subprocess.run([str(wandb_cli), "leet", "inspect", "--summary", "--json",
                                str(runs[0])], capture_output=True, text=True, check=True)
    record = json.loads(inspected.stdout)
    assert record["state"] == "finished" and record["name"] == "loss=non-saturating"
    assert record["config"]["loss"]["name"] == "non-saturating"
    assert record["config"]["trainer"]["batch_size"] == 16
    assert record["summary"]["verdict"] == summary["verdict"]
    assert record["summary"]["verdict_evidence"]["rule"] == summary["verdict_evidence"]["rule"]
    assert record["summary"]["verdict_reason"] == summary["verdict_evidence"]["reason"]
    assert record["summary"]["steps"] == 3
    rows = read_csv(tmp_path / "metrics.csv")
    assert record["summary"]["g_loss"] == pytest.approx(float(rows[-1]["g_loss"]))
    history = subprocess.run([str(wandb_cli), "leet", "inspect", "--json", str(runs[0])],
                             capture_output=True, text=True, check=True).stdout.splitlines()
    steps = [json.loads(line)["history"] for line in history if '"type":"history"' in line]
    by_step = {int(h["step"]["num"]): h["item"] for h in steps if "g_loss" in h["item"]}
    for r in rows:
        assert by_step[int(r["step"])]["g_loss"] == pytest.approx(float(r["g_loss"]))
    run_record = next(json.loads(line)["run"] for line in history if '"type":"run"' in line)
    assert run_record["run_group"] == "sweep-x"


def test_a_failing_wandb_is_a_warning_and_training_goes_on(tmp_path, monkeypatch):
    import wandb

    def broken_init(*args, **kwargs):
        raise RuntimeError("no server")

    monkeypatch.setattr(wandb, "init", broken_init)
    cfg = make_cfg(*TINY, "trainer.max_steps=2", quiet=False)
    cfg.logger.wandb.mode = "online"
    cfg.trainer.progress_bar = False
    with pytest.warns(UserWarning, match="W&B disabled"):
        summary = train(cfg, tmp_path)
    assert summary["status"] == "finished" and len(read_csv(tmp_path / "metrics.csv")) == 2


def test_the_entrypoint_prints_the_config_without_training():
    out = subprocess.run([sys.executable, "src/train.py", "--cfg", "job", "loss=wgan-gp"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert "gradient_penalty: 10.0" in out.stdout and "objective: wasserstein" in out.stdout
