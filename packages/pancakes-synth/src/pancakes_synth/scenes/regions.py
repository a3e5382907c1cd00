"""Tissue-like regions: a smooth random field cut into levels, each level one class of scattered pieces.

What intensity alone can partly find (each level has its grey), and texture completes (levels may
look alike but for their texture): tissue types in histology, echo zones in ultrasound, grey and
white matter without anatomy. The union of a class — all pieces of one level — is the coarse target.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy import ndimage

from pancakes_synth.scenes.layout import Family, Painter
from pancakes_synth.smooth import smooth_field

__all__ = ["Regions"]


class Regions(Family):
    """3–8 levels of a smooth random field (one or two scales); level l is class l, its connected
    pieces are its instances. Classes: level 1 … n (level 0 is the background class)."""

    name = "regions"
    appearances: ClassVar[dict[str, float]] = {
        "histology": 0.25,
        "ultrasound": 0.2,
        "mri": 0.2,
        "generic": 0.2,
        "em": 0.15,
    }

    def experiment(self, rng, size):
        return {
            "levels": int(rng.integers(3, 9)),
            "coarse": int(rng.integers(3, 9)),
            "detail": rng.uniform(0.0, 0.5),
            "fine": int(rng.integers(10, 24)),
        }

    def layout(self, rng, exp, size):
        field = smooth_field(rng, 1, size, coarse=exp["coarse"])[0]
        field += exp["detail"] * smooth_field(rng, 1, size, coarse=exp["fine"])[0]
        cuts = np.quantile(field, np.linspace(0, 1, exp["levels"] + 1)[1:-1])
        level = np.searchsorted(cuts, field)
        paint = Painter(size)
        structure = ndimage.generate_binary_structure(2, 2)
        for lv in range(exp["levels"]):
            pieces, n = ndimage.label(level == lv, structure=structure)
            ids = np.array([0] + [paint.new(lv) for _ in range(n)])
            paint.canvas[pieces > 0] = ids[pieces[pieces > 0]]
        names = ("background", *(f"level {lv}" for lv in range(1, exp["levels"])))
        return paint.finish(names, min_pixels=1)
