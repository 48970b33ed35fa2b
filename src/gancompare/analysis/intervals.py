"""Every interval the project reports, computed one way: scipy.stats.bootstrap, percentile
method, 95 %, 9,999 resamples, seeded (so a table reads the same on every machine).

scipy rather than rliable: rliable's stratified bootstrap is for scores over many tasks, and a
cell here is one setting; scipy's bootstrap takes the two-sample statistic of "A scores better
than B" directly, and scipy is already a dependency. The percentile method because BCa breaks
on the samples GAN tables are full of (every seed stable, every trial the same worst value).
Lucic et al.'s budget curve is the exact expected best of k trials drawn without replacement
(order statistics, no resampling), with its band from the same bootstrap over the trials.
A bootstrap of few values is narrow: with n = 3 the interval is the values' range, which holds
the mean of a symmetric distribution with chance 1 - 2 / 2^3 = 75 %; the results page says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.special import comb

CONFIDENCE = 0.95
RESAMPLES = 9999
SEED = 0


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return self.format()

    def format(self, decimals: int | None = None) -> str:
        """`value [low, high]`, to `decimals` places (else 4 significant digits)."""
        spec = ".4g" if decimals is None else f".{decimals}f"
        if not math.isfinite(self.value):
            return "–"
        if not math.isfinite(self.low):
            return f"{self.value:{spec}}"
        return f"{self.value:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"

    def interval(self) -> tuple[float, float]:
        return self.low, self.high


def _bootstrap(samples: Sequence[np.ndarray], statistic: Callable, value: float) -> Estimate:
    if min(len(s) for s in samples) < 2 or any(np.isnan(s).any() for s in samples):
        return Estimate(value, math.nan, math.nan)  # one value has no spread to resample
    result = stats.bootstrap(samples, statistic, n_resamples=RESAMPLES, vectorized=True,
                             paired=False, confidence_level=CONFIDENCE, method="percentile",
                             rng=np.random.default_rng(SEED))
    low, high = result.confidence_interval
    return Estimate(value, float(low), float(high))


def decimals_for(values: Sequence[float], digits: int = 3) -> int:
    """The decimal places that show a typical value of `values` (the median magnitude of the
    finite ones) to `digits` significant digits: one column, one precision."""
    x = np.abs(np.asarray(values, dtype=float))
    x = x[np.isfinite(x) & (x > 0)]
    if not len(x):
        return 2
    return int(min(4, max(0, digits - 1 - math.floor(math.log10(np.median(x))))))


def mean(values: Sequence[float]) -> Estimate:
    """The mean and its interval (NaN values left out)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if not len(x):
        return Estimate(math.nan, math.nan, math.nan)
    return _bootstrap([x], lambda s, axis: np.mean(s, axis=axis), float(np.mean(x)))


def share(flags: Sequence[bool]) -> Estimate:
    """The share of True (runs judged stable) and its interval."""
    return mean(np.asarray(flags, dtype=float))


def _better(a: np.ndarray, b: np.ndarray, lower_is_better: bool) -> np.ndarray:
    """P(a draw of A scores better than a draw of B), ties counted half, over the last axis."""
    a, b = a[..., :, None], b[..., None, :]
    wins = (a < b) if lower_is_better else (a > b)
    return np.mean(wins + 0.5 * (a == b), axis=(-2, -1))


def probability_better(a: Sequence[float], b: Sequence[float],
                       lower_is_better: bool) -> Estimate:
    """P(A scores better than B): a run of A against a run of B, ties half (the Mann-Whitney
    statistic over n·m), with its interval from resampling A's and B's runs."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not len(x) or not len(y):
        return Estimate(math.nan, math.nan, math.nan)
    return _bootstrap([x, y], lambda s, t, axis: _better(np.moveaxis(s, axis, -1),
                                                         np.moveaxis(t, axis, -1),
                                                         lower_is_better),
                      float(_better(x, y, lower_is_better)))


def _expected_best(x: np.ndarray, k: int, lower_is_better: bool) -> np.ndarray:
    """E[best of k drawn without replacement] over the last axis: the i-th best of n
    (i = 1..n) is the best of k with probability C(n - i, k - 1) / C(n, k)."""
    n = x.shape[-1]
    ordered = np.sort(x, axis=-1) if lower_is_better else -np.sort(-x, axis=-1)
    i = np.arange(1, n + 1)
    weights = comb(n - i, k - 1) / comb(n, k)
    return ordered @ weights


def expected_best(values: Sequence[float], k: int, lower_is_better: bool) -> Estimate:
    """Lucic et al.'s budget curve at k: the expected best score of k trials, with its band."""
    x = np.asarray(values, dtype=float)
    if not 1 <= k <= len(x):
        raise ValueError(f"a budget of {k} trials out of {len(x)}")
    return _bootstrap([x], lambda s, axis: _expected_best(np.moveaxis(s, axis, -1), k,
                                                          lower_is_better),
                      float(_expected_best(x, k, lower_is_better)))
