"""The results page's studies: Lucic et al.'s protocol, one command (`scripts/reproduce.py
<study>`) that runs its three phases, each continued where it stopped.

1. **Search.** `src/train.py -m search=<space> loss=a,b,...`: one study of `trials` trials per
   loss (gancompare/search/study.py), in <out>/<study>/<budget>/search.
2. **Seeds.** The best trial of each loss retrained over `seeds` (its searched values as
   overrides), as an ordinary results table (result_runs.train_table: archived, restored).
   The trials run at seed 0 and the seeds are fresh ones (1-5), as Lucic et al. retrain the
   best setting on new seeds: seed 0 would repeat the very run that won the search, the one
   draw picked for being lucky.
   Beside it, the control: each loss at the point it gets without a search (its loss file's
   own optimiser and D steps, the study's fixed overrides) over the same seeds, so tuned and
   untuned runs are paired seed by seed.
3. **Comparison.** Per loss the metric over seeds with its interval, the share judged stable,
   the control's, P(tuned seed better than the control's), P(A better than B), the search's
   budget curve and stability map, beside the published figures: docs/results/<study>.md.

The search's small files (each study's study.json, trials.csv, distributions.json and every
trial's run files) are archived under results/runs/<study>/<budget>/search as they finish, so
a study stopped on one machine continues on another: its trials are imported into a new SQLite
study there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gancompare import PROJECT_ROOT
from gancompare.analysis import intervals
from gancompare.analysis.result_runs import ARCHIVE, archive_run, is_done, restore_run
from gancompare.analysis.result_tables import Table
from gancompare.analysis.studies import Search, load_search, pairwise, write_search
from gancompare.errors import ConfigError
from gancompare.run.machine import machines
from gancompare.search import DISTRIBUTIONS_FILE, STUDY_FILE, TRIALS_FILE

STUDY_FILES = (STUDY_FILE, TRIALS_FILE, DISTRIBUTIONS_FILE)
SEARCH_SEED = 0  # every trial's (conf/train.yaml's seed): common random numbers across trials


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    space: str  # search=<space>
    losses: list[str]
    fixed: list[str]  # overrides of every trial and seed run (data, model, experiment)
    trials: int  # per loss
    seeds: list[int]  # the best trial of each loss, retrained
    default_steps: int | None
    published: dict[str, str] = field(default_factory=dict)  # loss -> published figure
    published_heading: str = ""
    notes: str = ""

    def budget(self, steps: int | None) -> str:
        return f"steps{steps}" if steps else "full"


def search_command(study: Study, losses: Sequence[str], sweep_dir: Path, steps: int | None,
                   jobs: int, threads: int, wandb: str, extra: Sequence[str] = ()) -> list[str]:
    parallel = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}"] if jobs > 1 else []
    return [sys.executable, str(PROJECT_ROOT / "src" / "train.py"), "-m",
            f"search={study.space}", "loss=" + ",".join(losses), *study.fixed, *extra,
            *([f"trainer.max_steps={steps}"] if steps else []), f"trainer.threads={threads}",
            "trainer.progress_bar=false", f"logger.wandb.mode={wandb}",
            f"hydra.sweeper.n_trials={study.trials}", f"hydra.sweeper.n_jobs={jobs}",
            *parallel, f"hydra.sweep.dir={sweep_dir}"]


def _copy_study(source: Path, target: Path, runs: str) -> None:
    """A study directory's small files, and each trial's run (archive_run / restore_run)."""
    for study_dir in sorted(p.parent for p in source.glob(f"*/{STUDY_FILE}")):
        (target / study_dir.name).mkdir(parents=True, exist_ok=True)
        for name in STUDY_FILES:
            if (study_dir / name).is_file():
                shutil.copyfile(study_dir / name, target / study_dir.name / name)
        for trial in sorted(study_dir.glob("trial*")):
            if runs == "archive":
                archive_run(trial, target / study_dir.name / trial.name)
            elif is_done(trial) and not is_done(target / study_dir.name / trial.name):
                restore_run(trial, target / study_dir.name / trial.name)


def restore_search(study: Study, out: Path, steps: int | None,
                   archive: Path | None = ARCHIVE) -> Path:
    """The archived search back in place where this machine has no study; its directory."""
    sweep_dir = Path(out) / study.name / study.budget(steps) / "search"
    archived = Path(archive) / study.name / study.budget(steps) / "search" if archive else None
    if archived and archived.is_dir() and not (sweep_dir / "studies.db").is_file():
        _copy_study(archived, sweep_dir, runs="restore")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    return sweep_dir


def run_search(study: Study, out: Path, steps: int | None, jobs: int = 2, threads: int = 1,
               wandb: str = "disabled", extra: Sequence[str] = (),
               archive: Path | None = ARCHIVE) -> float:
    """Phase 1, continued from the archive where this machine has no study; returns its wall
    seconds."""
    sweep_dir = restore_search(study, out, steps, archive)
    archived = Path(archive) / study.name / study.budget(steps) / "search" if archive else None
    started = time.perf_counter()
    print(f"{study.name}: search, {study.trials} trials per loss, into {sweep_dir}", flush=True)
    for loss in study.losses:  # a study per call, archived as it ends: a stop loses one at most
        # `jobs` launchers of one trial each, sharing the study, rather than one launcher of
        # `jobs` trials at a time: that waits for the slowest of each batch (a 5-D-step trial
        # takes about 4 times a 1-D-step one) with the other cores idle
        with open(sweep_dir / "search.log", "a") as log:
            launchers = [subprocess.Popen(search_command(study, [loss], sweep_dir, steps, 1,
                                                         threads, wandb, extra),
                                          stdout=log, stderr=subprocess.STDOUT)
                         for _ in range(jobs)]
            for launcher in launchers:
                launcher.wait()
        if archived:
            _copy_study(sweep_dir, archived, runs="archive")
        print(f"  {loss}: {time.perf_counter() - started:.0f} s", flush=True)
    return time.perf_counter() - started


def searchable_keys(space: str) -> set[str]:
    """The keys search=<space> draws: its `hydra.sweeper.params` and every regulariser field that
    its `search.penalty_ranges` names (search/space.py)."""
    import yaml

    conf = PROJECT_ROOT / "conf"
    spec = yaml.safe_load((conf / "search" / f"{space}.yaml").read_text())
    fields = (spec.get("search") or {}).get("penalty_ranges") or {}
    return set((spec.get("hydra") or {}).get("sweeper", {}).get("params") or {}) | {
        f"regularizer.{p.stem}.{f}" for p in (conf / "regularizer").glob("*.yaml")
        for f in fields}


def best_overrides(search: Search, setting: str, space: str) -> list[str]:
    """The searched values of a study's best trial, as overrides. The trial table is data (an
    archive may come from elsewhere): a column that search=<space> does not draw is refused."""
    foreign = sorted(set(search.searched) - searchable_keys(space))
    if foreign:
        raise ConfigError("search", f"the trial table of '{setting}' has values for "
                          f"{', '.join(foreign)}, which search={space} does not draw",
                          "use the study's own trials.csv (or run its search again)")
    trials = search.trials[search.trials["setting"] == setting]
    worst = np.inf if search.lower_is_better else -np.inf  # none scored: the first trial
    scores = trials["score"].fillna(worst)
    best = trials.loc[scores.idxmin() if search.lower_is_better else scores.idxmax()]
    overrides = []
    for key in search.searched:
        value = best[f"params_{key}"]
        if pd.notna(value):
            whole = pd.api.types.is_integer_dtype(trials[f"params_{key}"])
            overrides.append(f"{key}={int(value) if whole else repr(float(value))}")
    return overrides


def seeds_table(study: Study, search: Search) -> Table:
    """Phase 2 as a results table: each loss's best trial over the study's seeds."""
    runs = {f"{loss}_s{seed}": [f"search={study.space}", f"loss={loss}", *study.fixed,
                                *best_overrides(search, loss, study.space), f"seed={seed}"]
            for seed in study.seeds for loss in study.losses if loss in search.studies}
    return Table(study.name, study.title, runs, by=["loss"], metrics=[], default_steps=None)


def control_table(study: Study) -> Table:
    """Phase 2's control: each loss without the search (its own optimiser and D steps) over
    the same seeds as its best trial."""
    runs = {f"{loss}_s{seed}": [f"loss={loss}", *study.fixed, f"seed={seed}"]
            for seed in study.seeds for loss in study.losses}
    return Table(f"{study.name}-control", f"{study.title}: the control", runs, by=["loss"],
                 metrics=[], default_steps=None)


def _metric_values(runs_table: pd.DataFrame, metric: str) -> dict[str, np.ndarray]:
    column = next(c for c in runs_table if c == f"eval.{metric}" or
                  c.startswith(f"eval.{metric}_") and "_std_" not in c)
    values = runs_table[column].replace([np.inf, -np.inf], np.nan)
    return {loss: values[part.index].to_numpy(dtype=float)
            for loss, part in runs_table.groupby("loss", sort=False)}


def seed_comparison(runs_table: pd.DataFrame, metric: str, lower_is_better: bool,
                    published: dict[str, str], control: pd.DataFrame | None = None
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per loss: the metric's mean over seeds with its interval, the share judged stable, the
    control's two (its runs without the search) and P(a tuned seed scores better than a
    control seed), the published figure; and P(loss A's seed scores better than B's)."""
    tuned = _metric_values(runs_table, metric)
    untuned = _metric_values(control, metric) if control is not None else {}
    places = intervals.decimals_for(np.concatenate([*tuned.values(), *untuned.values()]))
    rows, groups = [], {}
    for loss, part in runs_table.groupby("loss", sort=False):
        values = tuned[loss]
        groups[loss] = values[~np.isnan(values)]
        row = {"loss": loss, "seeds": len(part), metric: intervals.mean(values).format(places),
               "stable share": intervals.share(part["verdict"] == "stable").format(2)}
        if loss in untuned:
            base = untuned[loss]
            row |= {"control point": control_point(control[control["loss"] == loss]),
                    "control seeds": len(base),
                    f"control {metric}": intervals.mean(base).format(places),
                    "control stable share": intervals.share(
                        control.loc[control["loss"] == loss, "verdict"] == "stable").format(2),
                    "P(tuned better)": intervals.probability_better(
                        groups[loss], base[~np.isnan(base)], lower_is_better).format(2)}
        rows.append({**row, "published": published.get(loss, "")})
    return pd.DataFrame(rows), pairwise(groups, lower_is_better)


