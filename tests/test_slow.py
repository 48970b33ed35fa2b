"""End-to-end checks that train for minutes: `pytest -m slow` (or `make test-slow`)."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("experiment, verdict", [
    ("stable", "stable"), ("mode-collapse", "mode-collapse"),
    ("convergence-failure", "convergence-failure"), ("aggressive-adam", "convergence-failure")])
def test_the_four_scenarios_get_their_verdicts(experiment, verdict, tmp_path):
    """The SPEC scenarios at full length (dcgan28, mnist8, 450 steps) on CPU."""
    out = run_cli("src/train.py", f"experiment={experiment}", "trainer.progress_bar=false",
                  f"hydra.run.dir={tmp_path}", timeout=3600)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 450 and summary["status"] == "finished"
    assert summary["verdict"] == verdict, summary["verdict_evidence"]
    assert f"Verdict: {verdict}" in out.stdout
    if experiment == "stable":
        final = summary["final_training"]  # the mean of the last 45 steps
        assert 0.5 <= final["d_loss_real"] <= 0.8 and 0.5 <= final["d_loss_fake"] <= 0.8
        assert 0.5 <= final["g_loss"] <= 2.0


JOB = ["model=mlp", "trainer.batch_size=64", "eval.epoch_samples=500", "eval.final_samples=1000",
       "eval.reference_samples=2000", "trainer.progress_bar=false"]


def test_a_requeued_job_resumes_into_the_same_run_directory_and_wandb_run(tmp_path):
    """submitit's local executor does what SLURM does on a time limit: USR2 before the limit,
    the launcher's checkpoint(), exit with the requeue code, a fresh process with the same job.
    Each attempt gets 30 s here (USR2 30 s before a 1-minute limit) and submitit requeues at
    most 3 times, neither settable for the local executor. So the job's length comes from this
    machine's measured speed, in the same launcher: about 35 s of training, where an attempt
    trains about 20 s, so two or three attempts on any machine (a fixed length finished in one
    attempt on a fast CPU and timed out 4 times on a loaded one)."""
    launcher = ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=1"]
    calibration = tmp_path / "calibration"
    out = run_cli("src/train.py", "-m", *JOB, *launcher, "trainer.epochs=3",
                  f"hydra.sweep.dir={calibration}", env={"WANDB_MODE": "offline"}, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    timing = json.loads((calibration / "0" / "summary.json").read_text())
    assert timing["resumed_from_step"] == 0, "3 epochs already needed a requeue: a slow machine"
    seconds_per_epoch = (timing["wall_time_s"] - (timing["startup_s"] or 0)) / 3
    epochs = min(60, max(3, round(35 / seconds_per_epoch)))
    sweep_dir = tmp_path / "sweep"
    out = run_cli("src/train.py", "-m", *JOB, *launcher, f"trainer.epochs={epochs}",
                  f"hydra.sweep.dir={sweep_dir}", env={"WANDB_MODE": "offline"}, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    job = sweep_dir / "0"
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == epochs * (5851 // 64)
    assert summary["resumed_from_step"] > 0  # the last attempt started from a checkpoint
    with open(job / "metrics.csv", newline="") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == list(range(1, epochs * (5851 // 64) + 1))  # every step once, none twice
    runs = sorted((job / "wandb").glob("offline-run-*"))
    assert len(runs) >= 2  # one W&B file per attempt ...
    run_id = (job / "wandb_id").read_text().strip()
    assert all(r.name.endswith(run_id) for r in runs)  # ... all of one W&B run
