"""Turn a sweep into paper-style figures and a table (used by scripts/compare.py).

Runs come from a local sweep directory or from the W&B API; either way each becomes a `RunRecord`
(config facts, status, verdict, final metrics, per-step history, last sample grid). Runs are
grouped by the factors that vary across the sweep (loss, hacks, scenario, model, data), seeds are
the repetitions. Outputs, each as PDF and PNG:
- learning_curves: one row per group; D loss real / fake, G loss, D accuracy or critic scores;
  mean over seeds with a min-max band;
- final_metrics: a strip-over-box plot per metric (FID, coverage, NDB/K, precision, recall, and
  the mode counts where present), one point per seed, as in Lucic et al. (2018);
- verdict_heatmap: rows losses, columns hacks / scenarios / data; cell = share of seeds stable;
- samples_mosaic: every run's last sample grid;
and table.md / table.csv: mean ± std per group of every final metric, with the verdict counts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from gancompare.sweep import collect  # noqa: E402

LOSS_ORDER = ["minimax", "non-saturating", "wasserstein", "wgan-gp", "lsgan"]
# One colour per loss throughout (colour-blind-safe Okabe-Ito palette).
LOSS_COLOURS = {"minimax": "#E69F00", "non-saturating": "#0072B2", "wasserstein": "#009E73",
                "wgan-gp": "#CC79A7", "lsgan": "#D55E00"}
EXTRA_COLOURS = ["#56B4E9", "#F0E442", "#000000", "#999999"]
VERDICTS = ["stable", "mode-collapse", "convergence-failure", "diverged", "failed"]
# (stem of the metric name, axis label, better): names carry their feature space as a suffix.
HEADLINE_METRICS = [("fid", "FID", "lower"), ("coverage", "coverage", "higher"),
                    ("ndb_k", "NDB/K", "lower"), ("precision", "precision", "higher"),
                    ("recall", "recall", "higher"), ("mixture_modes", "modes", "higher"),
                    ("mixture_high_quality", "high quality", "higher"),
                    ("mixture_reverse_kl", "reverse KL", "lower"),
                    ("stacked_modes", "modes", "higher"), ("stacked_kl", "KL", "lower")]
FACTORS = ["loss", "hacks", "scenario", "model", "data"]


@dataclass
class RunRecord:
    name: str
    loss: str
    hacks: str
    scenario: str
    model: str
    data: str
    seed: int
    status: str
    verdict: str
    reason: str = ""
    final: dict[str, float] = field(default_factory=dict)
    history: pd.DataFrame | None = None
    samples: Path | None = None

    def factor(self, name: str) -> str:
        return str(getattr(self, name))


def _hacks_label(hacks: Iterable[str] | None) -> str:
    hacks = sorted(hacks or [])
    return "+".join(hacks) if hacks else "none"


def _scenario(tags: Iterable[str] | None) -> str:
    tags = list(tags or [])
    return tags[tags.index("scenario") + 1] if "scenario" in tags and \
        tags.index("scenario") + 1 < len(tags) else "-"


def load_local(sweep_dir: Path) -> list[RunRecord]:
    """Every job of a local sweep directory (or a single run directory)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"no sweep directory at {sweep_dir}")
    jobs = collect(sweep_dir)
    if not jobs and (sweep_dir / "summary.json").is_file():
        jobs = [{"dir": sweep_dir, "overrides": [],
                 **json.loads((sweep_dir / "summary.json").read_text())}]
    if not jobs:
        raise FileNotFoundError(f"{sweep_dir} holds no run (no */.hydra/overrides.yaml)")
    return [_local_record(job) for job in jobs]


def _local_record(job: dict[str, Any]) -> RunRecord:
    run_dir: Path = job["dir"]
    cfg = {}
    for candidate in (run_dir / "config.yaml", run_dir / ".hydra" / "config.yaml"):
        if candidate.is_file():
            cfg = OmegaConf.to_container(OmegaConf.load(candidate), resolve=False)
            break
    history = None
    if (run_dir / "metrics.csv").is_file():
        history = pd.read_csv(run_dir / "metrics.csv")
    grids = sorted((run_dir / "samples").glob("epoch_*.png"))
    evidence = job.get("verdict_evidence") or {}
    return RunRecord(
        name=run_dir.name,
        loss=job.get("loss") or cfg.get("loss", {}).get("name", "?"),
        hacks=_hacks_label(job.get("hacks") if "hacks" in job else cfg.get("hacks")),
        scenario=_scenario(cfg.get("tags")),
        model=job.get("model") or cfg.get("model", {}).get("arch", "?"),
        data=job.get("data") or cfg.get("data", {}).get("name", "?"),
        seed=int(job.get("seed", cfg.get("seed", 0)) or 0),
        status=job.get("status", "missing"), verdict=job.get("verdict", "missing"),
        reason=job.get("error") or evidence.get("reason", ""),
        final={k: float(v) for k, v in (job.get("eval") or {}).items()
               if isinstance(v, int | float) and k != "eval_seconds"},
        history=history, samples=grids[-1] if grids else None)