def control_point(runs: pd.DataFrame) -> str:
    """The point the control ran at, as its configs composed it: optimiser, D learning rate and
    D steps (an experiment's optimiser replaces the loss file's, so it is read, not assumed)."""
    points = {f"{row['optimizer']}, lr {row['config.optimizer.d.lr']:g}, "
              f"{int(row['config.optimizer.d_steps'])} D"
              for _, row in runs.iterrows()}
    return "; ".join(sorted(points))


def search_summaries(sweep_dir: Path) -> list[dict]:
    """Every trial's summary.json, however many calls and machines the search took."""
    return [json.loads(p.read_text()) for p in Path(sweep_dir).glob("*/trial*/summary.json")]


def report_study(study: Study, out: Path, steps: int | None, docs: Path, command: str,
                 seeds_runs: pd.DataFrame | None, control_runs: pd.DataFrame | None = None
                 ) -> Path:
    """Phase 3: docs/results/<study>.md and its figures."""
    sweep_dir = Path(out) / study.name / study.budget(steps) / "search"
    search = load_search(sweep_dir)
    if search is None:
        raise FileNotFoundError(f"no finished search under {sweep_dir}: run it first")
    figures = Path(docs) / "results" / study.name
    write_search(search, figures)
    trials = search_summaries(sweep_dir)
    lines = [f"## {study.title}", "", f"Command: `{command}`", "",
             f"- Search: `search={study.space}`, {study.trials} trials per loss, "
             f"{len(search.trials)} trials in all; budget: "
             f"{steps or 'the config' + chr(39) + 's'} steps per run; "
             f"{sum(t.get('wall_time_s', 0.0) for t in trials) / 60:.1f} min of run time in "
             f"all (sum over trials), on {machines(trials)}.",
             f"- Metric: {search.metric} ({search.direction}); intervals: 95 % percentile "
             "bootstrap (analysis/intervals.py).", ""]
    if study.notes:
        lines += [study.notes, ""]
    lines += ["### Search", "", (figures / "search_table.md").read_text(), "",
              f"![budget curve](results/{study.name}/budget_curve.png)", "",  # from results.md
              f"![stability map](results/{study.name}/stability_map.png)", ""]
    if seeds_runs is not None and len(seeds_runs):
        table, pairs = seed_comparison(seeds_runs, search.metric, search.lower_is_better,
                                       study.published, control_runs)
        table = table.rename(columns={"published": study.published_heading or "published"})
        fresh = "" if SEARCH_SEED in study.seeds else (
            f" (the trials ran at seed {SEARCH_SEED}: the run that won is not among them)")
        lines += [f"### The best trial of each loss over {len(study.seeds)} seeds", "",
                  f"Seeds {', '.join(map(str, study.seeds))}{fresh}. The control: each loss "
                  "without the search, at the optimiser and D steps "
                  f"`{' '.join(study.fixed)}` composes for it (`control point`), at the same "
                  "seeds"
                  + ("" if control_runs is not None and len(control_runs) else
                     " (not trained yet)") + ".", "",
                  table.to_markdown(index=False, disable_numparse=True), "",
                  "P(a seed of the row's loss scores better than one of the column's):", "",
                  pairs.to_markdown(disable_numparse=True), ""]
    discussion = Path(docs) / "results" / f"{study.name}-discussion.md"
    if discussion.is_file():  # written by hand about these runs; kept across rewrites
        lines += [discussion.read_text().strip(), ""]
    section = Path(docs) / "results" / f"{study.name}.md"
    section.write_text("\n".join(lines) + "\n")
    return section


