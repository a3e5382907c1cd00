"""Thin, curvilinear and layered structures: vessels, fibres, membranes, layers, cortex-like ribbons."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from pancakes_synth.scenes.layout import Family, Painter, positions
from pancakes_synth.scenes.shapes import curve, paint_blob, paint_polyline
from pancakes_synth.smooth import smooth_field

__all__ = ["Fibres", "Layers", "Membranes", "Ribbon", "Vessels"]


class Vessels(Family):
    """Branching vessel trees (retina, angiography), widths tapering from trunk to twigs, over a
    background; sometimes a bright disc where they enter. Classes: vessels, disc."""

    name = "vessels"
    modes = ("deformed", "fields")
    appearances: ClassVar[dict[str, float]] = {
        "fundus": 0.35,
        "fluorescence": 0.2,
        "ct": 0.15,
        "mri": 0.15,
        "ultrasound": 0.15,
    }

    def experiment(self, rng, size):
        return {
            "trees": int(rng.integers(1, 5)),
            "width": rng.uniform(1.2, 4.0) * size / 128,
            "branches": int(rng.integers(2, 8)),
            "wiggle": rng.uniform(0.05, 0.35),
            "disc": rng.random() < 0.4,
            "separate": rng.random() < 0.5,  # each tree its own class (arteries vs veins)
        }

    def layout(self, rng, exp, size):
        paint = Painter(size)
        if exp["disc"]:
            centre = rng.uniform(0.25 * size, 0.75 * size, size=2)
            paint_blob(paint.canvas, paint.new(2), centre=tuple(centre), radius=rng.uniform(6, 14) * size / 128)
        else:
            centre = rng.uniform(0.2 * size, 0.8 * size, size=2)
        step = 4.0 * size / 128
        for t in range(exp["trees"]):
            cls = 3 + t if exp["separate"] else 1
            direction = rng.uniform(0, 2 * np.pi)
            trunk = curve(rng, centre, direction, steps=int(size / step), step=step, wiggle=exp["wiggle"])
            w0 = exp["width"] * rng.uniform(0.8, 1.2)
            paint_polyline(paint.canvas, paint.new(cls), trunk, np.linspace(w0, w0 * 0.5, len(trunk)))
            for _ in range(exp["branches"]):
                k = int(rng.integers(1, len(trunk) - 1))
                side = direction + rng.choice([-1, 1]) * rng.uniform(0.4, 1.2)
                br = curve(rng, trunk[k], side, steps=int(rng.integers(4, 16)), step=step, wiggle=exp["wiggle"])
                wb = w0 * rng.uniform(0.35, 0.7)
                paint_polyline(paint.canvas, paint.new(cls), br, np.linspace(wb, wb * 0.4, len(br)))
                direction = side
        names = ("background", "vessels", "disc", *(f"vessel tree {t}" for t in range(exp["trees"])))
        return paint.finish(names)


class Fibres(Family):
    """Many roughly parallel thin curves (collagen, muscle, axons, dendrites), one or two bundles at
    different angles. Classes: bundle 1, bundle 2."""

    name = "fibres"
    appearances: ClassVar[dict[str, float]] = {"fluorescence": 0.4, "em": 0.2, "histology": 0.2, "ultrasound": 0.2}

    def experiment(self, rng, size):
        return {
            "bundles": int(rng.choice([1, 1, 2])),
            "count": int(rng.integers(5, 40)),
            "width": rng.uniform(0.7, 2.5) * size / 128,
            "wiggle": rng.uniform(0.02, 0.2),
        }

    def layout(self, rng, exp, size):
        paint = Painter(size)
        step = 4.0 * size / 128
        for b in range(1, exp["bundles"] + 1):
            angle = rng.uniform(0, np.pi)
            normal = np.array([np.cos(angle), -np.sin(angle)])
            along = np.array([np.sin(angle), np.cos(angle)])
            for off in rng.uniform(-0.7, 0.7, size=exp["count"]) * size:
                start = size / 2 + off * normal - along * size * 0.75
                pts = curve(rng, start, angle, steps=int(1.5 * size / step), step=step, wiggle=exp["wiggle"])
                paint_polyline(paint.canvas, paint.new(b), pts, exp["width"] * rng.uniform(0.6, 1.4))
        return paint.finish(("background", "fibres", "crossing fibres"))


class Membranes(Family):
    """A tissue of touching cells seen by electron microscopy: thin membranes between cell
    interiors, dark organelles inside some cells. Classes: membrane, cell interior, organelle."""

    name = "membranes"
    appearances: ClassVar[dict[str, float]] = {"em": 0.6, "fluorescence": 0.2, "histology": 0.2}

    def experiment(self, rng, size):
        return {
            "radius": rng.uniform(8, 26) * size / 128,
            "membrane": rng.uniform(0.6, 2.0) * size / 128,
            "p_organelle": rng.uniform(0.0, 0.6),
            "wobble": rng.uniform(0.1, 0.4),
        }

    def layout(self, rng, exp, size):
        r = exp["radius"]
        seeds = positions(rng, max(3, int(size * size / (np.pi * r * r))), size, spacing=1.3 * r, clustered=0.0)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        warp = exp["wobble"] * r * smooth_field(rng, 2, size, coarse=6)
        py, px = yy + warp[0], xx + warp[1]
        d = np.stack([np.hypot(py - sy, px - sx) for sy, sx in seeds])
        order = np.argsort(d, axis=0)[:2]
        nearest, second = np.take_along_axis(d, order, axis=0)
        paint = Painter(size)
        ids = np.array([paint.new(2) for _ in seeds])
        paint.canvas[:] = ids[order[0]]
        paint.canvas[(second - nearest) < exp["membrane"]] = paint.new(1)
        for sy, sx in seeds:
            if rng.random() < exp["p_organelle"]:
                paint_blob(
                    paint.canvas,
                    paint.new(3),
                    centre=(sy + rng.normal(0, 0.2 * r), sx + rng.normal(0, 0.2 * r)),
                    radius=r * rng.uniform(0.15, 0.35),
                    aspect=rng.uniform(1, 2.5),
                    angle=rng.uniform(0, np.pi),
                )
        return paint.finish(("background", "membrane", "cell interior", "organelle"))


class Layers(Family):
    """Layered anatomy (retina in OCT, skin, vessel walls, bowel wall): 3–9 bands with smooth,
    undulating boundaries, straight or curved around a centre. Each band is its own class."""

    name = "layers"
    modes = ("deformed",)
    appearances: ClassVar[dict[str, float]] = {"oct": 0.3, "ultrasound": 0.25, "histology": 0.2, "mri": 0.15, "ct": 0.1}

    def experiment(self, rng, size):
        n = int(rng.integers(3, 10))
        return {
            "thickness": rng.dirichlet(np.ones(n) * 2) * rng.uniform(0.35, 0.8),
            "start": rng.uniform(0.05, 0.35),
            "curved": rng.random() < 0.35,
            "angle": rng.uniform(0, 2 * np.pi),
            "wobble": rng.uniform(0.0, 0.06),
        }

    def layout(self, rng, exp, size):
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        if exp["curved"]:
            cy, cx = rng.uniform(-0.5, 1.5, size=2)
            depth = np.hypot(yy - cy, xx - cx)
            depth = depth - depth.min()
        else:
            c, s = np.cos(exp["angle"]), np.sin(exp["angle"])
            depth = (yy - 0.5) * c + (xx - 0.5) * s + 0.5
        depth = depth + exp["wobble"] * smooth_field(rng, 1, size, coarse=5)[0]
        bounds = exp["start"] + np.cumsum(exp["thickness"])
        band = np.searchsorted(bounds, depth, side="right") + 1  # layer 1 … n, n + 1 below the last
        band[(depth < exp["start"]) | (depth >= bounds[-1])] = 0
        paint = Painter(size)
        n = len(exp["thickness"])
        ids = np.array([0] + [paint.new(i) for i in range(1, n + 1)])
        paint.canvas[:] = ids[np.clip(band, 0, n)]
        return paint.finish(("background", *(f"layer {i}" for i in range(1, n + 1))), min_pixels=1)


class Ribbon(Family):
    """Cortex-like ribbons: a folded grey-matter band of near-constant thickness around a white-matter
    core, with a thin fluid layer outside. Classes: ribbon, core, fluid."""

    name = "ribbon"
    modes = ("deformed",)
    appearances: ClassVar[dict[str, float]] = {"mri": 0.5, "ct": 0.2, "ultrasound": 0.15, "histology": 0.15}

    def experiment(self, rng, size):
        return {
            "radius": rng.uniform(0.28, 0.42) * size,
            "folds": int(rng.integers(5, 16)),
            "fold_depth": rng.uniform(0.05, 0.2),
            "thickness": rng.uniform(2.5, 7) * size / 128,
            "fluid": rng.uniform(0.0, 3.0) * size / 128,
            "aspect": rng.uniform(1.0, 1.4),
        }

    def layout(self, rng, exp, size):
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        cy, cx = size / 2 + rng.normal(0, 0.05 * size, size=2)
        v, u = (yy - cy) / exp["aspect"], xx - cx
        phi, rho = np.arctan2(v, u), np.hypot(v, u)
        folds = exp["fold_depth"] * np.cos(exp["folds"] * phi + rng.uniform(0, 2 * np.pi))
        outline = exp["radius"] * (1 + folds + 0.05 * smooth_field(rng, 1, size, coarse=4)[0])
        gap = outline - rho  # > 0 inside the outer surface
        paint = Painter(size)
        fluid, ribbon, core = paint.new(3), paint.new(1), paint.new(2)
        paint.canvas[(gap > -exp["fluid"]) & (gap <= 0)] = fluid
        paint.canvas[(gap > 0) & (gap <= exp["thickness"])] = ribbon
        paint.canvas[gap > exp["thickness"]] = core
        return paint.finish(("background", "ribbon", "core", "fluid"), min_pixels=1)
