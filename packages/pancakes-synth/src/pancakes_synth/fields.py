"""Structure fields: every 3D structure is a small smooth field on a G³ grid, inside where > 0.

Storing *smooth* fields (signed-distance-like) instead of binary masks lets one trilinear lookup
place a structure at any position, scale and rotation with sub-voxel accuracy, and keeps thin
tubes intact when they are sampled between grid points. Procedural families and voxel masks read
from NIfTI files share this one representation, so the generator treats them alike.

All functions are deterministic given their ``numpy.random.Generator``.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import ndimage

__all__ = [
    "FAMILIES",
    "GRID",
    "HELD_OUT_FAMILIES",
    "make_field",
    "mask_to_field",
    "smooth_noise",
]

GRID = 32  # field resolution per axis; 32³ float16 = 64 KB per structure


def _coords(g: int = GRID) -> np.ndarray:
    """Grid point coordinates in [-1, 1]³, shape (3, g, g, g) ordered (z, y, x)."""
    ax = np.linspace(-1.0, 1.0, g, dtype=np.float32)
    return np.stack(np.meshgrid(ax, ax, ax, indexing="ij"))


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], *, coarse: int) -> np.ndarray:
    """Value noise: a coarse random grid upsampled with cubic splines, zero mean, unit std."""
    small = rng.standard_normal((coarse,) * len(shape)).astype(np.float32)
    zoom = [s / coarse for s in shape]
    out = ndimage.zoom(small, zoom, order=3, mode="reflect")[tuple(slice(0, s) for s in shape)]
    out -= out.mean()
    return out / (out.std() + 1e-6)


def _ellipsoid(rng, c):
    r = rng.uniform(0.5, 0.95, size=3)[:, None, None, None]
    return 1.0 - np.sqrt(((c / r) ** 2).sum(0))


def _blob(rng, c):
    # Thresholded smooth noise inside a soft ball: irregular, organ-like shapes.
    n = smooth_noise(rng, c.shape[1:], coarse=int(rng.integers(3, 6)))
    ball = 1.0 - np.sqrt((c**2).sum(0)) / 0.95
    return np.minimum(n * 0.35 + rng.uniform(-0.1, 0.3), ball)


def _shell(rng, c):
    # Hollow ellipsoid: nested-shell anatomy (cortex, capsules, vessel walls).
    r = rng.uniform(0.6, 0.95, size=3)[:, None, None, None]
    d = np.sqrt(((c / r) ** 2).sum(0))
    thick = rng.uniform(0.08, 0.25)
    return thick / 2 - np.abs(d - (1.0 - thick / 2 - 0.02))


def _polyline_distance(c, pts):
    """Distance from every grid point to a polyline through ``pts`` (n, 3)."""
    flat = c.reshape(3, -1).T
    best = np.full(flat.shape[0], np.inf, dtype=np.float32)
    for a, b in itertools.pairwise(pts):
        ab = b - a
        t = np.clip(((flat - a) @ ab) / max(float(ab @ ab), 1e-9), 0.0, 1.0)
        d = np.linalg.norm(flat - (a + t[:, None] * ab), axis=1)
        best = np.minimum(best, d)
    return best.reshape(c.shape[1:])


def _walk(rng, start, n, step):
    pts = [np.asarray(start, dtype=np.float32)]
    direction = rng.standard_normal(3)
    for _ in range(n):
        direction = direction / np.linalg.norm(direction) + 0.6 * rng.standard_normal(3)
        nxt = np.clip(pts[-1] + step * direction / np.linalg.norm(direction), -0.9, 0.9)
        pts.append(nxt.astype(np.float32))
    return np.stack(pts)


def _tube(rng, c):
    pts = _walk(rng, rng.uniform(-0.7, 0.7, 3), int(rng.integers(3, 7)), rng.uniform(0.25, 0.45))
    return rng.uniform(0.05, 0.16) - _polyline_distance(c, pts)


def _branching(rng, c):
    # A small vessel/airway-like tree: a trunk and 2–5 thinner branches off it.
    trunk = _walk(rng, rng.uniform(-0.6, 0.6, 3), 4, 0.35)
    r0 = rng.uniform(0.06, 0.12)
    field = r0 - _polyline_distance(c, trunk)
    for _ in range(int(rng.integers(2, 6))):
        start = trunk[int(rng.integers(1, len(trunk)))]
        br = _walk(rng, start, int(rng.integers(2, 4)), rng.uniform(0.2, 0.35))
        field = np.maximum(field, r0 * rng.uniform(0.4, 0.8) - _polyline_distance(c, br))
    return field


def _blob_field(rng, c):
    # Dense field of small round blobs: cells / nuclei. Components split into separate labels
    # when the generator splits connected components.
    n = int(rng.integers(8, 30))
    centres = rng.uniform(-0.85, 0.85, size=(n, 3)).astype(np.float32)
    radii = rng.uniform(0.07, 0.16, size=n).astype(np.float32)
    flat = c.reshape(3, -1).T
    d = np.linalg.norm(flat[:, None, :] - centres[None], axis=2) - radii[None]
    return (-d.min(axis=1)).reshape(c.shape[1:])


def _slab(rng, c):
    # Large smooth region with an undulating boundary: partitions defined mainly by intensity.
    normal = rng.standard_normal(3).astype(np.float32)
    normal /= np.linalg.norm(normal)
    plane = np.tensordot(normal, c, axes=1)
    wobble = 0.2 * smooth_noise(rng, c.shape[1:], coarse=4)
    ball = 1.0 - np.sqrt((c**2).sum(0))
    return np.minimum(rng.uniform(-0.3, 0.3) - plane + wobble, ball)


def _voronoi(rng, c):
    # Held-out family (never in the default training mix): one warped Voronoi cell.
    pts = rng.uniform(-0.9, 0.9, size=(int(rng.integers(4, 9)), 3)).astype(np.float32)
    warp = 0.15 * np.stack([smooth_noise(rng, c.shape[1:], coarse=3) for _ in range(3)])
    flat = (c + warp).reshape(3, -1).T
    d = np.linalg.norm(flat[:, None] - pts[None], axis=2)
    d.sort(axis=1)
    inside = (d[:, 1] - d[:, 0]).reshape(c.shape[1:])  # margin to the nearest other seed
    own = np.linalg.norm(flat - pts[0], axis=1).reshape(c.shape[1:]) <= d[:, 0].reshape(c.shape[1:]) + 1e-6
    return np.where(own, inside, -inside) * 0.5 + np.minimum(0, 1.0 - np.sqrt((c**2).sum(0)))


FAMILIES = {
    "ellipsoid": _ellipsoid,
    "blob": _blob,
    "shell": _shell,
    "tube": _tube,
    "branching": _branching,
    "blob_field": _blob_field,
    "slab": _slab,
}
HELD_OUT_FAMILIES = {"voronoi": _voronoi}


def make_field(family: str, rng: np.random.Generator) -> np.ndarray:
    """One procedural structure of ``family`` as a (G, G, G) float16 field (> 0 inside)."""
    fn = FAMILIES.get(family) or HELD_OUT_FAMILIES.get(family)
    if fn is None:
        known = sorted(FAMILIES) + sorted(HELD_OUT_FAMILIES)
        raise ValueError(f"unknown procedural family {family!r}; known: {known}")
    field = fn(rng, _coords()).astype(np.float32)
    if not (field > 0).any():  # degenerate draw: keep a small core so the structure exists
        field = np.maximum(field, 0.05 - np.sqrt((_coords() ** 2).sum(0)))
    return field.astype(np.float16)


def mask_to_field(
    mask: np.ndarray, spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
) -> tuple[np.ndarray, np.ndarray]:
    """A binary 3D mask → (field (G, G, G) float16, physical extent (3,) of the cropped box).

    The mask is cropped to its bounding box (plus one voxel), smoothed slightly and resampled to
    the field grid; the extent tells the generator the structure's true aspect ratio.
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 3:
        raise ValueError(f"structure masks must be 3D, got shape {m.shape}")
    if not m.any():
        raise ValueError("structure mask is empty")
    idx = np.argwhere(m)
    lo = np.maximum(idx.min(0) - 1, 0)
    hi = np.minimum(idx.max(0) + 2, m.shape)
    crop = m[tuple(slice(a, b) for a, b in zip(lo, hi))].astype(np.float32)
    crop = np.pad(crop, 1)
    extent = np.asarray(crop.shape, dtype=np.float32) * np.asarray(spacing, dtype=np.float32)
    zoom = [GRID / s for s in crop.shape]
    field = ndimage.zoom(ndimage.gaussian_filter(crop, 0.5), zoom, order=1)[:GRID, :GRID, :GRID]
    field = np.pad(field, [(0, GRID - s) for s in field.shape])
    return (field - 0.5).astype(np.float16), extent