def studies() -> dict[str, Study]:
    """Every study of the results page by name."""
    lucic_mnist = {"minimax": "9.8 ± 0.9", "non-saturating": "6.8 ± 0.5",
                   "lsgan": "7.8 ± 0.6", "wasserstein": "6.7 ± 0.4", "wgan-gp": "20.3 ± 5.0"}
    return {s.name: s for s in (
        Study("study-ring8", "Lucic's protocol on ring8: 16 trials per loss, the best over 5 "
              "seeds", "lucic-wide", ["non-saturating", "lsgan", "wasserstein", "wgan-gp",
                                      "hinge", "rpgan"],
              ["experiment=pacgan-ring8", "optimizer.updates=alternating"], trials=16,
              seeds=list(range(1, 6)), default_steps=4000,
              notes="PacGAN's protocol on ring8 (`experiment=pacgan-ring8`: its networks, batch "
                    "and evaluation) with alternating updates, so that the search can draw 1 or "
                    "5 D steps; every loss in Lucic et al.'s wide space; fp32. Machines (the runs "
                    "predate the record; from the session notes): non-saturating's and LSGAN's "
                    "first 4 trials on an AMD EPYC, 2 cores; the rest on an Intel Xeon, 2 "
                    "cores (AVX-512 BF16, AMX); no GPU."),
        Study("study-mnist8", "Lucic's protocol on mnist8 (mlp): 16 trials per loss, the best "
              "over 5 seeds", "lucic-wide", ["minimax", "non-saturating", "lsgan",
                                             "wasserstein", "wgan-gp", "hinge", "rpgan"],
              ["data=mnist8", "model=mlp"], trials=16, seeds=list(range(1, 6)),
              default_steps=None, published=lucic_mnist,
              published_heading="Lucic et al. MNIST FID (Inception features; orderings only)",
              notes="Published: Lucic et al. 2018, the best setting's FID over 50 seeds on all "
                    "of MNIST, Inception features, 20 epochs, batch 64. Ours are MNIST-CNN "
                    "features on the 8s: compare orderings and spreads, not values. Machines "
                    "(these runs predate the record): the page was first written on an AMD "
                    "EPYC, 2 cores, no GPU, where the search ran; the control's WGAN-GP seed 1, "
                    "never archived, was trained again on an Intel Xeon, 2 cores (FID 45.0)."),
    )}


