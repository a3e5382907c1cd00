"""Pictures of protocols: one fixed palette, label overlays, protocols × images grids.

Label k has the same colour everywhere (overview PNGs, the HTML report, ITK-SNAP colour tables).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["PALETTE", "itksnap_labels", "overlay", "protocol_grid", "save_png"]


def _palette(n: int = 256) -> np.ndarray:
    """(n, 3) uint8: label 0 dark grey, then well-separated hues (golden-angle steps)."""
    out = np.zeros((n, 3), np.uint8)
    out[0] = (40, 40, 40)
    for k in range(1, n):
        h = (k * 0.618033988749895) % 1.0
        s = 0.65 + 0.35 * ((k * 7) % 3) / 2
        v = 0.95 - 0.25 * ((k * 5) % 2)
        i = int(h * 6) % 6
        f = h * 6 - int(h * 6)
        p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
        rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
        out[k] = [int(255 * c) for c in rgb]
    return out


PALETTE = _palette(4096)


def overlay(image: np.ndarray, labels: np.ndarray, *, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8 (H, W, 3): a grey image in [0, 1] with the label map's colours blended on top."""
    grey = np.repeat((np.clip(image, 0, 1) * 255).astype(np.float32)[..., None], 3, axis=2)
    colour = np.take(PALETTE, np.asarray(labels, dtype=np.int64), axis=0, mode="wrap").astype(np.float32)
    return (grey * (1 - alpha) + colour * alpha).astype(np.uint8)


def protocol_grid(
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    *,
    tile: int = 128,
    gap: int = 2,
    titles: Sequence[str] | None = None,
) -> np.ndarray:
    """Grid with protocols as rows and images as columns (plus a first row of the images).

    Args:
        images: S grey images in [0, 1], any sizes.
        labels: (S, M) sequence/array of label maps, ``labels[s][m]`` the same size as image s.
        tile: side of one tile in pixels.
        titles: optional column titles (drawn above each column).
    """
    from PIL import Image, ImageDraw

    s_count = len(images)
    m_count = len(labels[0])
    top = 14 if titles else 0
    left = 34
    h = top + (m_count + 1) * (tile + gap)
    w = left + s_count * (tile + gap)
    canvas = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)

    def fit(arr: np.ndarray, resample) -> Image.Image:
        im = Image.fromarray(arr)
        im.thumbnail((tile, tile), resample)
        return im

    for s in range(s_count):
        x = left + s * (tile + gap)
        step = max(1, int(np.ceil(max(np.shape(images[s])) / tile)))  # reduce first, then colour
        grey = (np.clip(images[s][::step, ::step], 0, 1) * 255).astype(np.uint8)
        canvas.paste(fit(grey, Image.BILINEAR).convert("RGB"), (x, top))
        if titles:
            draw.text((x + 2, 1), str(titles[s])[:20], fill=(0, 0, 0))
        for m in range(m_count):
            y = top + (m + 1) * (tile + gap)
            small = overlay(images[s][::step, ::step], np.asarray(labels[s][m])[::step, ::step])
            canvas.paste(fit(small, Image.NEAREST), (x, y))
    draw.text((2, top + tile // 2), "img", fill=(0, 0, 0))
    for m in range(m_count):
        draw.text((2, top + (m + 1) * (tile + gap) + tile // 2 - 5), f"m{m:02d}", fill=(0, 0, 0))
    return np.asarray(canvas)


def save_png(array: np.ndarray, path: str | Path) -> Path:
    from PIL import Image

    path = Path(path)
    Image.fromarray(array).save(path)
    return path


def itksnap_labels(num_labels: int) -> str:
    """ITK-SNAP label description file for labels 0..K-1 in the palette's colours
    (also read by 3D Slicer)."""
    lines = [
        "################################################",
        "# ITK-SnAP Label Description File (written by pancakes)",
        "# Columns: IDX -R- -G- -B- -A-- VIS MSH LABEL",
        "################################################",
    ]
    for k in range(num_labels):
        r, g, b = (int(c) for c in PALETTE[k])
        alpha, vis = (0, 0) if k == 0 else (1, 1)
        name = "Clear Label" if k == 0 else f"label {k}"
        lines.append(f'{k:5d} {r:5d} {g:5d} {b:5d} {alpha:9d} {vis:2d} {vis:2d}    "{name}"')
    return "\n".join(lines) + "\n"
