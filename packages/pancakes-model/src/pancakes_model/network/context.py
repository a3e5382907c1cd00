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

With ``per_image`` the MLP also sees how each image differs from the set (its own mean and standard
deviation minus the set's), so the images of a set get their own scale and shift: one image of a
set of five can learn that it is brighter than the others, where the shared summary alone tells
all five the same. At S = 1 the difference is zero and the branch is the shared one. Grown on a
branch without it (:meth:`~pancakes_model.network.model.Pancakes.grow_per_image_context`), the
new inputs' weights start at zero.
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
        per_image: the MLP also sees each image's own description relative to the set's.
    """

    def __init__(self, *, features: int, hidden: int, levels: int, per_image: bool = False) -> None:
        super().__init__()
        self.features = features
        self.levels = levels
        self.per_image = per_image
        inputs = (4 if per_image else 2) * features
        self.mlp = nn.Sequential(nn.Linear(inputs, hidden), nn.PReLU(), nn.Linear(hidden, 2 * features * (levels + 1)))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    @staticmethod
    def describe(bottleneck: torch.Tensor) -> torch.Tensor:
        """Per-image description: bottleneck (N, C, h, w) → (N, 2C) spatial mean and mean square
        (float32); a set's summary is the mean of its images' descriptions."""
        x = bottleneck.float()
        return torch.cat([x.mean(dim=(2, 3)), x.pow(2).mean(dim=(2, 3))], dim=1)

    @staticmethod
    def _moments(description: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, square = description.float().chunk(2, dim=1)
        return mean, (square - mean.pow(2)).clamp_min(0).add(1e-6).sqrt()

    def films(self, summary: torch.Tensor, own: torch.Tensor | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Set summaries (G, 2C) → L + 1 pairs (γ, β) of (G, C, 1, 1), bottleneck first.

        The MLP sees the set's mean and standard deviation per channel (the mean square alone
        grows with the square of the features' scale). With ``per_image``, row g of ``summary`` is
        the summary of image g's set and ``own`` (G, 2C) image g's own description
        (:meth:`describe`); the MLP also sees their difference.
        """
        if self.per_image != (own is not None):
            raise ValueError("a per-image branch needs each image's own description (and only it)")
        mean, std = self._moments(summary)
        parts = [mean, std]
        if own is not None:
            own_mean, own_std = self._moments(own)
            parts += [own_mean - mean, own_std - std]
        out = self.mlp(torch.cat(parts, dim=1))
        out = rearrange(out, "G (L two C) -> L two G C 1 1", L=self.levels + 1, two=2, C=self.features)
        return [(out[i, 0], out[i, 1]) for i in range(self.levels + 1)]
