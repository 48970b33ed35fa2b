"""The verdict rules against a person's reading of runs they were not tuned on.

  python scripts/verdict_check.py draw ROOT --n 30 --out DIR   # blind sheets + labels.csv
  (look at DIR/sheet*.png, write each run's verdict into DIR/labels.csv's `label` column:
   stable, mode-collapse, convergence-failure or diverged)
  python scripts/verdict_check.py score DIR                    # agreement, confusion, misses
  python scripts/verdict_check.py rejudge ROOT [--rule RULE]   # verdicts again, today's rules

ROOT is any directory of runs: a search's sweep directory (outputs/searches/<space>), a table's
runs (outputs/results/<table>/steps<budget>). The sample is seeded (`--seed`), so a second check
on other runs is `--seed 1` with the first sample's runs left out by hand or by `--exclude`.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

from gancompare.analysis.verdict_check import VERDICTS_FILE, draw, finished_runs, rejudge, score


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    drawing = commands.add_parser("draw", help="a blind sample of runs to label")
    drawing.add_argument("root", type=Path)
    drawing.add_argument("--n", type=int, default=30, help="runs in the sample")
    drawing.add_argument("--seed", type=int, default=0)
    drawing.add_argument("--out", type=Path, required=True)
    drawing.add_argument("--exclude", type=Path, default=None, action="append",
                         help="an earlier sample's directory: its runs are not drawn again "
                              "(repeatable)")
    drawing.add_argument("--only", default=None, metavar="REGEX",
                         help="draw only from the runs whose path under ROOT matches")
    scoring = commands.add_parser("score", help="agreement of the labels with the verdicts")
    scoring.add_argument("out", type=Path)
    scoring.add_argument("--now", type=Path, default=None, metavar="ROOT",
                         help="score against the verdicts the runs under ROOT have today "
                              "(after rejudge), not those at the draw")
    rejudging = commands.add_parser("rejudge", help="every finished run's verdict again under "
                                    "today's rules (summary.json updated; needs checkpoints)")
    rejudging.add_argument("root", type=Path)
    rejudging.add_argument("--rule", default=None,
                           help="only the runs whose verdict came from this rule (a rule made "
                                "stricter can change only those)")
    args = parser.parse_args(argv)
    try:
        if args.command == "draw":
            exclude = {run for previous in args.exclude or []
                       for run in pd.read_csv(previous / VERDICTS_FILE)["run"]}
            if args.only:
                exclude |= {run for run in finished_runs(args.root)["run"]
                            if not re.search(args.only, run)}
            sample = draw(args.root, args.out, args.n, args.seed, exclude=exclude)
            print(f"{len(sample)} runs drawn into {args.out}: label them in "
                  f"{args.out / 'labels.csv'}")
            return 0
        if args.command == "rejudge":
            changed = rejudge(args.root, args.rule)
            print(f"{len(changed)} verdicts changed under {args.root}")
            if len(changed):
                print(changed.to_markdown(index=False))
            return 0
        agreement, confusion, misses = score(args.out, args.now)
    except (ValueError, OSError) as error:
        print(f"verdict_check: {error}", file=sys.stderr)
        return 2
    print(f"Agreement: {agreement.format(2)} of {int(confusion.to_numpy().sum())} runs\n")
    print(confusion.to_markdown() + "\n")
    if len(misses):
        print(misses[["number", "run", "label", "verdict", "rule", "note"]].to_markdown(
            index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
