"""The results page: tables as mean [95 % interval] beside the published figures, and the
reproduction command end to end on a tiny budget."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
from conftest import run_cli
from omegaconf import OmegaConf

from gancompare.analysis.result_runs import composed, config_identity, train_table
from gancompare.analysis.result_tables import pacgan_table1, tables
from gancompare.analysis.results import metrics_table, plot_curves, reading, report_table


def test_a_table_shows_mean_and_interval_beside_the_published_figure():
    table = pacgan_table1([0, 1, 2])
    runs = pd.DataFrame({
        "data": ["ring8"] * 3 + ["grid25"] * 3, "variant": ["PacGAN2"] * 3 + ["GAN"] * 3,
        "verdict": ["stable", "stable", "mode-collapse", "stable", "stable", "stable"],
        "eval.mixture_modes": [6.0, 7.0, 8.0, 20.0, 22.0, 21.0],
        "eval.mixture_high_quality": [0.9, 0.8, 0.7, 0.5, 0.5, 0.5],
        "eval.mixture_reverse_kl": [0.1, 0.2, 0.3, 1.0, 1.0, math.inf]})
    shown = metrics_table(runs, table).set_index("group")
    ring = shown.loc["ring8 · PacGAN2"]
    assert ring["runs"] == 3 and ring["verdicts"] == "2 stable, 1 mode-collapse"
    # percentile bootstrap of 3 values: a resample of three 6s has chance 1 / 27 = 3.7 %,
    # more than the 2.5 % tail, so the interval is the range (3 seeds give no more)
    assert ring["modes"] == "7.0 [6.0, 8.0]"
    assert ring["high quality %"] == "80.0 [70.0, 90.0]"  # shown in percent
    assert ring["modes (published)"] == "7.9 ± 0.1"  # Lin et al. 2018, Table 1
    # an infinite reverse KL is left out of the mean and counted beside it
    assert shown.loc["grid25 · GAN", "reverse KL"] == "1.00 [1.00, 1.00] (1 of 3 infinite)"
    assert shown.loc["grid25 · GAN", "reverse KL (published)"] == "0.70 ± 0.07"


def test_the_automatic_reading_compares_groups_within_one_data_set():
    runs = pd.DataFrame({
        "data": ["ring8", "ring8", "grid25", "grid25"], "variant": ["GAN", "PacGAN2"] * 2,
        "verdict": ["stable", "mode-collapse", "stable", "stable"],
        "eval.mixture_modes": [8.0, 6.0, 20.0, 24.0],
        "eval.mixture_high_quality": [0.9, 0.5, 0.1, 0.2],
        "eval.mixture_reverse_kl": [0.1, 0.3, float("inf"), 0.5]})
    text = reading(runs, pacgan_table1([0]))
    assert "Judged stable: ring8 · GAN 100%, ring8 · PacGAN2 0%," in text
    assert "Best modes on ring8: ring8 · GAN (8.0; worst ring8 · PacGAN2, 6.0)." in text
    assert "Best modes on grid25: grid25 · PacGAN2 (24.0; worst grid25 · GAN, 20.0)." in text
    assert "Best reverse KL on ring8: ring8 · GAN (0.10; worst ring8 · PacGAN2, 0.30)." in text
    # groups that do not name the data (a setting column) still compare within one data set
    table = dataclasses.replace(pacgan_table1([0]), by=["setting"])
    text = reading(runs.assign(setting=runs["data"] + "_" + runs["variant"]), table)
    assert "Best modes on ring8: ring8_GAN (8.0; worst ring8_PacGAN2, 6.0)." in text
    assert "Best modes on grid25: grid25_PacGAN2 (24.0; worst grid25_GAN, 20.0)." in text


def test_curves_need_two_evaluations_and_one_alone_draws_none(tmp_path):
    table = pacgan_table1([0, 1])
    names = ["ring8_pack1_s0", "ring8_pack1_s1"]
    frame = pd.DataFrame({"run": names, "data": "ring8", "variant": "GAN"})
    def history(steps):
        return pd.DataFrame({"step": steps, "epoch/mixture_modes": [8.0] * len(steps),
                             "epoch/mixture_high_quality": [0.5] * len(steps)})

    one = SimpleNamespace(table=frame, histories={n: history([1000]) for n in names})
    assert plot_curves(one, table, tmp_path) is None and not list(tmp_path.iterdir())
    two = SimpleNamespace(table=frame, histories={n: history([500, 1000]) for n in names})
    path = plot_curves(two, table, tmp_path)
    assert path == tmp_path / "curves.png" and path.stat().st_size > 1_000


def test_a_table_asking_for_evaluations_gets_curves_from_runs_shorter_than_an_epoch(tmp_path):
    """Stacked MNIST's table asks for 4 evaluations a run: at 1,000 steps (one epoch) that is
    one every 250 steps. Here 2 in a 6-step run of ring8 (whose epoch is 1,000 steps)."""
    assert tables([0])["stacked-mnist"].evaluations == 4
    table = dataclasses.replace(pacgan_table1([0]), runs={
        "ring8_pack1_s0": pacgan_table1([0]).runs["ring8_pack1_s0"]}, evaluations=2)
    train_table(table, tmp_path / "out", 6, jobs=1, archive=tmp_path / "archive")
    run = tmp_path / "out" / "pacgan-table1" / "steps6" / "ring8_pack1_s0"
    history = pd.read_csv(run / "metrics.csv")
    assert history.dropna(subset=["epoch/mixture_modes"])["step"].tolist() == [3, 6]
    section = report_table(table, tmp_path / "out", 6, tmp_path / "docs").read_text()
    assert "(results/pacgan-table1/curves.png)" in section


def test_groups_follow_the_order_the_table_defines():
    table = tables([0, 1])["losses-mixtures"]
    names = list(table.runs)[::-1]  # as a directory listing might give them
    runs = table.with_columns(pd.DataFrame({
        "run": [f"out/losses-mixtures/steps4000/{n}" for n in names],
        "data": [n.split("_")[0] for n in names], "loss": [n.split("_")[1] for n in names],
        "verdict": "stable"}))
    assert list(runs["run"].str.rsplit("/", n=1).str[-1]) == list(table.runs)
    groups = list(metrics_table(runs, table)["group"])
    assert groups[:2] == ["ring8 · minimax", "ring8 · non-saturating"] and len(groups) == 12
    assert groups[6].startswith("grid25 · ") and runs["setting"].iloc[0] == "ring8_minimax"


def test_every_table_names_runs_of_the_project_configs():
    for name, table in tables([0]).items():
        assert table.runs, name
        for overrides in table.runs.values():
            assert overrides[-1] == "seed=0"
    assert len(tables()["pacgan-table1"].runs) == 60  # 2 data × 3 packings × 10 trials
    trend = tables()["pacgan-trend"]  # the same 6 variants, 3 seeds, 20k steps
    assert len(trend.runs) == 18 and trend.default_steps == 20_000


def test_reproduce_trains_a_tiny_table_and_writes_its_section_and_figures(tmp_path):
    args = ["scripts/reproduce.py", "pacgan-table1", "--only", "ring8_pack[12]_s0", "--steps",
            "6", "--out", str(tmp_path / "out"), "--docs", str(tmp_path / "docs"),
            "--archive", str(tmp_path / "archive")]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    runs = tmp_path / "out" / "pacgan-table1" / "steps6"
    for run in ("ring8_pack1_s0", "ring8_pack2_s0"):
        summary = json.loads((runs / run / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["steps"] == 6
        assert summary["model"] == "pacgan-mlp" and 0 <= summary["eval"]["mixture_modes"] <= 8
    section = (tmp_path / "docs" / "results" / "pacgan-table1.md").read_text()
    assert "| ring8 · GAN " in section and "| ring8 · PacGAN2 " in section
    assert "98.2 ± 0.2" in section and "95.6 ± 2.0" in section  # the published column
    assert "2 of 2 finished" in section and "6 steps per run (0.0015 % of the published" \
        in section
    assert "curves.png" not in section  # one evaluation per run at 6 steps: no curve
    for figure in ("final_metrics", "verdict_heatmap", "samples_mosaic"):
        png = tmp_path / "docs" / "results" / "pacgan-table1" / f"{figure}.png"
        assert png.is_file() and 1_000 < png.stat().st_size < 250_000, figure
        assert f"(results/pacgan-table1/{figure}.png)" in section
    page = (tmp_path / "docs" / "results.md").read_text()
    assert section in page and "`python scripts/reproduce.py stacked-mnist`" in page  # pending

    stamp = (runs / "ring8_pack1_s0" / "summary.json").stat().st_mtime_ns
    discussion = tmp_path / "docs" / "results" / "pacgan-table1-discussion.md"
    discussion.write_text("Why ours differ: the budget.\n")
    reading = tmp_path / "docs" / "results" / "summary.md"
    reading.write_text("## What the tables say\n\nPacking helps.\n")
    again = run_cli(*args)  # finished runs are kept, the section rewritten
    assert again.returncode == 0 and "0 of 2 runs to train" in again.stdout
    assert (runs / "ring8_pack1_s0" / "summary.json").stat().st_mtime_ns == stamp
    rewritten = (tmp_path / "docs" / "results" / "pacgan-table1.md").read_text()
    assert "\nWhy ours differ: the budget.\n" in rewritten  # the hand-written part
    assert discussion.is_file()
    page = (tmp_path / "docs" / "results.md").read_text()
    assert page.index("## What the tables say\n\nPacking helps.\n") < page.index(rewritten)

    # Another machine: no run directories, only the committed archive of the finished runs
    archived = tmp_path / "archive" / "pacgan-table1" / "steps6" / "ring8_pack1_s0"
    assert sorted(p.name for p in archived.iterdir()) == [
        ".hydra", "config.yaml", "metrics.csv.gz", "samples", "summary.json"]
    assert sum(f.stat().st_size for f in archived.rglob("*") if f.is_file()) < 100_000
    shutil.rmtree(tmp_path / "out")
    restored = run_cli(*args)
    assert restored.returncode == 0 and "0 of 2 runs to train" in restored.stdout
    assert restored.stdout.count("restored from") == 2
    assert (tmp_path / "docs" / "results" / "pacgan-table1.md").read_text() == rewritten

    # pacgan-trend's ring8 runs at the same budget are those same runs: copied, not trained again
    trend = run_cli(*[a.replace("pacgan-table1", "pacgan-trend") for a in args])
    assert trend.returncode == 0 and "0 of 2 runs to train" in trend.stdout, trend.stderr[-2000:]
    copy = tmp_path / "out" / "pacgan-trend" / "steps6" / "ring8_pack1_s0"
    assert (copy / "reused_from.txt").read_text().strip() == str(runs / "ring8_pack1_s0")
    assert (copy / "summary.json").read_text() == (runs / "ring8_pack1_s0" / "summary.json")\
        .read_text()
    trend_section = (tmp_path / "docs" / "results" / "pacgan-trend.md").read_text()
    assert "2 of 2 finished" in trend_section and "not counted: 2 of the runs" in trend_section
    # ... and archived, for a machine that has no twin to copy from
    assert (tmp_path / "archive" / "pacgan-trend" / "steps6" / "ring8_pack1_s0" / "summary.json")\
        .read_text() == (runs / "ring8_pack1_s0" / "summary.json").read_text()

    # a report on fewer runs than the directory holds shows those runs only
    one = run_cli(*args[:3], "ring8_pack1_s0", *args[4:], "--report-only")
    assert one.returncode == 0, one.stderr[-2000:]
    section = (tmp_path / "docs" / "results" / "pacgan-table1.md").read_text()
    assert "1 of 1 finished" in section and "| ring8 · PacGAN2 " not in section


def test_configs_that_differ_only_in_how_a_run_is_executed_are_one_run():
    mnist8 = tables([0])
    paper, shared = mnist8["losses-mnist8"].runs, mnist8["losses-mnist8-shared"].runs

    def identity(overrides: list[str], threads: int = 1) -> str:
        return config_identity(composed([*overrides, f"trainer.threads={threads}",
                                         "logger.wandb.mode=offline", "hydra.run.dir=x"]))

    # minimax's paper optimiser is the shared one; WGAN-GP's (5 D steps, Adam 1e-4) is not
    assert identity(paper["minimax_s0"]) == identity(shared["minimax_s0"], threads=2)
    assert identity(paper["wgan-gp_s0"]) != identity(shared["wgan-gp_s0"])
    assert identity(paper["minimax_s0"]) != identity(["loss=minimax", "data=mnist8", "seed=1"])

    # a run saved before `model.networks` and `data.loader` named their units is still the twin
    saved = OmegaConf.to_container(composed(paper["minimax_s0"]), resolve=False)
    saved["model"]["arch"] = saved["model"].pop("name")
    del saved["model"]["networks"], saved["data"]["loader"]
    saved["loss"]["objective"] = "gancompare.losses.minimax"
    assert config_identity(OmegaConf.create(saved)) == identity(paper["minimax_s0"])
    saved["model"]["arch"] = "mlp"
    assert config_identity(OmegaConf.create(saved)) != identity(paper["minimax_s0"])


def test_an_unknown_table_or_an_empty_selection_is_refused():
    unknown = run_cli("scripts/reproduce.py", "table9")
    assert unknown.returncode == 2 and "invalid choice: 'table9'" in unknown.stderr
    empty = run_cli("scripts/reproduce.py", "scenarios", "--only", "nothing", "--report-only")
    assert empty.returncode == 2 and "matches no run of scenarios" in empty.stderr


def test_batch_seeds_trains_a_setting_s_seeds_in_one_process_and_resumes_it(tmp_path):
    args = ["scripts/reproduce.py", "pacgan-table1", "--only", "ring8_pack2", "--seeds", "0", "1",
            "--steps", "6", "--batch-seeds", "--out", str(tmp_path / "out"), "--docs",
            str(tmp_path / "docs"), "--archive", str(tmp_path / "archive")]
    runs = tmp_path / "out" / "pacgan-table1" / "steps6"
    runs.mkdir(parents=True)  # a link left by a batch stopped before its process started
    (runs / "ring8_pack2_s0").symlink_to("../batches-steps6/ring8_pack2_s0/seed0")
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "2 of 2 runs to train" in first.stdout and "as 1 processes" in first.stdout
    batch = tmp_path / "out" / "pacgan-table1" / "batches-steps6" / "ring8_pack2_s0-1"
    for seed in (0, 1):
        run = runs / f"ring8_pack2_s{seed}"
        assert run.is_symlink() and run.resolve() == batch / f"seed{seed}"
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["steps"] == 6
        assert summary["seed"] == seed and summary["runs_in_process"] == 2
    section = (tmp_path / "docs" / "results" / "pacgan-table1.md").read_text()
    assert "2 of 2 finished" in section and "| ring8 · PacGAN2 |      2 |" in section

    (runs / "ring8_pack2_s1" / "summary.json").unlink()  # as if stopped before the end
    again = run_cli(*args)  # the batch resumes as it was started, from its checkpoints
    assert again.returncode == 0, again.stderr[-2000:]
    assert "1 of 2 runs to train" in again.stdout and "2 of 2 runs done" in again.stdout
    resumed = json.loads((runs / "ring8_pack2_s1" / "summary.json").read_text())
    assert resumed["steps"] == 6 and resumed["resumed_from_step"] == 6


def test_a_restored_run_archives_again_to_the_same_bytes(tmp_path):
    from PIL import Image

    from gancompare.analysis.result_runs import archive_run, restore_run

    # a committed grid, as `restore_run` puts it back into a run directory
    study = Path(__file__).parents[1] / "results/runs/study-ring8"
    archived_grid = next(study.rglob("samples/epoch_008.png"))
    archive = tmp_path / "archive"
    (archive / "samples").mkdir(parents=True)
    shutil.copyfile(archived_grid, archive / "samples" / "epoch_008.png")
    (archive / "summary.json").write_text(json.dumps({"status": "finished"}))
    restore_run(archive, tmp_path / "restored")
    archive_run(tmp_path / "restored", archive)
    assert (archive / "samples" / "epoch_008.png").read_bytes() == archived_grid.read_bytes()

    # a grid straight from training is still made small
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"status": "finished"}))
    with Image.open(archived_grid) as image:
        image.convert("RGB").resize((600, 600)).save(run / "samples" / "epoch_001.png")
    archive_run(run, tmp_path / "fresh")
    with Image.open(tmp_path / "fresh" / "samples" / "epoch_001.png") as small:
        assert small.mode == "P" and small.size == (200, 200)
