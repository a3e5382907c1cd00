from __future__ import annotations

import numpy as np
import pytest

from pancakes_eval import bootstrap_ci, paired_comparison


def test_bootstrap_ci_is_seeded_and_covers_the_mean():
    v = np.random.default_rng(0).normal(0.7, 0.1, size=50)
    a = bootstrap_ci(v, seed=3)
    b = bootstrap_ci(v, seed=3)
    assert a == b
    assert a.low < v.mean() < a.high
    assert a.estimate == pytest.approx(v.mean())
    # The interval width is close to the normal-theory one (2·1.96·sd/√n).
    assert a.high - a.low == pytest.approx(2 * 1.96 * v.std(ddof=1) / np.sqrt(50), rel=0.2)


def test_paired_comparison_detects_a_shift_and_matches_scipy():
    from scipy import stats

    rng = np.random.default_rng(1)
    b = rng.uniform(0.4, 0.8, size=40)
    a = b + 0.05 + rng.normal(0, 0.02, size=40)
    res = paired_comparison(a, b)
    assert res.mean_difference == pytest.approx(np.mean(a - b))
    assert res.ci.low > 0
    assert res.p_bootstrap < 0.01
    t = stats.ttest_rel(a, b)
    assert res.t_statistic == pytest.approx(t.statistic)
    assert res.p_ttest == pytest.approx(t.pvalue)


def test_paired_comparison_no_difference():
    b = np.linspace(0.2, 0.9, 30)
    res = paired_comparison(b, b)
    assert res.mean_difference == 0.0
    assert np.isnan(res.t_statistic)
    assert res.p_bootstrap == 1.0


def test_stats_bad_input():
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="non-finite"):
        bootstrap_ci([0.5, np.nan])
    with pytest.raises(ValueError, match="same sets"):
        paired_comparison([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0], confidence=1.5)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci([1.0], n_resamples=0)


def test_the_scipy_bootstrap_matches_the_plain_percentile_bootstrap():
    """bootstrap_ci runs scipy.stats.bootstrap; a plain resampling loop gives the same interval."""
    rng = np.random.default_rng(4)
    v = rng.random(60)
    ci = bootstrap_ci(v, seed=9, n_resamples=2000)
    idx = np.random.default_rng(9).integers(0, v.size, size=(2000, v.size))
    low, high = np.quantile(v[idx].mean(axis=1), [0.025, 0.975])
    assert (ci.low, ci.high) == pytest.approx((low, high), abs=2e-3)
    assert ci.estimate == pytest.approx(v.mean())
    flat = bootstrap_ci(np.full(5, 0.3))
    assert (flat.low, flat.high) == (0.3, 0.3)
