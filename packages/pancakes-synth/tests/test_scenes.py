"""Scene families: determinism, label statistics, classes for coarse targets, appearance models."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pancakes_synth import HeldOutGenerator, SceneGenerator, open_source
from pancakes_synth.scenes import APPEARANCES, FAMILIES, GROUPS, SceneConfig
from pancakes_synth.scenes.generator import make_twins


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_is_deterministic_and_well_formed(family):
    a = SceneGenerator([family], set_size=3, seed=4).generate(2)
    b = SceneGenerator([family], set_size=3, seed=4).generate(2)
    c = SceneGenerator([family], set_size=3, seed=5).generate(2)
    assert a.images.tobytes() == b.images.tobytes() and a.labels.tobytes() == b.labels.tobytes()
    assert a.images.tobytes() != c.images.tobytes()
    assert a.images.shape == a.labels.shape == (3, 128, 128)
    assert a.images.dtype == np.float32 and a.images.min() >= 0.0 and a.images.max() <= 1.0
    assert np.isfinite(a.images).all()
    assert a.labels.max() < a.n_labels == len(a.classes)
    assert a.classes[0] == 0 and a.meta["family"] == family


def _stats(family, n=12, **kw):
    gen = SceneGenerator([family], set_size=2, seed=1, **kw)
    return [gen.generate(i) for i in range(n)]


def test_populations_have_many_similar_instances_grouped_in_classes():
    sets = [s for s in _stats("nuclei", n=16) if s.meta["mode"] == "deformed"]
    assert sets, "both modes are drawn"
    for s in sets:
        per_class = np.bincount(s.classes[1:])[1:]
        assert per_class.max() >= 3  # a population, not one object
        ids, area = np.unique(s.labels[0], return_counts=True)
        assert area[ids != 0].max() < 0.3 * s.labels[0].size  # objects, not a background-sized blob
    coverage = [np.mean(s.labels[0] != 0) for s in sets]
    assert min(coverage) < 0.2 < max(coverage) or max(coverage) < 0.6  # sparse and dense fields both occur


def test_fields_of_view_label_classes_and_deformed_sets_keep_instances():
    seen = set()
    for s in _stats("cells", n=10):
        seen.add(s.meta["mode"])
        if s.meta["mode"] == "fields":
            np.testing.assert_array_equal(s.classes, np.arange(s.n_labels))
        else:
            # instances keep their ids across the set: most ids appear in every image
            common = set(np.unique(s.labels[0])) & set(np.unique(s.labels[1]))
            assert len(common) >= 0.8 * len(np.unique(s.labels[0]))
    assert seen == {"fields", "deformed"}


def test_thin_and_layered_structures_look_like_their_names():
    for s in _stats("vessels", n=6):
        fg = s.labels[0] != 0
        assert 0.003 < fg.mean() < 0.35  # thin: a small part of the field
    for s in _stats("layers", n=6):
        assert s.meta["mode"] == "deformed"
        ids = np.unique(s.labels[0])
        assert len(ids) >= 4  # several bands
    for s in _stats("ribbon", n=4):
        ribbon = s.labels[0] == 1
        core = s.labels[0] == 2
        assert ribbon.any() and core.any() and ribbon.mean() < core.mean() + 0.5


@pytest.mark.parametrize("appearance", sorted(APPEARANCES))
def test_every_appearance_model_renders_a_finite_normalised_image(appearance):
    s = SceneGenerator(["nuclei"], appearance=appearance, set_size=2, seed=0).generate(0)
    assert s.meta["appearance"] == appearance
    assert np.isfinite(s.images).all() and s.images.min() >= 0 and s.images.max() <= 1
    assert s.images.std() > 0.01


def test_a_class_looks_alike_across_the_set():
    """Same experiment, same appearance draw: a class's mean grey level agrees between images."""
    gen = SceneGenerator(["nuclei"], appearance="generic", set_size=3, seed=3, config=SceneConfig())
    s = gen.generate(1)
    c = s.classes[s.labels]
    present = [k for k in np.unique(c) if all((c[i] == k).sum() > 20 for i in range(3))]
    spread = [np.ptp([s.images[i][c[i] == k].mean() for i in range(3)]) for k in present]
    assert present and max(spread) < 0.25


