"""A search's studies as figures and tables (analysis/studies.py), from fixed trial tables."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from gancompare.analysis.studies import load_search, search_table, write_search

# Two studies of 4 trials (FID, lower is better); hinge's trial 3 diverged (scored +inf).
TRIALS = {
    "hinge": [(20.0, 1e-4, "stable"), (40.0, 1e-3, "mode-collapse"), (10.0, 3e-4, "stable"),
              (math.inf, 1e-2, "diverged")],
    "lsgan": [(30.0, 1e-4, "stable"), (50.0, 1e-3, "convergence-failure"),
              (60.0, 3e-4, "convergence-failure"), (35.0, 1e-2, "stable")],
}


@pytest.fixture
def search_dir(tmp_path):
    for loss, trials in TRIALS.items():
        study = tmp_path / f"lucic-wide-{loss}-mnist8-mlp"
        study.mkdir()
        (study / "study.json").write_text(json.dumps({
            "study": study.name, "setting": [f"loss={loss}"], "label": loss, "metric": "fid",
            "direction": "minimize", "searched": ["search.lr"], "n_trials": 4}))
        pd.DataFrame([{"number": i, "value": v, "params_search.lr": lr, "state": "COMPLETE",
                       "user_attrs_status": "diverged" if v == math.inf else "finished",
                       "user_attrs_verdict": verdict}
                      for i, (v, lr, verdict) in enumerate(trials)]
                     + [{"number": 4, "value": None, "params_search.lr": 1e-5,
                         "state": "RUNNING"}]).to_csv(study / "trials.csv", index=False)
    return tmp_path


def test_the_search_table_counts_every_trial_and_scores_the_diverged_one_worst(search_dir):
    search = load_search(search_dir)
    assert search.studies == ["hinge", "lsgan"] and search.searched == ["search.lr"]
    assert len(search.trials) == 8  # a trial still running is not counted yet
    hinge = search.trials[search.trials["setting"] == "hinge"]
    assert list(hinge["score"]) == [20.0, 40.0, 10.0, 60.0]  # +inf -> the worst finite FID
    table = search_table(search).set_index("study")
    assert table.loc["hinge", "trials"] == 4 and table.loc["hinge", "scored"] == 3
    assert table.loc["hinge", "stable share"].value == 0.5
    assert table.loc["lsgan", "best"].value == 30.0
    # E[best of 1] is the mean; best of 4 of 4 is the best; hinge's sorted 10, 20, 40, 60
    assert table.loc["hinge", "E[best of 1]"].value == pytest.approx(32.5)
    # best of 2: the i-th best with weight C(4 - i, 1) / C(4, 2) = 3, 2, 1, 0 sixths
    assert table.loc["hinge", "E[best of 2]"].value == pytest.approx((3 * 10 + 2 * 20 + 40) / 6)
    assert "E[best of 4]" not in table  # the whole study: that is `best`


def test_the_figures_and_the_pairwise_table_are_written(search_dir, tmp_path):
    search = load_search(search_dir)
    written = write_search(search, tmp_path / "out")
    for name in ("search_scores", "budget_curve", "stability_map"):
        assert (tmp_path / "out" / f"{name}.png").stat().st_size > 5000, name
        assert tmp_path / "out" / f"{name}.pdf" in written
    pairwise = (tmp_path / "out" / "pairwise.md").read_text()
    # hinge 20, 40, 10, 60 against lsgan 30, 50, 60, 35: wins 4 + 2 + 4 + 0.5 (60 = 60) of 16
    assert "| hinge |                   | 0.66 [" in pairwise
    assert "| lsgan | 0.34 [" in pairwise
    shown = (tmp_path / "out" / "search_table.md").read_text()
    # one precision per column: three digits of the typical FID, two places for the share
    row = next(line for line in shown.splitlines() if line.startswith("| hinge"))
    assert [c.strip() for c in row.strip("|").split("|")][:6] == [
        "hinge", "4", "3", "0.50 [0.00, 1.00]", "10.0", "32.5 [15.0, 50.0]"]


def test_a_sweep_that_is_not_a_search_has_no_studies(tmp_path):
    assert load_search(tmp_path) is None


def test_a_trial_rejudged_in_its_run_directory_gives_its_new_verdict(search_dir):
    table_file = search_dir / "lucic-wide-hinge-mnist8-mlp" / "trials.csv"
    table = pd.read_csv(table_file).assign(user_attrs_run=[0, 1, 2, 3, 4])
    table.to_csv(table_file, index=False)
    run = search_dir / "lucic-wide-hinge-mnist8-mlp" / "trial1"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"status": "finished", "verdict": "stable"}))
    verdicts = load_search(search_dir).trials.set_index(["setting", "number"])["verdict"]
    assert verdicts[("hinge", 1)] == "stable"  # the summary's, not the sweeper's mode-collapse
    assert verdicts[("hinge", 0)] == "stable" and verdicts[("hinge", 3)] == "diverged"


def test_a_penalty_searched_for_one_loss_only_is_drawn_on_a_log_axis_for_it(search_dir,
                                                                            tmp_path):
    # WGAN-GP's trials draw regularizer.gp.weight from 10^U[-1, 2]; the other loss's do not
    table_file = search_dir / "lucic-wide-lsgan-mnist8-mlp" / "trials.csv"
    table = pd.read_csv(table_file)
    table["params_regularizer.gp.weight"] = [0.1, 1.0, 10.0, 100.0, 3.0]
    table.to_csv(table_file, index=False)
    drawn = {"regularizer.gp.weight": {"name": "LogUniformDistribution",
                                       "attributes": {"low": 0.1, "high": 100.0}},
             "search.lr": {"name": "FloatDistribution",
                           "attributes": {"low": 1e-5, "high": 1e-2, "log": True, "step": None}},
             "search.beta1": {"name": "UniformDistribution",
                              "attributes": {"low": 0.0, "high": 1.0}}}
    (table_file.parent / "distributions.json").write_text(json.dumps(
        {key: json.dumps(value) for key, value in drawn.items()}))  # optuna's format
    search = load_search(search_dir)
    assert "regularizer.gp.weight" in search.searched
    assert search.log_drawn == {"regularizer.gp.weight", "search.lr"}  # not beta1's U[0, 1]
    write_search(search, tmp_path / "out")
    assert (tmp_path / "out" / "stability_map.png").stat().st_size > 5000
