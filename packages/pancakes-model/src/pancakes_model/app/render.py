"""Pictures of protocols: one fixed palette, label overlays, protocols × images grids.

Label k has the same colour everywhere (overview PNGs, the HTML report, ITK-SNAP colour tables).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

__all__ = ["PALETTE", "encode_png", "grid_tile_origin", "itksnap_labels", "overlay", "protocol_grid", "save_png"]


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


GRID_LEFT = 34  # room for the row names
GRID_TITLE = 14  # room for the column titles


def grid_tile_origin(column: int, row: int, *, tile: int = 128, gap: int = 2, titled: bool = True) -> tuple[int, int]:
    """(x, y) of the top-left pixel of a tile of :func:`protocol_grid`'s picture.

    Row 0 holds the images, row m + 1 protocol m (of those drawn); tiles are ``tile`` pixels
    square, each image scaled to fit and centred.
    """
    return GRID_LEFT + column * (tile + gap), (GRID_TITLE if titled else 0) + row * (tile + gap)


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
            draw.text((grid_tile_origin(s, 0, tile=tile, gap=gap)[0] + 2, 1), str(titles[s])[:20], fill=(0, 0, 0))
        for m in range(m_count):
            small = overlay(images[s][::step, ::step], np.asarray(labels[s][m])[::step, ::step])
            paste(small, Image.NEAREST, s, m + 1)
    for row in range(m_count + 1):
        y = grid_tile_origin(0, row, tile=tile, gap=gap, titled=titled)[1] + tile // 2 - 5
        draw.text((2, y), "img" if row == 0 else f"m{row - 1:02d}", fill=(0, 0, 0))
    return np.asarray(canvas)


def encode_png(array: np.ndarray, *, labels: bool = False, workers: int = 1) -> bytes:
    """PNG file content for a grey (H, W) uint8/uint16 or RGB (H, W, 3) uint8 array.

    Written directly with zlib (PNG filter "none", level 1): Pillow's encoder always runs the
    adaptive row filters, which cost ~4× the whole encoding for label maps and overviews, while
    unfiltered level-1 streams came out no larger here. ``labels=True`` uses run-length
    matching, which suits label maps (long runs of one value): as fast and ~25 % smaller.
    Any PNG reader opens the result (Pillow, ITK, imageio, browsers).

    Args:
        array: (H, W) uint8 or uint16 (16-bit grey), or (H, W, 3) uint8.
        labels: the array is a label map.
        workers: threads that compress (large pictures; the bytes differ, the image does not).
    """
    a = np.asarray(array)
    if a.ndim == 2 and a.dtype in (np.uint8, np.uint16):
        colour_type, bit_depth = 0, 8 * a.itemsize
    elif a.ndim == 3 and a.shape[2] == 3 and a.dtype == np.uint8:
        colour_type, bit_depth = 2, 8
    else:
        raise ValueError(f"encode_png: expected (H, W) uint8/uint16 or (H, W, 3) uint8, got {a.shape} {a.dtype}")
    h, w = a.shape[:2]
    if h < 1 or w < 1:
        raise ValueError(f"encode_png: empty image {a.shape}")
    flat = a.astype(">u2" if bit_depth == 16 else np.uint8, copy=False).reshape(h, -1).view(np.uint8)
    rows = np.zeros((h, flat.shape[1] + 1), np.uint8)  # a leading 0 per row: filter type "none"
    rows[:, 1:] = flat
    strategy = zlib.Z_RLE if labels else zlib.Z_DEFAULT_STRATEGY
    parts = [part.data for part in np.array_split(rows, max(1, min(workers, h)))]
    if len(parts) == 1:
        comp = zlib.compressobj(1, zlib.DEFLATED, 15, 9, strategy)
        idat = comp.compress(parts[0]) + comp.flush()
    else:
        # Like pigz: independent raw-deflate segments, each but the last ended on a byte
        # boundary by a full flush, concatenate into one valid zlib stream (header + segments +
        # Adler-32 of the whole). zlib releases the GIL, so the segments compress in parallel.
        def segment(i: int) -> bytes:
            comp = zlib.compressobj(1, zlib.DEFLATED, -15, 9, strategy)
            return comp.compress(parts[i]) + comp.flush(zlib.Z_FINISH if i == len(parts) - 1 else zlib.Z_FULL_FLUSH)

        with ThreadPoolExecutor(len(parts)) as pool:
            segments = list(pool.map(segment, range(len(parts))))
        adler = 1
        for part in parts:
            adler = zlib.adler32(part, adler)
        idat = b"\x78\x01" + b"".join(segments) + struct.pack(">I", adler)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def save_png(array: np.ndarray, path: str | Path, *, labels: bool = False) -> Path:
    """Write :func:`encode_png` of ``array`` to ``path``."""
    path = Path(path)
    path.write_bytes(encode_png(array, labels=labels))
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
