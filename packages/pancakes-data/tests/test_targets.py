from __future__ import annotations

import numpy as np
import pytest

from pancakes_data import TARGET_KINDS, TargetMix, draw_target


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


@pytest.mark.parametrize("kind", TARGET_KINDS)
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
