"""The featurizer f(x) = φ: a small UNet with the same width at every level."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvBlock", "UNet"]


class ConvBlock(nn.Sequential):
    """Two 3×3 convolutions, each followed by PReLU: (N, C_in, H, W) → (N, C_out, H, W)."""

    def __init__(self, *, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.PReLU(out_channels),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.PReLU(out_channels),
        )


# --------------------------------------------------------------------------- featurizer f
class UNet(nn.Module):
    """The featurizer f(x) = φ: a 4-level UNet with the same width everywhere.

    Each encoder level is a :class:`ConvBlock` followed by 2× max-pooling; a bottleneck block
    works at 1/16 resolution; each decoder level up-samples with a 2×2 stride-2 transposed
    convolution, concatenates the skip and applies a :class:`ConvBlock`. A final 1×1 convolution
    + PReLU gives φ at full resolution.

    Args:
        in_channels: image channels (1 for grey images).
        features: channels at every level and of φ.
        levels: number of pooling levels; H and W must be divisible by 2**levels.
    """

    def __init__(self, *, in_channels: int = 1, features: int = 32, levels: int = 4) -> None:
        super().__init__()
        self.levels = levels
        self.down = nn.ModuleList(
            ConvBlock(in_channels=in_channels if i == 0 else features, out_channels=features) for i in range(levels)
        )
        self.bottleneck = ConvBlock(in_channels=features, out_channels=features)
        self.up = nn.ModuleList(nn.ConvTranspose2d(features, features, 2, stride=2) for _ in range(levels))
        self.decode = nn.ModuleList(ConvBlock(in_channels=2 * features, out_channels=features) for _ in range(levels))
        self.out = nn.Sequential(nn.Conv2d(features, features, 1), nn.PReLU(features))

    def contract(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The contracting path: (N, C_in, H, W) → the bottleneck (N, features, H/2^L, W/2^L) and the
        skips, finest first."""
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        return self.bottleneck(x), skips

    def expand(
        self, x: torch.Tensor, skips: list[torch.Tensor], films: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    ) -> torch.Tensor:
        """Bottleneck and skips from :meth:`contract` (the expanding path) → φ (N, features, H, W).

        ``films`` (from :class:`~pancakes_model.network.context.SetContext`): L + 1 pairs of
        (N, features, 1, 1) scale and shift, applied as x·(1 + γ) + β to the bottleneck and to the
        output of every decoder level.
        """
        if films is not None:
            x = torch.addcmul(films[0][1], x, 1 + films[0][0])
        for i, (up, block, skip) in enumerate(zip(self.up, self.decode, reversed(skips))):
            x = block(torch.cat([up(x), skip], dim=1))
            if films is not None:
                x = torch.addcmul(films[i + 1][1], x, 1 + films[i + 1][0])
        return self.out(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) → φ (N, features, H, W)."""
        return self.expand(*self.contract(x))
