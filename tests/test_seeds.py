"""`trainer.seeds`: several seeds trained as one batched computation, each run the same as its
seed trained alone (to float64 summation order, under trainer.precision=64, so the comparison
does not depend on the CPU's kernels), written into its own ordinary run directory."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_cfg, read_csv, run_cli
from omegaconf import OmegaConf

from gancompare.build import build
from gancompare.errors import ConfigError
from gancompare.run import checkpoint
from gancompare.step.gan import GAN
from gancompare.step.seeds import RunStreams, StackedModule, stack_runs
from gancompare.training import train, train_seeds

LOSSES = ("d_loss_real", "d_loss_fake", "g_loss", "d_grad_norm", "g_grad_norm")
QUIET = ["trainer.log_every=1", "trainer.max_steps=6"]


def _assert_same_rows(batched, alone, rel: float) -> None:
    """The same steps, the same figures to float64 summation order (accuracies included: no
    output sits within 1e-15 of the threshold)."""
    rows_b, rows_a = read_csv(batched / "metrics.csv"), read_csv(alone / "metrics.csv")
    assert [r["step"] for r in rows_b] == [r["step"] for r in rows_a]
    assert list(rows_b[0]) == list(rows_a[0])
    for row_b, row_a in zip(rows_b, rows_a, strict=True):
        for column in (*LOSSES, "reg_gp", "reg_r1", "reg_r2", "reg_dragan", "d_reg_loss",
                       "d_grad_x_real", "d_grad_x_fake",
                       "wasserstein", "d_acc_real", "d_acc_fake"):
            if row_a.get(column):
                assert float(row_b[column]) == pytest.approx(float(row_a[column]), rel=rel,
                                                             abs=rel), column


# In float64 (trainer.precision=64). A batched matmul or grouped convolution sums in another
# order than the single one; in float32 that differs by ~1e-7 relative, and Adam turns the sign
# of a near-zero gradient (a flip of that rounding) into a whole step of lr, so after a few
# steps weights differ by up to lr on any CPU whose kernels sum in yet another order. In float64
# the order error is ~1e-16 relative, and Adam's eps (1e-8) keeps gradients that small from
# moving a weight by more than ~1e-8 * lr: 1e-9 is loose for rounding and tight for any bug
# (a wrong draw, a missed per-run reduction or a shared moment differs at 1e-3 or more).
EXACT = 1e-9


@pytest.mark.parametrize("overrides", [
    [],  # dcgan28: grouped convolutions
    ["model=mlp", "hacks=[smoothing,noisy]"],  # dropout masks, label noise per run
    ["loss=wgan-gp"],  # the penalty's interpolates, double backward, 5 D steps
    ["experiment=pacgan-ring8", "model.pack=2", "trainer.batch_size=32"],  # G's BN,
    # packing, simultaneous updates
    ["loss=rpgan", "model=mlp"],  # pairs; G's update draws its own real batch
    ["loss=rpgan", "model=mlp", "regularizer=[r1,r2,dragan]", "regularizer.every=2"],  # Dreg
], ids=["dcgan28", "mlp-dropout-labels", "wgan-gp", "pacgan2-simultaneous", "rpgan",
        "r1-r2-dragan-lazy"])
def test_each_seed_trains_as_it_would_alone(tmp_path, overrides):
    overrides = [*overrides, *QUIET, "trainer.precision=64"]
    summaries = train_seeds(make_cfg(*overrides, "trainer.seeds=[3,5]"), tmp_path / "batched")
    assert [s["seed"] for s in summaries] == [3, 5]
    assert all(s["runs_in_process"] == 2 and s["steps"] == 6 for s in summaries)
    for seed in (3, 5):
        train(make_cfg(*overrides, f"seed={seed}"), tmp_path / f"alone{seed}")
        batched, alone = tmp_path / f"batched/seed{seed}", tmp_path / f"alone{seed}"
        _assert_same_rows(batched, alone, EXACT)
        # Its directory is an ordinary run's: the same files, the config of seed=<s> alone
        assert sorted(p.name for p in batched.iterdir()) == sorted(
            p.name for p in alone.iterdir())
        assert OmegaConf.load(batched / "config.yaml") == OmegaConf.load(alone / "config.yaml")
        state_b = checkpoint.load(batched / "checkpoints/last.pt")
        state_a = checkpoint.load(alone / "checkpoints/last.pt")
        assert state_b.keys() == state_a.keys() and state_b["step"] == 6
        # its own tensors only: no view into the other runs' stacked storage
        size_b, size_a = ((d / "checkpoints/last.pt").stat().st_size for d in (batched, alone))
        assert size_b < 1.05 * size_a
        for net in ("generator", "discriminator"):
            for key, tensor in state_a[net].items():
                assert tensor.dtype in (torch.float64, torch.int64), key  # it ran in float64
                torch.testing.assert_close(state_b[net][key], tensor, rtol=EXACT, atol=EXACT,
                                           msg=f"seed {seed}: {net}.{key}")
        # The RNG streams are in the same place: every draw was the run's own
        assert torch.equal(state_b["rng"]["torch"], state_a["rng"]["torch"])
        assert torch.equal(state_b["fixed_z"], state_a["fixed_z"])


def test_a_wrong_draw_fails_the_float64_comparison(tmp_path, monkeypatch):
    """The tolerance above catches a real bug: run 1 given run 0's latents differs by far more."""
    honest = GAN.latent

    def shared_latents(self, n):
        z = honest(self, n)
        return z[:1].expand_as(z).clone() if self.runs.count > 1 else z

    overrides = ["model=mlp", *QUIET, "trainer.precision=64"]
    monkeypatch.setattr(GAN, "latent", shared_latents)
    train_seeds(make_cfg(*overrides, "trainer.seeds=[3,5]"), tmp_path / "batched")
    train(make_cfg(*overrides, "seed=5"), tmp_path / "alone5")
    with pytest.raises(AssertionError):
        _assert_same_rows(tmp_path / "batched/seed5", tmp_path / "alone5", EXACT)


