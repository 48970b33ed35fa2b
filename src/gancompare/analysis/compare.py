"""Runs -> paper-style figures and tables (used by scripts/compare.py).

Every run becomes one row of a tidy table (`Runs.table`): its flattened config (`loss`,
`optimizer`, `hacks`, `scenario`, `model`, `data`, `seed`, and every `config.*` key), status,
verdict and final metrics (`eval.<metric>_<feature space>`); its per-step history and last
sample grid sit beside it, keyed by the run's name. Runs come from a local sweep directory or
from the W&B API. Groups are the keys the sweep varied (any key; `--by` to choose), else the
factors that vary across the runs; seeds are the repetitions.
Each loss's label and colour come from its config file (`loss.label`, `loss.colour`), so every
figure of every invocation shows a loss the same way. Outputs, each as PDF and PNG:
learning_curves (mean over seeds, min-max band), final_metrics (box + one point per seed, in a
grid of the metrics present), verdict_heatmap (share of seeds judged stable), samples_mosaic;
and runs.csv (one row per run), table.csv / table.md (mean with its 95 % interval, and std,
per group; verdict counts).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from gancompare import PROJECT_ROOT  # noqa: E402
from gancompare.analysis import intervals  # noqa: E402
from gancompare.analysis.grouping import grouping, with_groups  # noqa: E402
from gancompare.analysis.sweep import collect, read_job  # noqa: E402
from gancompare.errors import ConfigError  # noqa: E402
from gancompare.saved import read_yaml  # noqa: E402

log = logging.getLogger(__name__)

VERDICTS = ["stable", "mode-collapse", "convergence-failure", "diverged", "failed"]
ABBREVIATIONS = {"mode-collapse": "MC", "convergence-failure": "CF", "diverged": "DIV",
                 "failed": "ERR"}
# Headline metrics (stem, title, better); a metric's name is <stem>_<feature space>.
HEADLINE = [("fid", "FID", "lower"), ("kid", "KID", "lower"), ("coverage", "coverage", "higher"),
            ("ndb_k", "NDB/K", "lower"), ("precision", "precision", "higher"),
            ("recall", "recall", "higher"), ("mixture_modes", "modes", "higher"),
            ("mixture_high_quality", "high quality", "higher"),
            ("mixture_reverse_kl", "reverse KL", "lower"), ("stacked_modes", "modes", "higher"),
            ("stacked_kl", "KL", "lower")]
SPACES = ("mnist_cnn_x3", "mnist_cnn", "fashion_cnn", "inception", "pixels16", "points")
CURVES = [("d_loss_real", "D loss (real)"), ("d_loss_fake", "D loss (fake)"), ("g_loss", "G loss")]
GREY = "#999999"


@dataclass
class Runs:
    table: pd.DataFrame  # one row per run
    histories: dict[str, pd.DataFrame] = field(default_factory=dict)
    samples: dict[str, Path] = field(default_factory=dict)

    @property
    def metrics(self) -> list[str]:
        return [c.removeprefix("eval.") for c in self.table.columns if c.startswith("eval.")]


def run_row(name: str, config: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """One run as a flat row: factors, status, verdict, eval.* metrics and config.* keys."""
    flat = pd.json_normalize(config, sep=".").iloc[0].to_dict() if config else {}
    tags = list(config.get("tags") or summary.get("tags") or [])
    hacks = summary.get("hacks", config.get("hacks")) or []
    loss = summary.get("loss") or flat.get("loss.name", "?")
    evidence = summary.get("verdict_evidence") or {}
    row = {
        "run": name, "loss": loss, "optimizer": summary.get("optimizer")
        or flat.get("optimizer.name", "-"),
        "hacks": "+".join(sorted(hacks)) or "none",
        "scenario": tags[tags.index("scenario") + 1] if "scenario" in tags[:-1] else "-",
        "model": summary.get("model") or flat.get("model.name") or flat.get("model.arch", "?"),
        "data": summary.get("data") or flat.get("data.name", "?"),
        "seed": int(summary.get("seed", flat.get("seed", 0)) or 0),
        "status": summary.get("status", "missing"), "verdict": summary.get("verdict", "missing"),
        "reason": summary.get("error") or evidence.get("reason", ""),
        "loss_label": flat.get("loss.label") or _loss_file(loss).get("label", loss),
        "loss_colour": flat.get("loss.colour") or _loss_file(loss).get("colour", GREY),
    }
    if row["status"] in ("failed", "missing"):
        row["verdict"] = "failed"
    row.update({f"eval.{k}": float(v) for k, v in (summary.get("eval") or {}).items()
                if isinstance(v, int | float) and k != "eval_seconds"})
    row.update({f"config.{k}": v for k, v in flat.items() if not isinstance(v, list | dict)})
    return row


def _loss_file(loss: str) -> dict[str, Any]:
    """A loss's config file, for runs whose saved config predates its label and colour."""
    path = PROJECT_ROOT / "conf" / "loss" / f"{loss}.yaml"
    return OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else {}


