"""The blind check of the verdict rules: a seeded sample, sheets without verdicts, labels
scored against the rules."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from PIL import Image

from gancompare.analysis.verdict_check import LABELS_FILE, VERDICTS_FILE, draw, score

RUNS = {"a/trial0": "stable", "a/trial1": "mode-collapse", "b/trial0": "convergence-failure",
        "b/trial1": "stable", "b/trial2": "stable"}


def make_runs(root):
    for i, (run, verdict) in enumerate(RUNS.items()):
        directory = root / run
        (directory / "samples").mkdir(parents=True)
        json.dump({"status": "finished", "verdict": verdict,
                   "verdict_evidence": {"rule": None if verdict == "stable" else f"rule{i}",
                                        "reason": "why"}},
                  (directory / "summary.json").open("w"))
        pixels = np.full((16, 16, 3), 40 * i, dtype=np.uint8)
        Image.fromarray(pixels).save(directory / "samples" / "epoch_001.png")
        Image.fromarray(pixels).save(directory / "curves.png")
    (root / "c" / "trial0").mkdir(parents=True)  # a failed trial has nothing to judge
    json.dump({"status": "failed", "verdict": "failed"},
              (root / "c" / "trial0" / "summary.json").open("w"))


def test_a_blind_sample_is_scored_against_the_rules(tmp_path):
    make_runs(tmp_path / "runs")
    out = tmp_path / "check"
    sample = draw(tmp_path / "runs", out, n=4, seed=0, per_sheet=3)
    assert sorted(sample["run"]) == sorted(draw(tmp_path / "runs", tmp_path / "again", 4)["run"])
    assert set(sample["run"]) <= set(RUNS) and len(set(sample["run"])) == 4  # not the failed
    assert sorted(p.name for p in out.glob("sheet*.png")) == ["sheet01.png", "sheet02.png"]
    labels = pd.read_csv(out / LABELS_FILE)
    assert list(labels.columns) == ["number", "run", "label", "note"]  # blind: no verdict
    assert list(pd.read_csv(out / VERDICTS_FILE)["verdict"]) == [RUNS[r] for r in labels["run"]]

    # the reader agrees on three runs and calls the fourth mode collapse
    labels["label"] = [RUNS[r] for r in labels["run"]]
    differ = labels.index[labels["label"] != "mode-collapse"][0]
    labels.loc[differ, "label"] = "mode-collapse"
    labels.to_csv(out / LABELS_FILE, index=False)
    agreement, confusion, misses = score(out)
    assert agreement.value == pytest.approx(0.75)
    assert 0 <= agreement.low <= 0.75 <= agreement.high == 1.0
    assert int(confusion.to_numpy().sum()) == 4
    assert list(misses["run"]) == [labels.loc[differ, "run"]]
    assert misses["label"].iloc[0] == "mode-collapse"
    assert confusion.loc["mode-collapse", RUNS[labels.loc[differ, "run"]]] >= 1


def test_bad_labels_and_overwrites_are_refused(tmp_path):
    make_runs(tmp_path / "runs")
    out = tmp_path / "check"
    first = draw(tmp_path / "runs", out, n=2, seed=3)
    with pytest.raises(ValueError, match="labels.csv exists"):
        draw(tmp_path / "runs", out, n=2)
    with pytest.raises(ValueError, match=r"5 runs asked for, 3 judged runs .* \(2 excluded\)"):
        draw(tmp_path / "runs", tmp_path / "other", n=5, exclude=set(first["run"]))
    rest = draw(tmp_path / "runs", tmp_path / "other", n=3, exclude=set(first["run"]))
    assert not set(rest["run"]) & set(first["run"])
    labels = pd.read_csv(out / LABELS_FILE)
    labels["label"] = ["stable", "collapsed"]
    labels.to_csv(out / LABELS_FILE, index=False)
    with pytest.raises(ValueError, match="label of run 2 is 'collapsed'; write one of stable"):
        score(out)


def test_the_script_draws_scores_and_refuses_with_one_line(tmp_path):
    make_runs(tmp_path / "runs")
    out = tmp_path / "check"
    drawn = run_cli("scripts/verdict_check.py", "draw", str(tmp_path / "runs"), "--n", "5",
                    "--out", str(out))
    assert drawn.returncode == 0 and "5 runs drawn" in drawn.stdout
    labels = pd.read_csv(out / LABELS_FILE)
    labels["label"] = "stable"  # 3 of the 5 runs are judged stable
    labels.to_csv(out / LABELS_FILE, index=False)
    scored = run_cli("scripts/verdict_check.py", "score", str(out))
    assert scored.returncode == 0 and "Agreement: 0.60 [" in scored.stdout
    assert "rule1" in scored.stdout and "rule2" in scored.stdout  # the two misses' rules
    # a rule fixed and the runs judged again: the same labels against today's verdicts
    changed = tmp_path / "runs" / "a" / "trial1" / "summary.json"
    changed.write_text(json.dumps({**json.loads(changed.read_text()), "verdict": "stable",
                                   "verdict_evidence": {"rule": "none", "reason": "fixed"}}))
    now = run_cli("scripts/verdict_check.py", "score", str(out), "--now", str(tmp_path / "runs"))
    assert now.returncode == 0 and "Agreement: 0.80 [" in now.stdout
    only = run_cli("scripts/verdict_check.py", "draw", str(tmp_path / "runs"), "--n", "3",
                   "--only", "^b/", "--out", str(tmp_path / "b"))
    assert only.returncode == 0
    assert set(pd.read_csv(tmp_path / "b" / VERDICTS_FILE)["run"]) == {
        "b/trial0", "b/trial1", "b/trial2"}
    again = run_cli("scripts/verdict_check.py", "draw", str(tmp_path / "runs"), "--out", str(out))
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert again.stderr.count("\n") == 1 and "labels.csv exists" in again.stderr
