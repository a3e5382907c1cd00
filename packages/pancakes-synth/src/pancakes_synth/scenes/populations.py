"""Populations of similar objects: nuclei, cells, glands, bacteria, vesicles.

Targets at every granularity come from the classes: one object (sets of deformed copies), the
union of a class (all nuclei), or the whole foreground (every object against the background).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.spatial import cKDTree

from pancakes_synth.scenes.layout import Family, Painter, harmonics, positions
from pancakes_synth.scenes.shapes import paint_blob, paint_capsule, paint_ring
from pancakes_synth.smooth import smooth_field

__all__ = ["Bacteria", "Cells", "Glands", "Nuclei", "Vesicles"]


class Nuclei(Family):
    """1–3 classes of round-ish objects (nuclei, cells, spores), sparse or touching, each class with
    its own size, elongation and irregularity; object counts vary from a few to ~250."""

    name = "nuclei"
    appearances: ClassVar[dict[str, float]] = {
        "fluorescence": 0.5,
        "brightfield": 0.15,
        "histology": 0.15,
        "phase": 0.1,
        "dic": 0.1,
    }

    def experiment(self, rng, size):
        n_cls = int(rng.choice([1, 1, 1, 2, 2, 3]))
        scale = size / 128
        classes = []
        for _ in range(n_cls):
            r = float(np.exp(rng.uniform(np.log(2.5), np.log(12.0)))) * scale
            coverage = rng.uniform(0.03, 0.4) / n_cls
            count = int(np.clip(coverage * size * size / (np.pi * r * r), 3, 250))
            classes.append(
                {
                    "radius": r,
                    "radius_sd": rng.uniform(0.0, 0.25),
                    "aspect": rng.uniform(1.0, 1.8),
                    "irregularity": rng.uniform(0.0, 0.25),
                    "count": count,
                    "count_sd": rng.uniform(0.0, 0.3),
                }
            )
        return {"classes": classes, "touching": rng.uniform(0, 1), "clustered": rng.uniform(0, 0.6)}

    def layout(self, rng, exp, size):
        paint = Painter(size)
        for c, spec in enumerate(exp["classes"], start=1):
            count = max(1, round(spec["count"] * np.exp(rng.normal(0, spec["count_sd"]))))
            spacing = 2 * spec["radius"] * (1.0 - 0.6 * exp["touching"])
            for cy, cx in positions(rng, count, size, spacing=spacing, clustered=exp["clustered"]):
                r = spec["radius"] * np.exp(rng.normal(0, spec["radius_sd"]))
                paint_blob(
                    paint.canvas,
                    paint.new(c),
                    centre=(cy, cx),
                    radius=r,
                    aspect=spec["aspect"] * rng.uniform(0.85, 1.15),
                    angle=rng.uniform(0, np.pi),
                    harmonics=harmonics(rng, spec["irregularity"]),
                )
        names = ("background", *(f"objects {c}" for c in range(1, len(exp["classes"]) + 1)))
        return paint.finish(names)


class Cells(Family):
    """Touching cells (cytoplasm) tiling part of the field, most with a nucleus inside; optionally a
    membrane band. Classes: cytoplasm, nucleus, membrane."""

    name = "cells"
    appearances: ClassVar[dict[str, float]] = {
        "fluorescence": 0.35,
        "phase": 0.2,
        "histology": 0.2,
        "brightfield": 0.15,
        "dic": 0.1,
    }

    def experiment(self, rng, size):
        r = rng.uniform(6, 18) * size / 128
        return {
            "radius": r,
            "confluence": rng.uniform(0.3, 1.0),
            "nucleus": rng.uniform(0.25, 0.55),
            "p_nucleus": rng.uniform(0.6, 1.0),
            "membrane": rng.uniform(0.8, 2.0) if rng.random() < 0.4 else 0.0,
            "wobble": rng.uniform(0.0, 0.5) * r,
        }

    def layout(self, rng, exp, size):
        r = exp["radius"]
        count = max(2, int(exp["confluence"] * size * size / (np.pi * r * r)))
        seeds = positions(rng, count, size, spacing=1.2 * r, clustered=0.3)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        warp = exp["wobble"] * smooth_field(rng, 2, size, coarse=8)
        py, px = yy + warp[0], xx + warp[1]
        # The two nearest seeds of every pixel from a k-d tree instead of argsorting a full
        # (seeds, H, W) distance stack: the same owners, and a 128² layout ~2x faster. Not
        # compacted: under a flush-to-zero (a trainer's, for its optimizer) the compacting build
        # recursed without end on seeds clipped onto the border (a stack overflow, test_scenes);
        # the neighbours found are the same.
        pts = np.stack([py.ravel(), px.ravel()], axis=1)
        dist, idx = cKDTree(seeds, compact_nodes=False).query(pts, k=2)
        nearest, second = (dist[:, j].reshape(size, size).astype(np.float32) for j in (0, 1))
        owner = idx[:, 0].reshape(size, size)
        cell = nearest < 1.25 * r  # confluent where seeds are dense, gaps elsewhere
        paint = Painter(size)
        cyto = np.zeros(len(seeds), np.int64)
        for i in range(len(seeds)):
            cyto[i] = paint.new(1)
        paint.canvas[cell] = cyto[owner[cell]]
        if exp["membrane"] > 0:
            edge = cell & ((second - nearest) < exp["membrane"])
            edge |= cell & (nearest > 1.25 * r - exp["membrane"])
            mem = paint.new(3)
            paint.canvas[edge] = mem
        for sy, sx in seeds:
            if rng.random() < exp["p_nucleus"]:
                paint_blob(
                    paint.canvas,
                    paint.new(2),
                    centre=(sy + rng.normal(0, 0.15 * r), sx + rng.normal(0, 0.15 * r)),
                    radius=exp["nucleus"] * r * rng.uniform(0.8, 1.2),
                    aspect=rng.uniform(1.0, 1.5),
                    angle=rng.uniform(0, np.pi),
                    harmonics=harmonics(rng, 0.1),
                )
        return paint.finish(("background", "cytoplasm", "nucleus", "membrane"))


class Glands(Family):
    """Glands of histology: an epithelial ring around a lumen, small nuclei in the epithelium,
    in stroma (the background). Classes: epithelium, lumen, epithelial nuclei."""

    name = "glands"
    modes = ("deformed", "fields")
    appearances: ClassVar[dict[str, float]] = {"histology": 0.6, "brightfield": 0.2, "fluorescence": 0.1, "phase": 0.1}

    def experiment(self, rng, size):
        return {
            "count": int(rng.integers(2, 10)),
            "radius": rng.uniform(10, 28) * size / 128,
            "wall": rng.uniform(0.25, 0.5),
            "nuclei": rng.random() < 0.6,
            "irregularity": rng.uniform(0.05, 0.3),
        }

    def layout(self, rng, exp, size):
        paint = Painter(size)  # the stroma is the background (class 0)
        centres = positions(rng, exp["count"], size, spacing=1.6 * exp["radius"], clustered=0.0)
        for cy, cx in centres:
            r = exp["radius"] * rng.uniform(0.7, 1.3)
            kw = {"aspect": rng.uniform(1.0, 2.0), "angle": rng.uniform(0, np.pi)}
            kw["harmonics"] = harmonics(rng, exp["irregularity"])
            paint_blob(paint.canvas, paint.new(1), centre=(cy, cx), radius=r, **kw)
            paint_blob(paint.canvas, paint.new(2), centre=(cy, cx), radius=r * (1 - exp["wall"]), **kw)
            if exp["nuclei"]:
                for phi in np.linspace(0, 2 * np.pi, int(2 * np.pi * r / 4), endpoint=False):
                    rr = r * (1 - exp["wall"] / 2)
                    paint_blob(
                        paint.canvas,
                        paint.new(3),
                        centre=(cy + rr * np.sin(phi) / kw["aspect"], cx + rr * np.cos(phi)),
                        radius=max(1.2, exp["wall"] * r * 0.3),
                        aspect=1.5,
                        angle=phi,
                    )
        return paint.finish(("stroma", "epithelium", "lumen", "epithelial nuclei"))


class Bacteria(Family):
    """Rods (and sometimes cocci) scattered or in colonies, aligned or random. Classes: rods, cocci."""

    name = "bacteria"
    appearances: ClassVar[dict[str, float]] = {"phase": 0.4, "fluorescence": 0.35, "brightfield": 0.15, "dic": 0.1}

    def experiment(self, rng, size):
        s = size / 128
        return {
            "count": int(rng.integers(8, 120)),
            "length": rng.uniform(4, 18) * s,
            "width": rng.uniform(1.0, 3.0) * s,
            "aligned": rng.uniform(0, 1),
            "cocci": int(rng.integers(0, 60)) if rng.random() < 0.3 else 0,
            "clustered": rng.uniform(0, 0.8),
        }

    def layout(self, rng, exp, size):
        paint = Painter(size)
        axis = rng.uniform(0, np.pi)
        for cy, cx in positions(rng, exp["count"], size, spacing=exp["width"] * 2, clustered=exp["clustered"]):
            angle = axis + rng.normal(0, (1 - exp["aligned"]) * 1.5)
            length = exp["length"] * rng.uniform(0.7, 1.4)
            paint_capsule(paint.canvas, paint.new(1), centre=(cy, cx), length=length, width=exp["width"], angle=angle)
        for cy, cx in positions(rng, exp["cocci"], size, spacing=exp["width"] * 2.5, clustered=0.5):
            paint_blob(paint.canvas, paint.new(2), centre=(cy, cx), radius=exp["width"] * 1.3)
        return paint.finish(("background", "rods", "cocci"))


class Vesicles(Family):
    """Small membrane-bounded vesicles (electron-microscopy-like): a wall and a lumen each, plus
    a few larger dark organelles. Classes: vesicle wall, vesicle lumen, organelles."""

    name = "vesicles"
    appearances: ClassVar[dict[str, float]] = {"em": 0.5, "fluorescence": 0.3, "brightfield": 0.2}

    def experiment(self, rng, size):
        s = size / 128
        return {
            "count": int(rng.integers(10, 90)),
            "radius": rng.uniform(2.5, 9) * s,
            "wall": rng.uniform(0.8, 2.0) * s,
            "organelles": int(rng.integers(0, 6)),
        }

    def layout(self, rng, exp, size):
        paint = Painter(size)
        for cy, cx in positions(rng, exp["organelles"], size, spacing=30 * size / 128, clustered=0.0):
            paint_blob(
                paint.canvas,
                paint.new(3),
                centre=(cy, cx),
                radius=rng.uniform(8, 20) * size / 128,
                aspect=rng.uniform(1, 2.5),
                angle=rng.uniform(0, np.pi),
                harmonics=harmonics(rng, 0.2),
            )
        for cy, cx in positions(rng, exp["count"], size, spacing=exp["radius"] * 2.2, clustered=0.5):
            r = exp["radius"] * rng.uniform(0.7, 1.3)
            kw = {"centre": (cy, cx), "radius": r, "aspect": rng.uniform(1, 1.4), "angle": rng.uniform(0, np.pi)}
            paint_blob(paint.canvas, paint.new(2), **kw)
            paint_ring(paint.canvas, paint.new(1), width=exp["wall"], **kw)
        return paint.finish(("background", "vesicle wall", "vesicle lumen", "organelles"))
