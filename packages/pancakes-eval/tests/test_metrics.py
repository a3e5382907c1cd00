from __future__ import annotations

import math

import numpy as np
import pytest

from pancakes_eval import (
    compute_assd,
    compute_dice,
    compute_hausdorff,
    compute_hd95,
    compute_iou,
    distances_to_reference,
    surface_distances,
)


def square(shape=(16, 16), lo=4, hi=10):
    m = np.zeros(shape, bool)
    m[lo:hi, lo:hi] = True
    return m


def test_dice_iou_known_values():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[0, :] = True  # 4 px
    b[0, :2] = True  # 2 px, both inside a
    assert compute_dice(a, b) == pytest.approx(2 * 2 / 6)
    assert compute_iou(a, b) == pytest.approx(2 / 4)


@pytest.mark.parametrize("fn", [compute_dice, compute_iou])
def test_overlap_empty_cases(fn):
    empty = np.zeros((5, 5), bool)
    full = np.ones((5, 5), bool)
    assert math.isnan(fn(empty, empty))
    assert fn(empty, empty, both_empty=1.0) == 1.0
    assert fn(full, empty) == 0.0
    assert fn(empty, full) == 0.0


def test_distances_empty_cases():
    empty = np.zeros((6, 6), bool)
    m = square((6, 6), 1, 4)
    for fn in (compute_hd95, compute_assd, compute_hausdorff):
        assert math.isnan(fn(empty, empty))
        assert fn(m, empty) == math.inf
        assert fn(empty, m) == math.inf


def test_hausdorff_shifted_square_with_spacing():
    a = square()
    b = np.roll(a, 2, axis=1)  # shifted by 2 columns
    assert compute_hausdorff(a, b) == pytest.approx(2.0)
    assert compute_hausdorff(a, b, spacing=(1.0, 0.5)) == pytest.approx(1.0)
    assert compute_hausdorff(a, b, spacing=(3.0, 0.5)) == pytest.approx(1.0)
    assert compute_hd95(a, a) == 0.0
    assert compute_assd(a, a) == 0.0


def test_surface_distances_3d_shift_along_anisotropic_axis():
    a = np.zeros((10, 10, 10), bool)
    a[3:7, 3:7, 3:7] = True
    b = np.roll(a, 1, axis=0)
    d_ab, d_ba = surface_distances(a, b, spacing=(2.5, 1.0, 1.0))
    assert d_ab.max() == pytest.approx(2.5)
    assert d_ba.max() == pytest.approx(2.5)
    assert d_ab.min() == 0.0


def test_multilabel_returns_one_value_per_label():
    p = np.array([[0, 1, 1], [2, 2, 0]])
    t = np.array([[0, 1, 0], [2, 2, 2]])
    d = compute_dice(p, t, labels=[0, 1, 2, 3])
    assert d.shape == (4,)
    np.testing.assert_allclose(d[:3], [2 * 1 / 4, 2 * 1 / 3, 2 * 2 / 5])
    assert math.isnan(d[3])
    hd = compute_hd95(p, t, labels=[1, 2])
    assert hd.shape == (2,)


def test_bad_inputs_name_the_problem():
    a = np.zeros((4, 4), bool)
    with pytest.raises(ValueError, match=r"\(4, 4\) and \(4, 5\)"):
        compute_dice(a, np.zeros((4, 5), bool))
    with pytest.raises(ValueError, match="binary"):
        compute_dice(np.full((4, 4), 2), a)
    with pytest.raises(ValueError, match="non-finite"):
        compute_dice(np.full((4, 4), np.nan), a)
    with pytest.raises(ValueError, match="integer labels"):
        compute_dice(np.full((4, 4), 0.5), np.zeros((4, 4)), labels=[0])
    with pytest.raises(ValueError, match="non-negative"):
        compute_dice(np.full((4, 4), -1), np.zeros((4, 4), int), labels=[0])
    with pytest.raises(ValueError, match="spacing has 3"):
        compute_hd95(a, a, spacing=(1, 1, 1))
    with pytest.raises(ValueError, match="positive"):
        compute_hd95(a, a, spacing=(0, 1))
    with pytest.raises(ValueError, match="percentile"):
        compute_hausdorff(a, a, percentile=101)


def test_accepts_lists_and_torch_tensors():
    a = [[0, 1], [1, 1]]
    assert compute_dice(a, a) == 1.0
    torch = pytest.importorskip("torch")
    t = torch.tensor(a, dtype=torch.bool, requires_grad=False)
    assert compute_dice(t, t) == 1.0
    assert compute_dice(torch.tensor(a, dtype=torch.float32).requires_grad_(), a) == 1.0


def test_nmi_of_relabelled_independent_and_constant_maps():
    from pancakes_eval import compute_nmi

    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, (32, 32))
    assert compute_nmi(a, (a + 7) * 3) == pytest.approx(1.0)
    assert compute_nmi(a, rng.integers(0, 4, (32, 32))) < 0.02
    assert compute_nmi(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0
    half = np.where(a < 2, 0, 1)  # a coarser protocol of the same image
    assert 0.3 < compute_nmi(a, half) < 1.0
    with pytest.raises(ValueError, match="same shape"):
        compute_nmi(a, a[:3])


@pytest.mark.parametrize(
    ("shape", "spacing"), [((40, 48), None), ((40, 48), (0.5, 2.0)), ((9, 20, 24), (3.0, 1.0, 0.7))]
)
def test_distances_to_reference_equal_surface_distances(shape, spacing):
    rng = np.random.default_rng(3)
    ref = np.zeros(shape, bool)
    ref[tuple(slice(n // 4, n // 2 + 3) for n in shape)] = True
    ref[(0,) * len(shape)] = True  # a voxel on the array's border: surface there too
    distances = distances_to_reference(ref, spacing=spacing)
    for _ in range(12):
        labels = rng.integers(0, 4, size=shape)
        cand = labels == 0 if rng.random() < 0.5 else (labels == 0) & (np.indices(shape)[0] < shape[0] // 3)
        for got, want in zip(distances(cand), surface_distances(cand, ref, spacing=spacing), strict=True):
            np.testing.assert_allclose(np.sort(got), np.sort(want))
    empty = distances(np.zeros(shape, bool))
    assert empty[0].size == 0 and np.isinf(empty[1]).all()
    with pytest.raises(ValueError, match="non-empty reference"):
        distances_to_reference(np.zeros(shape, bool))
