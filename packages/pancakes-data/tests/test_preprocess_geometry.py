"""Direct tests of the preprocessing functions and the slice plan (forward and inverse)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from pancakes_data import Preprocess, SlicePlan, split_subjects
from pancakes_data.preprocess import (
    normalize_intensity,
    pad_to_square,
    resize_image,
    resize_labels,
    resize_to_square,
    square_pixels,
)


def test_normalize_intensity_percentiles_ct_window_dtype_and_constant():
    x = np.linspace(0, 1000, 10001, dtype=np.float32)
    out = normalize_intensity(x)
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    lo, hi = np.percentile(x[x > 0], (0.5, 99.5))
    np.testing.assert_allclose(out[5000], (x[5000] - lo) / (hi - lo), rtol=1e-5)
    ct = normalize_intensity(np.array([-2000, -1000, 0, 1000, 3000], np.int16), modality="ct")
    np.testing.assert_allclose(ct, [0, 0, 0.5, 1, 1])
    assert normalize_intensity(np.full((4, 4), 7.0)).max() == 0.0
    with pytest.raises(ValueError, match="NaN"):
        normalize_intensity(np.array([1.0, np.nan]))


def test_pad_square_pixels_and_label_resizing():
    img = np.ones((3, 7))
    padded = pad_to_square(img)
    assert padded.shape == (7, 7) and padded[2:5].all() and not padded[:2].any()
    sq = square_pixels(np.ones((10, 20)), (2.0, 1.0))
    assert sq.shape == (20, 20)
    lab = np.zeros((256, 256), np.int64)
    lab[:, 100:102] = 3  # a 2-pixel line: nearest-neighbour halving could lose it, soft masks keep it
    small = resize_labels(lab, 128)
    assert small.shape == (128, 128) and (small == 3).any()


def _filters(x: np.ndarray, size: int) -> np.ndarray:
    """The resize as ndimage's filters compute it (the definition resize_image must keep)."""
    factor = x.shape[0] / size
    if factor > 1:
        x = ndimage.gaussian_filter(x, sigma=factor / 4)
    return ndimage.zoom(x, size / x.shape[0], order=1, mode="nearest", grid_mode=True)[:size, :size]


@pytest.mark.parametrize("n", [5, 64, 127, 128, 129, 257, 700, 1031])
def test_resize_image_equals_the_gaussian_then_linear_zoom(n):
    # shrinking by integer and odd factors, growing, and a kernel longer than the image (n = 5)
    x = np.random.default_rng(n).random((n, n)).astype(np.float32)
    x[n // 3 :, : n // 2] += 2.0  # an edge, where the blur and the interpolation both matter
    out = resize_image(x, 128)
    assert out.shape == (128, 128) and out.dtype == np.float32
    np.testing.assert_allclose(out, _filters(x, 128), atol=2e-6)
    if n == 128:
        np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("shape", [(300, 70), (70, 300), (129, 128), (33, 200)])
def test_resize_to_square_equals_padding_then_resizing(shape):
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    np.testing.assert_allclose(resize_to_square(x, 64), resize_image(pad_to_square(x), 64), atol=1e-6)


def test_resize_with_nan_keeps_the_nan_where_the_blur_reaches():
    # a matrix product would turn whole rows and columns into NaN; the filters keep it local
    x = np.random.default_rng(1).random((512, 512)).astype(np.float32)
    x[10, 10] = np.nan
    for out in (resize_image(x, 64), resize_to_square(x[:, :400], 64)):
        assert 0 < np.isnan(out).sum() < 64
    np.testing.assert_array_equal(resize_image(x, 64), _filters(x, 64))
    with pytest.raises(ValueError, match="square 2D image"):
        resize_image(x[:, :100], 64)


@pytest.mark.parametrize(("shape", "spacing"), [((60, 80), None), ((50, 70), (1.0, 2.5)), ((300, 70), None)])
def test_slice_plan_inverse_maps_the_centres_back(shape, spacing):
    plan = SlicePlan.for_slice(shape, spacing, 128)
    img = plan.forward(np.random.default_rng(0).random(shape).astype(np.float32))
    assert img.shape == (128, 128) and img.dtype == np.float32
    rows, cols = plan.inverse_coords()
    assert rows.shape == (shape[0],) and cols.shape == (shape[1],)
    # the image occupies the middle of the grid, symmetric about its centre
    assert rows[0] + rows[-1] == pytest.approx(127, abs=1.0) and cols[0] + cols[-1] == pytest.approx(127, abs=1.0)
    assert np.all(np.diff(rows) > 0) and np.all(np.diff(cols) > 0)
    with pytest.raises(ValueError, match="plan was made for"):
        plan.forward(np.zeros((shape[0] + 1, shape[1])))


def test_preprocess_settings_round_trip_and_refuse_nonsense():
    pre = Preprocess(size=64, percentiles=(1.0, 99.0))
    assert Preprocess.from_dict(pre.to_dict()) == pre
    assert Preprocess.from_dict({}) == Preprocess()
    with pytest.raises(ValueError, match="multiple of 16"):
        Preprocess(size=100)
    with pytest.raises(ValueError, match="unknown preprocess keys"):
        Preprocess.from_dict({"sise": 64})


def test_split_subjects_is_seeded_disjoint_and_complete():
    subjects = [f"s{i}" for i in range(20)]
    a, b = split_subjects(subjects, seed=3), split_subjects(subjects, seed=3)
    assert a == b and split_subjects(subjects, seed=4) != a
    parts = [set(a[k]) for k in ("train", "val", "test")]
    assert set().union(*parts) == set(subjects) and sum(map(len, parts)) == 20
    assert len(a["val"]) == len(a["test"]) == 2
    assert split_subjects(["x", "y"], seed=0) == {"train": ["x", "y"], "val": [], "test": []}
