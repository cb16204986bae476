"""benches/stats.py: percentiles, order-statistic CIs and bootstrap ratios on known data."""

from __future__ import annotations

import math
import random

import pytest

from isoinspect.benches import stats


def test_quantile_interpolates_like_numpy_type_7():
    data = [15, 20, 35, 40, 50]
    assert stats.percentile(data, 40) == pytest.approx(29.0)
    assert stats.percentile(data, 0) == 15
    assert stats.percentile(data, 100) == 50
    assert stats.median(data) == 35
    assert stats.quantile([1, 2, 3, 4, 5], 0.9) == pytest.approx(4.6)
    assert stats.median([4, 1, 3, 2]) == pytest.approx(2.5)  # unsorted input, even n


def test_quantile_of_one_value_and_bad_input():
    assert stats.quantile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError):
        stats.quantile([], 0.5)
    with pytest.raises(ValueError):
        stats.quantile([1.0], 1.5)


def test_percentiles_of_1_to_100():
    data = list(range(1, 101))
    random.Random(1).shuffle(data)
    assert stats.percentile(data, 50) == pytest.approx(50.5)
    assert stats.percentile(data, 90) == pytest.approx(90.1)
    assert stats.percentile(data, 99) == pytest.approx(99.01)


def test_mean_and_stdev():
    assert stats.mean([1, 2, 3, 4]) == 2.5
    assert stats.stdev([2, 4, 4, 4, 5, 5, 7, 9]) == pytest.approx(2.138089935)
    assert stats.stdev([3.0]) == 0.0


@pytest.mark.parametrize("n", [1, 5, 17, 60])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.99])
def test_binomial_cdf_matches_exact_sum(n, p):
    for k in range(n + 1):
        exact = sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k + 1))
        assert stats._binomial_cdf(k, n, p) == pytest.approx(exact, rel=1e-9, abs=1e-15)


def test_median_ci_ranks_match_the_textbook_tables():
    assert stats.quantile_ci_ranks(100, 0.5) == (40, 61)
    assert stats.quantile_ci_ranks(10, 0.5) == (2, 9)
    assert stats.quantile_ci_ranks(5, 0.5) == (None, None)  # 1/32 per tail > 2.5 %
    assert stats.quantile_ci_ranks(6, 0.5) == (1, 6)


def test_p99_of_100_runs_has_no_upper_bound():
    lower, upper = stats.quantile_ci_ranks(100, 0.99)
    assert lower == 97 and upper is None
    low, high = stats.quantile_ci(list(range(1, 101)), 0.99)
    assert low == 97 and high is None


@pytest.mark.parametrize("n", [10, 23, 50, 100, 257])
@pytest.mark.parametrize("p", [0.5, 0.9])
def test_ci_ranks_cover_at_least_the_confidence(n, p):
    lower, upper = stats.quantile_ci_ranks(n, p, 0.95)
    below_lower = stats._binomial_cdf(lower - 1, n, p) if lower else 0.0
    below_upper = stats._binomial_cdf(upper - 1, n, p) if upper else 1.0
    assert below_upper - below_lower >= 0.95 - 1e-12
    if lower and upper:
        assert lower < upper


def test_median_ci_covers_the_true_median_about_95_percent_of_the_time():
    rng = random.Random(7)
    trials, hits = 400, 0
    for _ in range(trials):
        sample = [rng.expovariate(1.0) for _ in range(50)]  # skewed, true median ln 2
        low, high = stats.quantile_ci(sample, 0.5)
        hits += low <= math.log(2) <= high
    assert 0.92 <= hits / trials <= 0.995


def test_bootstrap_ci_is_reproducible_and_brackets_the_median():
    rng = random.Random(3)
    data = [rng.gauss(10.0, 1.0) for _ in range(200)]
    first = stats.bootstrap_ci(data, resamples=500)
    assert first == stats.bootstrap_ci(data, resamples=500)
    assert first[0] < stats.median(data) < first[1]
    assert first[1] - first[0] < 0.6


def test_ratio_of_an_exact_multiple_is_exact_when_paired():
    base = [1.0 + 0.01 * i for i in range(50)]
    result = stats.ratio_ci([2 * x for x in base], base, paired=True, resamples=300)
    assert result["ratio"] == pytest.approx(2.0)
    assert result["ci"] == [pytest.approx(2.0), pytest.approx(2.0)]
    assert result["paired"] and result["statistic"] == "median"


def test_ratio_ci_of_noisy_data_brackets_the_estimate():
    rng = random.Random(11)
    slow = [rng.uniform(20, 30) for _ in range(100)]
    fast = [rng.uniform(5, 7) for _ in range(100)]
    result = stats.ratio_ci(fast, slow, resamples=500)
    assert result["ci"][0] <= result["ratio"] <= result["ci"][1]
    assert 0.2 < result["ratio"] < 0.3
    with pytest.raises(ValueError):
        stats.ratio_ci([1.0, 2.0], [1.0], paired=True)


def test_summarize():
    summary = stats.summarize([float(i) for i in range(1, 101)])
    assert summary["n"] == 100
    assert summary["p50"] == pytest.approx(50.5)
    assert summary["p50_ci"] == [40.0, 61.0]
    assert summary["min"] == 1.0 and summary["max"] == 100.0
    assert summary["mean"] == pytest.approx(50.5)
    assert stats.summarize([]) == {"n": 0}
