"""The architecture a bioimage.io package refers to: :class:`Pancakes` with M and K fixed, taking and
returning tensors only (what bioimage.io runners call); its state dict is the model's own."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch

from pancakes_model.network.config import PancakesConfig
from pancakes_model.network.model import Pancakes

__all__ = ["PancakesBioImageIO"]


class PancakesBioImageIO(Pancakes):
    """``images`` (B, S, 1, H, W) → ``protocols`` (B, S, M, K, H, W): softmax over K.

    Args:
        config: the architecture (:class:`PancakesConfig` fields, as stored in a weights file).
        M, K: protocols and labels per protocol of the packaged model.
    """

    def __init__(self, *, config: dict[str, Any], M: int = 8, K: int = 20) -> None:
        super().__init__(PancakesConfig.from_dict(config))
        self.M, self.K = int(M), int(K)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(images, self.M, self.K)

    @staticmethod
    def config_kwargs(model: Pancakes) -> dict[str, Any]:
        """The ``config`` argument that rebuilds ``model``'s architecture."""
        return asdict(model.config)

    @classmethod
    def wrap(cls, model: Pancakes, *, M: int, K: int) -> PancakesBioImageIO:
        """A packaged copy of ``model`` (same weights and preprocessing), in eval mode."""
        out = cls(config=cls.config_kwargs(model), M=M, K=K)
        out.load_state_dict(model.state_dict())
        out.preprocess = model.preprocess
        return out.eval()
