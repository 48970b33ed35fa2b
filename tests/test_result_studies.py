"""A results-page study end to end (analysis/result_studies.py): Lucic's three phases on a tiny
budget, and the same study continued on a machine that has only its committed archive."""

from __future__ import annotations

import shutil

import pandas as pd
from omegaconf import OmegaConf

from gancompare.analysis.result_studies import SEARCH_SEED, Study, reproduce_study, studies
from gancompare.analysis.studies import load_search

TINY = Study("study-tiny", "A tiny study", "lucic-wide", ["non-saturating", "hinge"],
             ["data=ring8", "model=mlp", "debug=fast", "eval.final_samples=400"], trials=2,
             seeds=[1], default_steps=40, published={"hinge": "1.0 ± 0.1"},
             published_heading="published KL")


def test_a_study_runs_its_three_phases_and_continues_from_its_archive(tmp_path):
    out, docs, archive = tmp_path / "out", tmp_path / "docs", tmp_path / "archive"
    (docs / "results").mkdir(parents=True)
    # two jobs: two launchers share each loss's study
    section = reproduce_study(TINY, out, 40, docs, "python scripts/reproduce.py study-tiny",
                              jobs=2, archive=archive)
    search = load_search(out / "study-tiny" / "steps40" / "search")
    assert search.studies == ["hinge", "non-saturating"] and len(search.trials) == 4
    text = section.read_text()
    assert "## A tiny study" in text and "2 trials per loss, 4 trials in all" in text
    assert "### The best trial of each loss over 1 seeds" in text and "published KL" in text
    # a fresh seed: the trials ran at seed 0, and seed 0 would repeat the run that won
    assert "Seeds 1 (the trials ran at seed 0: the run that won is not among them)." in text
    for figure in ("budget_curve", "stability_map", "search_scores"):
        assert (docs / "results" / "study-tiny" / f"{figure}.png").is_file()
    # phase 2 ran each loss's best trial: its searched values are the seed runs' config
    for loss in TINY.losses:
        trials = search.trials[search.trials["setting"] == loss]
        best = trials.loc[trials["score"].fillna(float("inf")).idxmin()]
        saved = OmegaConf.load(out / "study-tiny" / "steps40" / f"{loss}_s1" / ".hydra"
                               / "config.yaml")
        assert saved.optimizer.d.lr == best["params_search.lr"] and saved.seed == 1
        assert saved.optimizer.d_steps == best["params_optimizer.d_steps"]
    # the control: each loss without the search (its own optimiser) at the same seed, paired
    for loss, beta1 in (("non-saturating", 0.5), ("hinge", 0.0)):
        control = OmegaConf.load(out / "study-tiny-control" / "steps40" / f"{loss}_s1"
                                 / ".hydra" / "config.yaml")
        assert control.optimizer.name != "lucic-wide" and control.seed == 1
        assert control.optimizer.d.betas[0] == beta1  # DCGAN's and SN-GAN's
    header = next(line for line in text.splitlines() if line.startswith("| loss"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "loss", "seeds", "mixture_reverse_kl", "stable share", "control point", "control seeds",
        "control mixture_reverse_kl",
        "control stable share", "P(tuned better)", "published KL"]
    assert "at the same seeds." in text and "(not trained yet)" not in text
    # the point each control ran at, read from its config: DCGAN's and SN-GAN's optimisers
    assert "| dcgan, lr 0.0002, 1 D " in text and "| sngan, lr 0.0002, 5 D " in text
    assert (archive / "study-tiny-control" / "steps40" / "hinge_s1" / "summary.json").is_file()
    archived = archive / "study-tiny" / "steps40"
    assert (archived / "search" / "lucic-wide-hinge-ring8-mlp" / "trials.csv").is_file()
    assert (archived / "search" / "lucic-wide-hinge-ring8-mlp" / "trial1" / "summary.json") \
        .is_file() and (archived / "hinge_s1" / "summary.json").is_file()

    # another machine: only the archive; the study is imported, nothing is trained again
    shutil.rmtree(out)
    again = reproduce_study(TINY, out, 40, docs, "python scripts/reproduce.py study-tiny",
                            jobs=2, archive=archive)
    log = (out / "study-tiny" / "steps40" / "search" / "search.log").read_text()
    # each study's table imported once, by one of its two launchers
    assert log.count("2 finished trials imported") == 2 and "Launching" not in log
    assert again.read_text() == text
    restored = load_search(out / "study-tiny" / "steps40" / "search")
    pd.testing.assert_frame_equal(restored.trials[["setting", "value", "params_search.lr"]],
                                  search.trials[["setting", "value", "params_search.lr"]])

    # a hand-written reading of the study is kept in its section across rewrites; a report
    # alone, on a machine with only the archive, restores what it reports and trains nothing
    (docs / "results" / "study-tiny-discussion.md").write_text("**Reading.** Hinge wins.\n")
    shutil.rmtree(out)
    reported = reproduce_study(TINY, out, 40, docs, "python scripts/reproduce.py study-tiny",
                               jobs=1, archive=archive, report_only=True).read_text()
    assert reported.startswith(text.rstrip("\n")) and "**Reading.** Hinge wins." in reported


def test_the_page_studies_retrain_their_winners_on_fresh_seeds():
    for study in studies().values():
        assert study.seeds == [1, 2, 3, 4, 5] and SEARCH_SEED not in study.seeds
        assert study.trials >= 16  # issue 20: at least 16 trials per loss
