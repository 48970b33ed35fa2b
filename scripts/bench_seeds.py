"""Benchmark: K seeds in one process (`trainer.seeds`) against K separate processes.

`python scripts/bench_seeds.py [--setups pacgan mlp baseline] [--runs 1 4 10] [--steps N]
[--jobs J] [overrides ...]`

For each setup and K, the same K runs of `trainer.max_steps` steps (no evaluation, no W&B):
- batched: one `python src/train.py ... trainer.seeds=[0..K-1]` with every core;
- separate: K `python src/train.py ... seed=k` processes, `--jobs` at a time (default: the
  cores), each with cores / jobs threads, as a sweep launcher would run them.
Reports run-steps per second (K × steps / seconds) over the whole wall-clock time (start-up
included) and over the training loops alone (each summary's loop time). Prints a markdown
table and writes it as JSON next to this machine's name. Timing targets live here, never in
tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gancompare import PROJECT_ROOT

SETUPS = {  # the mlp models and dcgan28, each at its own batch size
    "pacgan": ["experiment=pacgan-ring8"],
    "mlp": ["model=mlp"],
    "baseline": [],
}
STEPS = {"pacgan": 300, "mlp": 60, "baseline": 20}
QUIET = ["logger.wandb.mode=disabled", "trainer.progress_bar=false", "eval.every_epoch=false",
         "eval.final_samples=0"]


def train(overrides: list[str], run_dir: Path, threads: int) -> float:
    """Wall seconds of one `src/train.py` process."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "src/train.py", *overrides, f"trainer.threads={threads}",
                    f"hydra.run.dir={run_dir}"], cwd=PROJECT_ROOT, check=True,
                   capture_output=True, text=True,
                   env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    return time.perf_counter() - started


def loop_seconds(run_dir: Path) -> float:
    summary = json.loads((run_dir / "summary.json").read_text())
    return summary["steps"] * summary["ms_per_step"] / 1000


def measure(setup: str, k: int, steps: int, jobs: int, cores: int, extra: list[str],
            out: Path) -> dict:
    base = [*SETUPS[setup], *QUIET, f"trainer.max_steps={steps}", *extra]
    seeds = list(range(k))
    batched_dir = out / f"{setup}-k{k}-batched"
    batched_wall = train([*base, f"trainer.seeds=[{','.join(map(str, seeds))}]"], batched_dir,
                         cores)
    batched_loop = loop_seconds(batched_dir / "seed0")
    jobs = min(jobs, k)
    threads = max(1, cores // jobs)
    dirs = [out / f"{setup}-k{k}-seed{s}" for s in seeds]
    started = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(lambda s: train([*base, f"seed={s}"], dirs[s], threads), seeds))
    separate_wall = time.perf_counter() - started
    separate_loop = sum(loop_seconds(d) for d in dirs) / jobs  # the loops, packed on the jobs
    run_steps = k * steps
    return {"setup": setup, "K": k, "steps": steps,
            "batched run-steps/s": run_steps / batched_wall,
            "separate run-steps/s": run_steps / separate_wall,
            "batched loop run-steps/s": run_steps / batched_loop,
            "separate loop run-steps/s": run_steps / separate_loop,
            "batched wall s": batched_wall, "separate wall s": separate_wall,
            "separate jobs × threads": f"{jobs} × {threads}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 4, 10])
    parser.add_argument("--steps", type=int, default=None, help="per run (default: per setup)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="separate processes at a time (default: the cores)")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "outputs" / "bench_seeds")
    parser.add_argument("overrides", nargs="*", help="added to every run, e.g. device=cuda")
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for setup in args.setups:
            for k in args.runs:
                row = measure(setup, k, args.steps or STEPS[setup], args.jobs or cores, cores,
                              args.overrides, Path(tmp))
                rows.append(row)
                print(json.dumps(row), flush=True)
    import pandas as pd

    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False, floatfmt=".1f"))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{platform.node() or 'machine'}.json"
    path.write_text(json.dumps({"cores": cores, "overrides": args.overrides, "rows": rows},
                               indent=2))
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
