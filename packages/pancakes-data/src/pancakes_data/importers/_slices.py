"""Turning 2D slices (image + label maps) into store-ready pairs on the model grid."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pancakes_data.geometry import SlicePlan


def prepare_pair(
    image: np.ndarray, labels: dict[str, np.ndarray], spacing: Sequence[float], size: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Square pixels → pad to square → anti-aliased resize (:class:`SlicePlan`); labels resized
    label by label."""
    plan = SlicePlan.for_slice(image.shape, spacing, size)
    return plan.forward(image), {p: plan.forward_labels(lab) for p, lab in labels.items()}


def contiguous_labels(maps: list[np.ndarray], names: dict[int, str]) -> tuple[list[np.ndarray], dict[int, str]]:
    """Renumber the labels seen in ``maps`` to 1..K (keeps label maps small and K honest); names
    follow their labels (``"label V"`` for a value ``names`` lacks)."""
    values = sorted(set(np.unique(np.stack(maps)).tolist()) - {0})
    lut = np.zeros(max(values, default=0) + 1, dtype=np.int64)
    lut[values] = np.arange(1, len(values) + 1)
    return [lut[m] for m in maps], {i + 1: names.get(v, f"label {v}") for i, v in enumerate(values)}
