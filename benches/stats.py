"""Statistics for benchmark samples, in plain Python (no numpy/scipy needed).

* ``quantile`` interpolates linearly between order statistics (numpy's default, "type 7").
* ``quantile_ci`` is the distribution-free confidence interval of a quantile from order
  statistics: the number of samples below the true p-quantile is Binomial(n, p), so
  ``[x_(l), x_(u)]`` covers it with probability ``P(l <= B < u)``. Exact coverage >= the level,
  no assumption about the shape (start-up times are skewed and heavy-tailed). A bound that would
  need more samples than there are is ``None`` (e.g. the upper bound of p99 from 100 runs).
* ``bootstrap_ci`` / ``ratio_ci``: percentile bootstrap with a fixed seed (reproducible).
  ``ratio_ci`` can resample paired rounds: the runner interleaves targets round-robin, so
  samples of one round share the machine's state at that moment.
"""

from __future__ import annotations

import math
import random
from typing import Callable, Sequence

DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 20240601
P99_MIN_RUNS = 50  # fewer runs: the p99 is the maximum give or take one run; shown as "-"


def quantile(data: Sequence[float], p: float, *, presorted: bool = False) -> float:
    """The ``p`` quantile (0 <= p <= 1), linear interpolation between order statistics."""
    if not data:
        raise ValueError("quantile of no data")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be within [0, 1], not {p}")
    values = data if presorted else sorted(data)
    position = (len(values) - 1) * p
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    fraction = position - low
    return values[low] + (values[high] - values[low]) * fraction


def percentile(data: Sequence[float], q: float) -> float:
    """``quantile`` with q in percent (0..100), like numpy.percentile."""
    return quantile(data, q / 100.0)


def median(data: Sequence[float]) -> float:
    return quantile(data, 0.5)


def mean(data: Sequence[float]) -> float:
    if not data:
        raise ValueError("mean of no data")
    return math.fsum(data) / len(data)


def stdev(data: Sequence[float]) -> float:
    """Sample standard deviation (n - 1); 0.0 for fewer than two samples."""
    if len(data) < 2:
        return 0.0
    centre = mean(data)
    return math.sqrt(math.fsum((x - centre) ** 2 for x in data) / (len(data) - 1))


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(B <= k) for B ~ Binomial(n, p), summed exactly in log space (n up to millions)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    log_n_fact = math.lgamma(n + 1)
    terms = [log_n_fact - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p
             + (n - i) * log_q for i in range(k + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in terms))


def quantile_ci_ranks(n: int, p: float = 0.5,
                      confidence: float = DEFAULT_CONFIDENCE) -> tuple[int | None, int | None]:
    """1-based ranks (l, u) of the order statistics bounding the p quantile; None if n is
    too small for that side. Each tail holds at most (1 - confidence) / 2."""
    if n <= 0:
        return None, None
    tail = (1.0 - confidence) / 2.0
    cdf = [_binomial_cdf(k, n, p) for k in range(n + 1)]  # cdf[k] = P(B <= k)
    lower = None
    for rank in range(n, 0, -1):          # largest l with P(B <= l - 1) <= tail
        if cdf[rank - 1] <= tail:
            lower = rank
            break
    upper = None
    for rank in range(1, n + 1):          # smallest u with P(B >= u) <= tail
        if 1.0 - cdf[rank - 1] <= tail:
            upper = rank
            break
    return lower, upper


def quantile_ci(data: Sequence[float], p: float = 0.5,
                confidence: float = DEFAULT_CONFIDENCE) -> tuple[float | None, float | None]:
    """Distribution-free confidence interval of the p quantile (see the module notes)."""
    values = sorted(data)
    lower, upper = quantile_ci_ranks(len(values), p, confidence)
    return (values[lower - 1] if lower else None, values[upper - 1] if upper else None)


