"""Hyperparameter studies (gancompare/search/): a search through Hydra's Optuna sweeper, killed
and continued from its SQLite study; what a trial scores; the loss-dependent part of a space."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from conftest import ROOT, run_cli
from omegaconf import OmegaConf

from gancompare.errors import ConfigError
from gancompare.search.objective import metric_name, metric_value, trial_value
from gancompare.search.space import penalty_weights
from gancompare.search.study import TrialSeededSampler, study_grid, within_budget

# Two losses, 3 trials each, on ring8 with a small MLP: each trial a run of a few seconds that
# ends with PacGAN's reverse KL, the value the study minimises.
SEARCH = ["-m", "search=lucic-wide", "loss=non-saturating,wgan-gp", "data=ring8", "model=mlp",
          "debug=fast", "trainer.max_steps=60", "eval.final_samples=500",
          "hydra.sweeper.n_trials=3"]
STUDIES = ["lucic-wide-non-saturating-ring8-mlp", "lucic-wide-wgan-gp-ring8-mlp"]


def trials(sweep_dir: Path, study: str) -> list[optuna.trial.FrozenTrial]:
    """The study's trials, less any asked for past its budget by two launchers at once."""
    return [t for t in optuna.load_study(study_name=study,
                                         storage=f"sqlite:///{sweep_dir}/studies.db").trials
            if t.state.name != "FAIL"]


def test_a_search_killed_after_its_first_trials_continues_from_its_study(tmp_path):
    sweep_dir = tmp_path / "search"
    command = [sys.executable, "src/train.py", *SEARCH, f"hydra.sweep.dir={sweep_dir}"]
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # kill it (as a lost machine would) mid-trial
        time.sleep(0.5)
        assert first.poll() is None, "the search ended before it could be killed"
        # the sweeper has made the database once it has launched trial 0; opening it earlier
        # races the sweeper's own first write (both insert the schema's version row)
        if (sweep_dir / STUDIES[0] / "trial0").is_dir():
            done = trials(sweep_dir, STUDIES[0])
            if sum(t.state.name == "COMPLETE" for t in done) >= 2 and done[-1].state.name \
                    == "RUNNING" and (sweep_dir / STUDIES[0] / f"trial{done[-1].number}").is_dir():
                break
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    killed = trials(sweep_dir, STUDIES[0])
    assert [t.state.name for t in killed] == ["COMPLETE", "COMPLETE", "RUNNING"]
    first_values = [t.value for t in killed[:2]]

    # continued by two launchers at once: one of them takes the killed trial
    launchers = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [launcher.communicate(timeout=600)[0] for launcher in launchers]
    assert [launcher.returncode for launcher in launchers] == [0, 0], outputs[0][-3000:]
    assert "".join(outputs).count("running again trials [2]") == 1
    for study in STUDIES:
        # a trial asked for past the budget by the launcher that lost the race is given up
        done = trials(sweep_dir, study)
        # n_trials is the study's size: the finished two are kept, the killed one is run
        # again in its own directory, and no fourth is drawn
        assert [t.state.name for t in done] == ["COMPLETE"] * 3, study
        assert [t.user_attrs["run"] for t in done] == [0, 1, 2]
        for trial in done:
            run = sweep_dir / study / f"trial{trial.number}"
            summary = json.loads((run / "summary.json").read_text())
            assert trial.user_attrs["status"] == summary["status"]
            assert trial.user_attrs["verdict"] == summary["verdict"]
            expected = summary["eval"]["mixture_reverse_kl"] if summary["status"] == \
                "finished" else math.inf
            assert trial.value == pytest.approx(expected if math.isfinite(expected)
                                                else math.inf)
            saved = OmegaConf.load(run / ".hydra" / "config.yaml")
            assert saved.optimizer.d.lr == pytest.approx(trial.params["search.lr"])
            assert saved.optimizer.g.betas[0] == pytest.approx(trial.params["search.beta1"])
            assert saved.optimizer.d_steps == trial.params["optimizer.d_steps"]
        table = pd.read_csv(sweep_dir / study / "trials.csv")
        assert list(table.loc[table["state"] != "FAIL", "number"]) == [0, 1, 2]
        assert set(table["state"]) <= {"COMPLETE", "FAIL"}
    assert [t.value for t in trials(sweep_dir, STUDIES[0])[:2]] == first_values
    # WGAN-GP's trials also draw its penalty weight from 10^U[-1, 2]; non-saturating's do not
    gp = [t.params.get("regularizer.gp.weight") for t in trials(sweep_dir, STUDIES[1])]
    assert all(0.1 <= w <= 100 for w in gp)
    assert all("regularizer.gp.weight" not in t.params for t in trials(sweep_dir, STUDIES[0]))
    # the same draws for trial k of every study: losses are compared on the same points
    assert [t.params["search.lr"] for t in trials(sweep_dir, STUDIES[0])] == \
        [t.params["search.lr"] for t in trials(sweep_dir, STUDIES[1])]
    report = (sweep_dir / "sweep_report.md").read_text()
    assert report.count(f"| {STUDIES[1]}/trial") == 3

    # a study continues only the command that started it
    other = run_cli(*command[1:], "trainer.max_steps=61", timeout=300)
    assert other.returncode == 2
    assert "search.study: study 'lucic-wide-non-saturating-ring8-mlp'" in other.stderr
    assert "Traceback" not in other.stderr


