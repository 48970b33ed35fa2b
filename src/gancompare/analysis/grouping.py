"""Which columns of the run table make the groups of a comparison: the keys a sweep varied
(any config key, a continuously varying one put into quantile bins) or the factors that vary."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

# The factors every run row has (analysis/compare.py: run_row), loss first.
FACTORS = ["loss", "optimizer", "hacks", "scenario", "model", "data"]


def grouping(table: pd.DataFrame, by: Sequence[str] | None = None,
             swept: Sequence[str] | None = None, bins: int = 4) -> tuple[pd.DataFrame, list[str]]:
    """The columns that tell the runs apart (seeds aside), and the table with them: `by` (any
    factor or config key), else the keys the sweep varied (`swept_keys.json`), else the factors
    that vary. A key that varies continuously (many distinct numbers) is put into `bins`
    quantile bins, and a line says so."""
    keys = list(by or [k for k in (swept or []) if k != "seed"])
    if not keys:
        return table, [f for f in FACTORS if table[f].nunique() > 1] or ["loss"]
    columns = []
    for key in keys:
        column = key if key in table else f"config.{key}"  # a factor or column, or a config key
        if column not in table:
            if by:
                known = [c.removeprefix("config.") for c in table if c.startswith("config.")]
                raise LookupError(f"--by {key}: no run has this key (factors: "
                                  f"{', '.join(FACTORS)}; config keys such as "
                                  f"{', '.join(known[:6])}, ...)")
            continue  # a swept group that sets other keys (experiment=...): its factors vary
        values = table[column]
        if pd.api.types.is_float_dtype(values) and values.nunique() > max(bins, 8):
            table = table.assign(**{column: pd.qcut(values, bins, duplicates="drop")
                                    .astype(str)})
            print(f"compare: {key} varies continuously ({values.nunique()} values over "
                  f"{len(values)} runs): grouped into {bins} quantile bins (--bins); a search's "
                  "stability_map plots it as an axis")
        columns.append(column)
    return table, columns or [f for f in FACTORS if table[f].nunique() > 1] or ["loss"]


def with_groups(table: pd.DataFrame, factors: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """The table with a `group` label column (factor values joined for display only), and the
    groups in loss order."""
    table = table.sort_values([*factors, "seed"]).copy()
    table["group"] = table[list(factors)].astype(str).agg(" · ".join, axis=1)
    return table, list(dict.fromkeys(table["group"]))