def test_twins_copy_the_appearance_and_differ_in_texture_only():
    rng = np.random.default_rng(0)
    params = {"level": np.array([0.5, 0.1, 0.4, 0.9]), "texture_amp": np.zeros(4), "sigma": 0.7}
    new, tex, twin_of = make_twins(rng, params, np.array([0, 0, 0, 0]), 1.0, (0.1, 0.25))
    assert params["level"].tolist() == [0.5, 0.1, 0.4, 0.9]  # the caller's draw is not modified
    for c, src in enumerate(twin_of):
        if src >= 0:
            assert new["level"][c] == new["level"][src] and tex[c] != tex[src]
            assert 0.1 <= new["texture_amp"][c] <= 0.25 and 0.1 <= new["texture_amp"][src] <= 0.25
    paired = [c for c, src in enumerate(twin_of) if src >= 0] + [int(src) for src in twin_of if src >= 0]
    assert twin_of[0] == -1 and len(paired) == len(set(paired)) == 2 and new["sigma"] == 0.7  # disjoint pairs
    _, _, none = make_twins(rng, {"level": np.ones(2), "texture_amp": np.zeros(2)}, np.zeros(2, int), 1.0, (0.1, 0.2))
    assert (none == -1).all()  # background and one class: nothing to twin


def test_twin_classes_share_a_grey_level_and_recipes_without_twins_are_unchanged():
    flat = {"instance_brightness_sd": (0.0, 0.0), "p_deformed": 0.0}
    plain = SceneGenerator(["regions"], appearance="generic", set_size=2, seed=6, config=SceneConfig(**flat))
    zero = SceneGenerator(["regions"], appearance="generic", set_size=2, seed=6, config=SceneConfig(**flat, p_twins=0))
    assert plain.generate(3).images.tobytes() == zero.generate(3).images.tobytes()
    twins = SceneGenerator(["regions"], appearance="generic", set_size=2, seed=6, config=SceneConfig(**flat, p_twins=1))
    gaps = {True: [], False: []}
    for i in range(6):
        s = twins.generate(i)
        c, img = s.classes[s.labels], s.images
        twin_of = s.meta["twin_of"]
        means = {k: img[c == k].mean() for k in np.unique(c) if (c == k).sum() > 200}
        for a in means:
            for b in means:
                if 0 < a < b:
                    gaps[twin_of[b] == a or twin_of[a] == b].append(abs(means[a] - means[b]))
    assert gaps[True] and gaps[False]
    assert np.median(gaps[True]) < 0.03 < np.median(gaps[False])
    assert twins.spec == "scenes:regions;appearance=generic;twins=1"


def test_groups_and_specs_open_the_same_generators():
    assert set(GROUPS["populations"]) <= set(FAMILIES)
    g = open_source("scenes:populations;appearance=phase", set_size=2, seed=0)
    assert isinstance(g, SceneGenerator) and set(g.families) == set(GROUPS["populations"])
    assert g.spec == "scenes:" + ",".join(sorted(GROUPS["populations"])) + ";appearance=phase"
    with pytest.raises(ValueError, match="unknown scene families"):
        SceneGenerator(["dragons"])
    with pytest.raises(ValueError, match="bad option"):
        open_source("scenes;colour=red")
    assert open_source("scenes:regions;twins=0.3", set_size=2, seed=0).config.p_twins == 0.3
    for bad in ("2", "x", "-0.1"):
        with pytest.raises(ValueError, match="twins must be a probability"):
            open_source(f"scenes:regions;twins={bad}")


def test_held_out_spots_target_the_foreground_and_share_no_code():
    import inspect

    import pancakes_synth.heldout as heldout

    source = inspect.getsource(heldout)
    assert "from pancakes_synth.scenes" not in source and "from pancakes_synth.fields" not in source
    s = HeldOutGenerator("spots", set_size=3, seed=0).generate(0)
    assert set(np.unique(s.labels)) == {0, 1} and (s.labels == 1).any(axis=(1, 2)).all()
    m = HeldOutGenerator("mosaic", set_size=3, seed=0).generate(0)
    assert len(np.unique(m.labels)) >= 3


