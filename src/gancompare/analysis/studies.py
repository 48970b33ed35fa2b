"""A search's studies -> figures and tables (scripts/compare.py on a `search=<space>` sweep).

One row per trial (`Search.trials`): its study's setting (loss, ...), value, state, searched
values (`params_*`) and its run's verdict. Outputs, each figure as PDF and PNG:
search_scores (the distribution of the metric over trials, per study), budget_curve (Lucic et
al.'s expected best score at a budget of k trials, with its band), stability_map (the metric
against each searched value, coloured by verdict, one row per study), search_table.md / .csv
(trials, share judged stable, best and expected best at a few budgets, every figure with its
interval) and pairwise.md (P(study A's trial scores better than study B's)).

A trial that diverged or failed is scored the worst value (+inf minimising) by the study; here
it takes the worst finite score of the whole comparison, so it still counts in every figure and
statistic, and the maps draw it with a cross at that value.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from gancompare.analysis import intervals  # noqa: E402
from gancompare.analysis.compare import _save  # noqa: E402  (one way to write a figure)
from gancompare.search import DISTRIBUTIONS_FILE, STUDY_FILE, TRIALS_FILE  # noqa: E402

VERDICT_COLOURS = {"stable": "#1a9850", "mode-collapse": "#fdae61",
                   "convergence-failure": "#d73027", "diverged": "#762a83", "failed": "#999999"}


@dataclass
class Search:
    trials: pd.DataFrame  # one row per finished (COMPLETE) trial
    metric: str
    direction: str
    searched: list[str]   # the searched keys (params_<key> columns), penalty weights included
    log_drawn: set[str] = field(default_factory=set)  # keys drawn log-uniformly: log axes

    @property
    def lower_is_better(self) -> bool:
        return self.direction == "minimize"

    @property
    def studies(self) -> list[str]:
        return list(dict.fromkeys(self.trials["setting"]))


def load_search(sweep_dir: Path) -> Search | None:
    """The studies of a search sweep directory, or None when it is not a search."""
    files = sorted(Path(sweep_dir).glob(f"*/{STUDY_FILE}"))
    if not files:
        return None
    frames, metrics, directions, log_drawn = [], set(), set(), set()
    for file in files:
        study = json.loads(file.read_text())
        if (file.parent / DISTRIBUTIONS_FILE).is_file():  # optuna's JSON of each distribution
            log_drawn |= {key for key, text in json.loads(
                (file.parent / DISTRIBUTIONS_FILE).read_text()).items()
                if "LogUniform" in text or json.loads(text)["attributes"].get("log")}
        table_file = file.parent / TRIALS_FILE
        if not table_file.is_file():
            continue
        table = pd.read_csv(table_file)
        table = table[table["state"] == "COMPLETE"].copy()
        if "user_attrs_run" in table:
            table["user_attrs_verdict"] = [
                _run_verdict(file.parent, run, verdict) for run, verdict
                in zip(table["user_attrs_run"], table["user_attrs_verdict"], strict=True)]
        setting = study.get("label") or study["study"]
        frames.append(table.assign(study=study["study"], setting=setting))
        metrics.add(study["metric"])
        directions.add(study["direction"])
    if not frames:
        return None
    if len(metrics) > 1 or len(directions) > 1:
        raise ValueError(f"{sweep_dir}: its studies score different metrics "
                         f"({sorted(metrics)}, {sorted(directions)}); compare them apart")
    trials = pd.concat(frames, ignore_index=True)
    trials = trials.rename(columns={"user_attrs_status": "status",
                                    "user_attrs_verdict": "verdict"})
    searched = [c.removeprefix("params_") for c in trials.columns if c.startswith("params_")]
    search = Search(trials, metrics.pop(), directions.pop(), searched, log_drawn)
    trials["score"] = capped_scores(trials["value"], search.lower_is_better)
    trials["scored_worst"] = ~np.isfinite(trials["value"].astype(float))
    return search


def _run_verdict(study_dir: Path, run: float, recorded: str) -> str:
    """A trial's verdict from its run's summary.json where there is one (rejudged runs say
    today's), else the one the sweeper recorded when the trial ended."""
    summary = study_dir / f"trial{int(run)}" / "summary.json" if pd.notna(run) else None
    if summary is None or not summary.is_file():
        return recorded
    return json.loads(summary.read_text()).get("verdict", recorded)


def capped_scores(values: pd.Series, lower_is_better: bool) -> pd.Series:
    """±inf (did not finish) as the worst finite value of the comparison."""
    values = values.astype(float)
    finite = values[np.isfinite(values)]
    worst = (finite.max() if lower_is_better else finite.min()) if len(finite) else math.nan
    return values.where(np.isfinite(values), worst)


def budgets(n: int) -> list[int]:
    """1, 2, 4, ... trials, up to the study's n (whose expected best is its best)."""
    return [*[2 ** i for i in range(n.bit_length()) if 2 ** i < n], n] if n else []


def search_table(search: Search) -> pd.DataFrame:
    rows = []
    for setting in search.studies:
        trials = search.trials[search.trials["setting"] == setting]
        scores = trials["score"].to_numpy()
        row = {"study": setting, "trials": len(trials),
               "scored": int((~trials["scored_worst"]).sum()),
               "stable share": intervals.share(trials["verdict"] == "stable")}
        best = scores.min() if search.lower_is_better else scores.max()
        row["best"] = intervals.Estimate(float(best), math.nan, math.nan)
        for k in budgets(len(scores))[:-1]:
            row[f"E[best of {k}]"] = intervals.expected_best(scores, k, search.lower_is_better)
        rows.append(row)
    return pd.DataFrame(rows)


def pairwise(groups: dict[str, np.ndarray], lower_is_better: bool) -> pd.DataFrame:
    """P(a draw of row's scores is better than one of column's), with its interval."""
    names = list(groups)
    return pd.DataFrame([[intervals.probability_better(groups[a], groups[b], lower_is_better)
                          .format(2) if a != b else ""
                          for b in names] for a in names], index=names, columns=names)


def _palette(search: Search) -> dict[str, str]:
    return dict(zip(search.studies, sns.color_palette("tab10", len(search.studies)).as_hex(),
                    strict=False))


def plot_budget_curve(search: Search, out: Path) -> list[Path]:
    fig, ax = plt.subplots(figsize=(6, 4))
    palette = _palette(search)
    for setting in search.studies:
        scores = search.trials.loc[search.trials["setting"] == setting, "score"].to_numpy()
        ks = np.arange(1, len(scores) + 1)
        curve = [intervals.expected_best(scores, int(k), search.lower_is_better) for k in ks]
        ax.plot(ks, [c.value for c in curve], color=palette[setting], label=setting)
        ax.fill_between(ks, [c.low for c in curve], [c.high for c in curve],
                        color=palette[setting], alpha=0.2, linewidth=0)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set(xlabel="budget (trials)", ylabel=f"expected best {search.metric}",
           title="Budget curve: expected best of k trials, 95 % bootstrap band")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, out, "budget_curve")