def load_local(sweep_dir: Path) -> Runs:
    """Every job of a local sweep directory (or a single run directory)."""
    sweep_dir = Path(sweep_dir)
    where = ("give a sweep directory of `python src/train.py -m ...` (outputs/sweeps/<time>) "
             "or a run directory")
    if not sweep_dir.is_dir():
        raise ConfigError("sweep_dir", f"no directory at {sweep_dir}", where)
    jobs = collect(sweep_dir)
    if not jobs and (sweep_dir / "summary.json").is_file():
        summary = read_job(sweep_dir / "summary.json")
        jobs = [{"dir": sweep_dir, **summary}] if summary is not None else []
    if not jobs:
        raise ConfigError("sweep_dir", f"{sweep_dir} holds no readable run (no "
                          "*/.hydra/overrides.yaml with a summary.json beside)", where)
    rows, histories, samples = [], {}, {}
    for job in jobs:
        run_dir: Path = job["dir"]
        name = str(run_dir.relative_to(sweep_dir.parent))
        try:
            config = next((OmegaConf.to_container(read_yaml(p)) for p in
                           (run_dir / "config.yaml", run_dir / ".hydra" / "config.yaml")
                           if p.is_file()), {})
        except ConfigError as error:
            log.warning("%s; that run is left out", error)
            continue
        config.pop("hydra", None)
        rows.append(run_row(name, config, job))
        if (run_dir / "metrics.csv").is_file():
            histories[name] = pd.read_csv(run_dir / "metrics.csv")
        grids = sorted((run_dir / "samples").glob("epoch_*.png"))
        if grids:
            samples[name] = grids[-1]
    return Runs(pd.DataFrame(rows), histories, samples)


def load_wandb(path: str, group: str, download_dir: Path, api: Any = None) -> Runs:
    """The runs of one W&B group (ENTITY/PROJECT, group = the sweep directory's name)."""
    if api is None:
        import wandb

        api = wandb.Api()
    rows, histories, samples = [], {}, {}
    for run in api.runs(path, filters={"group": group}):
        summary = dict(run.summary)
        summary.setdefault("status", "failed" if run.state in ("crashed", "failed")
                           else run.state)
        summary["eval"] = {k.removeprefix("eval/"): v for k, v in summary.items()
                           if k.startswith("eval/")}
        summary["verdict_evidence"] = {"reason": summary.get("verdict_reason", "")}
        summary.pop("hacks", None)
        rows.append(run_row(run.name, dict(run.config), summary))
        history = run.history(samples=100000, pandas=True)
        if history is not None and len(history):
            histories[run.name] = history.rename(columns={"_step": "step"}) \
                if "step" not in history else history
        images = sorted((f for f in run.files() if f.name.startswith("media/images/samples")),
                        key=lambda f: f.name)
        if images:
            images[-1].download(root=str(Path(download_dir) / run.id), replace=True)
            samples[run.name] = Path(download_dir) / run.id / images[-1].name
    if not rows:
        raise LookupError(f"no W&B run in {path} with group '{group}'")
    return Runs(pd.DataFrame(rows), histories, samples)


