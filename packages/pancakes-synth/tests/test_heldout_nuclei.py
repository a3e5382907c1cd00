"""The clustered-nuclei dev family: statistics pinned to the real held-out HeLa tiles, seeded, and
no code shared with the training generators (in either direction)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from pancakes_synth import HeldOutGenerator
from pancakes_synth.heldout_nuclei import PINNED

SRC = Path(__file__).resolve().parents[1] / "src" / "pancakes_synth"
DEV_MODULES = {"heldout", "heldout_nuclei"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n for n in names if n.startswith("pancakes_synth")}


def test_dev_generators_and_training_generators_never_import_each_other():
    for path in SRC.rglob("*.py"):
        mod = path.relative_to(SRC).with_suffix("").as_posix().replace("/", ".")
        found = _imports(path)
        if mod in DEV_MODULES:  # a dev generator sees only the set container and its sibling
            assert found <= {"pancakes_synth.recipe", "pancakes_synth.heldout_nuclei"}, (mod, found)
        elif mod not in ("specs", "__init__"):  # the spec parser and the package's exports see both
            assert not {f for f in found if f.split(".")[-1] in DEV_MODULES}, (mod, found)


def _stats(sets):
    counts, diameters, spreads, touching = [], [], [], []
    for st in sets:
        for im, lab in zip(st.images, st.labels):
            ids = np.unique(lab[lab > 0])
            counts.append(ids.size)
            border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
            whole = np.setdiff1d(ids, border)
            diameters += list(2 * np.sqrt(ndimage.sum(np.ones_like(lab), lab, whole) / np.pi))
            bg, top = np.median(im[lab == 0]), np.percentile(im, 99.5)
            rel = (np.asarray(ndimage.mean(im, lab, ids)) - bg) / (top - bg)
            spreads.append(rel.max() / max(rel.min(), 1e-3))
            grown = ndimage.grey_dilation(lab, size=3)
            shrunk = ndimage.grey_erosion(np.where(lab == 0, 1 << 30, lab), size=3)
            edge = (lab > 0) & (((grown != lab) & (grown > 0)) | ((shrunk != lab) & (shrunk < 1 << 30)))
            touching.append(np.unique(lab[edge]).size / max(ids.size, 1))
    return np.asarray(counts), np.asarray(diameters), np.asarray(spreads), np.asarray(touching)


@pytest.mark.slow
def test_statistics_stay_pinned_to_the_real_held_out_nuclei():
    gen = HeldOutGenerator("nuclei", set_size=3, seed=2026)
    counts, diameters, spreads, touching = _stats([gen.get(i) for i in range(40)])
    lo, hi = PINNED["count_iqr"]
    assert lo - 1 <= np.median(counts) <= hi and np.percentile(counts, 95) <= 12
    assert abs(np.median(diameters) - PINNED["diameter_median"]) <= 2.5
    assert diameters.min() >= 4 and np.percentile(diameters, 99) <= 42  # 6–40 px (clipped outlines)
    assert 0.6 * PINNED["spread_median"] <= np.median(spreads) <= 1.6 * PINNED["spread_median"]
    assert 0.5 * PINNED["touching_mean"] <= touching.mean() <= 2 * PINNED["touching_mean"]


def test_sets_are_seeded_and_offer_foreground_and_brightness_classes():
    from pancakes_data import TargetMix, draw_target

    a = HeldOutGenerator("nuclei", set_size=3, seed=7).get(3)
    b = HeldOutGenerator("nuclei", set_size=3, seed=7).get(3)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.images.dtype == np.float32 and a.images.min() >= 0 and a.images.max() <= 1
    ids = np.unique(a.labels[a.labels > 0])
    assert set(a.classes[ids].tolist()) <= {1, 2, 3} and a.classes[0] == 0
    # every nucleus has its own id across the set: no id in two images
    per_image = [set(np.unique(lab[lab > 0]).tolist()) for lab in a.labels]
    assert all(not (per_image[i] & per_image[j]) for i in range(3) for j in range(i + 1, 3))
    rng = np.random.default_rng(0)
    kind, labels = draw_target(rng, a.labels, classes=a.classes, mix=TargetMix.only("foreground"))
    assert kind == "foreground" and sorted(labels) == sorted(set(range(1, len(a.classes))))
    got = None
    for seed in range(5):  # a brightness class present in all three images
        got = draw_target(np.random.default_rng(seed), a.labels, classes=a.classes, mix=TargetMix.only("class"))
        if got:
            break
    if got is not None:
        assert got[0] == "class" and len({int(a.classes[v]) for v in got[1]}) == 1
