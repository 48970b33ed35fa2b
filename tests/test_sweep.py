"""Multirun sweeps through the launchers: one run directory and W&B run per job, failures
recorded, and the comparison of what they wrote."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, run_cli

from gancompare.run.machine import machine

# Small, fast jobs: mlp on mnist8, a few steps, a light final evaluation.
TINY_JOB = ["debug=fast", "model=mlp", "trainer.log_every=2", "trainer.batch_size=32",
            "eval.final_samples=200", "eval.reference_samples=600", "eval.prdc_samples=200",
            "eval.kid_subsets=10", "logger.wandb.mode=${oc.env:WANDB_MODE,disabled}"]
FIGURES = ["learning_curves", "final_metrics", "verdict_heatmap", "samples_mosaic"]


def sweep(tmp_path: Path, *args: str, env: dict | None = None) -> tuple[Path, str]:
    sweep_dir = tmp_path / "sweep"
    out = run_cli("src/train.py", "-m", *TINY_JOB, *args, f"hydra.sweep.dir={sweep_dir}",
                  env=env, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return sweep_dir, out.stdout + out.stderr


def compare_sweep(sweep_dir: Path, out_dir: Path) -> subprocess.CompletedProcess:
    out = run_cli("scripts/compare.py", str(sweep_dir), "--out", str(out_dir), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def summaries(sweep_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/summary.json"))]


def check_comparison(sweep_dir: Path, out_dir: Path) -> tuple[pd.DataFrame, str]:
    """Run scripts/compare.py on the sweep and check every output against the runs."""
    printed = compare_sweep(sweep_dir, out_dir).stdout
    for name in FIGURES:
        for suffix in ("pdf", "png"):
            assert (out_dir / f"{name}.{suffix}").stat().st_size > 1000, f"{name}.{suffix}"
    table = pd.read_csv(out_dir / "table.csv")
    assert (out_dir / "table.md").read_text().split("\n\n", 1)[1].startswith("| loss ")
    assert len(pd.read_csv(out_dir / "runs.csv")) == len(summaries(sweep_dir))
    # The table's numbers are the runs' own summaries, averaged over seeds.
    runs = summaries(sweep_dir)
    for _, row in table.iterrows():
        members = [s for s in runs if s["loss"] == row["loss"] and s["status"] != "failed"]
        for metric in ("fid_mnist_cnn", "kid_mnist_cnn", "coverage_mnist_cnn"):
            values = [s["eval"][metric] for s in members]
            if not values:
                assert row["failed"] == row["runs"]
                continue
            assert row[f"{metric}_mean"] == pytest.approx(sum(values) / len(values), rel=1e-12)
        assert row["runs"] == sum(s["loss"] == row["loss"] for s in runs)
    return table, printed


def test_a_multirun_with_the_basic_launcher_gives_one_wandb_run_per_job(tmp_path):
    sweep_dir, log = sweep(tmp_path, "loss=non-saturating,lsgan", "seed=0,1",
                           env={"WANDB_MODE": "offline"})
    jobs = sorted(p for p in sweep_dir.iterdir() if (p / "summary.json").is_file())
    assert len(jobs) == 4 and all(s["status"] == "finished" for s in summaries(sweep_dir))
    assert "4 jobs, 4 finished" in log and (sweep_dir / "sweep_report.md").is_file()
    wandb_cli = ROOT / ".venv" / "bin" / "wandb"
    names = set()
    for job in jobs:
        runs = list((job / "wandb").glob("offline-run-*"))
        assert len(runs) == 1
        records = subprocess.run([str(wandb_cli), "leet", "inspect", "--json", str(runs[0])],
                                 capture_output=True, text=True, check=True).stdout
        run = next(json.loads(line)["run"] for line in records.splitlines()
                   if '"type":"run"' in line)
        assert run["run_group"] == sweep_dir.name and run["job_type"] == "train"
        names.add(run["display_name"])
    assert names == {f"loss={loss},seed={seed}" for loss in ("non-saturating", "lsgan")
                     for seed in (0, 1)}
    table, _ = check_comparison(sweep_dir, tmp_path / "comparison")
    assert list(table["loss"]) == ["lsgan", "non-saturating"]


def test_a_multirun_with_joblib_runs_in_parallel_and_compares(tmp_path):
    sweep_dir, log = sweep(tmp_path, "loss=minimax,wgan-gp", "seed=0,1",
                           "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert "Joblib" in log or "joblib" in log
    runs = summaries(sweep_dir)
    assert len(runs) == 4 and all(s["status"] == "finished" for s in runs)
    assert all(s["torch_threads"] == 1 for s in runs)  # 2 cores shared by 2 jobs, not 2 each
    assert {s["machine"] for s in runs} == {machine()}  # each run says where it trained
    check_comparison(sweep_dir, tmp_path / "comparison")


def test_a_failing_job_does_not_stop_the_sweep_and_shows_as_failed(tmp_path):
    # hacks=[noisy] means nothing for a critic: the wasserstein jobs are refused.
    sweep_dir, log = sweep(tmp_path, "loss=lsgan,wasserstein", "seed=0", "hacks=[noisy]")
    runs = summaries(sweep_dir)
    assert sorted(s["status"] for s in runs) == ["failed", "finished"]
    assert "1 failed" in log
    failed = [s for s in runs if s["status"] == "failed"]
    assert all("takes no labels" in s["error"] for s in failed)
    table, printed = check_comparison(sweep_dir, tmp_path / "comparison")
    row = table.set_index("loss").loc["wasserstein"]
    assert row["runs"] == 1 and row["failed"] == 1 and row["stable"] == 0
    assert "Failed jobs:" in (tmp_path / "comparison" / "table.md").read_text()
    assert "1 failed" in printed


def test_submitit_local_launcher_runs_the_jobs(tmp_path):
    sweep_dir, _ = sweep(tmp_path, "loss=non-saturating", "seed=0",
                         "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10")
    runs = summaries(sweep_dir)
    assert len(runs) == 1 and all(s["status"] == "finished" for s in runs)
    assert any((sweep_dir / ".submitit").iterdir())