def load_wandb(path: str, group: str, download_dir: Path, api: Any = None) -> list[RunRecord]:
    """The runs of one W&B group (ENTITY/PROJECT, group = the sweep directory's name)."""
    if api is None:
        import wandb

        api = wandb.Api()
    records = []
    for run in api.runs(path, filters={"group": group}):
        cfg, summary = dict(run.config), dict(run.summary)
        history = run.history(samples=100000, pandas=True)
        if history is not None and len(history) and "_step" in history and "step" not in history:
            history = history.rename(columns={"_step": "step"})
        samples = None
        image_files = sorted((f for f in run.files() if f.name.startswith("media/images/samples")),
                             key=lambda f: f.name)
        if image_files:
            target = Path(download_dir) / run.id
            image_files[-1].download(root=str(target), replace=True)
            samples = target / image_files[-1].name
        records.append(RunRecord(
            name=run.name, loss=cfg.get("loss", {}).get("name", "?"),
            hacks=_hacks_label(cfg.get("hacks")), scenario=_scenario(cfg.get("tags")),
            model=cfg.get("model", {}).get("arch", "?"), data=cfg.get("data", {}).get("name", "?"),
            seed=int(cfg.get("seed", 0)),
            status=summary.get("status", "failed" if run.state in ("crashed", "failed")
                               else run.state),
            verdict=summary.get("verdict", "failed"), reason=summary.get("verdict_reason", ""),
            final={k.removeprefix("eval/"): float(v) for k, v in summary.items()
                   if k.startswith("eval/") and isinstance(v, int | float)
                   and k != "eval/eval_seconds"},
            history=history if history is not None and len(history) else None, samples=samples))
    if not records:
        raise LookupError(f"no W&B run in {path} with group '{group}'")
    return records


def grouping(runs: Sequence[RunRecord], by: Sequence[str] | None = None) -> list[str]:
    """The factors that tell the runs apart (seeds aside); loss first."""
    if by:
        return list(by)
    varying = [f for f in FACTORS if len({r.factor(f) for r in runs}) > 1]
    return varying or ["loss"]


def group_label(run: RunRecord, factors: Sequence[str]) -> str:
    return " · ".join(run.factor(f) for f in factors)


def _sort_key(label_loss: tuple[str, str]) -> tuple[int, str]:
    label, loss = label_loss
    return (LOSS_ORDER.index(loss) if loss in LOSS_ORDER else len(LOSS_ORDER), label)


def colour(loss: str) -> str:
    if loss in LOSS_COLOURS:
        return LOSS_COLOURS[loss]
    return EXTRA_COLOURS[abs(hash(loss)) % len(EXTRA_COLOURS)]


def ordered_groups(runs: Sequence[RunRecord], factors: Sequence[str]) -> list[tuple[str, str]]:
    """(label, loss) of every group, in loss order."""
    pairs = {(group_label(r, factors), r.loss) for r in runs}
    return sorted(pairs, key=_sort_key)


def _save(fig: plt.Figure, out: Path, name: str) -> list[Path]:
    paths = [out / f"{name}.pdf", out / f"{name}.png"]
    for path in paths:
        fig.savefig(path, dpi=200 if path.suffix == ".png" else None, bbox_inches="tight")
    plt.close(fig)
    return paths


def metric_columns(runs: Sequence[RunRecord]) -> list[str]:
    names = dict.fromkeys(k for r in runs for k in r.final)
    return list(names)


def summary_table(runs: Sequence[RunRecord], factors: Sequence[str]) -> pd.DataFrame:
    """Mean ± std over seeds of every final metric per group, with verdict and status counts.
    Failed runs count in `runs` and the verdict counts, not in the metric means."""
    rows = []
    metrics = metric_columns(runs)
    for label, loss in ordered_groups(runs, factors):
        members = [r for r in runs if group_label(r, factors) == label and r.loss == loss]
        row: dict[str, Any] = {"group": label, "runs": len(members)}
        for verdict in VERDICTS:
            row[verdict] = sum(r.verdict == verdict or (verdict == "failed" and
                                                        r.status in ("failed", "missing"))
                               for r in members)
        for metric in metrics:
            values = np.array([r.final[metric] for r in members if metric in r.final
                               and math.isfinite(r.final[metric])])
            row[f"{metric}_mean"] = values.mean() if len(values) else np.nan
            row[f"{metric}_std"] = values.std(ddof=1) if len(values) > 1 else (
                0.0 if len(values) else np.nan)
            row[f"{metric}_n"] = len(values)
        rows.append(row)
    return pd.DataFrame(rows)


