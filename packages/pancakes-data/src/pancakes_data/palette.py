"""The label colours of every Pancakes picture (overviews, reports, previews of training sets): label
k has one colour whatever K is, so label 3 looks the same in a report and in a training preview."""

from __future__ import annotations

import colorsys

import numpy as np

__all__ = ["palette"]


def palette(n: int) -> np.ndarray:
    """(n, 3) uint8: label 0 dark grey, then well-separated hues (golden-angle steps), the same
    colours for the same labels whatever n is."""
    out = np.zeros((n, 3), np.uint8)
    out[0] = (40, 40, 40)
    for k in range(1, n):
        h = (k * 0.618033988749895) % 1.0
        s = 0.65 + 0.35 * ((k * 7) % 3) / 2
        v = 0.95 - 0.25 * ((k * 5) % 2)
        out[k] = [int(255 * c) for c in colorsys.hsv_to_rgb(h, s, v)]
    return out
