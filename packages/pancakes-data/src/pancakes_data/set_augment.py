"""The paper's Table-3 augmentation of a set: across-set transforms (one draw shared by the set),
then within-set ones (one draw per element), from the transforms of :mod:`pancakes_data.augment`.

Parameters are drawn where the sets are made (:meth:`SetAugmentation.sample`, e.g. in DataLoader
workers), joined over the batch there (:func:`join_params`: one tensor per parameter, so a batch
crosses to the training process through shared memory rather than as ~10^3 pickled arrays), and
applied wherever the batch is (:meth:`SetAugmentation.apply_batch`, e.g. on a GPU): the same draws
give the same sets on either route.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange

from pancakes_data.augment import (
    Affine,
    BrightnessContrast,
    Elastic,
    Flip,
    GaussianBlur,
    GaussianNoise,
    IntensityFlip,
    Params,
    Sharpness,
    Transform,
)

__all__ = [
    "INTENSITY_FLIPS",
    "JoinedParams",
    "SetAugmentation",
    "flip_slot",
    "join_params",
    "paper_across_set",
    "paper_within_set",
]


@dataclass(frozen=True)
class JoinedParams:
    """The parameters of a batch's sets joined per transform (:func:`join_params`): ``across`` and
    ``within`` hold one dict per transform whose values have the batch's B·S rows."""

    sets: int
    across: list[dict[str, torch.Tensor]]
    within: list[dict[str, torch.Tensor]]


def join_params(params: Sequence) -> JoinedParams:
    """B entries ``(across, within)`` of :meth:`SetAugmentation.sample` → one tensor per parameter.

    Where the DataLoader's workers draw the parameters, a batch of 32 sets held ~50 MB in ~10^3
    numpy arrays (noise fields among them), which the training process unpickled at ~380 ms of CPU
    a batch (``benchmarks/bench_loader.py``). Tensors cross through shared memory.
    """

    def joined(part: int) -> list[dict[str, torch.Tensor]]:
        return [
            {key: torch.from_numpy(np.concatenate([np.asarray(p[part][j][key]) for p in params])) for key in first}
            for j, first in enumerate(params[0][part])
        ]

    return JoinedParams(sets=len(params), across=joined(0), within=joined(1))


