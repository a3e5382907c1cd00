from __future__ import annotations

import numpy as np
import pytest

from pancakes_eval import compute_set_diagnosis, compute_set_dice


def test_an_object_split_over_two_labels_is_found_by_the_union():
    y = np.zeros((2, 10, 10), bool)
    y[:, 2:8, 2:8] = True
    pred = np.zeros((2, 1, 10, 10), np.int64)
    pred[:, 0, 2:8, 2:5] = 1  # the left half of the object
    pred[:, 0, 2:8, 5:8] = 2  # the right half
    d = compute_set_diagnosis(pred, y, num_labels=3)
    assert d.best_single == pytest.approx(compute_set_dice(pred, y, num_labels=3).score)
    assert d.best_single == pytest.approx(2 * 18 / (18 + 36))
    assert d.best_union == pytest.approx(1.0) and d.union_labels == 2
    assert d.precision == pytest.approx(1.0) and d.recall == pytest.approx(0.5)  # too fine


def test_a_label_larger_than_the_target_shows_low_precision():
    y = np.zeros((1, 10, 10), bool)
    y[0, 4:6, 4:6] = True
    pred = np.zeros((1, 2, 10, 10), np.int64)
    pred[0, :, 2:8, 2:8] = 1  # one coarse region around the small target
    d = compute_set_diagnosis(pred, y, num_labels=2)
    assert d.precision == pytest.approx(4 / 36) and d.recall == pytest.approx(1.0)
    assert d.best_union == d.best_single  # nothing mostly inside the target to join


def test_union_members_are_the_same_labels_in_every_image():
    y = np.zeros((2, 8, 8), bool)
    y[:, :4] = True
    pred = np.zeros((2, 1, 8, 8), np.int64)
    pred[0, 0, :4, :2], pred[0, 0, :4, 2:4] = 1, 2
    pred[1, 0, :4, :2], pred[1, 0, :, 2:4] = 1, 2  # in image 1 label 2 spills outside the target
    d = compute_set_diagnosis(pred, y, num_labels=3)
    # label 2: 8 + 16 pixels over the set, 16 of them inside (2/3): it joins at 0.5, not at 0.7
    assert d.union_labels == 2
    assert compute_set_diagnosis(pred, y, num_labels=3, inside=0.7).union_labels == 1
    with pytest.raises(ValueError, match="inside"):
        compute_set_diagnosis(pred, y, inside=0)


def test_finest_and_coarsest_protocols_count_the_labels_an_image_shows():
    y = np.zeros((2, 8, 8), bool)
    y[:, :2, :2] = True
    pred = np.zeros((2, 3, 8, 8), np.int64)
    pred[:, 0, :4] = 1  # two labels
    pred[:, 1] = np.arange(16).reshape(4, 4).repeat(2, 0).repeat(2, 1)  # sixteen 2×2 parcels
    pred[0, 2, :, 4:] = 1  # image 0 shows two labels, image 1 one
    d = compute_set_diagnosis(pred, y, num_labels=16)
    assert d.finest_labels == 16 and d.coarsest_labels == 1.5
    assert d.best_single == pytest.approx(1.0) and d.precision == pytest.approx(1.0)  # parcel 0 of protocol 1
