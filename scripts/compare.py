"""Figures and a table from a sweep: `python scripts/compare.py SWEEP_DIR --out DIR`.

From the local run directories of a sweep (outputs/sweeps/<time>), or, for online W&B users,
from the W&B API: `python scripts/compare.py --wandb ENTITY/PROJECT --group GROUP --out DIR`
(the group is the sweep directory's name). Runs are grouped by the keys the sweep varied
(`swept_keys.json`; `--by KEY ...` for any factor or config key, such as `optimizer.d.lr`; a key
that varies continuously goes into `--bins` quantile bins). Writes learning_curves,
final_metrics, verdict_heatmap and samples_mosaic (PDF and PNG), runs.csv (one row per run) and
table.md / table.csv (mean with its 95 % interval per group). Failed jobs show as failed in the
tables and the heatmap. A search (`search=<space>`) also gets its studies' figures and tables:
search_scores, budget_curve, stability_map, search_table.md and pairwise.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gancompare.analysis.compare import compare, load_local, load_wandb
from gancompare.analysis.studies import load_search, write_search
from gancompare.analysis.sweep import SWEPT_KEYS_FILE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, nargs="?", help="a sweep directory under outputs/")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: SWEEP_DIR/comparison)")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read the runs from W&B")
    parser.add_argument("--group", help="the W&B group (the sweep directory's name)")
    parser.add_argument("--by", nargs="+", metavar="KEY",
                        help="group runs by these factors (loss, optimizer, hacks, scenario, "
                             "model, data) or config keys (default: the keys the sweep varied)")
    parser.add_argument("--bins", type=int, default=4,
                        help="quantile bins for a grouping key that varies continuously")
    args = parser.parse_args(argv)
    swept, search = None, None
    try:
        if args.wandb:
            if not args.group:
                parser.error("--wandb needs --group (the sweep directory's name)")
            out = args.out or Path("outputs") / "comparisons" / args.group
            runs = load_wandb(args.wandb, args.group, out / "wandb-samples")
        elif args.sweep_dir:
            out = args.out or args.sweep_dir / "comparison"
            runs = load_local(args.sweep_dir)
            search = load_search(args.sweep_dir)
            swept_file = args.sweep_dir / SWEPT_KEYS_FILE
            swept = json.loads(swept_file.read_text()) if swept_file.is_file() else None
            if search is not None:  # a search's groups are its studies, not its trials' values
                swept = [k for k in swept or [] if k not in search.searched]
        else:
            parser.error("give a sweep directory, or --wandb ENTITY/PROJECT --group GROUP")
        written = compare(runs, out, args.by, swept, args.bins)
        if search is not None:
            written += write_search(search, out)
    except (FileNotFoundError, LookupError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failed = int((runs.table["verdict"] == "failed").sum())
    print(f"{len(runs.table)} runs ({failed} failed) -> {out}")
    for path in written:
        print(f"  {path}")
    print((out / "table.md").read_text())
    if search is not None:
        print((out / "search_table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
