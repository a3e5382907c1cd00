"""count_objects against scipy.ndimage.label run once per label (the definition it replaces)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from pancakes_model.app.objects import count_objects


def reference(lab: np.ndarray, n_values: int) -> np.ndarray:
    full = ndimage.generate_binary_structure(lab.ndim, lab.ndim)
    return np.array([ndimage.label(lab == k, structure=full)[1] for k in range(n_values)])


def random_maps(rng: np.random.Generator, ndim: int) -> tuple[np.ndarray, int]:
    shape = (int(rng.integers(1, 4)), *(int(n) for n in rng.integers(1, 11, ndim)))
    n_values = int(rng.integers(1, 5))
    maps = rng.integers(0, n_values, shape).astype(np.uint8)
    if rng.random() < 0.5:  # smooth maps have long runs, noisy ones many short ones
        maps = ndimage.median_filter(maps, (1,) + (3,) * ndim)
    return maps, n_values


@pytest.mark.parametrize("ndim", [2, 3])
def test_equals_ndimage_label_for_every_block_size(ndim):
    rng = np.random.default_rng(ndim)
    for _ in range(60):
        maps, n_values = random_maps(rng, ndim)
        want = np.stack([reference(m, n_values) for m in maps])
        # tiny blocks force the plane-by-plane path with objects carried between blocks
        for block in (1, 5, 40, 1 << 22):
            got = count_objects(maps, n_values, block_elements=block)
            np.testing.assert_array_equal(got, want, err_msg=f"shape {maps.shape}, block {block}")


def test_touching_corners_join_and_values_stay_apart():
    lab = np.array(
        [
            [1, 0, 0, 2],
            [0, 1, 2, 0],
            [0, 2, 1, 0],
            [2, 0, 0, 1],
        ],
        np.uint8,
    )
    # the two diagonals cross at the centre, yet each is one object of its own value; label 0's
    # pieces join through their corners into one ring
    np.testing.assert_array_equal(count_objects(lab[None], 4), [[1, 1, 1, 0]])
    lab[0, 1] = lab[3, 2] = 3  # now 0 is two pieces
    np.testing.assert_array_equal(count_objects(lab[None], 4), [[2, 1, 1, 2]])


def test_select_counts_only_those_maps_in_their_order():
    rng = np.random.default_rng(0)
    maps = rng.integers(0, 3, (4, 9, 7)).astype(np.uint8)
    full = count_objects(maps, 3)
    np.testing.assert_array_equal(count_objects(maps, 3, select=[3, 1]), full[[3, 1]])


def test_long_object_through_many_blocks_counts_once():
    lab = np.zeros((1, 300, 20), np.uint8)
    lab[0, :, 10] = 1  # a vertical line crossing every block boundary
    lab[0, 100:200, 3] = 2
    np.testing.assert_array_equal(count_objects(lab, 3, block_elements=20 * 7), [[2, 1, 1]])


def test_empty_maps_and_bad_shape():
    assert count_objects(np.zeros((2, 0, 5), np.uint8), 3).tolist() == [[0, 0, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match="stack of 2D or 3D maps"):
        count_objects(np.zeros(5, np.uint8), 2)


def test_pixel_counts_in_chunks_equal_one_bincount():
    from pancakes_model.app.stats import _pixel_counts

    lab = np.random.default_rng(1).integers(0, 5, (3, 17, 13)).astype(np.uint8)
    np.testing.assert_array_equal(_pixel_counts(lab, 6, chunk=7), np.bincount(lab.ravel(), minlength=6))
