"""A picture of what training will see: sets as rows of images over coloured label maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["label_palette", "preview_grid", "save_preview"]


def label_palette(n: int = 4096, *, seed: int = 7) -> np.ndarray:
    """(n, 3) uint8 colours; label 0 (background) is black, others bright and distinct-ish."""
    rng = np.random.default_rng(seed)
    hsv_h = (np.arange(n) * 0.618033988749895) % 1.0
    s = rng.uniform(0.55, 1.0, n)
    v = rng.uniform(0.7, 1.0, n)
    i = np.floor(hsv_h * 6).astype(int) % 6
    f = hsv_h * 6 - np.floor(hsv_h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.select(
        [i[:, None] == k for k in range(6)],
        [np.stack(c, 1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))],
    )
    out = (table * 255).astype(np.uint8)
    out[0] = 0
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