def plot_scores(search: Search, out: Path) -> list[Path]:
    fig, ax = plt.subplots(figsize=(1.3 * len(search.studies) + 2.5, 4))
    data = search.trials.dropna(subset=["score"])
    if not len(data):
        ax.text(0.5, 0.5, "no trial has a finite score", ha="center", va="center",
                color="#999999", transform=ax.transAxes)
        return _save(fig, out, "search_scores")
    sns.boxplot(data=data, x="setting", y="score", order=search.studies, color="white",
                showfliers=False, ax=ax)
    sns.stripplot(data=data, x="setting", y="score", order=search.studies, hue="verdict",
                  palette=VERDICT_COLOURS, size=5, edgecolor="black", linewidth=0.4, ax=ax)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    better = "↓" if search.lower_is_better else "↑"
    ax.set(xlabel="", ylabel=f"{search.metric} ({better} better; worst = did not finish)",
           title="The metric over each study's trials")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, out, "search_scores")


def plot_stability_map(search: Search, out: Path) -> list[Path]:
    keys = [k for k in search.searched if pd.api.types.is_numeric_dtype(
        search.trials[f"params_{k}"]) and search.trials[f"params_{k}"].nunique() > 2]
    keys = sorted(keys or search.searched[:1], key=lambda k: (not k.endswith(".lr"), k))
    studies = search.studies
    fig, axes = plt.subplots(len(studies), len(keys), squeeze=False, sharey=True,
                             figsize=(3.4 * len(keys) + 1, 2.8 * len(studies) + 0.5))
    for i, setting in enumerate(studies):
        trials = search.trials[search.trials["setting"] == setting]
        for j, key in enumerate(keys):
            ax = axes[i, j]
            if trials[f"params_{key}"].isna().all():  # another loss's penalty: no axis here
                ax.text(0.5, 0.5, "not searched", ha="center", va="center", color="#999999",
                        transform=ax.transAxes)
                ax.set(xlabel=key if i == len(studies) - 1 else "", xticks=[],
                       ylabel=f"{setting}\n{search.metric}" if j == 0 else "")
                continue
            for verdict, part in trials.groupby("verdict"):
                ax.scatter(part[f"params_{key}"], part["score"],
                           c=VERDICT_COLOURS.get(verdict, "#000000"), label=verdict, s=22,
                           marker="o", edgecolors="black", linewidths=0.3)
            worst = trials[trials["scored_worst"]]
            ax.scatter(worst[f"params_{key}"], worst["score"], marker="x", c="black", s=18)
            if key in search.log_drawn:
                ax.set_xscale("log")
            ax.set(xlabel=key if i == len(studies) - 1 else "",
                   ylabel=f"{setting}\n{search.metric}" if j == 0 else "")
            ax.grid(alpha=0.3)
    handles = {h.get_label(): h for ax in axes.flat for h in ax.collections
               if h.get_label() in VERDICT_COLOURS}
    fig.legend(list(handles.values()), list(handles), loc="upper center",
               ncol=len(handles), fontsize=8, bbox_to_anchor=(0.5, 1.02))
    fig.suptitle("Stability map: the metric against each searched value, by verdict "
                 "(× did not finish)", y=1.06, fontsize=10)
    fig.tight_layout()
    return _save(fig, out, "stability_map")


