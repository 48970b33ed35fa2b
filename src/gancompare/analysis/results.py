"""The results page: each table a grid of ordinary runs, trained with the project's own
entrypoint, judged and compared by its own code, and written into docs/results.md.

A `Table` (result_tables.py) names its runs, groups, metrics and published figures.
`result_runs.train_table` runs what is missing. `report_table` turns the finished runs into a
markdown section with small PNGs under docs/results/<table>/, plus the hand-written reading of
why ours differ (docs/results/<table>-discussion.md) where there is one. `write_page` assembles
docs/results.md from every section written so far, so each table is produced and committed on
its own, after the hand-written reading of all of them (docs/results/summary.md).
Run directories: <out>/<table>/steps<budget>/<run>.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from gancompare.analysis import intervals  # noqa: E402
from gancompare.analysis.compare import (  # noqa: E402
    VERDICTS,
    compare,
    load_local,
)
from gancompare.analysis.result_runs import REUSED_FROM, budget_dir  # noqa: E402
from gancompare.analysis.result_tables import Table  # noqa: E402
from gancompare.run.machine import machines  # noqa: E402

# Final metrics a table can show: run-table column -> (heading, scale, decimals).
METRICS = {
    "eval.mixture_modes": ("modes", 1, 1),
    "eval.mixture_high_quality": ("high quality %", 100, 1),
    "eval.mixture_reverse_kl": ("reverse KL", 1, 2),
    "eval.stacked_modes_mnist_cnn_x3": ("modes", 1, 1),
    "eval.stacked_kl_mnist_cnn_x3": ("KL", 1, 2),
    "eval.fid_mnist_cnn": ("FID (MNIST CNN)", 1, 1),
    "eval.coverage_mnist_cnn": ("coverage", 1, 3),
    "eval.fid_fashion_cnn": ("FID (Fashion CNN)", 1, 1),
    "eval.coverage_fashion_cnn": ("coverage", 1, 3),
    "eval.class_coverage_fashion_cnn": ("classes", 1, 1),
}
# Curves of a table from its runs' epoch evaluations (metrics.csv column -> axis label),
# the mean over seeds with its 95 % interval.
CURVES = {
    "epoch/mixture_modes": "modes",
    "epoch/mixture_high_quality": "high quality (share)",
    "epoch/stacked_modes_mnist_cnn_x3": "modes (of 1,000)",
    "epoch/stacked_kl_mnist_cnn_x3": "KL to uniform",
    "epoch/fid_mnist_cnn": "FID (MNIST CNN)",
    "epoch/fid_fashion_cnn": "FID (Fashion CNN)",
}
DOCS_DPI = 70  # the committed PNGs stay small


# ---- the report ----

def group_labels(table: pd.DataFrame, by: Sequence[str]) -> pd.Series:
    return table[list(by)].astype(str).agg(" · ".join, axis=1)


def metrics_table(runs_table: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Per group: runs, verdict counts, and each metric as the mean over the runs that finished
    with it and its 95 % interval (analysis/intervals.py, as compare.py's tables); the
    published figure beside where there is one."""
    frame = runs_table.assign(group=group_labels(runs_table, table.by))
    rows = []
    for group, runs in frame.groupby("group", sort=False):
        row: dict[str, str | int] = {"group": group, "runs": len(runs)}
        verdicts = runs["verdict"].value_counts()
        row["verdicts"] = ", ".join(f"{verdicts[v]} {v}" for v in VERDICTS if v in verdicts)
        published = table.published.get(group, {})
        for column in table.metrics:
            heading, scale, decimals = METRICS[column]
            values = runs[column].dropna() * scale if column in runs else pd.Series(dtype=float)
            row[heading] = mean_interval(values, decimals)
            if table.published:
                row[f"{heading} (published)"] = published.get(heading, "–")
        rows.append(row)
    return pd.DataFrame(rows)


def mean_interval(values: pd.Series, decimals: int) -> str:
    """The finite values' mean [interval], and how many runs had no finite value (a reverse KL
    of a run with no high-quality sample is infinite): left out of the mean, never hidden."""
    infinite = int(values.isin([math.inf, -math.inf]).sum())
    shown = intervals.mean(values.replace([math.inf, -math.inf], math.nan)).format(decimals)
    return shown + (f" ({infinite} of {len(values)} infinite)" if infinite else "")


def interval_bounds(values: pd.Series) -> tuple[float, float]:
    """seaborn's band: the same bootstrap interval as the tables'."""
    return intervals.mean(values.to_numpy()).interval()


