"""Smooth random fields on a 2D grid: cubic B-spline upsampling of a coarse random lattice.

One home for what every generator needs (bias fields, textures, elastic displacements, wobbly
boundaries): two small matrix products per field, much cheaper on a CPU than bicubic
interpolation or a large Gaussian filter.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["smooth_field", "spline_matrix", "upsample"]

_SPLINE_CACHE: dict[tuple[int, int], torch.Tensor] = {}


def spline_matrix(coarse: int, size: int) -> torch.Tensor:
    """(size, coarse) weights of a uniform cubic B-spline through ``coarse`` control points."""
    key = (coarse, size)
    if key not in _SPLINE_CACHE:
        t = torch.linspace(0, coarse - 1, size, dtype=torch.float64)[:, None]
        d = (t - torch.arange(coarse, dtype=torch.float64)[None]).abs()
        w = torch.where(d < 1, 2 / 3 - d**2 + d**3 / 2, torch.where(d < 2, (2 - d) ** 3 / 6, torch.zeros_like(d)))
        _SPLINE_CACHE[key] = (w / w.sum(1, keepdim=True)).float()
    return _SPLINE_CACHE[key]


def upsample(coarse: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Smooth (C²) upsampling (..., h, w) → (..., H, W) by a separable cubic B-spline."""
    hh, ww = (size, size) if isinstance(size, int) else size
    rows = spline_matrix(coarse.shape[-2], hh)
    cols = spline_matrix(coarse.shape[-1], ww)
    return rows @ coarse @ cols.T


def smooth_field(rng: np.random.Generator, n: int, size: int, *, coarse: int) -> np.ndarray:
    """``n`` smooth random fields (n, size, size) float32, each with zero mean and unit std.

    Args:
        rng: the random generator (draws n · coarse² normals).
        n: number of fields.
        size: side of each field in pixels.
        coarse: control points per side (2 → a gentle ramp, 16 → fine mottling).
    """
    lattice = torch.from_numpy(rng.standard_normal((n, coarse, coarse), dtype=np.float32))
    out = upsample(lattice, size).numpy()
    out -= out.mean(axis=(1, 2), keepdims=True)
    out /= out.std(axis=(1, 2), keepdims=True) + 1e-6
    return out
