from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pancakes_eval import (
    SetMetric,
    compute_dice,
    compute_hd95,
    compute_iou,
    compute_set_dice,
    compute_set_hd95,
    compute_set_iou,
)


def random_set(seed: int, s=3, m=4, k=5, h=12, w=10):
    rng = np.random.default_rng(seed)
    pred = rng.integers(0, k, size=(s, m, h, w))
    y = rng.random((s, h, w)) < 0.4
    y[:, 0, 0] = True  # never empty
    return pred, y


def brute_force(pred, y, k, fn, best):
    s, m = pred.shape[:2]
    table = np.array(
        [[np.nanmean([fn(pred[i, mi] == ki, y[i]) for i in range(s)]) for ki in range(k)] for mi in range(m)]
    )
    return best(table), table


@pytest.mark.parametrize("seed", range(5))
def test_set_dice_and_iou_equal_brute_force(seed):
    pred, y = random_set(seed)
    res = compute_set_dice(pred, y, num_labels=5)
    score, table = brute_force(pred, y, 5, compute_dice, np.nanmax)
    assert res.score == pytest.approx(score)
    np.testing.assert_allclose(res.table, table)
    assert res.table[res.protocol, res.label] == res.score
    np.testing.assert_allclose(
        res.per_image, [compute_dice(pred[i, res.protocol] == res.label, y[i]) for i in range(3)]
    )
    iou = compute_set_iou(pred, y, num_labels=5)
    assert iou.score == pytest.approx(brute_force(pred, y, 5, compute_iou, np.nanmax)[0])


def test_set_hd95_is_min_of_means_with_its_own_winner():
    pred, y = random_set(7, s=2, m=3, k=3, h=10, w=10)
    res = compute_set_hd95(pred, y, num_labels=3, spacing=(0.5, 2.0))
    score, table = brute_force(pred, y, 3, lambda p, t: compute_hd95(p, t, spacing=(0.5, 2.0)), np.nanmin)
    assert res.score == pytest.approx(score)
    np.testing.assert_allclose(res.table, table)
    assert res.metric == "hd95"


def test_set_hd95_absent_label_is_inf_and_per_image_spacing():
    y = np.zeros((2, 8, 8), bool)
    y[:, 2:6, 2:6] = True
    pred = np.zeros((2, 1, 8, 8), int)
    pred[:, 0, 2:6, 2:6] = 1
    pred[1, 0, 0, 0] = 2  # label 2 only in image 1
    res = compute_set_hd95(pred, y, num_labels=3, spacing=[(1.0, 1.0), (2.0, 2.0)])
    assert res.score == 0.0
    assert (res.protocol, res.label) == (0, 1)
    assert res.table[0, 2] == math.inf


def test_probabilities_are_argmaxed():
    rng = np.random.default_rng(0)
    probs = rng.random((2, 3, 4, 8, 8))
    y = rng.random((2, 8, 8)) < 0.5
    a = compute_set_dice(probs, y)
    b = compute_set_dice(probs.argmax(axis=2), y, num_labels=4)
    assert a.score == b.score
    assert (a.protocol, a.label) == (b.protocol, b.label)


def test_3d_sets():
    pred, y = random_set(1, s=2, m=2, k=3, h=6, w=6)
    pred3 = np.stack([pred] * 4, axis=2)  # (S, M, D, H, W)
    y3 = np.stack([y] * 4, axis=1)
    assert compute_set_dice(pred3, y3).score == pytest.approx(compute_set_dice(pred, y).score)


def test_perfect_prediction_scores_one():
    y = np.zeros((3, 8, 8), bool)
    y[:, 2:5, 3:7] = True
    pred = np.zeros((3, 2, 8, 8), int)
    pred[:, 1][y] = 4
    res = compute_set_dice(pred, y, num_labels=6)
    assert res.score == 1.0
    assert (res.protocol, res.label) == (1, 4)
    assert compute_set_hd95(pred, y).score == 0.0


@st.composite
def sets(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    s = draw(st.integers(2, 4))
    k = draw(st.integers(3, 6))
    rng = np.random.default_rng(seed)
    # A prediction that is consistent: label 0..k-1 on the same blocks in every image.
    blocks = rng.integers(0, k, size=(4, 4))
    base = np.kron(blocks, np.ones((3, 3), int))  # (12, 12)
    pred = np.broadcast_to(base, (s, 1, 12, 12)).copy()
    target_label = int(blocks[0, 0])
    y = pred[:, 0] == target_label
    return pred, y, k, rng


@settings(max_examples=40, deadline=None)
@given(sets())
def test_consistent_permutation_leaves_set_dice_unchanged(data):
    pred, y, k, rng = data
    perm = rng.permutation(k)
    assert compute_set_dice(pred, y, num_labels=k).score == 1.0
    assert compute_set_dice(perm[pred], y, num_labels=k).score == 1.0


@settings(max_examples=40, deadline=None)
@given(sets())
def test_inconsistent_permutation_lowers_set_dice(data):
    pred, y, k, rng = data
    s = pred.shape[0]
    lab = int(pred[0, 0, 0, 0])
    permuted = pred.copy()
    # Image 1 gets a permutation that moves the target's label elsewhere.
    perm = np.arange(k)
    other = (lab + 1 + rng.integers(0, k - 1)) % k
    perm[[lab, other]] = perm[[other, lab]]
    permuted[1] = perm[pred[1]]
    assert compute_set_dice(permuted, y, num_labels=k).score < 1.0
    # each image alone is still perfect: only the consistency across the set was broken
    assert all(compute_set_dice(permuted[i : i + 1], y[i : i + 1], num_labels=k).score == 1.0 for i in range(s))


def test_bad_inputs():
    pred, y = random_set(0)
    with pytest.raises(ValueError, match="empty"):
        compute_set_dice(pred[:0], y[:0])
    with pytest.raises(ValueError, match=r"\(3, 4, 12, 10\).*\(2, 12, 10\)"):
        compute_set_dice(pred, y[:2])
    with pytest.raises(ValueError, match="non-negative"):
        compute_set_dice(pred - 1, y)
    with pytest.raises(ValueError, match="integer"):
        compute_set_dice(pred + 0.5, y)
    with pytest.raises(ValueError, match="NaN"):
        compute_set_dice(np.full((3, 4, 5, 12, 10), np.nan), y)
    with pytest.raises(ValueError, match="label 4 but num_labels"):
        compute_set_dice(pred, y, num_labels=3)
    with pytest.raises(ValueError, match="K\\) must be >= 1"):
        compute_set_dice(pred, y, num_labels=0)
    with pytest.raises(ValueError, match="binary"):
        compute_set_dice(pred, y.astype(int) * 3)


def test_set_metric_accumulates_and_aggregates():
    metric = SetMetric("dice", num_labels=5)
    for seed in range(6):
        metric.update(*random_set(seed))
    ci = metric.aggregate(n_resamples=200)
    assert ci.low <= ci.estimate <= ci.high
    assert ci.estimate == pytest.approx(metric.scores.mean())
    assert metric.n_undefined == 0
    with pytest.raises(ValueError, match="metric must be"):
        SetMetric("hd100")


def test_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    pred, y = random_set(3)
    a = compute_set_dice(torch.from_numpy(pred), torch.from_numpy(y))
    b = compute_set_dice(pred, y)
    assert a.score == b.score