def test_seeds_train_under_bf16_autocast_with_batch_norm(tmp_path):
    """vmap's batch norm takes one dtype: under autocast it runs in float32 (seeds.py). bf16
    rounds each matmul to 8 significant bits, and Adam's first steps turn the rounding of tiny
    gradients into whole steps, so only the losses' first steps and the RNG streams compare."""
    overrides = ["experiment=pacgan-ring8", "trainer.batch_size=32", *QUIET,
                 "trainer.precision=bf16-mixed"]
    summaries = train_seeds(make_cfg(*overrides, "trainer.seeds=[0,1]"), tmp_path / "b")
    assert [s["status"] for s in summaries] == ["finished", "finished"]
    for seed in (0, 1):
        train(make_cfg(*overrides, f"seed={seed}"), tmp_path / f"a{seed}")
        rows_b = read_csv(tmp_path / f"b/seed{seed}/metrics.csv")
        rows_a = read_csv(tmp_path / f"a{seed}/metrics.csv")
        for column in ("d_loss_real", "d_loss_fake", "g_loss"):
            assert float(rows_b[0][column]) == pytest.approx(float(rows_a[0][column]), rel=1e-4)
        state_b = checkpoint.load(tmp_path / f"b/seed{seed}/checkpoints/last.pt")
        state_a = checkpoint.load(tmp_path / f"a{seed}/checkpoints/last.pt")
        assert torch.equal(state_b["rng"]["torch"], state_a["rng"]["torch"])


def test_the_evaluation_and_verdict_of_each_seed_are_its_own(tmp_path):
    """In float64 the two runs' weights agree to ~1e-12; the metrics read float32 features of
    their samples, so they agree to float32's rounding of nearly equal features: 1e-6."""
    overrides = ["trainer.precision=64"]
    summaries = train_seeds(make_cfg(*overrides, "trainer.seeds=[0,1]", debug="eval"),
                            tmp_path / "b")
    for seed, batched in zip((0, 1), summaries, strict=True):
        alone = train(make_cfg(*overrides, f"seed={seed}", debug="eval"), tmp_path / f"a{seed}")
        assert batched["verdict"] == alone["verdict"]
        assert batched["eval"].keys() == alone["eval"].keys()
        for key in ("fid_mnist_cnn", "coverage_mnist_cnn", "classes_mnist_cnn", "kid_mnist_cnn"):
            assert batched["eval"][key] == pytest.approx(alone["eval"][key], rel=1e-6), key
        epoch_b = read_csv(tmp_path / f"b/seed{seed}/metrics.csv")[-1]
        epoch_a = read_csv(tmp_path / f"a{seed}/metrics.csv")[-1]
        assert float(epoch_b["epoch/fid_mnist_cnn"]) == pytest.approx(
            float(epoch_a["epoch/fid_mnist_cnn"]), rel=1e-6)
    assert summaries[0]["eval"]["fid_mnist_cnn"] != summaries[1]["eval"]["fid_mnist_cnn"]


