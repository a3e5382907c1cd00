"""Pictures of protocols: one fixed palette, label overlays, protocols × images grids.

Label k has the same colour everywhere (overview PNGs, the HTML report, ITK-SNAP colour tables).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pancakes_data.io import encode_png, write_bytes
from pancakes_data.palette import palette

__all__ = [
    "PALETTE",
    "assemble_grid",
    "colour_labels",
    "column_tiles",
    "encode_png",
    "grid_tile_origin",
    "itksnap_labels",
    "overlay",
    "palette",
    "protocol_grid",
    "save_png",
]


PALETTE = palette(4096)  # overlays wrap around it; ITK-SNAP tables use palette(K)


def colour_labels(labels: np.ndarray) -> np.ndarray:
    """RGB uint8 (..., 3): each label's palette colour (labels past the palette wrap around)."""
    return np.take(PALETTE, np.asarray(labels, dtype=np.int64), axis=0, mode="wrap").astype(np.uint8)


def overlay(image: np.ndarray, labels: np.ndarray, *, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8 (H, W, 3): a grey image in [0, 1] with the label map's colours blended on top."""
    grey = np.repeat((np.clip(image, 0, 1) * 255).astype(np.float32)[..., None], 3, axis=2)
    colour = colour_labels(labels).astype(np.float32)
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


def column_tiles(image: np.ndarray, labels: Sequence[np.ndarray], *, tile: int = 128) -> np.ndarray:
    """One input's column of the overview: (M + 1, tile, tile, 3) uint8 — the image, then its
    label maps over it; each scaled to fill the tile (aspect kept, small images enlarged) and
    centred on white. Computed beside the inference, one input at a time."""
    from PIL import Image

    out = np.full((len(labels) + 1, tile, tile, 3), 255, np.uint8)
    step = max(1, int(np.ceil(max(np.shape(image)) / tile)))  # reduce first, then colour
    small_img = np.asarray(image)[::step, ::step]

    def place(arr: np.ndarray, resample, row: int) -> None:
        im = Image.fromarray(arr)
        scale = tile / max(im.size)
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        x, y = (tile - size[0]) // 2, (tile - size[1]) // 2
        out[row, y : y + size[1], x : x + size[0]] = np.asarray(im.convert("RGB").resize(size, resample))

    place((np.clip(small_img, 0, 1) * 255).astype(np.uint8), Image.BILINEAR, 0)
    for m, lab in enumerate(labels):
        place(overlay(small_img, np.asarray(lab)[::step, ::step]), Image.NEAREST, m + 1)
    return out


def assemble_grid(columns: Sequence[np.ndarray], *, gap: int = 2, titles: Sequence[str] | None = None) -> np.ndarray:
    """The overview from :func:`column_tiles` columns: protocols as rows, inputs as columns."""
    from PIL import Image, ImageDraw

    rows, tile = columns[0].shape[0], columns[0].shape[1]
    titled = bool(titles)
    w, h = grid_tile_origin(len(columns), rows, tile=tile, gap=gap, titled=titled)
    canvas = np.full((h, w, 3), 255, np.uint8)
    for s, col in enumerate(columns):
        for r in range(rows):
            x, y = grid_tile_origin(s, r, tile=tile, gap=gap, titled=titled)
            canvas[y : y + tile, x : x + tile] = col[r]
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    for s in range(len(columns)):
        if titles:
            draw.text(
                (grid_tile_origin(s, 0, tile=tile, gap=gap)[0] + 2, 1), _shorten(str(titles[s]), 21), fill=(0, 0, 0)
            )
    for row in range(rows):
        y = grid_tile_origin(0, row, tile=tile, gap=gap, titled=titled)[1] + tile // 2 - 5
        draw.text((2, y), "img" if row == 0 else f"m{row - 1:02d}", fill=(0, 0, 0))
    return np.asarray(picture)


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
    columns = [column_tiles(img, labels[s], tile=tile) for s, img in enumerate(images)]
    return assemble_grid(columns, gap=gap, titles=titles)


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