def test_real_textures_come_from_scikit_images_sample_files(tmp_path):
    pytest.importorskip("skimage")
    from pancakes_synth.scenes import TextureBank

    bank = TextureBank.from_skimage(cache_dir=tmp_path, count=12, size=64)
    assert bank.patches.shape == (12, 64, 64) and "brick.png" in bank.names
    again = TextureBank.from_skimage(cache_dir=tmp_path, count=12, size=64)  # from the cache
    np.testing.assert_array_equal(bank.patches, again.patches)
    field = bank.sample(np.random.default_rng(0), 128)
    assert field.shape == (128, 128) and abs(float(field.mean())) < 0.5


def test_polylines_paint_exactly_what_one_segment_at_a_time_paints():
    from pancakes_synth.scenes.shapes import curve, paint_polyline

    def one_at_a_time(canvas, value, pts, widths):  # the definition: each segment tested in its own box
        w = np.broadcast_to(np.asarray(widths, dtype=np.float32), (len(pts),))
        for i in range(max(len(pts) - 1, 1)):
            a, b = pts[i], pts[min(i + 1, len(pts) - 1)]
            cy, cx = (a + b) / 2
            reach = float(np.hypot(*(b - a)) / 2 + max(w[i], w[min(i + 1, len(w) - 1)]) + 1)
            r0, r1 = max(int(np.floor(cy - reach)), 0), min(int(np.ceil(cy + reach)) + 1, canvas.shape[0])
            c0, c1 = max(int(np.floor(cx - reach)), 0), min(int(np.ceil(cx + reach)) + 1, canvas.shape[1])
            dy = np.arange(r0, r1, dtype=np.float32)[:, None] - float(cy)
            dx = np.arange(c0, c1, dtype=np.float32)[None, :] - float(cx)
            if dy.size == 0 or dx.size == 0:
                continue
            ab, a0 = b - a, a - np.array([cy, cx], np.float32)
            t = np.clip(((dy - a0[0]) * ab[0] + (dx - a0[1]) * ab[1]) / max(float(ab @ ab), 1e-9), 0.0, 1.0)
            dist = np.hypot(dy - (a0[0] + t * ab[0]), dx - (a0[1] + t * ab[1]))
            canvas[r0:r1, c0:c1][dist <= w[i] + t * (w[min(i + 1, len(w) - 1)] - w[i])] = value

    rng = np.random.default_rng(0)
    for _ in range(300):
        pts = curve(rng, rng.uniform(-20, 84, 2), rng.uniform(0, 6.3), steps=int(rng.integers(1, 30)), step=4.0,
                    wiggle=0.3)  # fmt: skip
        widths = rng.uniform(0.3, 5, len(pts)).astype(np.float32) if rng.random() < 0.5 else float(rng.uniform(0.3, 5))
        ours, ref = np.zeros((64, 64), np.int32), np.zeros((64, 64), np.int32)
        paint_polyline(ours, 2, pts, widths)
        one_at_a_time(ref, 2, pts, widths)
        np.testing.assert_array_equal(ours, ref)


# A cells layout of a training run (stage 28, batch 1,345): seeds clipped onto the border, on
# which scipy's compacting k-d tree build recursed until the stack overflowed under the
# flush-to-zero that the trainer sets for its optimizer.
_BORDER_CELLS = """
import numpy as np, torch
from pancakes_synth.scenes.populations import Cells
torch.set_flush_denormal(True)
rng = np.random.default_rng()
rng.bit_generator.state = {"bit_generator": "PCG64", "has_uint32": 0, "uinteger": 0, "state": {
    "state": 31595819458209287289773586457469510855, "inc": 149152782856010351658028086654639060765}}
exp = {"radius": 6.0228191831239855, "confluence": 0.8561098019124598, "nucleus": 0.42271608997385834,
       "p_nucleus": 0.6205485498237926, "membrane": 1.2786629730706318, "wobble": 2.487081407386416}
Cells().layout(rng, exp, 128)
"""


def test_cells_layout_survives_a_flush_to_zero():
    run = subprocess.run([sys.executable, "-c", _BORDER_CELLS], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"exit {run.returncode}: {run.stderr[-500:]}"