def test_two_launchers_started_together_share_one_study(tmp_path):
    sweep_dir = tmp_path / "search"
    one_loss = [a if not a.startswith("loss=") else "loss=non-saturating" for a in SEARCH]
    command = [sys.executable, "src/train.py", *one_loss, f"hydra.sweep.dir={sweep_dir}"]
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    launchers = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [launcher.communicate(timeout=600)[0] for launcher in launchers]
    assert [launcher.returncode for launcher in launchers] == [0, 0], outputs[0][-3000:]
    done = [t for t in trials(sweep_dir, STUDIES[0]) if t.state.name == "COMPLETE"]
    # n_trials is the study's size however many launchers fill it: 3 runs, each once
    assert sorted(t.user_attrs["run"] for t in done) == [0, 1, 2]
    assert len({t.user_attrs["pid"] for t in done}) == 2  # both launchers ran trials
    for trial in done:
        summary = json.loads((sweep_dir / STUDIES[0] / f"trial{trial.number}" /
                              "summary.json").read_text())
        assert trial.user_attrs["status"] == summary["status"]
    table = pd.read_csv(sweep_dir / STUDIES[0] / "trials.csv")
    assert sorted(table.loc[table["state"] == "COMPLETE", "number"]) == [0, 1, 2]


def test_a_trial_asked_for_beyond_the_budget_is_given_up():
    study = optuna.create_study(sampler=TrialSeededSampler(0))
    first = study.ask()
    study.tell(first, 1.0)
    running = study.ask()  # another launcher's, still running
    late = [study.ask(), study.ask()]  # two asked at once for the last place of 3
    kept = within_budget(study, late, n_trials=3)
    assert [t.number for t in kept] == [2]
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "RUNNING", "RUNNING", "FAIL"]
    assert study.trials[3].user_attrs["status"] == "over budget"
    assert within_budget(study, [study.ask()], n_trials=5)[0].number == 4
    assert running.number == 1


def test_a_trial_that_did_not_finish_scores_the_worst_value():
    finished = {"status": "finished", "eval": {"fid_mnist_cnn": 12.5, "kid_mnist_cnn": 0.1,
                                               "kid_std_mnist_cnn": 0.01}}
    assert trial_value(finished, "fid", "minimize") == 12.5
    assert trial_value(finished, "kid", "maximize") == 0.1
    assert trial_value({**finished, "status": "diverged"}, "fid", "minimize") == math.inf
    assert trial_value({"status": "failed"}, "fid", "maximize") == -math.inf
    assert trial_value(None, "fid", "minimize") == math.inf
    assert trial_value({"status": "finished", "eval": {"fid_mnist_cnn": math.nan}}, "fid",
                       "minimize") == math.inf
    assert trial_value({"status": "finished", "eval": {}}, "fid", "minimize") == math.inf
    with pytest.raises(ConfigError, match="search.direction: 'up' is not a direction"):
        trial_value(finished, "fid", "up")
    with pytest.raises(ConfigError, match="search.metric: 'fid' names 2 metrics"):
        metric_value({"fid_a": 1.0, "fid_b": 2.0}, "fid")
    auto = OmegaConf.create({"metric": "auto"})
    assert metric_name(auto, OmegaConf.create({"source": "mixture"})) == "mixture_reverse_kl"
    assert metric_name(auto, OmegaConf.create({"source": "mnist"})) == "fid"


