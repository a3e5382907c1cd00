"""Pictures of protocols: one fixed palette, label overlays, protocols × images grids.

Label k has the same colour everywhere (overview PNGs, the HTML report, ITK-SNAP colour tables).
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pancakes_data.io import encode_png, write_bytes

__all__ = [
    "PALETTE",
    "encode_png",
    "grid_tile_origin",
    "itksnap_labels",
    "overlay",
    "palette",
    "protocol_grid",
    "save_png",
]


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


PALETTE = palette(4096)  # overlays wrap around it; ITK-SNAP tables use palette(K)


def overlay(image: np.ndarray, labels: np.ndarray, *, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8 (H, W, 3): a grey image in [0, 1] with the label map's colours blended on top."""
    grey = np.repeat((np.clip(image, 0, 1) * 255).astype(np.float32)[..., None], 3, axis=2)
    colour = np.take(PALETTE, np.asarray(labels, dtype=np.int64), axis=0, mode="wrap").astype(np.float32)
    return (grey * (1 - alpha) + colour * alpha).astype(np.uint8)


GRID_LEFT = 34  # room for the row names
GRID_TITLE = 14  # room for the column titles


def grid_tile_origin(column: int, row: int, *, tile: int = 128, gap: int = 2, titled: bool = True) -> tuple[int, int]:
    """(x, y) of the top-left pixel of a tile of :func:`protocol_grid`'s picture.

    Row 0 holds the images, row m + 1 protocol m (of those drawn); tiles are ``tile`` pixels
    square, each image scaled to fit and centred.
    """
    return GRID_LEFT + column * (tile + gap), (GRID_TITLE if titled else 0) + row * (tile + gap)


def _shorten(text: str, limit: int) -> str:
    """Long names keep their start and end (inputs often differ only at the end: ``…_0042``)."""
    return text if len(text) <= limit else text[: limit // 2 - 1] + "…" + text[-(limit - limit // 2) :]


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
    titled = bool(titles)
    w, h = grid_tile_origin(s_count, m_count + 1, tile=tile, gap=gap, titled=titled)
    canvas = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)

    def paste(arr: np.ndarray, resample, column: int, row: int) -> None:
        """Scale to fill the tile (aspect kept; small images are enlarged) and centre it."""
        im = Image.fromarray(arr)
        scale = tile / max(im.size)
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        x, y = grid_tile_origin(column, row, tile=tile, gap=gap, titled=titled)
        canvas.paste(im.resize(size, resample), (x + (tile - size[0]) // 2, y + (tile - size[1]) // 2))

    for s in range(s_count):
        step = max(1, int(np.ceil(max(np.shape(images[s])) / tile)))  # reduce first, then colour
        grey = (np.clip(images[s][::step, ::step], 0, 1) * 255).astype(np.uint8)
        paste(grey, Image.BILINEAR, s, 0)
        if titles:
            draw.text(
                (grid_tile_origin(s, 0, tile=tile, gap=gap)[0] + 2, 1), _shorten(str(titles[s]), 21), fill=(0, 0, 0)
            )
        for m in range(m_count):
            small = overlay(images[s][::step, ::step], np.asarray(labels[s][m])[::step, ::step])
            paste(small, Image.NEAREST, s, m + 1)
    for row in range(m_count + 1):
        y = grid_tile_origin(0, row, tile=tile, gap=gap, titled=titled)[1] + tile // 2 - 5
        draw.text((2, y), "img" if row == 0 else f"m{row - 1:02d}", fill=(0, 0, 0))
    return np.asarray(canvas)


def save_png(array: np.ndarray, path: str | Path, *, labels: bool = False) -> Path:
    """Write :func:`encode_png` of ``array`` to ``path`` (atomically)."""
    return write_bytes(path, encode_png(array, labels=labels))


def itksnap_labels(num_labels: int) -> str:
    """ITK-SNAP label description file for labels 0..K-1 in the palette's colours
    (also read by 3D Slicer)."""
    lines = [
        "################################################",
        "# ITK-SnAP Label Description File (written by pancakes)",
        "# Columns: IDX -R- -G- -B- -A-- VIS MSH LABEL",
        "################################################",
    ]
    colours = palette(num_labels)
    for k in range(num_labels):
        r, g, b = (int(c) for c in colours[k])
        # label 0 is a structure like any other (protocols partition the whole image): visible
        alpha, vis = 1, 1
        name = f"label {k}"
        lines.append(f'{k:5d} {r:5d} {g:5d} {b:5d} {alpha:9d} {vis:2d} {vis:2d}    "{name}"')
    return "\n".join(lines) + "\n"