RESUMABLE = ["model=mlp", "trainer.log_every=1", "hacks=[noisy]", "trainer.batch_size=64",
             "trainer.seeds=[0,1]"]


def test_seeds_resume_bit_exactly_from_their_checkpoints(tmp_path):
    train_seeds(make_cfg(*RESUMABLE, "trainer.max_steps=6"), tmp_path / "straight")
    train_seeds(make_cfg(*RESUMABLE, "trainer.max_steps=3"), tmp_path / "resumed")
    summaries = train_seeds(make_cfg(*RESUMABLE, "trainer.max_steps=6"), tmp_path / "resumed")
    assert [s["resumed_from_step"] for s in summaries] == [3, 3]
    for seed in (0, 1):
        a, b = tmp_path / f"straight/seed{seed}", tmp_path / f"resumed/seed{seed}"
        state_a, state_b = (checkpoint.load(p / "checkpoints/last.pt") for p in (a, b))
        for net in ("generator", "discriminator", "g_optimizer", "d_optimizer"):
            torch.testing.assert_close(state_b[net], state_a[net], rtol=0, atol=0)
        assert [r["g_loss"] for r in read_csv(a / "metrics.csv")] == \
            [r["g_loss"] for r in read_csv(b / "metrics.csv")]
    # A seed's checkpoint is an ordinary run's: it resumes alone, too
    alone = train(make_cfg(*RESUMABLE[:-1], "seed=1", "trainer.max_steps=8"),
                  tmp_path / "resumed/seed1")
    assert (alone["resumed_from_step"], alone["steps"]) == (6, 8)


def test_seeds_at_different_steps_are_refused_with_the_fix(tmp_path):
    train(make_cfg(*RESUMABLE[:-1], "seed=1", "trainer.max_steps=3"), tmp_path / "seed1")
    with pytest.raises(ConfigError, match=r"trainer.resume.*seed 0: step 0, seed 1: step 3"):
        train_seeds(make_cfg(*RESUMABLE, "trainer.max_steps=6"), tmp_path)