def reproduce_study(study: Study, out: Path, steps: int | None, docs: Path, command: str,
                    jobs: int = 2, threads: int = 1, wandb: str = "disabled",
                    extra: Sequence[str] = (), batch_seeds: bool = False,
                    archive: Path | None = ARCHIVE, report_only: bool = False) -> Path:
    """The three phases (each skipped where it is done), then the section."""
    from gancompare.analysis.compare import load_local
    from gancompare.analysis.result_runs import budget_dir, restore_table, train_table

    if report_only:  # what another machine archived is reported, nothing is trained
        restore_search(study, out, steps, archive)
    else:
        run_search(study, out, steps, jobs, threads, wandb, extra, archive)
    search = load_search(Path(out) / study.name / study.budget(steps) / "search")
    if search is None:
        raise FileNotFoundError(f"no finished trial under {out}: run the search")
    if SEARCH_SEED in study.seeds:
        print(f"{study.name}: seed {SEARCH_SEED} is the search's own; its run of the best trial "
              "is the one the search picked, and biases the comparison (use fresh --seeds)",
              flush=True)
    seeds, control = seeds_table(study, search), control_table(study)
    for table in (seeds, control):
        if report_only:
            restore_table(table, out, steps, archive)
        else:
            train_table(table, out, steps, jobs, threads, wandb, extra, batch_seeds, archive)

    def finished(table: Table) -> pd.DataFrame | None:
        root = budget_dir(out, table, steps)
        done = [name for name in table.runs if is_done(root / name)]
        if not done:
            return None
        runs = load_local(root).table
        return runs[runs["run"].str.rsplit("/", n=1).str[-1].isin(done)]

    return report_study(study, out, steps, docs, command, finished(seeds), finished(control))