def plot_curves(runs, table: Table, out: Path) -> Path | None:
    """The epoch evaluations' metrics against steps, the mean over seeds with its 95 %
    interval as a band, one line per group."""
    frame = runs.table.assign(group=group_labels(runs.table, table.by))
    long = []
    for row in frame.itertuples():
        history = runs.histories.get(row.run)
        if history is None:
            continue
        present = [c for c in CURVES if c in history]
        if present:
            part = history[["step", *present]].dropna(subset=present, how="all")
            long.append(part.melt(id_vars="step", var_name="metric").assign(group=row.group))
    if not long:
        return None
    data = pd.concat(long, ignore_index=True).dropna()
    if data["step"].nunique() < 2:  # one evaluation per run is no curve; final_metrics shows it
        return None
    metrics = [m for m in CURVES if m in set(data["metric"])]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        sns.lineplot(data=data[data["metric"] == metric], x="step", y="value", hue="group",
                     errorbar=interval_bounds, ax=ax, marker="o", markersize=3)
        ax.set(ylabel=CURVES[metric], xlabel="step")
        ax.grid(alpha=0.3)
        if ax.get_legend():
            ax.get_legend().remove()
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize=8)
    fig.suptitle(f"{table.title}: metrics at each evaluation, mean over seeds "
                 "and its 95 % interval",
                 fontsize=10)
    fig.tight_layout()
    path = out / "curves.png"
    fig.savefig(path, dpi=DOCS_DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def report_table(table: Table, out: Path, steps: int | None, docs: Path,
                 command: str | None = None) -> Path:
    """The table's section of the results page (docs/results/<table>.md) and its figures."""
    root = budget_dir(out, table, steps)
    runs = load_local(root)
    # A run without a summary is still training (or was never started): not a failure. Runs of
    # other seeds in the same directory belong to another selection of this table.
    named = runs.table["run"].str.rsplit("/", n=1).str[-1].isin(list(table.runs))
    # Interrupted runs wait for their next session: their verdicts judge half a run
    runs.table = table.with_columns(
        runs.table[named & runs.table["status"].isin(("finished", "diverged"))])
    figures = docs / "results" / table.name
    if figures.exists():
        shutil.rmtree(figures)
    figures.mkdir(parents=True)
    compare(runs, root.parent / f"comparison-{root.name}", table.by)  # the full set, PDF too
    compared = root.parent / f"comparison-{root.name}"
    for name in ("final_metrics", "verdict_heatmap", "samples_mosaic"):
        shrink(compared / f"{name}.png", figures / f"{name}.png")
    curves = plot_curves(runs, table, figures)
    summaries = {p.parent: json.loads(p.read_text()) for p in sorted(root.glob("*/summary.json"))
                 if p.parent.name in table.runs}
    done = {run: s for run, s in summaries.items() if s.get("status") in ("finished", "diverged")}
    finished = list(done.values())
    copied = [run for run in done if (run / REUSED_FROM).is_file()]
    trained = [s for run, s in done.items() if run not in copied]
    # a trainer.seeds process times all its runs together: each run's share
    share = [s.get("runs_in_process") or 1 for s in trained]
    wall = sum((s.get("wall_time_s") or 0) / k for s, k in zip(trained, share, strict=True))
    ms = [s["ms_per_step"] / k for s, k in zip(trained, share, strict=True)
          if s.get("ms_per_step")]
    reused = (f"; not counted: {len(copied)} of the runs, copied from identical finished runs "
              f"of other tables (each run's `{REUSED_FROM}` names its original)" if copied else "")
    steps_run = "/".join(str(n) for n in sorted({s.get("steps") for s in finished}))
    budget = (f"{steps} steps per run" if steps else f"the config's own {steps_run} steps")
    if steps and table.published_steps:
        budget += f" ({100 * steps / table.published_steps:.2g} % of the published " \
                  f"{table.published_steps:,})"
    shown = metrics_table(runs.table, table)
    command = command or f"python scripts/reproduce.py {table.name}"
    lines = [f"## {table.title}", "", f"Command: `{command}`", "",
             table.notes, "",
             f"- Runs: {len(finished)} of {len(table.runs)} finished; budget: {budget}.",
             f"- Wall time: {wall / 60:.1f} min of run time in all (sum over runs; "
             f"{(sum(ms) / len(ms) if ms else float('nan')):.1f} ms per step on average, "
             f"epoch evaluations included), on {machines(finished)}{reused}.", "",
             shown.to_markdown(index=False), "", reading(runs.table, table), ""]
    discussion = docs / "results" / f"{table.name}-discussion.md"
    if discussion.is_file():  # written by hand about these runs; kept across rewrites
        lines += [discussion.read_text().strip(), ""]
    for path, caption in ((curves, "Metrics at each evaluation against steps"),
                          (figures / "final_metrics.png", "Final metrics, one point per seed"),
                          (figures / "verdict_heatmap.png", "Verdicts"),
                          (figures / "samples_mosaic.png", "Last samples of every run")):
        if path is not None and path.is_file():
            lines.append(f"![{caption}](results/{table.name}/{path.name})")
    section = docs / "results" / f"{table.name}.md"
    section.write_text("\n".join(lines) + "\n")
    return section


def shrink(source: Path, target: Path, dpi_scale: float = DOCS_DPI / 150) -> None:
    """A smaller copy of a 150-dpi PNG for the docs, in 64 colours."""
    from PIL import Image

    with Image.open(source) as image:
        size = (max(1, round(image.width * dpi_scale)), max(1, round(image.height * dpi_scale)))
        small = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
        small.quantize(colors=64).save(target, optimize=True)  # a palette: a third of the bytes


def reading(runs_table: pd.DataFrame, table: Table) -> str:
    """What the numbers say, from the numbers: verdict shares and the best group per metric."""
    frame = runs_table.assign(group=group_labels(runs_table, table.by))
    stable = frame.groupby("group", sort=False)["verdict"].apply(lambda v: (v == "stable").mean())
    sentences = ["Judged stable: " + ", ".join(f"{g} {share:.0%}" for g, share in
                                                stable.items()) + "."]
    # metrics compare within one data set only (8 modes on ring8 are all of them, not 25),
    # whether or not the table's groups name the data
    parts = (list(frame.groupby("data", sort=False)) if "data" in frame
             and frame["data"].nunique() > 1 else [(None, frame)])
    for column in table.metrics:
        if column not in frame or frame[column].isna().all():
            continue
        heading, scale, decimals = METRICS[column]
        lower = any(word in heading for word in ("FID", "KL"))
        for data, part in parts:
            means = part.groupby("group", sort=False)[column].mean() * scale
            if means.isna().all():
                continue
            best, worst = ((means.idxmin(), means.idxmax()) if lower
                           else (means.idxmax(), means.idxmin()))
            sentences.append(f"Best {heading}{f' on {data}' if data else ''}: {best} "
                             f"({means[best]:.{decimals}f}; worst {worst}, "
                             f"{means[worst]:.{decimals}f}).")
    return " ".join(sentences)


PAGE_HEADER = """# Results

Every number here comes from the project's own code: the runs are `src/train.py` processes, the
verdicts `verdict.py`'s rules, the metrics `evaluation/`. `python scripts/reproduce.py <table>`
trains what is missing of one table and rewrites its section; `make results` does every table.
Run directories: `outputs/results/<table>/steps<budget>/`.

Figures are the mean over seeds and its 95 % percentile bootstrap interval, `mean [low, high]`,
computed one way everywhere (`analysis/intervals.py`: scipy.stats.bootstrap, 9,999 resamples,
seeded). Read them for what they are: with 3 seeds the bootstrap interval is the seeds' range and
holds the true mean about 75 % of the time, not 95 %; the studies' 5 seeds and 16 trials per loss
give intervals that mean more. Published figures are quoted as their papers give them (mean ±
std or s.e.).
"""


def write_page(docs: Path, order: Sequence[str]) -> Path:
    """docs/results.md from every table section written so far, in `order`, after the
    hand-written reading of them all (docs/results/summary.md) where there is one."""
    sections = [docs / "results" / f"{name}.md" for name in order]
    present = [s for s in sections if s.is_file()]
    missing = [s.stem for s in sections if not s.is_file()]
    summary = docs / "results" / "summary.md"
    reading = [summary.read_text().strip() + "\n"] if summary.is_file() else []
    text = PAGE_HEADER + "\n" + "\n".join(reading + [s.read_text() for s in present])
    if missing:
        text += "\n## Not produced yet\n\n" + "".join(
            f"- {name}: `python scripts/reproduce.py {name}`\n" for name in missing)
    page = docs / "results.md"
    page.write_text(text)
    return page
