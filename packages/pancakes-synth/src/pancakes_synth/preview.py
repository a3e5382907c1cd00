"""A picture of what training will see: sets as rows of images over coloured label maps."""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np

__all__ = ["label_palette", "preview_grid", "save_preview"]


def label_palette(n: int = 4096) -> np.ndarray:
    """(n, 3) uint8: label 0 dark grey, then well-separated hues (golden-angle steps).

    A copy of ``pancakes_model.app.render.palette`` (pancakes-synth does not depend on
    pancakes-model): label k has one colour in every Pancakes picture; a test checks the copies agree.
    """
    out = np.zeros((n, 3), np.uint8)
    out[0] = (40, 40, 40)
    for k in range(1, n):
        h = (k * 0.618033988749895) % 1.0
        s = 0.65 + 0.35 * ((k * 7) % 3) / 2
        v = 0.95 - 0.25 * ((k * 5) % 2)
        out[k] = [int(255 * c) for c in colorsys.hsv_to_rgb(h, s, v)]
    return out


def preview_grid(sets, *, gap: int = 2) -> np.ndarray:
    """RGB grid (uint8): for each set, a row of its images and a row of its label maps."""
    pal = label_palette()
    rows = []
    for s in sets:
        imgs = [np.repeat((np.clip(im, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2) for im in s.images]
        labs = [pal[lab % len(pal)] for lab in s.labels]
        for row in (imgs, labs):
            tiles = []
            for t in row:
                tiles += [t, np.full((t.shape[0], gap, 3), 255, np.uint8)]
            rows += [np.concatenate(tiles[:-1], axis=1)]
        rows.append(np.full((gap * 3, rows[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(rows[:-1], axis=0)


def save_preview(sets, path: str | Path) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(preview_grid(sets)).save(path)
    return path