def test_penalty_weights_draw_each_regularizer_field_the_space_names():
    cfg = OmegaConf.create({
        "search": {"penalty_ranges": {"weight": [0.1, 100.0], "limit": [0.001, 1.0]}},
        "regularizer": {"every": 4, "gp": {"_target_": "x.GradientPenalty", "weight": 10.0},
                        "clip": {"_target_": "x.WeightClip", "limit": 0.01},
                        "r1": {"_target_": "x.R1", "gamma": 1.0}}})
    study = optuna.create_study(sampler=TrialSeededSampler(3))
    for _ in range(20):
        trial = study.ask()
        penalty_weights(cfg, trial)
        assert set(trial.params) == {"regularizer.gp.weight", "regularizer.clip.limit"}
        assert 0.1 <= trial.params["regularizer.gp.weight"] <= 100.0
        assert 0.001 <= trial.params["regularizer.clip.limit"] <= 1.0
        study.tell(trial, 0.0)
    weights = [math.log10(t.params["regularizer.gp.weight"]) for t in study.trials]
    assert min(weights) < 0.5 and max(weights) > 0.5  # log-uniform over [-1, 2], not one point


def test_the_sampler_draws_by_trial_number_whatever_ran_before():
    def lr(trial: optuna.Trial) -> float:
        return trial.suggest_float("lr", 1e-5, 1e-2, log=True)

    def restarted(sampler: type, seed: int) -> list[float]:
        """3 trials, the last drawn by a new process (a new sampler) that loads the study."""
        storage = optuna.storages.InMemoryStorage()
        study = optuna.create_study(storage=storage, sampler=sampler(seed), study_name="s")
        values = [lr(study.ask()) for _ in range(2)]
        study = optuna.load_study(study_name="s", storage=storage, sampler=sampler(seed))
        return [*values, lr(study.ask())]

    def continuous(seed: int) -> list[float]:
        study = optuna.create_study(sampler=TrialSeededSampler(seed))
        return [lr(study.ask()) for _ in range(3)]

    assert restarted(TrialSeededSampler, 7) == continuous(7) and len(set(continuous(7))) == 3
    plain = restarted(optuna.samplers.RandomSampler, 7)
    assert plain[2] == plain[0]  # what the stock seeded sampler does: the first draw again
    assert continuous(8)[0] != continuous(7)[0]


def test_choice_sweeps_on_the_command_line_are_a_grid_of_studies():
    grid, rest = study_grid(["loss=hinge,lsgan", "data=ring8,grid25", "search.lr=0.1",
                             "search.beta1=interval(0, 1)"])
    assert grid == [["loss=hinge", "data=ring8"], ["loss=hinge", "data=grid25"],
                    ["loss=lsgan", "data=ring8"], ["loss=lsgan", "data=grid25"]]
    assert rest == ["search.lr=0.1", "search.beta1=interval(0, 1)"]


@pytest.mark.parametrize("override, words", [
    ("hydra.sweeper.n_trials=-1", "error: hydra.sweeper.n_trials: -1 is not a positive integer"),
    ("hydra.sweeper.n_trials=0", "error: hydra.sweeper.n_trials: 0 is not a positive integer"),
    ("hydra.sweeper.n_jobs=0", "error: hydra.sweeper.n_jobs: 0 is not a positive integer"),
])
def test_a_study_of_no_trials_is_refused_in_one_line(override, words, tmp_path):
    out = run_cli("src/train.py", *SEARCH, override, f"hydra.sweep.dir={tmp_path}", timeout=300)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stderr[-2000:]
    assert lines[0].startswith(words) and "Fix: " in lines[0]
    assert not list(tmp_path.glob("*/trial*"))


def test_a_damaged_study_file_is_one_line_naming_it_and_the_rebuild(tmp_path):
    storage = tmp_path / "studies.db"
    study = optuna.create_study(study_name=STUDIES[0], storage=f"sqlite:///{storage}")
    study.add_trial(optuna.trial.create_trial(
        params={"search.lr": 1e-4}, value=0.5,
        distributions={"search.lr": optuna.distributions.LogUniformDistribution(1e-5, 1e-2)}))
    content = storage.read_bytes()
    storage.write_bytes(content[: len(content) // 2])  # a copy cut short, a disk that failed
    out = run_cli("src/train.py", *SEARCH, f"hydra.sweep.dir={tmp_path}", timeout=300)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stderr[-2000:]
    assert lines[0].startswith(f"error: hydra.sweeper.storage: {storage} cannot be read as a "
                               "study (")
    assert f"mv {storage} {storage}.damaged" in lines[0] and "trials.csv" in lines[0]