@pytest.mark.parametrize("value", ["[]", "[1,1]", "[0,true]"])
def test_bad_seed_lists_are_refused_before_anything_runs(tmp_path, value):
    result = run_cli("src/train.py", "debug=fast", f"trainer.seeds={value}",
                     f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert "trainer.seeds" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(ConfigError, match="trainer.compile"):
        train_seeds(make_cfg("trainer.seeds=[0,1]", "trainer.compile=true"), tmp_path)


def test_the_entrypoint_writes_one_run_directory_and_wandb_run_per_seed(tmp_path):
    result = run_cli("src/train.py", "debug=fast", "trainer.seeds=[0,2]",
                     "logger.wandb.mode=offline", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    for seed in (0, 2):
        run = tmp_path / f"seed{seed}"
        summary = json.loads((run / "summary.json").read_text())
        assert (summary["seed"], summary["status"], summary["steps"]) == (seed, "finished", 3)
        assert len(list((run / "wandb").glob("offline-run-*"))) == 1
    ids = {(tmp_path / f"seed{s}/wandb_id").read_text() for s in (0, 2)}
    assert len(ids) == 2


def test_dropout_masks_are_drawn_from_each_runs_own_stream():
    cfg = make_cfg("model=mlp")
    members, states = [], []
    for seed in (0, 1):
        cfg.seed = seed
        members.append(build(cfg).gan.discriminator)
        states.append(checkpoint.rng_state())
    x = torch.randn(2, 8, 1, 28, 28)
    stacked = StackedModule(members, RunStreams(states))
    out = stacked(x)
    for k, member in enumerate(members):
        checkpoint.restore_rng(states[k])
        torch.testing.assert_close(out[k], member(x[k]))
    # Dropout makes the outputs random: with other streams they differ
    assert not torch.allclose(stacked(x), out)


def test_a_stacked_gan_keeps_each_runs_optimiser_state():
    gans, states = [], []
    for seed in (0, 1):
        gans.append(build(make_cfg(f"seed={seed}", "trainer.max_steps=2")).gan)
        gans[-1].step()  # alone, before stacking (as a resumed run)
        states.append(checkpoint.rng_state())
    moments = [g.d_optimizer.state_dict()["state"][0]["exp_avg"].clone() for g in gans]
    cfg = make_cfg()
    stacked = stack_runs(gans, RunStreams(states), cfg.optimizer, cfg.trainer.fused_optimizers)
    for k in (0, 1):
        member = stacked.member(k, optimizers=True)
        assert torch.equal(member.d_optimizer.state_dict()["state"][0]["exp_avg"], moments[k])


def test_a_sweep_of_seed_batches_lists_and_compares_every_seed(tmp_path):
    from gancompare.analysis.compare import load_local

    result = run_cli("src/train.py", "-m", "debug=fast", "loss=lsgan,hinge",
                     "trainer.seeds=[0,1]", f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    report = (tmp_path / "sweep_report.md").read_text()
    assert report.count("| finished |") == 4 and "seed=1" in report
    runs = load_local(tmp_path).table
    assert sorted(zip(runs["loss"], runs["seed"], strict=True)) == [
        ("hinge", 0), ("hinge", 1), ("lsgan", 0), ("lsgan", 1)]
    assert set(runs["status"]) == {"finished"}


@pytest.mark.parametrize("overrides", [
    ["model=mlp"], ["model=dcgan28"], ["model=dcgan64", "data=fashion"],
    ["model=pacgan-mlp", "data=grid25", "model.pack=4"],
    ["model=veegan-dcgan", "optimizer=veegan"]], ids=lambda o: o[0].split("=")[1])
def test_every_architecture_steps_as_its_single_network(overrides):
    """One step of each model under vmap against the same seeds alone, in float64: the losses
    and gradient norms to float64 summation order (EXACT above)."""
    overrides = [*overrides, "trainer.precision=64"]
    alone, members, states = [], [], []
    for seed in (0, 1):
        alone.append(build(make_cfg(*overrides, f"seed={seed}")).gan.step())
        members.append(build(make_cfg(*overrides, f"seed={seed}")).gan)
        states.append(checkpoint.rng_state())
    cfg = make_cfg(*overrides)
    stacked = stack_runs(members, RunStreams(states), cfg.optimizer,
                         cfg.trainer.fused_optimizers)
    figures = stacked.step()
    for k, single in enumerate(alone):
        for name in (*LOSSES, "d_loss"):
            assert figures[name][k].item() == pytest.approx(single[name].item(), rel=EXACT,
                                                            abs=EXACT), name


def test_a_seed_that_diverges_stops_alone_and_the_others_finish(tmp_path, monkeypatch):
    honest_step = GAN.step

    def step_nan_in_run_1(self):
        figures = honest_step(self)
        if self.steps_done >= 4:
            figures["g_loss"] = figures["g_loss"] * torch.tensor([1.0, float("nan")])
        return figures

    monkeypatch.setattr(GAN, "step", step_nan_in_run_1)
    summaries = train_seeds(make_cfg(*QUIET, "trainer.seeds=[0,1]", "trainer.max_steps=8",
                                     "trainer.log_every=2"), tmp_path)
    assert [(s["status"], s["steps"]) for s in summaries] == [("finished", 8), ("diverged", 4)]
    assert summaries[1]["verdict"] == "diverged" and summaries[1]["verdict_evidence"]["step"] == 4
    assert summaries[0]["verdict"] != "diverged"
    assert len(read_csv(tmp_path / "seed0/metrics.csv")) == 8
    assert len(read_csv(tmp_path / "seed1/metrics.csv")) == 4


def test_a_signal_checkpoints_every_seed_and_the_batch_resumes(tmp_path, monkeypatch):
    import os
    import signal

    honest_step = GAN.step

    def step_then_sigterm(self):
        figures = honest_step(self)
        if self.steps_done == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return figures

    cfg = make_cfg(*RESUMABLE, "trainer.max_steps=6")
    monkeypatch.setattr(GAN, "step", step_then_sigterm)
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        stopped = train_seeds(cfg, tmp_path / "resumed")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert [(s["status"], s["steps"], s["signal"]) for s in stopped] == \
        [("interrupted", 3, "SIGTERM")] * 2
    assert [checkpoint.load(tmp_path / f"resumed/seed{s}/checkpoints/last.pt")["step"]
            for s in (0, 1)] == [3, 3]
    monkeypatch.setattr(GAN, "step", honest_step)
    resumed = train_seeds(cfg, tmp_path / "resumed")
    straight = train_seeds(cfg, tmp_path / "straight")
    assert [s["status"] for s in resumed] == ["finished"] * 2
    for a, b in zip(straight, resumed, strict=True):
        assert a["final_training"] == b["final_training"]
