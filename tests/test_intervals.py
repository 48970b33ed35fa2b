"""Every interval of the project (analysis/intervals.py) against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from gancompare.analysis import intervals
from gancompare.analysis.intervals import Estimate


def test_the_mean_and_share_intervals_are_the_percentile_bootstrap():
    # resamples of [10, 14]: (10, 10), (10, 14), (14, 10), (14, 14) -> means 10, 12, 12, 14
    assert intervals.mean([10.0, 14.0]) == Estimate(12.0, 10.0, 14.0)
    assert intervals.mean([10.0, math.nan, 14.0]) == Estimate(12.0, 10.0, 14.0)
    assert str(intervals.mean([10.0, 14.0])) == "12 [10, 14]"
    # 3 stable of 4: P(mean <= 0.25) = 13/256 > 2.5 % > P(mean = 0) = 1/256, P(mean = 1) = 0.32
    assert intervals.share([True, True, False, True]) == Estimate(0.75, 0.25, 1.0)
    assert intervals.share([True, True, True]) == Estimate(1.0, 1.0, 1.0)
    one = intervals.mean([3.0])  # one value: no interval, and the table says so
    assert one.value == 3.0 and math.isnan(one.low) and str(one) == "3"
    assert str(intervals.mean([])) == "–"


def test_probability_that_a_scores_better_than_b():
    # A = 1, 2, 3 against B = 2, 4, 5, lower better: 3 + 2.5 (a tie at 2) + 2 of 9 pairs
    estimate = intervals.probability_better([1, 2, 3], [2, 4, 5], lower_is_better=True)
    assert estimate.value == pytest.approx(7.5 / 9)
    assert estimate.low < estimate.value < estimate.high == 1.0
    assert intervals.probability_better([2, 4, 5], [1, 2, 3], True).value == \
        pytest.approx(1.5 / 9)
    assert intervals.probability_better([1, 2, 3], [2, 4, 5], False).value == \
        pytest.approx(1.5 / 9)


def test_the_budget_curve_is_the_expected_best_of_k_trials():
    trials = [3.0, 1.0, 4.0, 1.5, 9.0]
    # sorted 1, 1.5, 3, 4, 9; the i-th best is the best of 2 with weight C(5 - i, 1) / C(5, 2)
    assert intervals.expected_best(trials, 2, True).value == pytest.approx(
        (4 * 1 + 3 * 1.5 + 2 * 3 + 1 * 4) / 10)
    assert intervals.expected_best(trials, 1, True).value == pytest.approx(sum(trials) / 5)
    assert intervals.expected_best(trials, 5, True).value == 1.0
    # maximising: the best of 2 is the larger, (4 * 9 + 3 * 4 + 2 * 3 + 1 * 1.5) / 10
    assert intervals.expected_best(trials, 2, False).value == pytest.approx(5.55)
    band = intervals.expected_best(trials, 2, True)
    assert 1.0 <= band.low < band.value < band.high <= 9.0
    with pytest.raises(ValueError, match="a budget of 6 trials out of 5"):
        intervals.expected_best(trials, 6, True)


def test_a_column_is_shown_to_three_digits_of_its_typical_value():
    assert intervals.decimals_for([214.9, 15.2, 16.9]) == 1  # median 16.9
    assert intervals.decimals_for([240.0, 310.0, math.inf]) == 0
    assert intervals.decimals_for([0.44, 0.21, 0.69, math.nan]) == 3  # 0.440
    assert intervals.decimals_for([0.0012, 0.003]) == 4  # capped: no more than 4 places
    assert intervals.decimals_for([math.inf]) == 2  # nothing finite to go by
