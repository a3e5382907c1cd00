"""A picture of what training will see: sets as rows of images over coloured label maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pancakes_data.palette import palette

__all__ = ["preview_grid", "save_preview"]


def preview_grid(sets, *, gap: int = 2) -> np.ndarray:
    """RGB grid (uint8): for each set, a row of its images and a row of its label maps."""
    pal = palette(4096)
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(preview_grid(sets)).save(path)
    return path
