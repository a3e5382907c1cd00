"""The architecture a bioimage.io package refers to: :class:`Pancakes` with M and K fixed, taking raw
images and returning tensors only (what bioimage.io runners call); its state dict is the model's own.

The intensity normalisation is part of the architecture, not a declared preprocessing step:
pancakes-model scales each image by the percentiles of its voxels > 0
(:func:`pancakes_data.preprocess.normalize_intensity`), which bioimage.io's ``scale_range`` cannot
express (it takes every pixel), so a runner that applied ``scale_range`` would feed the network other
intensities than ``pancakes segment`` does (``bioimageio test`` measured 4.5 % of the test output off).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch

from pancakes_data.preprocess import PERCENTILE_SAMPLE
from pancakes_model.network.config import PancakesConfig
from pancakes_model.network.model import Pancakes

__all__ = ["PancakesBioImageIO", "normalize_images"]


def normalize_images(images: torch.Tensor, percentiles: tuple[float, float]) -> torch.Tensor:
    """Raw images (B, S, C, H, W) → [0, 1], each (b, s) image on its own, as
    :func:`pancakes_data.preprocess.normalize_intensity` does for an MR-like image: clipped to the
    ``percentiles`` of its voxels > 0 (of all voxels if none is > 0; a regular subsample above
    ``PERCENTILE_SAMPLE`` voxels), then min–max scaled; a constant image becomes 0."""
    x = images.float()
    out = torch.empty_like(x)
    q = torch.tensor([percentiles[0] / 100.0, percentiles[1] / 100.0], dtype=torch.float64)
    for b in range(x.shape[0]):
        for s in range(x.shape[1]):
            flat = x[b, s].reshape(-1)
            sample = flat[:: flat.numel() // PERCENTILE_SAMPLE + 1] if flat.numel() > PERCENTILE_SAMPLE else flat
            fg = sample[sample > 0]
            ref = fg if fg.numel() else sample
            # float64 like numpy's percentile, then rounded to float32 as normalize_intensity does
            lo, hi = (float(v) for v in torch.quantile(ref.double(), q).float())
            span = torch.tensor(hi, dtype=torch.float32) - torch.tensor(lo, dtype=torch.float32)
            if span <= 0:
                out[b, s] = 0
            else:
                out[b, s] = (x[b, s].clamp(lo, hi) - lo) / span
    return out


class PancakesBioImageIO(Pancakes):
    """Raw ``images`` (B, S, 1, H, W) → ``protocols`` (B, S, M, K, H, W): softmax over K.

    Args:
        config: the architecture (:class:`PancakesConfig` fields, as stored in a weights file).
        M, K: protocols and labels per protocol of the packaged model.
        percentiles: the intensity percentiles of the weights' preprocessing (:func:`normalize_images`).
    """

    def __init__(
        self, *, config: dict[str, Any], M: int = 8, K: int = 20, percentiles: tuple[float, float] = (0.5, 99.5)
    ) -> None:
        super().__init__(PancakesConfig.from_dict(config))
        self.M, self.K = int(M), int(K)
        self.percentiles = (float(percentiles[0]), float(percentiles[1]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(normalize_images(images, self.percentiles), self.M, self.K)

    @staticmethod
    def config_kwargs(model: Pancakes) -> dict[str, Any]:
        """The ``config`` argument that rebuilds ``model``'s architecture."""
        return asdict(model.config)

    @classmethod
    def wrap(cls, model: Pancakes, *, M: int, K: int) -> PancakesBioImageIO:
        """A packaged copy of ``model`` (same weights and preprocessing), in eval mode."""
        out = cls(config=cls.config_kwargs(model), M=M, K=K, percentiles=model.preprocess.percentiles)
        out.load_state_dict(model.state_dict())
        out.preprocess = model.preprocess
        return out.eval()