def colours(table: pd.DataFrame) -> dict[str, str]:
    return dict(zip(table["loss"], table["loss_colour"], strict=True))


def summary_table(runs: Runs, factors: Sequence[str]) -> pd.DataFrame:
    """Per group: runs, verdict counts, and mean / std / n over seeds of every final metric
    (failed runs count in `runs` and the verdicts, not in the metrics)."""
    table = runs.table
    grouped = table.groupby(list(factors), sort=True)
    counts = pd.crosstab([table[f] for f in factors], table["verdict"]) \
        .reindex(columns=VERDICTS, fill_value=0)
    result = grouped.size().rename("runs").to_frame().join(counts)
    metric_columns = [f"eval.{m}" for m in runs.metrics]
    if metric_columns:
        stats = grouped[metric_columns].agg(["mean", "std", "count"])
        stats.columns = [f"{m.removeprefix('eval.')}_{s if s != 'count' else 'n'}"
                         for m, s in stats.columns]
        result = result.join(stats)
        for column in metric_columns:  # the mean's 95 % interval (analysis/intervals.py)
            estimates = grouped[column].apply(lambda v: intervals.mean(
                v.replace([math.inf, -math.inf], math.nan)))
            name = column.removeprefix("eval.")
            result[f"{name}_low"] = estimates.map(lambda e: e.low)
            result[f"{name}_high"] = estimates.map(lambda e: e.high)
    return result.reset_index()


def write_tables(runs: Runs, factors: Sequence[str], out: Path) -> list[Path]:
    summary = summary_table(runs, factors)
    runs.table.to_csv(out / "runs.csv", index=False)
    summary.to_csv(out / "table.csv", index=False)
    shown = summary[[*factors, "runs", *VERDICTS]].copy()
    for metric in runs.metrics:
        shown[metric] = [str(intervals.Estimate(m, lo, hi)) for m, lo, hi in zip(
            summary[f"{metric}_mean"], summary[f"{metric}_low"], summary[f"{metric}_high"],
            strict=True)]
    text = ("Mean over seeds [95 % percentile bootstrap interval] (analysis/intervals.py).\n\n"
            + shown.to_markdown(index=False) + "\n")
    failed = runs.table[runs.table["verdict"] == "failed"]
    if len(failed):
        text += "\nFailed jobs:\n" + "".join(f"- {r.run} ({r.loss}, seed {r.seed}): {r.reason}\n"
                                            for r in failed.itertuples())
    (out / "table.md").write_text(text)
    return [out / "runs.csv", out / "table.csv", out / "table.md"]


def _save(fig: plt.Figure, out: Path, name: str) -> list[Path]:
    paths = [out / f"{name}.pdf", out / f"{name}.png"]
    for path in paths:
        fig.savefig(path, dpi=150 if path.suffix == ".png" else None, bbox_inches="tight")
    plt.close(fig)
    return paths


