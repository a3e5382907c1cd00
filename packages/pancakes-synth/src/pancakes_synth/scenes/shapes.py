"""Rasterising the shapes scenes are made of, each painted inside its own bounding box.

Every painter writes an instance id into an int32 canvas (H, W) where its shape covers a pixel
(later shapes on top) and returns nothing; all randomness comes from the caller, so a painter is
deterministic. Coordinates are in pixels, (row, col), pixel centres at integers.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "curve",
    "paint_blob",
    "paint_capsule",
    "paint_polyline",
    "paint_ring",
    "star_radius",
]


def _box(canvas: np.ndarray, cy: float, cx: float, reach: float) -> tuple[slice, slice, np.ndarray, np.ndarray]:
    """Slices of the canvas within ``reach`` of (cy, cx) and the pixel offsets there."""
    h, w = canvas.shape
    r0, r1 = max(int(np.floor(cy - reach)), 0), min(int(np.ceil(cy + reach)) + 1, h)
    c0, c1 = max(int(np.floor(cx - reach)), 0), min(int(np.ceil(cx + reach)) + 1, w)
    dy = np.arange(r0, r1, dtype=np.float32)[:, None] - cy
    dx = np.arange(c0, c1, dtype=np.float32)[None, :] - cx
    return slice(r0, r1), slice(c0, c1), dy, dx


def star_radius(phi: np.ndarray, harmonics: np.ndarray) -> np.ndarray:
    """Relative radius 1 + Σ_j a_j cos(j·φ + p_j) of a star-shaped outline.

    Args:
        phi: angles (any shape).
        harmonics: (J, 2) amplitude and phase of harmonics j = 2 … J + 1.
    """
    out = np.ones_like(phi)
    for j, (amp, phase) in enumerate(harmonics, start=2):
        out += amp * np.cos(j * phi + phase)
    return out


def paint_blob(
    canvas: np.ndarray,
    value: int,
    *,
    centre: tuple[float, float],
    radius: float,
    aspect: float = 1.0,
    angle: float = 0.0,
    harmonics: np.ndarray | None = None,
    inner: float = 0.0,
) -> None:
    """A star-shaped ellipse (nucleus, cell, gland, lumen …); ``inner`` > 0 leaves a hole of that
    relative radius (a ring)."""
    cy, cx = centre
    slope = 1.0 + (np.abs(harmonics[:, 0]).sum() if harmonics is not None else 0.0)
    rows, cols, dy, dx = _box(canvas, cy, cx, radius * max(aspect, 1.0) * slope + 1)
    if dy.size == 0 or dx.size == 0:
        return
    c, s = np.cos(angle), np.sin(angle)
    u = (dy * c + dx * s) / aspect
    v = -dy * s + dx * c
    rho = np.sqrt(u * u + v * v) / radius
    bound = star_radius(np.arctan2(v, u), harmonics) if harmonics is not None else 1.0
    inside = rho <= bound
    if inner > 0:
        inside &= rho > inner * bound
    canvas[rows, cols][inside] = value


def paint_ring(canvas: np.ndarray, value: int, *, centre, radius: float, width: float, **kw) -> None:
    """A ring of ``width`` pixels just inside a blob outline (membranes, epithelia, vesicle walls)."""
    paint_blob(canvas, value, centre=centre, radius=radius, inner=max(0.0, 1.0 - width / max(radius, 1e-3)), **kw)


def paint_polyline(canvas: np.ndarray, value: int, points: np.ndarray, widths: np.ndarray | float) -> None:
    """A tube of half-width ``widths`` (one per point, interpolated along the line, or one value)
    around the polyline ``points`` (n, 2): vessels, fibres, rods. Each segment is tested only inside
    its own small box (a long curve's bounding box would cover the whole canvas); the boxes are
    padded to one size and tested in one vectorised pass, with the same float32 arithmetic per
    pixel as a segment-by-segment loop (curvilinear scenes were a third of the training data time)."""
    pts = np.asarray(points, dtype=np.float32)
    w = np.broadcast_to(np.asarray(widths, dtype=np.float32), (len(pts),))
    n = max(len(pts) - 1, 1)
    last = len(pts) - 1
    a, b = pts[:n], pts[np.minimum(np.arange(1, n + 1), last)]
    w0, w1 = w[:n], w[np.minimum(np.arange(1, n + 1), last)]
    centre = (a + b) / 2
    h, wd = canvas.shape
    ab2 = b - a
    reach = (np.hypot(ab2[:, 0], ab2[:, 1]) / 2 + np.maximum(w0, w1) + 1).astype(np.float64)
    cen = centre.astype(np.float64)
    box = np.stack(
        [
            np.maximum(np.floor(cen[:, 0] - reach), 0),
            np.minimum(np.ceil(cen[:, 0] + reach) + 1, h),
            np.maximum(np.floor(cen[:, 1] - reach), 0),
            np.minimum(np.ceil(cen[:, 1] + reach) + 1, wd),
        ],
        axis=1,
    ).astype(np.int64)
    denom = np.maximum(ab2[:, 0] * ab2[:, 0] + ab2[:, 1] * ab2[:, 1], np.float32(1e-9))
    bh, bw = int((box[:, 1] - box[:, 0]).max()), int((box[:, 3] - box[:, 2]).max())
    if bh <= 0 or bw <= 0:
        return
    rows = box[:, :1] + np.arange(bh)  # (n, bh) canvas rows of each padded box
    cols = box[:, 2:3] + np.arange(bw)
    dy = (rows.astype(np.float32) - centre[:, :1])[:, :, None]  # (n, bh, 1)
    dx = (cols.astype(np.float32) - centre[:, 1:])[:, None, :]  # (n, 1, bw)
    ab = (b - a)[:, :, None, None]
    a0 = (a - centre)[:, :, None, None]
    den = denom[:, None, None]
    t = np.clip(((dy - a0[:, 0]) * ab[:, 0] + (dx - a0[:, 1]) * ab[:, 1]) / den, 0.0, 1.0)
    dist = np.hypot(dy - (a0[:, 0] + t * ab[:, 0]), dx - (a0[:, 1] + t * ab[:, 1]))
    width = w0[:, None, None] + t * (w1 - w0)[:, None, None]
    hit = (dist <= width) & (rows < box[:, 1:2])[:, :, None] & (cols < box[:, 3:4])[:, None, :]
    k, y, x = np.nonzero(hit)
    canvas[rows[k, y], cols[k, x]] = value


def paint_capsule(canvas: np.ndarray, value: int, *, centre, length: float, width: float, angle: float) -> None:
    """A rod with round caps (bacteria): a segment of ``length`` and half-width ``width``."""
    cy, cx = centre
    half = np.array([np.cos(angle), np.sin(angle)], np.float32) * (length / 2)
    paint_polyline(canvas, value, np.stack([np.array([cy, cx]) - half, np.array([cy, cx]) + half]), width)


def curve(
    rng: np.random.Generator, start: np.ndarray, direction: float, *, steps: int, step: float, wiggle: float
) -> np.ndarray:
    """A smooth random walk: (steps + 1, 2) points from ``start`` heading ``direction`` (radians),
    turning by N(0, wiggle) per step (vessels, fibres, axons)."""
    turns = np.cumsum(rng.normal(0.0, wiggle, size=steps)) + direction
    moves = np.stack([np.sin(turns), np.cos(turns)], axis=1) * step
    return np.concatenate([np.asarray(start, np.float32)[None], start + np.cumsum(moves, axis=0)]).astype(np.float32)
