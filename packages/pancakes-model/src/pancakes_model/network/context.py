"""Set context: the images of a set see one summary of the whole set.

Without it the images of a set never interact, and a protocol is only as consistent as training
made the shared (m, k) embeddings: every image places its own thresholds, and one label must then
serve images that placed them differently (the S = 1 → S = 5 gap of the dev table). With it, a
summary of the set's bottleneck features modulates every image's expanding path (FiLM: a scale and
a shift per channel and level), so the images can agree.

The summary averages: per image, the spatial mean and mean square of the bottleneck (N, 2C); per
set, the mean of its images'. A set too large for memory — a volume's slices, a cohort streamed
input by input or across Dask workers — is therefore summarised image by image in any order, and
the label maps of one image depend on the others only through that (2C,) vector.

The last layer starts at zero: a branch grown on trained weights is the identity until training
moves it, so the model it is grown from is where training starts.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

__all__ = ["SetContext"]


class SetContext(nn.Module):
    """Set summary → per-level FiLM parameters for the UNet's expanding path.

    Args:
        features: channels of the UNet (C).
        hidden: width of the MLP.
        levels: UNet levels (L): the bottleneck and L decoder outputs are modulated.
    """

    def __init__(self, *, features: int, hidden: int, levels: int) -> None:
        super().__init__()
        self.features = features
        self.levels = levels
        self.mlp = nn.Sequential(
            nn.Linear(2 * features, hidden), nn.PReLU(), nn.Linear(hidden, 2 * features * (levels + 1))
        )
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    @staticmethod
    def describe(bottleneck: torch.Tensor) -> torch.Tensor:
        """Per-image description: bottleneck (N, C, h, w) → (N, 2C) spatial mean and mean square
        (float32); a set's summary is the mean of its images' descriptions."""
        x = bottleneck.float()
        return torch.cat([x.mean(dim=(2, 3)), x.pow(2).mean(dim=(2, 3))], dim=1)

    def films(self, summary: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Set summaries (G, 2C) → L + 1 pairs (γ, β) of (G, C, 1, 1), bottleneck first.

        The MLP sees the set's mean and standard deviation per channel (the mean square alone
        grows with the square of the features' scale).
        """
        mean, square = summary.float().chunk(2, dim=1)
        std = (square - mean.pow(2)).clamp_min(0).add(1e-6).sqrt()
        out = self.mlp(torch.cat([mean, std], dim=1))
        out = rearrange(out, "G (L two C) -> L two G C 1 1", L=self.levels + 1, two=2, C=self.features)
        return [(out[i, 0], out[i, 1]) for i in range(self.levels + 1)]
