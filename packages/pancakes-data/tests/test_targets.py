from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from pancakes_data import TargetMix, draw_target
from pancakes_data.targets import LABEL_KINDS, draw_levels, intensity_levels


def maps_and_classes():
    """Two images, labels 1-5: labels 1, 2 are class 1 (two nuclei), 3 is class 2, 4 class 3;
    label 5 is a tiny parcel (6 of 1,600 pixels); only label 3 covers more than 2 %."""
    m = np.zeros((2, 40, 40), np.int64)
    m[:, 30:32, 30:33] = 5
    m[:, 2:6, 2:6] = 1
    m[:, 2:6, 6:10] = 2  # touches 1
    m[:, 12:18, 12:18] = 3
    m[:, 12:18, 2:6] = 4
    return m, np.array([0, 1, 1, 2, 3, 4])


@pytest.mark.parametrize("kind", LABEL_KINDS)
def test_each_kind_gives_the_union_it_names(kind):
    maps, classes = maps_and_classes()
    got = draw_target(np.random.default_rng(0), maps, classes=classes, mix=TargetMix.only(kind), min_pixels=4)
    assert got is not None
    k, labels = got
    expected = {
        "structure": lambda: len(labels) == 1 and labels[0] in (1, 2, 3, 4),
        "class": lambda: labels == [1, 2],
        "neighbours": lambda: labels in ([1, 2],) or (k == "structure"),
        "foreground": lambda: labels == [1, 2, 3, 4, 5],
        "background": lambda: labels == [0],
        "small": lambda: len(labels) == 1 and labels[0] in (1, 2, 4, 5),  # 3 covers 36 px > 2 % of 1,600
    }[kind]
    assert expected(), (k, labels)


def test_neighbours_join_touching_labels_only():
    maps, classes = maps_and_classes()
    seen = set()
    for seed in range(30):
        kind, labels = draw_target(
            np.random.default_rng(seed), maps, classes=classes, mix=TargetMix.only("neighbours"), min_pixels=4
        )
        seen.add((kind, tuple(labels)))
    assert ("neighbours", (1, 2)) in seen
    # 3, 4 and 5 touch nothing: they come back as single structures, never joined with others
    assert all(labels in ((1, 2), (3,), (4,), (5,)) for _, labels in seen)


def test_targets_absent_from_an_image_are_never_drawn():
    maps, classes = maps_and_classes()
    maps[1][maps[1] == 3] = 0  # label 3 gone from image 1
    for seed in range(20):
        kind, labels = draw_target(np.random.default_rng(seed), maps, classes=classes, min_pixels=4)
        area = np.isin(maps, labels).reshape(2, -1).sum(1)
        assert (area >= 4).all(), (kind, labels)
        assert 3 not in labels or kind == "foreground"


def test_no_target_when_nothing_is_present():
    assert draw_target(np.random.default_rng(0), np.zeros((2, 8, 8), np.int64)) is None


def test_mix_validation():
    with pytest.raises(ValueError, match="positive sum"):
        TargetMix(0, 0, 0, 0, 0)
    with pytest.raises(ValueError, match="unknown target kinds"):
        TargetMix.from_dict({"everything": 1.0})
    assert TargetMix.from_dict({"foreground": 1.0}).weights()["structure"] == 0.0


def three_greys(shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Two noisy images of three grey regions (0.1, 0.5, 0.9) laid out differently; region ids 1-3."""
    rng = np.random.default_rng(4)
    regions = np.ones((2, 48, 48), np.int64)
    regions[0, :, 16:32], regions[0, :, 32:] = 2, 3
    regions[1, 24:], regions[1, 10:20, 30:40] = 3, 2
    grey = np.array([0.0, 0.1, 0.5, 0.9])[regions] + shift
    return grey + rng.normal(0, 0.04, grey.shape), regions


def test_intensity_levels_find_the_grey_regions_with_one_numbering_for_the_set():
    images, regions = three_greys()
    levels = intensity_levels(images, 3)
    assert levels.shape == images.shape and set(np.unique(levels)) == {1, 2, 3}
    # dark to bright, shared by both images: level j is region j in each, but for a blurred rim
    # where two regions meet (a dark-bright edge passes through the middle grey)
    interior = np.stack([ndimage.minimum_filter(r, 5) == ndimage.maximum_filter(r, 5) for r in regions])
    assert np.array_equal(levels[interior], regions[interior])
    assert (levels == regions).mean() > 0.95
    # more classes than greys split a region (or take the rims), never join two regions' interiors
    fine = intensity_levels(images, 5)
    for j in (1, 2, 3):
        for v in np.unique(fine[interior & (regions == j)]):
            assert set(np.unique(regions[interior & (fine == v)])) == {j}


def test_draw_levels_gives_one_class_present_in_every_image():
    images, _ = three_greys()
    for seed in range(5):
        maps, labels = draw_levels(np.random.default_rng(seed), images, min_pixels=10)
        assert len(labels) == 1 and 1 <= labels[0] <= maps.max() <= 8
        area = (maps == labels[0]).sum(axis=(1, 2))
        assert (area >= 10).all() and (area <= 48 * 48 - 10).all()
    assert draw_levels(np.random.default_rng(0), np.zeros((2, 16, 16))) is None  # one grey: no class to find
