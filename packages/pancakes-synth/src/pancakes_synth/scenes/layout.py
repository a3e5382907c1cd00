"""Scene families, the common part: populations of similar objects, thin and curvilinear structures, layered anatomy.

A family draws an *experiment* once per set (object sizes, densities, how many classes, their
arrangement: everything that makes a set's images look like one study), then a *layout* per image:
an instance map (H, W) where every object has its own id, and the class of every id. The classes
give the coarse targets (the union of a class, the whole foreground); the ids give the fine ones.

Images of a set either show new fields of view of the same experiment (``fields``: only class-level
targets are consistent across the set) or one layout deformed per image (``deformed``: every
instance is consistent too); the generator decides, each family says which it supports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

__all__ = ["Family", "Layout", "Painter", "harmonics", "positions"]


@dataclass
class Layout:
    """One image's structures.

    Attributes:
        instances: (H, W) int32 ids, 0 = background, contiguous 1 … L−1.
        classes: (L,) int class of every id (classes[0] = 0, the background class).
        class_names: name of every class id (index 0 = "background").
    """

    instances: np.ndarray
    classes: np.ndarray
    class_names: tuple[str, ...]


class Painter:
    """Collects instances with their classes while they are painted."""

    def __init__(self, size: int) -> None:
        self.canvas = np.zeros((size, size), np.int32)
        self.classes: list[int] = [0]

    def new(self, cls: int) -> int:
        self.classes.append(cls)
        return len(self.classes) - 1

    def finish(self, names: tuple[str, ...], *, min_pixels: int = 4) -> Layout:
        """Drop ids painted over (or too small to see) and renumber 1 … L−1 contiguously."""
        counts = np.bincount(self.canvas.ravel(), minlength=len(self.classes))
        keep = counts >= min_pixels
        keep[0] = True
        new_id = np.cumsum(keep) - 1
        inst = np.where(keep[self.canvas], new_id[self.canvas], 0).astype(np.int32)
        classes = np.asarray(self.classes)[keep]
        return Layout(inst, classes, names)


def harmonics(rng: np.random.Generator, irregularity: float, n: int = 4) -> np.ndarray:
    amp = rng.uniform(0, irregularity, size=n) / np.arange(1, n + 1)
    return np.stack([amp, rng.uniform(0, 2 * np.pi, size=n)], axis=1)


def positions(rng: np.random.Generator, count: int, size: int, *, spacing: float, clustered: float) -> np.ndarray:
    """``count`` (row, col) positions: uniform with a minimum ``spacing`` (sparse objects) or
    drawn around a few cluster centres with probability ``clustered`` (colonies, touching nuclei)."""
    if clustered > 0 and rng.random() < clustered:
        centres = rng.uniform(0.15 * size, 0.85 * size, size=(int(rng.integers(1, 5)), 2))
        spread = rng.uniform(0.08, 0.25) * size
        pick = rng.integers(0, len(centres), size=count)
        return np.clip(centres[pick] + rng.normal(0, spread, size=(count, 2)), 0, size - 1)
    pts = rng.uniform(0, size, size=(count * 4, 2))
    kept = np.empty((count, 2))
    n = 0
    for p in pts:  # dart throwing against the last 200 kept points, one vector test per dart
        d = p - kept[max(n - 200, 0) : n]
        if np.all(np.hypot(d[:, 0], d[:, 1]) >= spacing):
            kept[n] = p
            n += 1
            if n == count:
                break
    return kept[:n]


class Family:
    """Base class: ``experiment(rng, size)`` once per set, ``layout(rng, exp, size)`` per image."""

    name = ""
    modes: tuple[str, ...] = ("fields", "deformed")
    appearances: ClassVar[dict[str, float]] = {}

    def experiment(self, rng: np.random.Generator, size: int) -> dict:
        raise NotImplementedError

    def layout(self, rng: np.random.Generator, exp: dict, size: int) -> Layout:
        raise NotImplementedError