def bootstrap_ci(data: Sequence[float], statistic: Callable[[Sequence[float]], float] = median,
                 confidence: float = DEFAULT_CONFIDENCE, resamples: int = DEFAULT_RESAMPLES,
                 seed: int = DEFAULT_SEED) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``statistic``."""
    if not data:
        raise ValueError("bootstrap of no data")
    rng = random.Random(seed)
    values = list(data)
    estimates = sorted(statistic(rng.choices(values, k=len(values))) for _ in range(resamples))
    tail = (1.0 - confidence) / 2.0
    return (quantile(estimates, tail, presorted=True),
            quantile(estimates, 1.0 - tail, presorted=True))


def ratio_ci(numerator: Sequence[float], denominator: Sequence[float],
             statistic: Callable[[Sequence[float]], float] = median, *, paired: bool = False,
             confidence: float = DEFAULT_CONFIDENCE, resamples: int = DEFAULT_RESAMPLES,
             seed: int = DEFAULT_SEED) -> dict:
    """statistic(numerator) / statistic(denominator) with a percentile-bootstrap interval.

    ``paired``: resample round indices (both lists must be as long and aligned by round);
    otherwise each side is resampled on its own.
    """
    if not numerator or not denominator:
        raise ValueError("ratio of no data")
    estimate = statistic(numerator) / statistic(denominator)
    if paired and len(numerator) != len(denominator):
        raise ValueError("paired ratio needs as many samples on both sides")
    rng = random.Random(seed)
    num, den = list(numerator), list(denominator)
    ratios = []
    for _ in range(resamples):
        if paired:
            rounds = rng.choices(range(len(num)), k=len(num))
            top = statistic([num[i] for i in rounds])
            bottom = statistic([den[i] for i in rounds])
        else:
            top = statistic(rng.choices(num, k=len(num)))
            bottom = statistic(rng.choices(den, k=len(den)))
        ratios.append(top / bottom if bottom else math.inf)
    ratios.sort()
    tail = (1.0 - confidence) / 2.0
    return {"ratio": estimate, "ci": [quantile(ratios, tail, presorted=True),
                                      quantile(ratios, 1.0 - tail, presorted=True)],
            "confidence": confidence, "paired": paired, "statistic": statistic.__name__}


def control_ratio_ci(numerator: Sequence[float], numerator_control: Sequence[float],
                     denominator: Sequence[float], denominator_control: Sequence[float],
                     statistic: Callable[[Sequence[float]], float] = median, *,
                     confidence: float = DEFAULT_CONFIDENCE, resamples: int = DEFAULT_RESAMPLES,
                     seed: int = DEFAULT_SEED) -> dict:
    """A ratio normalised by a control measured alongside it, with a bootstrap interval:
    (s(num) / s(den)) / (s(num_control) / s(den_control)), s = ``statistic``.

    E.g. a VM's slowdown on one test divided by its slowdown on a pure CPU loop (what is left
    once the emulated CPU is taken out). Each side's rounds are resampled together (a test and
    its control from the same round stay paired), the two sides independently.
    """
    if not numerator or not denominator:
        raise ValueError("ratio of no data")
    if len(numerator) != len(numerator_control) or len(denominator) != len(denominator_control):
        raise ValueError("each side needs its control from the same rounds")

    def value(num, num_ctl, den, den_ctl) -> float:
        bottom = statistic(den) * statistic(num_ctl)
        return statistic(num) * statistic(den_ctl) / bottom if bottom else math.inf

    estimate = value(numerator, numerator_control, denominator, denominator_control)
    rng = random.Random(seed)
    ratios = []
    for _ in range(resamples):
        top = rng.choices(range(len(numerator)), k=len(numerator))
        bottom = rng.choices(range(len(denominator)), k=len(denominator))
        ratios.append(value([numerator[i] for i in top], [numerator_control[i] for i in top],
                            [denominator[i] for i in bottom],
                            [denominator_control[i] for i in bottom]))
    ratios.sort()
    tail = (1.0 - confidence) / 2.0
    return {"ratio": estimate, "ci": [quantile(ratios, tail, presorted=True),
                                      quantile(ratios, 1.0 - tail, presorted=True)],
            "confidence": confidence, "paired": False, "statistic": statistic.__name__}


def summarize(samples: Sequence[float], confidence: float = DEFAULT_CONFIDENCE) -> dict:
    """n, mean, stdev, min, max, p50/p90/p99 and order-statistic CIs of p50 and p90 (seconds)."""
    values = sorted(samples)
    if not values:
        return {"n": 0}
    result = {"n": len(values), "mean": mean(values), "stdev": stdev(values),
              "min": values[0], "max": values[-1]}
    for label, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        result[label] = quantile(values, p, presorted=True)
    for label, p in (("p50", 0.5), ("p90", 0.9)):
        result[f"{label}_ci"] = list(quantile_ci(values, p, confidence))
    result["confidence"] = confidence
    return result
