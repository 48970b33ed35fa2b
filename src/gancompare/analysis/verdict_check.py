"""Checking the verdict rules against a person's reading of runs they were not tuned on.

`draw` takes a seeded random sample of finished runs under a directory (a search's trials, a
table's runs), numbers them in random order, and writes blind contact sheets (each run's last
samples beside its curves, with nothing but its number) and a `labels.csv` to fill in with one
of the verdicts per run. The automatic verdicts go to `verdicts.csv`, apart, so the reader does
not see them. `score` joins the two: agreement with its 95 % interval (analysis/intervals.py)
and the confusion table, and lists the runs where the two differ with the rule that fired.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from gancompare.analysis import intervals  # noqa: E402
from gancompare.analysis.compare import VERDICTS  # noqa: E402

LABELS_FILE = "labels.csv"
VERDICTS_FILE = "verdicts.csv"
JUDGED = ("finished", "diverged")  # a failed or unfinished run has no curves to judge
LABELS = [v for v in VERDICTS if v != "failed"]  # what a reader can say of a judged run


def finished_runs(root: Path) -> pd.DataFrame:
    """Every run under `root` with a summary that judged it: directory, verdict, rule, reason."""
    rows = []
    for path in sorted(Path(root).rglob("summary.json")):
        summary = json.loads(path.read_text())
        if summary.get("status") not in JUDGED:
            continue
        evidence = summary.get("verdict_evidence") or {}
        rows.append({"run": str(path.parent.relative_to(root)), "verdict": summary["verdict"],
                     "rule": evidence.get("rule"), "reason": evidence.get("reason")})
    return pd.DataFrame(rows, columns=["run", "verdict", "rule", "reason"])


def last_samples(run_dir: Path) -> Path | None:
    pictures = sorted((run_dir / "samples").glob("*.png"))
    return pictures[-1] if pictures else None


def draw(root: Path, out: Path, n: int, seed: int = 0, per_sheet: int = 6,
         exclude: set[str] | frozenset[str] = frozenset()) -> pd.DataFrame:
    """A blind sample of `n` judged runs under `root` but not in `exclude`, written to `out`
    (sheets, labels.csv to fill in, verdicts.csv kept apart). Refuses a sample larger than the
    runs there are, and an `out` that holds labels already (they would be lost)."""
    if (out / LABELS_FILE).is_file():
        raise ValueError(f"{out / LABELS_FILE} exists: score it, or draw into another --out")
    runs = finished_runs(root)
    runs = runs[~runs["run"].isin(exclude)]
    if n > len(runs):
        raise ValueError(f"{n} runs asked for, {len(runs)} judged runs under {root} "
                         f"({len(exclude)} excluded)")
    sample = runs.sample(n=n, random_state=seed).reset_index(drop=True)
    sample.insert(0, "number", np.arange(1, n + 1))
    out.mkdir(parents=True, exist_ok=True)
    sample.to_csv(out / VERDICTS_FILE, index=False)
    sample[["number", "run"]].assign(label="", note="").to_csv(out / LABELS_FILE, index=False)
    for first in range(0, n, per_sheet):
        part = sample.iloc[first:first + per_sheet]
        fig, axes = plt.subplots(len(part), 2, figsize=(11, 3.6 * len(part)), squeeze=False,
                                 gridspec_kw={"width_ratios": [1, 1.6]})
        for (pictures, curves), row in zip(axes, part.itertuples(), strict=True):
            for ax, path in ((pictures, last_samples(root / row.run)),
                             (curves, root / row.run / "curves.png")):
                ax.axis("off")
                if path is not None and path.is_file():
                    with Image.open(path) as image:
                        ax.imshow(image.convert("RGB"))
            pictures.set_title(f"run {row.number}: last samples", fontsize=9)
            curves.set_title(f"run {row.number}: curves", fontsize=9)
        fig.tight_layout()
        fig.savefig(out / f"sheet{first // per_sheet + 1:02d}.png", dpi=80)
        plt.close(fig)
    return sample


def score(out: Path, now: Path | None = None
          ) -> tuple[intervals.Estimate, pd.DataFrame, pd.DataFrame]:
    """Agreement of the filled-in labels with the verdicts: the share of runs where they agree
    with its interval, the confusion table (rows: the reader, columns: the rules) and the runs
    where they differ. `now`: the runs' directory, to score against their verdicts of today
    (after `rejudge`) instead of those at the draw. Refuses a label outside the verdicts,
    naming the run."""
    labels = pd.read_csv(out / LABELS_FILE, dtype={"label": str, "note": str}).fillna("")
    verdicts = pd.read_csv(out / VERDICTS_FILE)
    if now is not None:
        today = finished_runs(now).set_index("run")
        verdicts = verdicts[["number", "run"]].join(today, on="run", validate="1:1")
    unknown = labels[~labels["label"].isin(LABELS)]
    if len(unknown):
        raise ValueError(f"{out / LABELS_FILE}: label of run {unknown['number'].iloc[0]} is "
                         f"{unknown['label'].iloc[0]!r}; write one of {', '.join(LABELS)}")
    both = verdicts.merge(labels[["number", "label", "note"]], on="number", validate="1:1")
    agree = both["label"] == both["verdict"]
    confusion = pd.crosstab(both["label"].rename("reader"), both["verdict"].rename("rules"))
    return intervals.share(agree.to_numpy()), confusion, both[~agree]


def rejudge(root: Path, rule: str | None = None) -> pd.DataFrame:
    """Every judged run under `root` (whose verdict came from `rule`, if given) judged again
    under today's rules (reevaluation.rejudge_run); returns the runs whose verdict changed:
    run, before, after (verdict and rule each) and the new reason."""
    from gancompare.reevaluation import rejudge_run

    runs = finished_runs(root)
    if rule is not None:
        runs = runs[runs["rule"] == rule]
    changed = []
    for row in runs.itertuples():
        after = rejudge_run(Path(root) / row.run)
        if after["verdict"] != row.verdict or after["verdict_evidence"]["rule"] != row.rule:
            changed.append({"run": row.run, "before": f"{row.verdict} ({row.rule})",
                            "after": f"{after['verdict']} ({after['verdict_evidence']['rule']})",
                            "reason": after["verdict_evidence"]["reason"]})
    return pd.DataFrame(changed, columns=["run", "before", "after", "reason"])
