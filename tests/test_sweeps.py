"""Multirun sweeps through the launchers, and the comparison of a sweep."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from conftest import ROOT, run_cli

from gancompare.compare import load_local, load_wandb, summary_table

# Small, fast jobs: mlp on mnist8, a few steps, a light final evaluation.
TINY_JOB = ["model=mlp", "trainer.max_steps=3", "trainer.batch_size=32", "trainer.log_every=2",
            "eval.every_epoch=false", "eval.final_samples=200", "eval.reference_samples=600",
            "eval.prdc_samples=200", "trainer.progress_bar=false"]
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
    assert (out_dir / "table.md").read_text().startswith("| group | runs |")
    # The table's numbers are the runs' own summaries, averaged over seeds.
    runs = summaries(sweep_dir)
    for _, row in table.iterrows():
        members = [s for s in runs if s["loss"] == row["group"] and s["status"] != "failed"]
        for metric in ("fid_mnist_cnn", "coverage_mnist_cnn", "precision_mnist_cnn"):
            values = [s["eval"][metric] for s in members]
            if values:
                assert row[f"{metric}_mean"] == pytest.approx(sum(values) / len(values),
                                                              rel=1e-12)
        assert row["runs"] == sum(s["loss"] == row["group"] for s in runs)
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
    assert list(table["group"]) == ["non-saturating", "lsgan"]


def test_a_multirun_with_joblib_runs_in_parallel_and_compares(tmp_path):
    sweep_dir, log = sweep(tmp_path, "loss=minimax,wgan-gp", "seed=0,1",
                           "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert "Joblib" in log or "joblib" in log
    runs = summaries(sweep_dir)
    assert len(runs) == 4 and all(s["status"] == "finished" for s in runs)
    assert all(s["torch_threads"] == 1 for s in runs)  # 2 cores shared by 2 jobs, not 2 each
    check_comparison(sweep_dir, tmp_path / "comparison")


def test_a_failing_job_does_not_stop_the_sweep_and_shows_as_failed(tmp_path):
    # hacks=[noisy] means nothing for a critic: the wasserstein jobs are refused.
    sweep_dir, log = sweep(tmp_path, "loss=lsgan,wasserstein", "seed=0", "hacks=[noisy]")
    runs = summaries(sweep_dir)
    assert sorted(s["status"] for s in runs) == ["failed", "finished"]
    assert "1 failed" in log
    failed = [s for s in runs if s["status"] == "failed"]
    assert all("critic without labels" in s["error"] for s in failed)
    table, printed = check_comparison(sweep_dir, tmp_path / "comparison")
    row = table.set_index("group").loc["wasserstein"]
    assert row["runs"] == 1 and row["failed"] == 1 and row["stable"] == 0
    assert "Failed jobs:" in (tmp_path / "comparison" / "table.md").read_text()
    assert "1 failed" in printed


def test_submitit_local_launcher_runs_the_jobs(tmp_path):
    sweep_dir, _ = sweep(tmp_path, "loss=non-saturating", "seed=0",
                         "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10")
    runs = summaries(sweep_dir)
    assert len(runs) == 1 and all(s["status"] == "finished" for s in runs)
    assert any((sweep_dir / ".submitit").iterdir())


def test_the_comparison_is_built_from_the_summaries(tmp_path):
    """compare.py on a hand-made sweep: grouping, means, failed runs, no figure crash."""
    from gancompare.compare import compare

    sweep_dir = tmp_path / "sweep"
    values = {("lsgan", 0): 10.0, ("lsgan", 1): 14.0, ("minimax", 0): 30.0}
    for i, ((loss, seed), fid) in enumerate(values.items()):
        job = sweep_dir / str(i)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- loss={loss}\n- seed={seed}\n")
        (job / "summary.json").write_text(json.dumps({
            "status": "finished", "verdict": "stable" if fid < 20 else "mode-collapse",
            "loss": loss, "seed": seed, "model": "mlp", "data": "mnist8", "hacks": [],
            "eval": {"fid_mnist_cnn": fid}, "verdict_evidence": {"reason": "r"}}))
        pd.DataFrame({"step": [1, 2], "d_loss_real": [0.6, 0.5], "d_loss_fake": [0.7, 0.6],
                      "g_loss": [1.0, 1.1], "d_acc_real": [0.7, 0.8],
                      "d_acc_fake": [0.6, 0.7]}).to_csv(job / "metrics.csv", index=False)
    crashed = sweep_dir / "3"
    (crashed / ".hydra").mkdir(parents=True)
    (crashed / ".hydra" / "overrides.yaml").write_text("- loss=minimax\n- seed=1\n")
    (crashed / "summary.json").write_text(json.dumps({
        "status": "failed", "verdict": "failed", "error": "RuntimeError: boom", "loss": "minimax",
        "seed": 1, "model": "mlp", "data": "mnist8", "hacks": []}))
    runs = load_local(sweep_dir)
    compare(runs, tmp_path / "out")
    table = summary_table(runs, ["loss"]).set_index("group")
    assert table.loc["lsgan", "fid_mnist_cnn_mean"] == 12.0
    assert table.loc["lsgan", "fid_mnist_cnn_std"] == pytest.approx(2 ** 0.5 * 2)
    assert table.loc["minimax", "fid_mnist_cnn_mean"] == 30.0
    assert (table.loc["minimax", "failed"], table.loc["minimax", "runs"]) == (1, 2)
    assert table.loc["lsgan", "stable"] == 2
    for name in FIGURES:
        assert (tmp_path / "out" / f"{name}.pdf").is_file()


def test_the_comparison_reads_runs_from_the_wandb_api(tmp_path):
    """The W&B path with the API replaced by a stand-in: same records as a local sweep."""

    class FakeFile:
        name = "media/images/samples_45_abc.png"

        def download(self, root, replace):
            Path(root, self.name).parent.mkdir(parents=True, exist_ok=True)
            Path(root, self.name).write_bytes(b"")

    def fake_run(i, loss, seed, fid):
        history = pd.DataFrame({"_step": [1, 2], "g_loss": [1.0, 0.9], "d_loss_real": [0.5, 0.6],
                                "d_loss_fake": [0.6, 0.6], "d_acc_real": [0.8, 0.7],
                                "d_acc_fake": [0.7, 0.7]})
        return SimpleNamespace(
            id=f"r{i}", name=f"loss={loss},seed={seed}", state="finished",
            config={"loss": {"name": loss}, "hacks": {}, "model": {"arch": "mlp"},
                    "data": {"name": "mnist8"}, "seed": seed, "tags": []},
            summary={"status": "finished", "verdict": "stable", "eval/fid_mnist_cnn": fid,
                     "eval/eval_seconds": 3.0},
            history=lambda samples, pandas: history, files=lambda: [FakeFile()])

    api = SimpleNamespace(runs=lambda path, filters: [
        fake_run(0, "lsgan", 0, 5.0), fake_run(1, "lsgan", 1, 7.0)]
        if filters == {"group": "g1"} and path == "me/gancompare" else [])
    runs = load_wandb("me/gancompare", "g1", tmp_path, api=api)
    assert [r.final for r in runs] == [{"fid_mnist_cnn": 5.0}, {"fid_mnist_cnn": 7.0}]
    assert runs[0].history["step"].tolist() == [1, 2] and runs[0].samples.is_file()
    assert summary_table(runs, ["loss"]).loc[0, "fid_mnist_cnn_mean"] == 6.0
    with pytest.raises(LookupError, match="no W&B run"):
        load_wandb("me/gancompare", "other", tmp_path, api=api)
