"""The training loop: the baseline config, what a run writes, resume, interruption, divergence."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, make_cfg, read_csv
from omegaconf import OmegaConf

from gancompare.build import build
from gancompare.run import checkpoint
from gancompare.step import losses
from gancompare.step.gan import GAN
from gancompare.training import train


def test_the_default_config_is_the_stable_baseline():
    cfg = make_cfg(debug=None)
    assert (cfg.model.name, cfg.loss.name, cfg.data.name) == ("dcgan28", "non-saturating",
                                                              "mnist8")
    assert list(cfg.hacks) == ["separate-batches"]
    assert cfg.trainer.batch_size == 128 and cfg.model.latent_dim == 50
    assert cfg.optimizer.name == "dcgan" and cfg.optimizer.d_steps == 1
    for net in ("d", "g"):
        opt = cfg.optimizer[net]
        assert (opt._target_, opt.lr, list(opt.betas)) == ("torch.optim.Adam", 2e-4, [0.5, 0.999])
    assert cfg.trainer.epochs == 10 and 5851 // cfg.trainer.batch_size * cfg.trainer.epochs == 450
    assert cfg.device == "auto" and cfg.logger.wandb.mode in ("offline", "disabled")


@pytest.mark.parametrize("loss, optimizer, d_steps", [
    ("minimax", "dcgan", 1), ("non-saturating", "dcgan", 1), ("lsgan", "dcgan", 1),
    ("wasserstein", "wgan", 5), ("wgan-gp", "wgan-gp", 5), ("hinge", "sngan", 5)])
def test_each_loss_defaults_to_its_paper_optimizer_and_any_optimizer_can_be_held(
        loss, optimizer, d_steps):
    cfg = make_cfg(f"loss={loss}")
    assert (cfg.optimizer.name, cfg.optimizer.d_steps) == (optimizer, d_steps)
    held = make_cfg(f"loss={loss}", "optimizer=dcgan", "optimizer.d.lr=1e-4")
    assert (held.optimizer.name, held.optimizer.d.lr, held.optimizer.d_steps) == ("dcgan", 1e-4, 1)
    assert make_cfg(f"loss={loss}", "experiment=aggressive-adam").optimizer.d.lr == 1e-3


def test_a_run_writes_every_file_with_the_per_step_figures(tmp_path):
    summary = train(make_cfg("trainer.log_every=2"), tmp_path)
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
    assert on_disk == json.loads(json.dumps(summary))
    assert (on_disk["status"], on_disk["steps"], on_disk["optimizer"]) == ("finished", 3, "dcgan")
    assert on_disk["wall_time_s"] > 0 and on_disk["steps_per_s"] > 0
    # the last 10 % of 3 steps is the last step
    assert on_disk["final_training"]["g_loss"] == pytest.approx(float(rows[-1]["g_loss"]))
    state = checkpoint.load(tmp_path / "checkpoints/last.pt")
    assert state["step"] == 3 and {"generator", "discriminator", "g_optimizer", "d_optimizer",
                                   "rng", "fixed_z", "config"} <= set(state)
    assert state["fixed_z"].shape == (100, 50) and state["config"]["loss"]["name"] == \
        "non-saturating"


def _same_run(a, b) -> None:
    """Two run directories hold the same weights and the same per-step losses."""
    state_a = checkpoint.load(a / "checkpoints/last.pt")
    state_b = checkpoint.load(b / "checkpoints/last.pt")
    assert state_a["step"] == state_b["step"]
    for net in ("generator", "discriminator"):
        for key, tensor in state_a[net].items():
            assert torch.equal(tensor, state_b[net][key]), f"{net}.{key}"
    rows_a, rows_b = read_csv(a / "metrics.csv"), read_csv(b / "metrics.csv")
    assert [r["step"] for r in rows_b] == [r["step"] for r in rows_a]
    for column in ("g_loss", "d_loss_real", "d_loss_fake"):
        assert [r[column] for r in rows_a] == [r[column] for r in rows_b], column


def test_eval_every_steps_evaluates_between_epoch_ends_without_changing_training(tmp_path):
    """Evaluations every 2 steps of a 6-step run (an epoch is 45 steps): each draws from its
    own forked random stream, so the run trains exactly as one never evaluated."""
    quick = ["model=mlp", "trainer.log_every=1", "trainer.max_steps=6", "eval.epoch_samples=200",
             "eval.reference_samples=500", "eval.prdc_samples=200", "eval.kid_subsets=5"]
    train(make_cfg(*quick, "eval.every_steps=2"), tmp_path / "evaluated")
    train(make_cfg(*quick), tmp_path / "plain")
    rows = read_csv(tmp_path / "evaluated" / "metrics.csv")
    assert [int(r["step"]) for r in rows if r["epoch/fid_mnist_cnn"]] == [2, 4, 6]
    assert all(float(r["epoch/fid_mnist_cnn"]) > 0 for r in rows if r["epoch/fid_mnist_cnn"])
    assert "epoch/fid_mnist_cnn" not in read_csv(tmp_path / "plain" / "metrics.csv")[0]
    _same_run(tmp_path / "evaluated", tmp_path / "plain")


RESUMABLE = ["model=mlp", "trainer.log_every=1", "hacks=[noisy,separate-batches]",
             "trainer.batch_size=64"]  # 91 steps an epoch: 8 steps end in mid-epoch


def test_resume_continues_exactly_where_the_run_stopped(tmp_path):
    train(make_cfg(*RESUMABLE, "trainer.max_steps=6"), tmp_path / "straight")
    train(make_cfg(*RESUMABLE, "trainer.max_steps=3"), tmp_path / "resumed")
    # Same directory, same config, a larger budget: trainer.resume=auto picks up last.pt.
    summary = train(make_cfg(*RESUMABLE, "trainer.max_steps=6"), tmp_path / "resumed")
    assert summary["resumed_from_step"] == 3
    _same_run(tmp_path / "straight", tmp_path / "resumed")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_the_current_step_and_the_resumed_run_is_bit_exact(
        tmp_path, monkeypatch, signum):
    train(make_cfg(*RESUMABLE, "trainer.max_steps=8"), tmp_path / "straight")
    honest_step, calls = GAN.step, {"n": 0}

    def step_then_signal(self):
        calls["n"] += 1
        figures = honest_step(self)
        if calls["n"] == 5:
            os.kill(os.getpid(), signum)  # as a user's Ctrl-C or a scheduler's SIGTERM
        return figures

    monkeypatch.setattr(GAN, "step", step_then_signal)
    # Python's own handler, as in a terminal (a background job may start with SIGINT ignored,
    # and an ignored signal is left ignored).
    default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
    previous = signal.signal(signum, default)
    try:
        stopped = train(make_cfg(*RESUMABLE, "trainer.max_steps=8"), tmp_path / "resumed")
        assert signal.getsignal(signum) is default  # restored after the run
    finally:
        signal.signal(signum, previous)
    assert (stopped["status"], stopped["steps"], stopped["signal"]) == (
        "interrupted", 5, signal.Signals(signum).name)
    assert checkpoint.load(tmp_path / "resumed/checkpoints/last.pt")["step"] == 5
    monkeypatch.setattr(GAN, "step", honest_step)
    resumed = train(make_cfg(*RESUMABLE, "trainer.max_steps=8"), tmp_path / "resumed")
    assert (resumed["status"], resumed["resumed_from_step"]) == ("finished", 5)
    _same_run(tmp_path / "straight", tmp_path / "resumed")


def test_a_signal_during_the_final_evaluation_is_recorded_and_the_same_command_finishes_it(
        tmp_path, monkeypatch):
    from gancompare.evaluation.evaluator import Evaluator

    honest = Evaluator._evaluate

    def signalled(self, sample, n):
        os.kill(os.getpid(), signal.SIGTERM)  # a scheduler's SIGTERM as the evaluation starts
        return honest(self, sample, n)

    monkeypatch.setattr(Evaluator, "_evaluate", signalled)
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        cfg = make_cfg("model=mlp", "eval.final_samples=500")
        stopped = train(cfg, tmp_path)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert (stopped["status"], stopped["signal"], stopped["interrupted_during"]) == (
        "interrupted", "SIGTERM", "final evaluation")
    assert stopped["eval"] == {} and stopped["steps"] == 3
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "interrupted"
    assert checkpoint.load(tmp_path / "checkpoints/last.pt")["step"] == 3
    monkeypatch.setattr(Evaluator, "_evaluate", honest)
    finished = train(cfg, tmp_path)  # the same command: trains nothing, evaluates
    assert (finished["status"], finished["resumed_from_step"]) == ("finished", 3)
    assert finished["eval"]["fid_mnist_cnn"] > 0 and "interrupted_during" not in finished


def test_the_entrypoint_exits_with_the_signal_after_saving(tmp_path):
    """A real SIGTERM to `python src/train.py`: checkpoint, exit 128 + 15, resumable."""
    process = subprocess.Popen(
        [sys.executable, "src/train.py", "debug=fast", *RESUMABLE, "trainer.max_steps=100000",
         "trainer.epochs=1000", f"hydra.run.dir={tmp_path}"], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = tmp_path / "metrics.csv"
    for _ in range(3000):  # wait for the loop to run (imports: seconds, minutes when busy)
        if metrics.is_file() and len(read_csv(metrics)) >= 3:
            break
        try:
            process.wait(timeout=0.1)
            break
        except subprocess.TimeoutExpired:
            continue
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, output[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["signal"] == "SIGTERM"
    assert checkpoint.load(tmp_path / "checkpoints/last.pt")["step"] == summary["steps"] >= 3
    assert "checkpoint saved" in output


def test_a_non_finite_loss_ends_the_run_as_diverged_and_keeps_the_last_good_checkpoint(
        tmp_path, monkeypatch):
    calls = {"n": 0}
    honest = losses.non_saturating()

    def poisoned_g(out):
        calls["n"] += 1
        loss = honest.g_fake(out)
        return loss * float("nan") if calls["n"] > 50 else loss

    monkeypatch.setattr(losses, "non_saturating", lambda: losses.SideLoss(
        honest.d_real, honest.d_fake, poisoned_g, uses_labels=True, threshold=0.0))
    # mnist8 at batch 128: 45 steps an epoch, so epoch 1 ends (and checkpoints) before step 51;
    # figures are flushed every 25 steps, so the NaN is found at the flush of step 75.
    summary = train(make_cfg("trainer.max_steps=80", "model=mlp", "trainer.batch_size=128"),
                    tmp_path)
    assert summary["status"] == "diverged" and summary["verdict"] == "diverged"
    assert summary["verdict_evidence"]["step"] == 51
    state = checkpoint.load(tmp_path / "checkpoints/last.pt")
    assert state["step"] == 45 and all(torch.isfinite(t).all()
                                      for t in state["generator"].values())
    rows = read_csv(tmp_path / "metrics.csv")
    assert rows[50]["g_loss"] == "nan" and rows[49]["g_loss"] != "nan" and len(rows) == 75


def test_the_entrypoint_prints_the_config_without_training():
    out = subprocess.run([sys.executable, "src/train.py", "--cfg", "job", "loss=wgan-gp"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert "_target_: gancompare.step.regularizers.GradientPenalty" in out.stdout \
        and "weight: 10.0" in out.stdout and "_target_: gancompare.step.losses.wasserstein" \
        in out.stdout and "name: wgan-gp" in out.stdout


@pytest.mark.slow
def test_the_pacgan_protocol_trains_packed_and_scores_with_their_metrics(tmp_path):
    """PacGAN2 on ring8 for 1,000 steps (two of our epochs): from an untrained G that puts every
    sample at the origin, 100 std from any mode, to captured modes (seed 0: 3 of 8)."""
    cfg = make_cfg("experiment=pacgan-ring8", "model.pack=2", "trainer.batch_size=200",
                   "trainer.max_steps=1000", "eval.final_samples=1000", "eval.every_epoch=true",
                   "eval.reference_samples=1500", "eval.prdc_samples=600", "eval.kid_subsets=10")
    built = build(cfg)
    untrained = built.evaluator.evaluate(built.gan.sample, 1000)
    assert untrained["mixture_modes"] == 0 and untrained["mixture_high_quality"] == 0
    summary = train(cfg, tmp_path)
    saved = OmegaConf.load(tmp_path / "config.yaml")
    assert (saved.model.name, saved.model.pack, saved.optimizer.updates) == \
        ("pacgan-mlp", 2, "simultaneous")
    assert summary["optimizer"] == "pacgan" and summary["steps"] == 1000
    rows = [r for r in read_csv(tmp_path / "metrics.csv") if r["epoch/mixture_modes"]]
    assert [int(r["step"]) for r in rows] == [500, 1000]
    final = summary["eval"]
    assert final["mixture_modes"] >= 2 and final["mixture_high_quality"] > 0
    assert 0 <= final["mixture_reverse_kl"] < math.log(8)


@pytest.mark.slow
def test_the_veegan_stacked_mnist_setting_trains_packed_and_counts_modes(tmp_path):
    """PacDCGAN2 in VEEGAN's setting for 20 steps: one D update and two G updates per step
    (Adam's step counts in the checkpoint say so), and the Stacked MNIST figures from classified
    samples: modes among the 1,000 and KL to uniform consistent with them."""
    cfg = make_cfg("experiment=stacked-mnist-veegan", "model.pack=2", "data.n_samples=6400",
                   "trainer.batch_size=128", "trainer.max_steps=20", "eval.final_samples=500",
                   "eval.stacked_samples=1000", "eval.reference_samples=1000",
                   "eval.prdc_samples=500", "eval.kid_subsets=5")
    summary = train(cfg, tmp_path)
    assert summary["status"] == "finished" and summary["steps"] == 20
    saved = OmegaConf.load(tmp_path / "config.yaml")
    assert (saved.model.name, saved.model.pack, saved.optimizer.g_steps, saved.optimizer.d_passes,
            saved.model.latent_distribution) == ("veegan-dcgan", 2, 2, "separate", "uniform")
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    steps = {net: {int(s["step"]) for s in state[net]["state"].values()}
             for net in ("d_optimizer", "g_optimizer")}
    assert steps == {"d_optimizer": {20}, "g_optimizer": {40}}
    assert state["discriminator"]["body.1.weight"].shape == (64, 6, 5, 5)  # 2 × 3 channels
    final = summary["eval"]
    modes, kl = final["stacked_modes_mnist_cnn_x3"], final["stacked_kl_mnist_cnn_x3"]
    assert 1 <= modes <= 1000 and modes == int(modes)
    # KL(p || uniform) = log 1000 - H(p) lies between 0 and log 1000 - log(modes) ... log 1000
    assert math.log(1000) - math.log(modes) - 1e-9 <= kl <= math.log(1000) + 1e-9
