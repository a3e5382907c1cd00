"""Statistics over sets: bootstrap confidence intervals and paired method comparisons.

The unit of resampling is the *set* (one Set score per set), as in the paper's evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as _st

from pancakes_eval._array import as_numpy

__all__ = ["ConfidenceInterval", "PairedComparison", "bootstrap_ci", "paired_comparison"]


@dataclass(frozen=True)
class ConfidenceInterval:
    """A point estimate with a percentile-bootstrap interval."""

    estimate: float
    low: float
    high: float
    confidence: float
    n: int

    def __str__(self) -> str:
        return f"{self.estimate:.4f} [{self.low:.4f}, {self.high:.4f}]"


@dataclass(frozen=True)
class PairedComparison:
    """Method A minus method B on the same sets.

    Attributes:
        mean_difference: mean of ``a - b``.
        ci: percentile-bootstrap interval of the mean difference (paired resampling of sets).
        p_bootstrap: two-sided bootstrap p-value of "mean difference = 0".
        t_statistic, p_ttest: paired t-test (``scipy.stats.ttest_rel``).
        n: number of sets.
    """

    mean_difference: float
    ci: ConfidenceInterval
    p_bootstrap: float
    t_statistic: float
    p_ttest: float
    n: int


def _values(x: Any, name: str) -> np.ndarray:
    v = np.asarray(as_numpy(x, name=name), dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError(f"{name} is empty: need at least one set score")
    if not np.all(np.isfinite(v)):
        bad = v[~np.isfinite(v)][0]
        raise ValueError(f"{name} contains a non-finite score ({bad}); drop or impute it first")
    return v


def _check(n_resamples: int, confidence: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def bootstrap_ci(
    values: Any,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int | np.random.Generator = 0,
    statistic: Callable[[np.ndarray], np.ndarray] | None = None,
) -> ConfidenceInterval:
    """Percentile bootstrap interval of a statistic over sets.

    Args:
        values: one score per set, shape ``(N,)``.
        n_resamples: number of bootstrap resamples.
        confidence: interval coverage (0.95 for a 95% CI).
        seed: seed or generator; same seed, same interval.
        statistic: vectorised statistic taking ``(R, N)`` and returning ``(R,)``; the mean by default.
    """
    _check(n_resamples, confidence)
    v = _values(values, "values")
    stat = statistic or (lambda a: a.mean(axis=-1))
    est = float(np.asarray(stat(v[None, :])).ravel()[0])
    if v.size == 1 or np.ptp(v) == 0:  # no spread: every resample gives the estimate
        return ConfidenceInterval(est, est, est, confidence, int(v.size))
    # scipy's percentile bootstrap: the same interval as the former hand-written loop (it draws the
    # same resamples from the same generator), at ~2.6× its time — well under a millisecond more.
    res = _st.bootstrap(
        (v,),
        lambda x, axis: stat(np.moveaxis(x, axis, -1)),
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        random_state=np.random.default_rng(seed),
    )
    low, high = res.confidence_interval
    return ConfidenceInterval(est, float(low), float(high), confidence, int(v.size))


def paired_comparison(
    a: Any,
    b: Any,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int | np.random.Generator = 0,
) -> PairedComparison:
    """Compare two methods scored on the same sets (paired bootstrap and paired t-test).

    Args:
        a: scores of method A per set, shape ``(N,)``.
        b: scores of method B on the same sets, shape ``(N,)``.
    """
    _check(n_resamples, confidence)
    va, vb = _values(a, "a"), _values(b, "b")
    if va.shape != vb.shape:
        raise ValueError(f"a and b must score the same sets, got {va.size} and {vb.size} scores")
    diff = va - vb
    ci = bootstrap_ci(diff, n_resamples=n_resamples, confidence=confidence, seed=seed)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, diff.size, size=(n_resamples, diff.size))
    # Null distribution by centring the bootstrap of the mean difference at zero.
    boots = diff[idx].mean(axis=1)
    centred = boots - diff.mean()
    p_boot = float((np.count_nonzero(np.abs(centred) >= abs(diff.mean())) + 1) / (n_resamples + 1))
    if diff.size > 1 and np.ptp(diff) > 0:
        t_res = _st.ttest_rel(va, vb)
        t_stat, p_t = float(t_res.statistic), float(t_res.pvalue)
    else:
        # Zero variance of the differences: the t statistic is undefined.
        t_stat, p_t = float("nan"), float("nan")
    return PairedComparison(float(diff.mean()), ci, p_boot, t_stat, p_t, int(diff.size))
