"""An exponential moving average of the weights during training (Polyak averaging).

Four of the models this project shipped were weight averages of stage ends (MODEL_CARD.md items 8,
16, 23 and 27; "model soups", :mod:`.soup`), and the last one trained from such an average (item
40). ``train.ema = d`` keeps an average continuously: after every optimizer step ``avg ← d·avg + (1
− d)·w`` for every floating-point tensor of the model, which weighs the last ~1 / (1 − d) steps. The
average starts at the run's initial weights, lives in float32 beside the model (a bf16 featurizer's
weights are float32 too), is saved in every checkpoint and restored on resume (a resumed run's
average equals an uninterrupted one's), and is written as ``OUT/ema.safetensors`` next to
``last.safetensors``: an ordinary weights file for ``pancakes evaluate --model``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["WeightAverage"]


class WeightAverage:
    """The moving average of ``model``'s floating-point state (parameters and buffers).

    Args:
        model: the model being trained; its current state is the average's start.
        decay: d in (0, 1); the average weighs the last ~1 / (1 − d) steps.
    """

    def __init__(self, model: torch.nn.Module, *, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the average's decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.tensors = {
            name: value.detach().to(torch.float32, copy=True)
            for name, value in model.state_dict().items()
            if value.is_floating_point()
        }

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """One step of the average towards ``model``'s current weights."""
        state = model.state_dict()
        for name, avg in self.tensors.items():
            avg.lerp_(state[name].to(torch.float32), 1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged tensors by the model's own names (CPU, contiguous: ready for safetensors)."""
        return {name: t.detach().cpu().contiguous() for name, t in self.tensors.items()}

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore a saved average; every tensor of this model must be there."""
        missing = sorted(set(self.tensors) - set(tensors))
        if missing:
            raise KeyError(f"the saved average lacks {missing[0]} (and {len(missing) - 1} more)")
        for name, avg in self.tensors.items():
            avg.copy_(tensors[name])

    @contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """``model`` with the averaged weights inside the block and its own weights back after it.

        The tensors are copied in place, so an optimizer's references to the parameters stay valid.
        """
        own = {name: t.detach().clone() for name, t in model.state_dict().items() if name in self.tensors}
        with torch.no_grad():
            model.load_state_dict(self.tensors, strict=False)
        try:
            yield model
        finally:
            with torch.no_grad():
                model.load_state_dict(own, strict=False)