def _long_histories(runs: Runs, table: pd.DataFrame, points: int = 500) -> pd.DataFrame:
    """Every run's curves in one long frame (run, group, loss, step, metric, value), each run
    averaged into at most `points` step bins so long runs stay light."""
    frames = []
    for row in table.itertuples():
        history = runs.histories.get(row.run)
        if history is None or not len(history):
            continue
        bin_width = max(1, math.ceil(history["step"].max() / points))
        binned = history.assign(step=(history["step"] - 1) // bin_width * bin_width + bin_width)
        keep = [c for c in binned.columns if c in {k for k, _ in CURVES} | {
            "d_acc_real", "d_acc_fake", "critic_real", "critic_fake"}]
        long = binned.groupby("step")[keep].mean().reset_index().melt(
            id_vars="step", var_name="metric", value_name="value").dropna()
        frames.append(long.assign(run=row.run, group=row.group, loss=row.loss))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def plot_learning_curves(runs: Runs, factors: Sequence[str], out: Path) -> list[Path]:
    table, groups = with_groups(runs.table, factors)
    long, palette = _long_histories(runs, table), colours(table)
    fig, axes = plt.subplots(len(groups), 4, figsize=(14, 2.3 * len(groups) + 0.6),
                             squeeze=False, sharex=True)
    for i, group in enumerate(groups):
        sub = long[long["group"] == group] if len(long) else long
        loss = table.loc[table["group"] == group, "loss"].iloc[0]
        accuracy = len(sub) and sub["metric"].eq("d_acc_real").any()
        panels = [*CURVES, ("d_acc" if accuracy else "critic", "D accuracy" if accuracy
                            else "critic score")]
        for ax, (metric, title) in zip(axes[i], panels, strict=True):
            for suffix, style in (("", "-"), ("_real", "-"), ("_fake", "--")):
                part = sub[sub["metric"] == metric + suffix] if len(sub) else sub
                if len(part):
                    sns.lineplot(data=part, x="step", y="value", errorbar=("pi", 100), ax=ax,
                                 color=palette[loss], linestyle=style, linewidth=1.1,
                                 label=suffix.strip("_") or None)
            ax.set(ylabel=title if i == 0 or metric.startswith(("d_acc", "critic")) else "",
                   xlabel="step (generator updates)" if i == len(groups) - 1 else "")
            if metric in ("d_acc", "critic") and ax.get_legend():
                ax.legend(fontsize=7)
            if i == 0:
                ax.set_title(title)
        seeds = table.loc[table["group"] == group, "seed"].nunique()
        axes[i, 0].annotate(f"{group}\n({seeds} seeds)", xy=(-0.4, 0.5), xycoords="axes fraction",
                            ha="right", va="center", fontsize=9, color=palette[loss],
                            fontweight="bold")
    fig.suptitle("Learning curves: mean over seeds, band = min–max", y=1.0)
    fig.tight_layout()
    return _save(fig, out, "learning_curves")


def headline_metrics(metrics: Sequence[str]) -> list[tuple[str, str, str]]:
    """(metric, title, better) of the headline metrics present, in HEADLINE's order."""
    present = []
    for stem, title, better in HEADLINE:
        names = [stem] if stem.startswith("mixture_") else [f"{stem}_{s}" for s in SPACES]
        present += [(name, title, better) for name in names if name in metrics]
    return present


def plot_final_metrics(runs: Runs, factors: Sequence[str], out: Path,
                       columns: int = 4) -> list[Path]:
    table, groups = with_groups(runs.table, factors)
    # An infinite value (reverse KL with no sample near a mode) has no place on an axis.
    table = table.replace([math.inf, -math.inf], math.nan)
    panels = [p for p in headline_metrics(runs.metrics) if table[f"eval.{p[0]}"].notna().any()]
    panels = panels or [(m, m, "") for m in runs.metrics if table[f"eval.{m}"].notna().any()]
    panels = panels or [("", "no final metric", "")]
    n_cols = min(columns, len(panels))
    n_rows = math.ceil(len(panels) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.4 * n_cols + 0.6, 3.6 * n_rows),
                             squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.remove()  # a grid without empty panels
    for ax, (metric, title, better) in zip(axes.flat, panels, strict=False):
        if not metric:
            ax.text(0.5, 0.5, "no final metric", ha="center", va="center", color=GREY)
            continue
        data = table.dropna(subset=[f"eval.{metric}"])
        sns.boxplot(data=data, x="group", y=f"eval.{metric}", order=groups, color="white",
                    showfliers=False, ax=ax)
        state = np.random.get_state()  # seaborn jitters from numpy's global stream:
        np.random.seed(0)  # seeded, a figure redrawn from the same runs is the same file
        try:
            sns.stripplot(data=data, x="group", y=f"eval.{metric}", order=groups, hue="loss",
                          palette=colours(table), size=5, edgecolor="black", linewidth=0.4,
                          legend=False, ax=ax)
        finally:
            np.random.set_state(state)
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
        ax.set(xlabel="", ylabel=metric, title=title + {"lower": " (↓ better)",
                                                         "higher": " (↑ better)"}.get(better, ""))
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Final metrics, one point per seed", y=1.01)
    fig.tight_layout()
    return _save(fig, out, "final_metrics")


def plot_verdict_heatmap(runs: Runs, factors: Sequence[str], out: Path) -> list[Path]:
    table = runs.table
    column = next((f for f in ("hacks", "scenario", "optimizer", "data", "model")
                   if f in factors), None)
    rows = [f for f in factors if f != column] or ["loss"]
    table = table.assign(stable=table["verdict"].eq("stable"),
                         column=table[column] if column else "all runs")
    share = table.pivot_table(index=rows, columns="column", values="stable", aggfunc="mean")

    def note(cell: pd.DataFrame) -> str:
        failures = [ABBREVIATIONS[v] for v in VERDICTS[1:] if v in set(cell["verdict"])]
        return f"{int(cell['stable'].sum())}/{len(cell)}" + ("\n" + " ".join(failures)
                                                              if failures else "")

    notes = table.groupby([*rows, "column"])[["stable", "verdict"]].apply(note) \
        .unstack("column").reindex(index=share.index, columns=share.columns).fillna("–")
    fig, ax = plt.subplots(figsize=(1.6 * share.shape[1] + 3, 0.7 * share.shape[0] + 1.6))
    sns.heatmap(share, annot=notes.values, fmt="", cmap="RdYlGn", vmin=0, vmax=1, ax=ax,
                cbar_kws={"label": "share of seeds judged stable"}, annot_kws={"fontsize": 8})
    ax.set(xlabel=column or "", ylabel=" · ".join(rows))
    ax.set_title("Verdicts (MC mode collapse, CF convergence failure, DIV diverged, ERR failed)",
                 fontsize=9)
    fig.tight_layout()
    return _save(fig, out, "verdict_heatmap")


def plot_samples_mosaic(runs: Runs, factors: Sequence[str], out: Path) -> list[Path]:
    table, groups = with_groups(runs.table, factors)
    seeds = sorted(table["seed"].unique())
    palette = colours(table)
    fig, axes = plt.subplots(len(groups), len(seeds), squeeze=False,
                             figsize=(2.2 * len(seeds) + 1.5, 2.3 * len(groups)))
    cells = table.set_index(["group", "seed"])
    for (i, group), (j, seed) in ((a, b) for a in enumerate(groups) for b in enumerate(seeds)):
        ax = axes[i, j]
        ax.set(xticks=[], yticks=[])
        run = cells.loc[(group, seed)] if (group, seed) in cells.index else None
        if isinstance(run, pd.DataFrame):
            run = run.iloc[0]
        image = runs.samples.get(run["run"]) if run is not None else None
        if image is not None and image.is_file():
            ax.imshow(plt.imread(image), cmap="gray")
            ax.set_xlabel(run["verdict"], fontsize=7)
        else:
            ax.text(0.5, 0.5, run["status"] if run is not None else "–", ha="center",
                    va="center", transform=ax.transAxes, color=GREY)
        if i == 0:
            ax.set_title(f"seed {seed}", fontsize=9)
        if j == 0:
            loss = table.loc[table["group"] == group, "loss"].iloc[0]
            ax.set_ylabel(group, fontsize=8, color=palette[loss], fontweight="bold")
    fig.suptitle("Last sample grid of every run", y=1.0)
    fig.tight_layout()
    return _save(fig, out, "samples_mosaic")


def compare(runs: Runs, out: Path, by: Sequence[str] | None = None,
            swept: Sequence[str] | None = None, bins: int = 4) -> list[Path]:
    """Every figure and table for these runs into `out`; returns the files written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table, factors = grouping(runs.table, by, swept, bins)
    runs = Runs(table, runs.histories, runs.samples)
    written = write_tables(runs, factors, out)
    for plot in (plot_learning_curves, plot_final_metrics, plot_verdict_heatmap,
                 plot_samples_mosaic):
        written += plot(runs, factors, out)
    return written

