"""Figures and a table from a sweep: `python scripts/compare.py SWEEP_DIR --out DIR`.

From the local run directories of a sweep (outputs/sweeps/<time>), or, for online W&B users,
from the W&B API: `python scripts/compare.py --wandb ENTITY/PROJECT --group GROUP --out DIR`
(the group is the sweep directory's name). Writes learning_curves, final_metrics,
verdict_heatmap and samples_mosaic (PDF and PNG), runs.csv (one row per run) and table.md /
table.csv (mean ± std per group). Failed jobs show as failed in the tables and the heatmap.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gancompare.analysis.compare import FACTORS, compare, load_local, load_wandb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, nargs="?", help="a sweep directory under outputs/")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: SWEEP_DIR/comparison)")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read the runs from W&B")
    parser.add_argument("--group", help="the W&B group (the sweep directory's name)")
    parser.add_argument("--by", nargs="+", choices=FACTORS,
                        help="group runs by these factors (default: those that vary)")
    args = parser.parse_args(argv)
    try:
        if args.wandb:
            if not args.group:
                parser.error("--wandb needs --group (the sweep directory's name)")
            out = args.out or Path("outputs") / "comparisons" / args.group
            runs = load_wandb(args.wandb, args.group, out / "wandb-samples")
        elif args.sweep_dir:
            out = args.out or args.sweep_dir / "comparison"
            runs = load_local(args.sweep_dir)
        else:
            parser.error("give a sweep directory, or --wandb ENTITY/PROJECT --group GROUP")
    except (FileNotFoundError, LookupError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    written = compare(runs, out, args.by)
    failed = int((runs.table["verdict"] == "failed").sum())
    print(f"{len(runs.table)} runs ({failed} failed) -> {out}")
    for path in written:
        print(f"  {path}")
    print((out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