def write_tables(table: pd.DataFrame, runs: Sequence[RunRecord], out: Path) -> list[Path]:
    table.to_csv(out / "table.csv", index=False)
    metrics = metric_columns(runs)
    header = ["group", "runs", *VERDICTS, *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        cells = [str(row["group"]), str(row["runs"]), *(str(row[v]) for v in VERDICTS)]
        for metric in metrics:
            mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
            cells.append("–" if not np.isfinite(mean) else f"{mean:.4g} ± {std:.2g}")
        lines.append("| " + " | ".join(cells) + " |")
    failed = [r for r in runs if r.status in ("failed", "missing")]
    if failed:
        lines += ["", "Failed jobs:"] + [f"- {r.name} ({r.loss}, seed {r.seed}): {r.reason}"
                                         for r in failed]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    return [out / "table.csv", out / "table.md"]


def plot_learning_curves(runs: Sequence[RunRecord], factors: Sequence[str],
                         out: Path) -> list[Path]:
    groups = ordered_groups(runs, factors)
    columns = [("d_loss_real", "D loss (real)"), ("d_loss_fake", "D loss (fake)"),
               ("g_loss", "G loss"), (None, "D accuracy / critic score")]
    fig, axes = plt.subplots(len(groups), 4, figsize=(14, 2.4 * len(groups) + 0.6),
                             squeeze=False, sharex=True)
    for row, (label, loss) in enumerate(groups):
        members = [r for r in runs if group_label(r, factors) == label and r.loss == loss
                   and r.history is not None and len(r.history)]
        for col, (key, title) in enumerate(columns):
            ax = axes[row, col]
            if key is None:
                critic = any("critic_real" in r.history for r in members)
                keys = [("critic_real", "real", "-"), ("critic_fake", "fake", "--")] if critic \
                    else [("d_acc_real", "real", "-"), ("d_acc_fake", "fake", "--")]
                ax.set_ylabel("critic score" if critic else "D accuracy")
            else:
                keys = [(key, None, "-")]
                ax.set_ylabel(title)
            for metric, legend, style in keys:
                _band(ax, members, metric, colour(loss), style, legend)
            if key is None and members:
                ax.legend(fontsize=7, loc="best")
            if row == 0:
                ax.set_title(title)
            if row == len(groups) - 1:
                ax.set_xlabel("step (generator updates)")
            if not members:
                ax.text(0.5, 0.5, "no finished run", ha="center", va="center",
                        transform=ax.transAxes, color="grey")
        n_seeds = len({r.seed for r in members})
        axes[row, 0].annotate(f"{label}\n({n_seeds} seeds)", xy=(-0.45, 0.5),
                              xycoords="axes fraction", ha="right", va="center", fontsize=9,
                              color=colour(loss), fontweight="bold")
    fig.suptitle("Learning curves: mean over seeds, band = min–max", y=1.0)
    fig.tight_layout()
    return _save(fig, out, "learning_curves")


def _band(ax, members: Sequence[RunRecord], metric: str, colour_: str, style: str,
          legend: str | None) -> None:
    series = [r.history.set_index("step")[metric].dropna() for r in members
              if metric in r.history]
    if not series:
        return
    frame = pd.concat(series, axis=1)
    mean = frame.mean(axis=1)
    ax.plot(mean.index, mean.values, style, color=colour_, lw=1.2, label=legend)
    ax.fill_between(mean.index, frame.min(axis=1), frame.max(axis=1), color=colour_, alpha=0.2,
                    lw=0)


def plot_final_metrics(runs: Sequence[RunRecord], factors: Sequence[str], out: Path) -> list[Path]:
    groups = ordered_groups(runs, factors)
    present = []
    for stem, label, better in HEADLINE_METRICS:
        names = sorted({k for r in runs for k in r.final if k == stem or
                        (k.startswith(stem + "_") and not _longer_stem(k, stem))})
        present += [(name, label, better) for name in names]
    if not present:
        present = [(name, name, "") for name in metric_columns(runs)[:6]]
    fig, axes = plt.subplots(1, max(len(present), 1), figsize=(3.0 * max(len(present), 1) + 1,
                                                               3.8), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, (name, label, better) in zip(axes[0], present, strict=False):
        data = [[r.final[name] for r in runs if group_label(r, factors) == g and r.loss == loss
                 and name in r.final and math.isfinite(r.final[name])] for g, loss in groups]
        positions = np.arange(len(groups))
        ax.boxplot([d if d else [np.nan] for d in data], positions=positions, widths=0.55,
                   showfliers=False, medianprops={"color": "black"})
        for x, values, (_, loss) in zip(positions, data, groups, strict=True):
            ax.scatter(x + rng.uniform(-0.12, 0.12, len(values)), values, s=22, zorder=3,
                       color=colour(loss), edgecolor="black", linewidth=0.4)
        ax.set_xticks(positions, [g for g, _ in groups], rotation=45, ha="right", fontsize=8)
        arrow = {"lower": " (↓ better)", "higher": " (↑ better)"}.get(better, "")
        ax.set_title(f"{label}{arrow}", fontsize=10)
        ax.set_ylabel(name, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Final metrics, one point per seed", y=1.02)
    fig.tight_layout()
    return _save(fig, out, "final_metrics")


def _longer_stem(name: str, stem: str) -> bool:
    """`ndb_k_x` must not count as `ndb` and `mixture_modes` not as `modes`."""
    return any(s != stem and s.startswith(stem) and name.startswith(s + "_")
               for s, _, _ in HEADLINE_METRICS)


def plot_verdict_heatmap(runs: Sequence[RunRecord], factors: Sequence[str],
                         out: Path) -> list[Path]:
    columns_factor = next((f for f in ("hacks", "scenario", "data", "model") if f in factors),
                          None)
    row_factors = [f for f in factors if f != columns_factor] or ["loss"]
    rows = sorted({group_label(r, row_factors) for r in runs},
                  key=lambda label: _sort_key((label, label.split(" · ")[0])))
    cols = sorted({r.factor(columns_factor) for r in runs}) if columns_factor else ["all runs"]
    share = np.full((len(rows), len(cols)), np.nan)
    notes = [["" for _ in cols] for _ in rows]
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            members = [r for r in runs if group_label(r, row_factors) == row
                       and (columns_factor is None or r.factor(columns_factor) == col)]
            if members:
                stable = sum(r.verdict == "stable" for r in members)
                share[i, j] = stable / len(members)
                failures = [v for v in VERDICTS[1:] if any(r.verdict == v or
                            (v == "failed" and r.status == "failed") for r in members)]
                abbreviations = {"mode-collapse": "MC", "convergence-failure": "CF",
                                 "diverged": "DIV", "failed": "ERR"}
                notes[i][j] = f"{stable}/{len(members)}" + (
                    "\n" + " ".join(abbreviations[v] for v in failures) if failures else "")
    fig, ax = plt.subplots(figsize=(1.6 * len(cols) + 2.5, 0.7 * len(rows) + 1.6))
    image = ax.imshow(share, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    for i in range(len(rows)):
        for j in range(len(cols)):
            ax.text(j, i, notes[i][j] or "–", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel(columns_factor or "")
    ax.set_ylabel(" · ".join(row_factors))
    fig.colorbar(image, ax=ax, label="share of seeds judged stable")
    ax.set_title("Verdicts (MC mode collapse, CF convergence failure, DIV diverged, ERR failed)",
                 fontsize=9)
    fig.tight_layout()
    return _save(fig, out, "verdict_heatmap")


def plot_samples_mosaic(runs: Sequence[RunRecord], factors: Sequence[str],
                        out: Path) -> list[Path]:
    groups = ordered_groups(runs, factors)
    seeds = sorted({r.seed for r in runs})
    fig, axes = plt.subplots(len(groups), len(seeds), squeeze=False,
                             figsize=(2.2 * len(seeds) + 1.5, 2.3 * len(groups)))
    for i, (label, loss) in enumerate(groups):
        for j, seed in enumerate(seeds):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            run = next((r for r in runs if group_label(r, factors) == label and r.loss == loss
                        and r.seed == seed), None)
            if run is not None and run.samples is not None and run.samples.is_file():
                ax.imshow(plt.imread(run.samples), cmap="gray")
                ax.set_xlabel(run.verdict, fontsize=7)
            else:
                ax.text(0.5, 0.5, run.status if run else "–", ha="center", va="center",
                        transform=ax.transAxes, color="grey")
            if i == 0:
                ax.set_title(f"seed {seed}", fontsize=9)
            if j == 0:
                ax.set_ylabel(label, fontsize=8, color=colour(loss), fontweight="bold")
    fig.suptitle("Last sample grid of every run", y=1.0)
    fig.tight_layout()
    return _save(fig, out, "samples_mosaic")


def compare(runs: Sequence[RunRecord], out: Path, by: Sequence[str] | None = None) -> list[Path]:
    """Every figure and table for these runs into `out`; returns the files written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    factors = grouping(runs, by)
    written = write_tables(summary_table(runs, factors), runs, out)
    written += plot_learning_curves(runs, factors, out)
    written += plot_final_metrics(runs, factors, out)
    written += plot_verdict_heatmap(runs, factors, out)
    written += plot_samples_mosaic(runs, factors, out)
    return written