@dataclass
class SetAugmentation:
    """Across-set transforms (one draw per set), then within-set ones (one draw per element)."""

    across: list[Transform]
    within: list[Transform]

    def sample(self, rng: np.random.Generator, n: int) -> tuple[list[Params], list[Params]]:
        """Draw all parameters for a set of ``n`` elements."""
        across = [t.sample_shared(rng, n) for t in self.across]
        within = [t.sample(rng, n) for t in self.within]
        return across, within

    def apply(self, images: torch.Tensor, targets: torch.Tensor, params) -> tuple[torch.Tensor, torch.Tensor]:
        across, within = params
        for t, p in zip(self.across, across):
            images, targets = t.apply(images, targets, p)
        for t, p in zip(self.within, within):
            images, targets = t.apply(images, targets, p)
        return images.clamp(0.0, 1.0), targets

    def __call__(self, images: torch.Tensor, targets: torch.Tensor, rng: np.random.Generator):
        return self.apply(images, targets, self.sample(rng, images.shape[0]))

    def apply_batch(
        self, images: torch.Tensor, targets: torch.Tensor, params: Sequence | JoinedParams
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply the parameters drawn per set (:meth:`sample`, one entry per set of the batch) to a
        whole batch at once, on whatever device the batch is on.

        Args:
            images: (B, S, 1, H, W).
            targets: (T, B, S, 1, H, W).
            params: B entries ``(across, within)`` as returned by :meth:`sample` for S elements, or
                the same joined by :func:`join_params`.

        Returns:
            The augmented images and targets, shapes as given.
        """
        B, T = images.shape[0], targets.shape[0]
        joined = params if isinstance(params, JoinedParams) else join_params(params)
        if joined.sets != B:
            raise ValueError(f"{joined.sets} parameter sets for a batch of {B} sets")
        if (len(joined.across), len(joined.within)) != (len(self.across), len(self.within)):
            raise ValueError("the parameters were drawn for another augmentation (transform counts differ)")
        x = rearrange(images, "B S C H W -> (B S) C H W")
        y = rearrange(targets, "T B S C H W -> (B S) (T C) H W")
        x, y = self.apply(x, y, (joined.across, joined.within))
        return (
            rearrange(x, "(B S) C H W -> B S C H W", B=B),
            rearrange(y, "(B S) (T C) H W -> T B S C H W", B=B, T=T),
        )


INTENSITY_FLIPS = ("image", "set")


def flip_slot(used: bool) -> IntensityFlip:
    """The intensity flip's place in a transform list: p = 0.5 where the mode inverts, else p = 0.

    Both modes keep a slot in both lists, so every mode's parameters have one layout and a batch
    whose sets come from sources of different modes is applied by one list
    (:meth:`SetAugmentation.apply_batch`, ``data.augment_on = "device"``). A p = 0 transform draws
    nothing (:meth:`~pancakes_data.augment.Transform.sample`), so the slot changes no set.
    """
    return IntensityFlip(p=0.5 if used else 0.0)


def _check_flip(intensity_flip: str) -> None:
    if intensity_flip not in INTENSITY_FLIPS:
        raise ValueError(f"intensity_flip must be one of {INTENSITY_FLIPS}, got {intensity_flip!r}")


def paper_within_set(size: int = 128, *, intensity_flip: str = "image") -> list[Transform]:
    """Table 3, in-task augmentations (independent per element).

    Args:
        size: image side (for the noise and elastic fields).
        intensity_flip: ``"image"`` (Table 3): each image of a set is inverted on its own with
            p = 0.5; ``"set"``: not here (the slot stays, at p = 0: :func:`flip_slot`) —
            :func:`paper_across_set` inverts whole sets instead.
    """
    _check_flip(intensity_flip)
    return [
        Affine(rotation=(-25, 25), translate=0.1, scale=(0.9, 1.1), p=0.25),
        BrightnessContrast(brightness=(-0.1, 0.1), contrast=(0.5, 1.5), p=0.5),
        Elastic(alpha=(1.0, 2.5), sigma=(7.0, 9.0), p=0.8, size=size),
        Sharpness(factor=3.0, p=0.25),
        flip_slot(intensity_flip == "image"),
        GaussianBlur(sigma=(0.1, 1.0), kernel=5, p=0.25),
        GaussianNoise(mean=(0.0, 0.05), std=(0.0, 0.05), p=0.25, size=size),
    ]


def paper_across_set(size: int = 128, *, intensity_flip: str = "image") -> list[Transform]:
    """Table 3, task augmentations (one draw shared by the set).

    Args:
        size: image side (for the noise and elastic fields).
        intensity_flip: ``"set"``: a whole set is inverted together with p = 0.5 (its images keep
            one polarity, as the images a user brings do); ``"image"`` (Table 3): not here (the
            slot stays, at p = 0: :func:`flip_slot`) — :func:`paper_within_set` inverts each image
            on its own.
    """
    _check_flip(intensity_flip)
    return [
        Affine(rotation=(0, 360), translate=0.2, scale=(0.8, 1.1), p=0.5),
        BrightnessContrast(brightness=(-0.1, 0.1), contrast=(0.8, 1.2), p=0.5),
        GaussianBlur(sigma=(0.1, 1.1), kernel=5, p=0.5),
        GaussianNoise(mean=(0.0, 0.05), std=(0.0, 0.05), p=0.5, size=size),
        Elastic(alpha=(1.0, 2.0), sigma=(6.0, 8.0), p=0.5, size=size),
        Sharpness(factor=5.0, p=0.5),
        Flip(axis="horizontal", p=0.5),
        Flip(axis="vertical", p=0.5),
        flip_slot(intensity_flip == "set"),
    ]
