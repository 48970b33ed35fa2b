"""The comparison of runs: a tidy table (one row per run), pandas group statistics, colours from
the loss configs, a grid of the final metrics present, and the W&B path."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import pandas as pd
import pytest

from gancompare.analysis.compare import (
    colours,
    compare,
    headline_metrics,
    load_local,
    load_wandb,
    plot_final_metrics,
    summary_table,
)
from gancompare.analysis.grouping import grouping

FIGURES = ["learning_curves", "final_metrics", "verdict_heatmap", "samples_mosaic"]


def _write_job(job: Path, overrides: list[str], summary: dict, history: bool = True) -> None:
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (job / "summary.json").write_text(json.dumps(summary))
    if history:
        pd.DataFrame({"step": [1, 2], "d_loss_real": [0.6, 0.5], "d_loss_fake": [0.7, 0.6],
                      "g_loss": [1.0, 1.1], "d_acc_real": [0.7, 0.8],
                      "d_acc_fake": [0.6, 0.7]}).to_csv(job / "metrics.csv", index=False)


@pytest.fixture
def sweep_dir(tmp_path):
    """A hand-made sweep: lsgan × 2 seeds, minimax × 1 seed plus one crashed minimax job."""
    sweep = tmp_path / "sweep"
    values = {("lsgan", 0): (10.0, 0.5), ("lsgan", 1): (14.0, 0.7), ("minimax", 0): (30.0, 0.1)}
    for i, ((loss, seed), (fid, coverage)) in enumerate(values.items()):
        _write_job(sweep / str(i), [f"loss={loss}", f"seed={seed}"], {
            "status": "finished", "verdict": "stable" if fid < 20 else "mode-collapse",
            "loss": loss, "seed": seed, "model": "mlp", "data": "mnist8", "hacks": [],
            "optimizer": "dcgan", "eval": {"fid_mnist_cnn": fid, "coverage_mnist_cnn": coverage},
            "verdict_evidence": {"reason": "r"}})
    _write_job(sweep / "3", ["loss=minimax", "seed=1"], {
        "status": "failed", "verdict": "failed", "error": "RuntimeError: boom",
        "loss": "minimax", "seed": 1, "model": "mlp", "data": "mnist8", "hacks": []},
        history=False)
    return sweep


def test_the_runs_are_one_tidy_row_each_and_the_table_is_their_group_statistics(sweep_dir,
                                                                                  tmp_path):
    runs = load_local(sweep_dir)
    assert len(runs.table) == 4 and set(runs.histories) == {"sweep/0", "sweep/1", "sweep/2"}
    assert {"loss", "optimizer", "hacks", "seed", "verdict", "eval.fid_mnist_cnn"} <= \
        set(runs.table.columns)
    table = summary_table(runs, ["loss"]).set_index("loss")
    assert table.loc["lsgan", "fid_mnist_cnn_mean"] == 12.0
    assert table.loc["lsgan", "fid_mnist_cnn_std"] == pytest.approx(2 ** 0.5 * 2)
    assert (table.loc["lsgan", "fid_mnist_cnn_n"], table.loc["lsgan", "stable"]) == (2, 2)
    assert table.loc["minimax", "fid_mnist_cnn_mean"] == 30.0
    assert (table.loc["minimax", "failed"], table.loc["minimax", "runs"]) == (1, 2)
    assert table.loc["minimax", "mode-collapse"] == 1
    written = compare(runs, tmp_path / "out")
    for name in FIGURES:
        assert tmp_path / "out" / f"{name}.png" in written
        assert (tmp_path / "out" / f"{name}.pdf").stat().st_size > 1000
    markdown = (tmp_path / "out" / "table.md").read_text()
    assert "| lsgan " in markdown and "12 [10, 14]" in markdown  # mean [95 % interval]
    assert "Failed jobs:\n- sweep/3 (minimax, seed 1): RuntimeError: boom" in markdown


def test_runs_are_grouped_by_the_keys_the_sweep_varied_whatever_they_are(tmp_path, capsys):
    """A sweep over optimizer.d.lr (swept_keys.json) is compared by it, not merged into one
    group; a key that varies continuously goes into quantile bins, with a line that says so."""
    sweep = tmp_path / "lr"
    for i, (lr, fid) in enumerate([(1e-4, 10.0), (1e-4, 12.0), (1e-3, 30.0), (1e-3, 34.0)]):
        job = sweep / str(i)
        _write_job(job, [f"optimizer.d.lr={lr}", f"seed={i % 2}"], {
            "status": "finished", "verdict": "stable", "loss": "lsgan", "seed": i % 2,
            "model": "mlp", "data": "mnist8", "hacks": [], "optimizer": "dcgan",
            "eval": {"fid_mnist_cnn": fid}})
        (job / ".hydra" / "config.yaml").write_text(f"optimizer:\n  d:\n    lr: {lr}\n")
    (sweep / "swept_keys.json").write_text('["optimizer.d.lr", "seed"]')
    runs = load_local(sweep)
    table, factors = grouping(runs.table, swept=["optimizer.d.lr", "seed"])
    assert factors == ["config.optimizer.d.lr"]
    summary = summary_table(runs, factors).set_index("config.optimizer.d.lr")
    assert list(summary["fid_mnist_cnn_mean"]) == [11.0, 32.0]
    assert (summary.loc[1e-3, "fid_mnist_cnn_low"], summary.loc[1e-3, "fid_mnist_cnn_high"]) \
        == (30.0, 34.0)
    with pytest.raises(LookupError, match="--by optimizer.g.beta: no run has this key"):
        grouping(runs.table, by=["optimizer.g.beta"])

    many = pd.concat([runs.table] * 3, ignore_index=True)
    many["config.optimizer.d.lr"] = [1e-5 * 1.7 ** i for i in range(len(many))]
    binned, factors = grouping(many, swept=["optimizer.d.lr"], bins=3)
    assert binned[factors[0]].nunique() == 3
    assert "optimizer.d.lr varies continuously (12 values over 12 runs): grouped into 3 " \
        "quantile bins" in capsys.readouterr().out


def test_loss_colours_come_from_the_loss_configs_in_every_invocation(sweep_dir):
    first = colours(load_local(sweep_dir).table)
    assert first == {"lsgan": "#D55E00", "minimax": "#E69F00"}  # conf/loss/*.yaml
    assert colours(load_local(sweep_dir).table) == first


def test_final_metrics_are_a_grid_of_the_metrics_present(sweep_dir, tmp_path):
    runs = load_local(sweep_dir)
    assert [m for m, _, _ in headline_metrics(runs.metrics)] == ["fid_mnist_cnn",
                                                                 "coverage_mnist_cnn"]
    captured = []
    original = matplotlib.figure.Figure.savefig

    def keep(fig, *args, **kwargs):
        captured.append([ax for ax in fig.axes if ax.get_visible()])
        return original(fig, *args, **kwargs)

    matplotlib.figure.Figure.savefig = keep
    try:
        plot_final_metrics(runs, ["loss"], tmp_path)
    finally:
        matplotlib.figure.Figure.savefig = original
    axes = captured[0]
    assert [ax.get_title() for ax in axes] == ["FID (↓ better)", "coverage (↑ better)"]
    names = [t.get_text() for t in axes[0].get_xticklabels()]
    assert names == ["lsgan", "minimax"]


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
            config={"loss": {"name": loss, "colour": "#123456"}, "hacks": {},
                    "model": {"arch": "mlp"}, "data": {"name": "mnist8"}, "seed": seed,
                    "tags": [], "optimizer": {"name": "dcgan"}},
            summary={"status": "finished", "verdict": "stable", "eval/fid_mnist_cnn": fid,
                     "eval/eval_seconds": 3.0},
            history=lambda samples, pandas: history, files=lambda: [FakeFile()])

    api = SimpleNamespace(runs=lambda path, filters: [
        fake_run(0, "lsgan", 0, 5.0), fake_run(1, "lsgan", 1, 7.0)]
        if filters == {"group": "g1"} and path == "me/gancompare" else [])
    runs = load_wandb("me/gancompare", "g1", tmp_path, api=api)
    assert runs.table["eval.fid_mnist_cnn"].tolist() == [5.0, 7.0]
    assert "eval.eval_seconds" not in runs.table and runs.metrics == ["fid_mnist_cnn"]
    assert runs.histories["loss=lsgan,seed=0"]["step"].tolist() == [1, 2]
    assert runs.samples["loss=lsgan,seed=0"].is_file()
    assert colours(runs.table) == {"lsgan": "#123456"}
    assert summary_table(runs, ["loss"]).loc[0, "fid_mnist_cnn_mean"] == 6.0
    with pytest.raises(LookupError, match="no W&B run"):
        load_wandb("me/gancompare", "other", tmp_path, api=api)


def test_a_summary_cut_mid_write_is_named_and_left_out_and_the_rest_compared(sweep_dir,
                                                                            tmp_path, caplog):
    cut = sweep_dir / "1" / "summary.json"
    cut.write_text(cut.read_text()[:40])
    runs = load_local(sweep_dir)
    assert sorted(runs.table["run"]) == ["sweep/0", "sweep/2", "sweep/3"]
    assert f"{cut} is not a readable summary" in caplog.text
    assert compare(runs, tmp_path / "out")  # the figures and table of the others


@pytest.mark.parametrize("make", ["missing", "empty", "no runs"])
def test_the_script_on_a_path_with_no_runs_is_one_line_with_the_fix(make, tmp_path):
    from conftest import run_cli

    path = tmp_path / "sweep"
    if make != "missing":
        path.mkdir()
    if make == "no runs":
        (path / "notes.txt").write_text("nothing here")
    out = run_cli("scripts/compare.py", str(path), timeout=300)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith("error: sweep_dir: ") and str(path) in lines[0]
    assert "Fix: give a sweep directory of `python src/train.py -m ...`" in lines[0]
