"""Reproduce a results table: `python scripts/reproduce.py <table> [--steps N] [--seeds ...]`.

Trains the table's runs that are missing (separate `src/train.py` processes, `--jobs` at a time
with `--threads` torch threads each; finished runs are kept, interrupted ones resume, and a run
whose config equals a finished run of another table is copied from it), then
writes its section of docs/results.md with small PNGs under docs/results/<table>/. `all` (what
`make results` runs) does every table in turn. Tables: pacgan-table1, pacgan-trend, stacked-mnist,
losses-mnist8, losses-mnist8-shared, losses-fashion, scenarios, losses-mixtures,
stabilisers-mnist8, stabilisers-mixtures, stabilisers-stacked; studies (Lucic et al.'s three
phases: a search per loss, its best trial over seeds beside the untuned control on the same
seeds, the comparison): study-ring8,
study-mnist8 (`--seeds` the second phase's seeds, `--only` a regex on the losses).

`--only REGEX` trains and reports only the matching runs. `--steps` sets trainer.max_steps (the
budget; each table has a default the machine allows, and the section states the fraction of the
published budget). `--report-only` trains nothing: it reports the runs this machine has and
the ones the archive holds.
Each finished run's small files are archived under results/runs/ (`--archive`), which is
committed: a table stopped on one machine continues on another from its archived runs.
`--set KEY=VALUE` adds overrides to every run (a different budget directory is not made for
them: use a separate `--out`).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
import sys
import time
from pathlib import Path

from gancompare import PROJECT_ROOT
from gancompare.analysis.result_runs import ARCHIVE, restore_table, train_table
from gancompare.analysis.result_studies import reproduce_study, studies
from gancompare.analysis.result_tables import tables
from gancompare.analysis.results import report_table, write_page


def main(argv: list[str] | None = None) -> int:
    names = [*tables(), *studies()]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", choices=[*names, "all"])
    parser.add_argument("--steps", type=int, default=None,
                        help="trainer.max_steps of every run (default: the table's own)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds (default: the table's own trials)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--wandb", default="disabled", choices=["disabled", "offline", "online"],
                        help="logger.wandb.mode of the runs")
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                        help="an override added to every run")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "outputs" / "results")
    parser.add_argument("--docs", type=Path, default=PROJECT_ROOT / "docs")
    parser.add_argument("--archive", type=Path, default=ARCHIVE,
                        help="where finished runs' small files are kept and restored from "
                             "(committed, so another machine continues a table)")
    parser.add_argument("--only", metavar="REGEX",
                        help="only the runs whose name matches (e.g. 'ring8_pack[12]_s0')")
    parser.add_argument("--batch-seeds", action="store_true",
                        help="each setting's seeds as one trainer.seeds process (for a GPU)")
    parser.add_argument("--report-only", action="store_true", help="train nothing")
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be positive, not {args.steps}")
    chosen = tables(args.seeds)
    for name in names if args.table == "all" else [args.table]:
        command = "python scripts/reproduce.py " + shlex.join(
            [name if a == "all" else a for a in argv if a != "--report-only"])
        if name in studies():  # Lucic's three phases: search, best over seeds, comparison
            study = studies()[name]
            if args.seeds is not None:
                study = dataclasses.replace(study, seeds=list(args.seeds))
            if args.only:
                study = dataclasses.replace(study, losses=[
                    loss for loss in study.losses if re.search(args.only, loss)])
            try:
                section = reproduce_study(
                    study, args.out, args.steps or study.default_steps, args.docs, command,
                    args.jobs, args.threads, args.wandb, args.extra, args.batch_seeds,
                    args.archive, args.report_only)
            except FileNotFoundError as error:
                print(f"error: {name}: {error}", file=sys.stderr)
                return 2
            print(f"{name}: {section}", flush=True)
            continue
        table = chosen[name]
        if args.only:
            table = dataclasses.replace(table, runs={k: v for k, v in table.runs.items()
                                                     if re.search(args.only, k)})
            if not table.runs:
                parser.error(f"--only {args.only!r} matches no run of {name}")
        steps = args.steps or table.default_steps
        started = time.perf_counter()
        if args.report_only:  # the archive's runs are reported on a machine that lacks them
            restore_table(table, args.out, steps, args.archive)
        else:
            train_table(table, args.out, steps, args.jobs, args.threads, args.wandb, args.extra,
                        args.batch_seeds, args.archive)
        try:  # `command` reproduces the section (what --report-only reports on)
            section = report_table(table, args.out, steps, args.docs, command)
        except FileNotFoundError as error:
            print(f"error: {name}: {error}", file=sys.stderr)
            return 2
        print(f"{name}: {section} in {time.perf_counter() - started:.0f} s", flush=True)
    page = write_page(args.docs, names)
    print(f"results page: {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
