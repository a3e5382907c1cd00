"""Reference samplers in the plain concat form, for benchmarks and comparisons only.

They take the same inputs as :class:`pancakes_model.network.model.Sampler` — φ (N, C, H, W) and
v (M, K, 2J) — and run a convolutional network on every (image, m, k) map of φ ‖ v, which costs
N·M·K full-resolution network passes. They are not trained or shipped.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConcatConvSampler", "OfficialSampler"]


class _PerMapSampler(nn.Module):
    net: nn.Sequential

    def forward(self, phi: torch.Tensor, v: torch.Tensor, *, chunk: int = 16) -> torch.Tensor:
        n, c, h, w = phi.shape
        m, k, e = v.shape
        flat_v = v.reshape(m * k, e)
        out = phi.new_empty((n, m * k, h, w))
        # Chunking the candidates bounds peak memory at no speed cost.
        for start in range(0, m * k, chunk):
            vs = flat_v[start : start + chunk]
            j = vs.shape[0]
            cat = torch.cat(
                [phi[:, None].expand(n, j, c, h, w), vs[None, :, :, None, None].expand(n, j, e, h, w)],
                dim=2,
            ).reshape(n * j, c + e, h, w)
            out[:, start : start + j] = self.net(cat).reshape(n, j, h, w)
        return out.reshape(n, m, k, h, w)


class ConcatConvSampler(_PerMapSampler):
    """concat → 3×3 conv → PReLU → 1×1 → PReLU → 1×1 logit, per (image, m, k) map."""

    def __init__(self, *, features: int = 32, embed_dims: int = 24, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(features + embed_dims, hidden, 3, padding=1),
            nn.PReLU(hidden),
            nn.Conv2d(hidden, hidden, 1),
            nn.PReLU(hidden),
            nn.Conv2d(hidden, 1, 1),
        )


class OfficialSampler(_PerMapSampler):
    """The authors' released form: three 3×3 conv + PReLU layers then 1×1, per map."""

    def __init__(self, *, features: int = 32, embed_dims: int = 12, hidden: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = features + embed_dims
        for _ in range(3):
            layers += [nn.Conv2d(width, hidden, 3, padding=1), nn.PReLU(hidden)]
            width = hidden
        layers.append(nn.Conv2d(hidden, 1, 1))
        self.net = nn.Sequential(*layers)
