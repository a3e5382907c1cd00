from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from pancakes_synth import GeneratorConfig, SetGenerator
from pancakes_synth.fields import FAMILIES, HELD_OUT_FAMILIES, make_field


def test_same_seed_same_bytes_other_seed_differs(small_source):
    a = SetGenerator(small_source, seed=4).generate(7)
    b = SetGenerator(small_source, seed=4).generate(7)
    c = SetGenerator(small_source, seed=5).generate(7)
    assert a.images.tobytes() == b.images.tobytes()
    assert a.labels.tobytes() == b.labels.tobytes()
    assert a.images.tobytes() != c.images.tobytes()


def test_set_is_independent_of_generation_order(small_source):
    gen = SetGenerator(small_source, seed=1)
    later = gen.generate(3)
    for i in range(3):
        gen.generate(i)
    assert gen.generate(3).labels.tobytes() == later.labels.tobytes()


@pytest.mark.parametrize("index", range(6))
def test_template_invariants(small_source, index):
    gen = SetGenerator(small_source, seed=0)
    rng = np.random.default_rng([0, index])
    params = gen.sample_template_params(rng)
    tmpl, classes = gen.render_template_with_classes(params)
    ids, counts = np.unique(tmpl, return_counts=True)
    # contiguous ids: every id 1..L-1 is used; 0 is background
    assert set(range(1, int(tmpl.max()) + 1)) <= set(ids.tolist())
    assert (counts[ids != 0] >= 20).all()
    # every label belongs to one painted structure (or the envelope or its rim); background alone is class 0
    assert classes.shape == (int(tmpl.max()) + 1,) and classes[0] == 0 and (classes[1:] > 0).all()
    assert classes.max() <= len(params.structure_ids) + 2
    if params.split_components:  # then every label is one connected piece
        assert all(ndimage.label(tmpl == v)[1] == 1 for v in ids[ids != 0])
    assert np.array_equal(gen.render_template(params), tmpl)  # a function of the parameters alone


def test_elements_shapes_ranges_and_shared_ids(small_source):
    gen = SetGenerator(small_source, set_size=4, seed=2)
    s = gen.generate(0)
    assert s.images.shape == (4, 128, 128)
    assert s.images.dtype == np.float32
    assert s.labels.shape == (4, 128, 128)
    assert s.images.min() >= 0.0
    assert s.images.max() <= 1.0
    assert s.labels.max() < s.n_labels


def test_without_element_deformation_every_element_is_the_template(small_source):
    cfg = dataclasses.replace(
        GeneratorConfig(),
        element_rotation_deg=0.0,
        element_scale=(1.0, 1.0),
        element_translation=0.0,
        elastic_std=(0.0, 0.0),
    )
    gen = SetGenerator(small_source, set_size=3, seed=3, config=cfg)
    rng = np.random.default_rng([3, 0])
    tmpl = gen.render_template(gen.sample_template_params(rng))
    s = gen.generate(0)
    for lab in s.labels:
        np.testing.assert_array_equal(lab, tmpl)


def test_same_id_is_the_same_structure_across_elements(small_source):
    gen = SetGenerator(small_source, set_size=5, seed=8)
    rng = np.random.default_rng([8, 2])
    tmpl = gen.render_template(gen.sample_template_params(rng))
    s = gen.generate(2)
    big = [k for k in range(1, s.n_labels) if (tmpl == k).sum() > 400]
    assert big
    for k in big:
        ref = np.argwhere(tmpl == k).mean(0)
        for lab in s.labels:
            pts = np.argwhere(lab == k)
            assert pts.size, f"label {k} vanished"
            # small per-element deformation: a structure stays where the template put it
            assert np.linalg.norm(pts.mean(0) - ref) < 20


def test_intensity_spread_is_shared_by_the_set(small_source):
    gen = SetGenerator(small_source, set_size=3, seed=6)
    rng = np.random.default_rng([6, 0])
    tp = gen.sample_template_params(rng)
    n_labels = int(gen.render_template(tp).max()) + 1
    ep = gen.sample_element_params(rng, n_labels)
    assert ep.means.shape == (3, n_labels)
    # jitter per element is small compared with the spread of label means
    assert np.abs(ep.means - ep.means.mean(0)).max() < 0.2


@pytest.mark.parametrize("family", sorted(FAMILIES) + sorted(HELD_OUT_FAMILIES))
def test_every_family_makes_a_nonempty_field(family):
    f = make_field(family, np.random.default_rng(0))
    assert f.shape == (32, 32, 32)
    assert (f > 0).any()
    assert (f <= 0).any()


def test_bad_arguments(small_source):
    with pytest.raises(ValueError, match="set_size must be >= 1, got 0"):
        SetGenerator(small_source, set_size=0)
    with pytest.raises(ValueError, match="unknown procedural family 'nope'"):
        make_field("nope", np.random.default_rng(0))