def write_search(search: Search, out: Path) -> list[Path]:
    """Every search figure and table into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = search_table(search)
    table.to_csv(out / "search_table.csv", index=False)
    note = (f"{search.metric}, {search.direction}; intervals: 95 % percentile bootstrap "
            f"({intervals.RESAMPLES} resamples); scored: trials with a finite metric; a trial "
            "without one (diverged, failed, no sample near a mode) scores the worst "
            "finite value of the comparison.\n\n")
    places = intervals.decimals_for(search.trials["score"])
    shown = table.apply(lambda column: column.map(lambda cell: cell.format(
        2 if column.name == "stable share" else places)
        if isinstance(cell, intervals.Estimate) else cell))
    (out / "search_table.md").write_text(
        note + shown.to_markdown(index=False, disable_numparse=True) + "\n")
    groups = {s: search.trials.loc[search.trials["setting"] == s, "score"].to_numpy()
              for s in search.studies}
    (out / "pairwise.md").write_text(
        "P(a trial of the row's study scores better than one of the column's), 95 % "
        "percentile bootstrap interval\n\n" + pairwise(groups, search.lower_is_better)
        .to_markdown(disable_numparse=True) + "\n")
    written = [out / "search_table.csv", out / "search_table.md", out / "pairwise.md"]
    for plot in (plot_scores, plot_budget_curve, plot_stability_map):
        written += plot(search, out)
    return written
