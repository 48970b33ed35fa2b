"""Does a faster precision change the science? The four failure scenarios × seeds, trained in
each precision with the project's own entrypoint, and their verdicts and final metrics side by
side.

`python scripts/precision_check.py [--precisions 32 bf16-mixed] [--seeds 0 1 2] [--jobs 2]
[--out outputs/precision]`

Each run is `python src/train.py experiment=<scenario> seed=<s> trainer.precision=<p>` in
`<out>/<p>/<scenario>_s<seed>`; runs that already have a summary are kept, so the command can be
stopped and repeated. `--jobs` runs that many at once with one torch thread each (on 2 cores, 2 ×
1 thread wastes nothing on thread synchronisation). Prints a markdown table and writes it to
`<out>/verdicts.md`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from gancompare import PROJECT_ROOT

SCENARIOS = ["stable", "mode-collapse", "convergence-failure", "aggressive-adam"]
METRICS = ["fid_mnist_cnn", "coverage_mnist_cnn", "distinct_mnist_cnn"]


def run(precision: str, scenario: str, seed: int, out: Path, threads: int) -> None:
    run_dir = out / precision / f"{scenario}_s{seed}"
    if (run_dir / "summary.json").is_file():
        return
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(run_dir.with_suffix(".log"), "w") as log:
        subprocess.run([sys.executable, str(PROJECT_ROOT / "src" / "train.py"),
                        f"experiment={scenario}", f"seed={seed}",
                        f"trainer.precision={precision}", f"trainer.threads={threads}",
                        "trainer.progress_bar=false", "logger.wandb.mode=disabled",
                        f"hydra.run.dir={run_dir}"], stdout=log, stderr=subprocess.STDOUT,
                       check=False)


def table(out: Path, precisions: list[str], seeds: list[int]) -> pd.DataFrame:
    rows = []
    for precision in precisions:
        for scenario in SCENARIOS:
            for seed in seeds:
                path = out / precision / f"{scenario}_s{seed}" / "summary.json"
                summary = json.loads(path.read_text()) if path.is_file() else {}
                rows.append({"scenario": scenario, "seed": seed, "precision": precision,
                             "verdict": summary.get("verdict", "missing"),
                             "ms_per_step": summary.get("ms_per_step"),
                             **{m: (summary.get("eval") or {}).get(m) for m in METRICS}})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", nargs="+", default=["32", "bf16-mixed"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "outputs" / "precision")
    parser.add_argument("--report-only", action="store_true", help="train nothing")
    args = parser.parse_args()
    if not args.report_only:
        todo = [(p, s, seed) for seed in args.seeds for s in SCENARIOS for p in args.precisions]
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda job: run(*job, args.out, args.threads), todo))
    runs = table(args.out, args.precisions, args.seeds)
    verdicts = runs.pivot_table(index=["scenario", "seed"], columns="precision",
                                values="verdict", aggfunc="first")
    done = ~(verdicts == "missing").any(axis=1)
    verdicts["same"] = (verdicts.nunique(axis=1) == 1).where(done, "pending")
    metrics = runs.pivot_table(index=["scenario", "seed"], columns="precision",
                               values=METRICS, aggfunc="first").round(3)
    text = (f"{verdicts.to_markdown()}\n\nSame verdict in every precision: "
            f"{int(verdicts['same'].eq(True).sum())} of {int(done.sum())} finished pairs"
            f"\n\n{metrics.to_markdown()}\n")
    print(text)
    (args.out / "verdicts.md").write_text(text)


if __name__ == "__main__":
    main()
