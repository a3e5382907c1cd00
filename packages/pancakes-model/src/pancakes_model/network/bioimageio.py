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

import numpy as np
import torch

from pancakes_data.preprocess import normalize_intensity
from pancakes_model.network.config import PancakesConfig
from pancakes_model.network.model import Pancakes

__all__ = ["PancakesBioImageIO", "normalize_images"]


def normalize_images(images: torch.Tensor, percentiles: tuple[float, float]) -> torch.Tensor:
    """Raw images (B, S, C, H, W) → [0, 1], each (b, s) image on its own, by pancakes-data's own
    :func:`~pancakes_data.preprocess.normalize_intensity` (percentiles of the voxels > 0)."""
    x = images.detach().float().cpu().numpy()
    out = np.stack([[normalize_intensity(img, percentiles=percentiles) for img in row] for row in x])
    return torch.from_numpy(out).to(images.device)


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
