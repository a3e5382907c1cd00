"""Turning one 2D slice (image + label maps) into a store-ready pair on the model grid."""

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
