"""Per-element geometry of a set: a small affine plus a smooth elastic displacement, applied to a
template label map with nearest-neighbour sampling so ids survive (one home for both generators).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pancakes_synth.smooth import upsample

__all__ = ["sample_warps", "warp_labels", "warps_for"]

_BASE_CACHE: dict[int, torch.Tensor] = {}


def _base_grid(size: int) -> torch.Tensor:
    """(size², 3) homogeneous pixel-centre coordinates (x, y, 1) in [-1, 1], as affine_grid."""
    if size not in _BASE_CACHE:
        ax = (2 * torch.arange(size, dtype=torch.float32) + 1) / size - 1
        yy, xx = torch.meshgrid(ax, ax, indexing="ij")
        _BASE_CACHE[size] = torch.stack([xx, yy, torch.ones_like(xx)], dim=-1).reshape(-1, 3)
    return _BASE_CACHE[size]


def sample_warps(
    rng: np.random.Generator,
    n: int,
    *,
    rotation_deg: float,
    scale: tuple[float, float],
    translation: float,
    elastic_std: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` warps: affines θ (n, 2, 3) of the sampling grid and coarse displacements (n, 2, 5, 5)
    (normalised coordinates)."""
    ang = np.deg2rad(rng.uniform(-rotation_deg, rotation_deg, size=n))
    sc = rng.uniform(*scale, size=n)
    tr = rng.uniform(-translation, translation, size=(n, 2))
    theta = np.zeros((n, 2, 3))
    theta[:, 0, 0] = np.cos(ang) / sc
    theta[:, 0, 1] = -np.sin(ang) / sc
    theta[:, 1, 0] = np.sin(ang) / sc
    theta[:, 1, 1] = np.cos(ang) / sc
    theta[:, :, 2] = tr
    disp = rng.standard_normal((n, 2, 5, 5)) * rng.uniform(*elastic_std, size=(n, 1, 1, 1))
    return theta, disp


def warps_for(rng: np.random.Generator, n: int, cfg) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sample_warps` with the ranges of a generator config (``element_rotation_deg``,
    ``element_scale``, ``element_translation``, ``elastic_std``)."""
    return sample_warps(
        rng,
        n,
        rotation_deg=cfg.element_rotation_deg,
        scale=cfg.element_scale,
        translation=cfg.element_translation,
        elastic_std=cfg.elastic_std,
    )


def warp_labels(template: np.ndarray, theta: np.ndarray, displacement: np.ndarray) -> torch.Tensor:
    """Warp a square template (H, H) by every (θ, displacement): (n, H, H) int64 (border padding)."""
    n, h = theta.shape[0], template.shape[0]
    th = torch.from_numpy(theta).float()
    grid = (_base_grid(h) @ th.transpose(1, 2)).view(n, h, h, 2)  # = affine_grid, faster here
    disp = upsample(torch.from_numpy(displacement).float(), h).permute(0, 2, 3, 1)
    tmpl = torch.from_numpy(np.ascontiguousarray(template)).float()[None, None].expand(n, 1, h, h)
    labels = F.grid_sample(tmpl, grid + disp, mode="nearest", padding_mode="border", align_corners=False)
    return labels[:, 0].round().long()
